"""Hostile and heavy images: refused in one sentence before decoding, or decoded within the memory budget
(transparency composited in integers, never as a float64 copy of the image)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dashboard import sidebar
from explainers import ExplainerError, images

ROOT = Path(__file__).resolve().parents[1]


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (2, 2))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("P", (2, 2)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (2, 2)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


REFUSED = {
    "claims-100k.png": (lambda: png_claiming(100_000, 100_000), "40 MP limit (set SEGEXPLAIN_MAX_IMAGE_PIXELS to change it)"),
    "claims-huge.gif": (lambda: gif_claiming(65_535, 65_535), "40 MP limit (set SEGEXPLAIN_MAX_IMAGE_PIXELS to change it)"),
    "claims-huge.bmp": (lambda: bmp_claiming(30_000, 30_000), "40 MP limit (set SEGEXPLAIN_MAX_IMAGE_PIXELS to change it)"),
    "postscript.png": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "not an image"),
    "script.svg.png": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                       "not an image"),
    "truncated.png": (lambda: encode(Image.new("RGB", (64, 64), (1, 2, 3)))[:60], "damaged or truncated"),
    "empty.png": (lambda: b"", "empty"),
    "float.tiff": (lambda: encode(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF"), "floating-point"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_images_are_refused_in_one_sentence(name) -> None:
    build, words = REFUSED[name]
    choice, message = sidebar.image_from_upload(name, build())
    assert choice is None and message is not None
    assert words in message and name in message and "\n" not in message, message


def test_the_size_limit_names_its_variable_and_follows_it(monkeypatch) -> None:
    data = encode(Image.new("RGB", (300, 200)))
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "50000")
    with pytest.raises(ExplainerError, match=r"0\.05 MP limit \(set SEGEXPLAIN_MAX_IMAGE_PIXELS to change it\)"):
        images.decode_image(data)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "60000")
    assert images.decode_image(data).shape == (200, 300, 3)


def test_transparency_is_composited_exactly_in_integers() -> None:
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (37, 29, 4), dtype=np.uint8)
    rgba[0, :256 // 29 + 1] = 0
    got = images.decode_image(encode(Image.fromarray(rgba, "RGBA")))
    alpha = rgba[..., 3:].astype(np.float64) / 255.0  # the published formula, in float64 here only
    expected = np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_sixteen_bit_images_map_exactly_without_floats() -> None:
    values = np.arange(0, 65536, 7, dtype=np.uint16)[: 90 * 100].reshape(90, 100)
    got = images.decode_image(encode(Image.fromarray(values)))
    np.testing.assert_array_equal(got[..., 0], np.round(values / 257.0).astype(np.uint8))


def test_a_gif_with_many_frames_gives_the_first_quickly() -> None:
    frames = [Image.new("P", (8, 8), k % 200) for k in range(2000)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixels = images.decode_image(data)
    assert pixels.shape == (8, 8, 3)
    np.testing.assert_array_equal(pixels, np.asarray(frames[0].convert("RGB")))


_CHILD = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    from explainers import images
    def status(field):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    data = open(sys.argv[2], "rb").read()
    images.decode_image(open(sys.argv[3], "rb").read())  # warm-up
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    base = status("VmRSS")
    pixels = images.decode_image(data)
    print("RESULT" + json.dumps({"shape": list(pixels.shape), "corner": pixels[0, 0].tolist(),
                                 "peak_above_base_mb": status("VmHWM") - base}))
""")


@pytest.mark.slow
def test_a_small_40_megapixel_rgba_png_decodes_within_the_budget(tmp_path) -> None:
    """164 KB on disk, 39.7 MP with transparency: it used to take 4.8 GB (float64 compositing)."""
    path = tmp_path / "big.png"
    Image.new("RGBA", (7300, 5440), (10, 200, 30, 128)).save(path)
    warm = tmp_path / "warm.png"
    Image.new("RGBA", (4, 4)).save(warm)
    assert path.stat().st_size < 400_000
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(path), str(warm)], capture_output=True,
                          text=True, timeout=600, check=False, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, done.stderr[-2000:]
    result = json.loads(line[len("RESULT"):])
    assert result["shape"] == [5440, 7300, 3]
    assert result["corner"] == [round((10 * 128 + 255 * 127) / 255), round((200 * 128 + 255 * 127) / 255),
                                round((30 * 128 + 255 * 127) / 255)]
    # the decoded RGBA (159 MB) and the RGB result (119 MB) must exist; nothing near a float copy (1.3 GB)
    assert result["peak_above_base_mb"] < 500, result


def test_a_very_wide_image_is_accepted_and_the_page_says_it_is_stretched() -> None:
    choice, message = sidebar.image_from_upload("strip.png", encode(Image.new("RGB", (4000, 3), (9, 9, 9))))
    assert message is None and choice["pixels"].shape == (3, 4000, 3)
    note = sidebar.resize_note(3, 4000, (144, 144))
    assert note is not None and "Stretched to the model's 144×144 px input" in note and "4000×3" in note
    assert sidebar.resize_note(300, 300, (144, 144)) == "Resized to the model's 144×144 px input (same proportions)."
    assert sidebar.resize_note(144, 144, (144, 144)) is None
    assert sidebar.resize_note(30, 40, (None, None)) is None


def test_a_large_upload_is_reduced_once_in_uint8_and_says_its_original_size() -> None:
    data = encode(Image.new("RGB", (4000, 2500), (30, 60, 90)))  # 10 MP, a few KB on disk
    choice, message = sidebar.image_from_upload("big.png", data)
    assert message is None
    height, width = choice["pixels"].shape[:2]
    assert height * width <= sidebar.WORKING_PIXELS and abs(width / height - 1.6) < 0.01
    assert choice["pixels"].dtype == np.uint8 and (choice["pixels"] == [30, 60, 90]).all()
    assert choice["original_size"] == (4000, 2500)
    small, _ = sidebar.image_from_upload("small.png", encode(Image.new("RGB", (300, 200))))
    assert "original_size" not in small and small["pixels"].shape == (200, 300, 3)
