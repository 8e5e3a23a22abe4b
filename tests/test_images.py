"""Upload decoding: every colour mode ends as uint8 RGB, and bad or oversized files fail with one sentence."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from explainers import images
from explainers.errors import ExplainerError


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 2×2 PNG whose IHDR is rewritten (with a correct CRC) to declare another size."""
    data = bytearray(encode(Image.new("RGB", (2, 2))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


RNG = np.random.default_rng(5)
RGB = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)


def test_rgb_png_round_trips_exactly() -> None:
    out = images.decode_image(encode(Image.fromarray(RGB)))
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_jpeg_decodes_to_rgb() -> None:
    out = images.decode_image(encode(Image.fromarray(RGB), "JPEG", quality=95))
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8


def test_accepts_bytearray_and_memoryview() -> None:
    data = encode(Image.fromarray(RGB))
    np.testing.assert_array_equal(images.decode_image(bytearray(data)), RGB)
    np.testing.assert_array_equal(images.decode_image(memoryview(data)), RGB)


def test_grayscale_and_bilevel_become_three_equal_channels() -> None:
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    out = images.decode_image(encode(Image.fromarray(gray)))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    bits = np.zeros((4, 4), dtype=bool)
    bits[1, 2] = True
    out = images.decode_image(encode(Image.fromarray(bits)))
    assert out[1, 2].tolist() == [255, 255, 255] and out.sum() == 3 * 255


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257 * 100, 65535], [1000, 30000, 65000]], dtype=np.uint16)
    out = images.decode_image(encode(Image.fromarray(values)))
    expected = np.round(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 2], expected)
    assert out[0, 1, 0] == 100 and out[0, 2, 0] == 255


def test_palette_image_uses_its_colours() -> None:
    palette_image = Image.fromarray(RGB).quantize(colors=8)
    assert palette_image.mode == "P"
    out = images.decode_image(encode(palette_image))
    np.testing.assert_array_equal(out, np.asarray(palette_image.convert("RGB")))


def test_transparent_pixels_are_composited_on_white() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = [10, 20, 200]
    rgba[0, :, 3] = [255, 0, 128]
    rgba[1, :, 3] = 255
    out = images.decode_image(encode(Image.fromarray(rgba)))
    assert out[0, 0].tolist() == [10, 20, 200]
    assert out[0, 1].tolist() == [255, 255, 255]  # fully transparent: white, not the stored blue
    a = 128 / 255
    assert out[0, 2].tolist() == [round(10 * a + 255 * (1 - a)), round(20 * a + 255 * (1 - a)), round(200 * a + 255 * (1 - a))]
    la = Image.fromarray(np.dstack([np.full((2, 2), 40, np.uint8), np.array([[0, 255], [255, 255]], np.uint8)]), "LA")
    out = images.decode_image(encode(la))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [40, 40, 40]


def test_palette_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    out = images.decode_image(encode(image, transparency=0))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [200, 0, 0]


def test_cmyk_is_converted() -> None:
    cmyk = Image.new("CMYK", (3, 2), (0, 0, 0, 0))
    cmyk.putpixel((1, 1), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    for fmt in ("JPEG", "TIFF"):
        out = images.decode_image(encode(cmyk, fmt))
        assert out.shape == (2, 3, 3)
        assert out[0, 0].min() > 240  # white paper
        red = out[1, 1].astype(int)
        assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    out = images.decode_image(data)
    assert out.shape == (4, 4, 3) and (out == [255, 0, 0]).all()


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = images.decode_image(encode(Image.fromarray(RGB), "JPEG", exif=exif.tobytes()))
    assert out.shape == (9, 7, 3)


def test_images_above_the_limit_are_refused_from_the_header_alone() -> None:
    data = png_claiming_size(8000, 6000)  # 48 MP declared; the pixel data would not even decode
    with pytest.raises(ExplainerError, match=r"8000×6000 pixels \(48\.0 MP\), above the 40 MP limit"):
        images.decode_image(data)
    with pytest.raises(ExplainerError, match="above the 0.005 MP limit"):
        images.decode_image(encode(Image.fromarray(RGB).resize((100, 100))), max_pixels=5000)
    assert images.decode_image(encode(Image.fromarray(RGB)), max_pixels=63).shape == (7, 9, 3)


def test_pillows_own_bomb_limit_gives_the_same_kind_of_message() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may leak either
        with pytest.raises(ExplainerError, match="than the 40 MP limit"):
            images.decode_image(png_claiming_size(30000, 30000))
        with pytest.raises(ExplainerError, match=r"more pixels than the 178\.9\d* MP limit"):
            images.decode_image(png_claiming_size(20000, 20000), max_pixels=10**9)
        # between Pillow's warning and error sizes our higher limit lets it through to decoding
        with pytest.raises(ExplainerError, match="damaged or truncated"):
            images.decode_image(png_claiming_size(10000, 10000), max_pixels=10**9)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "The file is empty"),
        (b"hello, this is a text file\n" * 5, "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
        (b"PK\x03\x04" + bytes(60), "not an image"),
    ],
)
def test_non_images_are_refused(data, words) -> None:
    with pytest.raises(ExplainerError, match=words):
        images.decode_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(fmt) -> None:
    noisy = Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    with pytest.raises(ExplainerError, match="damaged or truncated"):
        images.decode_image(data[: len(data) // 2])


def test_float_images_are_refused_with_a_hint() -> None:
    data = encode(Image.fromarray(np.ones((3, 3), np.float32)), "TIFF")
    with pytest.raises(ExplainerError, match="floating-point"):
        images.decode_image(data)


def test_wrong_argument_types_are_refused() -> None:
    with pytest.raises(ExplainerError, match="bytes"):
        images.decode_image("picture.png")  # type: ignore[arg-type]


def test_every_message_is_one_sentence() -> None:
    messages = []
    for data in (b"", b"junk" * 10, png_claiming_size(8000, 6000)):
        with pytest.raises(ExplainerError) as info:
            images.decode_image(data)
        messages.append(str(info.value))
    for message in messages:
        assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message
