"""Turn uploaded bytes into the one image type the library handles: uint8 H×W×3 RGB.

Uploads are untrusted, so the size is checked from the header before any pixel is decoded (a small
PNG can declare billions of pixels), and only common raster formats are accepted (Pillow's EPS
reader would start Ghostscript). Pillow's decompression-bomb warning is silenced here because our
own limit, `MAX_PIXELS`, is lower and enforced first; Pillow's hard limit still applies on top.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explainers.errors import ExplainerError

MAX_PIXELS = 40_000_000  # width × height of the largest accepted image (40 MP, ~ a 7300×5500 photo)
MAX_PIXELS_ENV = "SEGEXPLAIN_MAX_IMAGE_PIXELS"  # overrides MAX_PIXELS for `decode_image`'s default
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")  # Pillow's JPEG reader also opens MPO phone photos
# File-name extensions of those formats, for upload widgets.
EXTENSIONS = ("png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp")

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _too_large(width: int, height: int, max_pixels: int) -> ExplainerError:
    return ExplainerError(
        f"The image is {width}×{height} pixels ({width * height / 1e6:.1f} MP), above the "
        f"{max_pixels / 1e6:g} MP limit (set {MAX_PIXELS_ENV} to change it): downscale it before uploading."
    )


def max_pixels_from_env() -> int:
    """`MAX_PIXELS`, or the positive integer in the environment variable `MAX_PIXELS_ENV`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    try:
        value = int(float(text)) if text else MAX_PIXELS
    except ValueError:
        value = MAX_PIXELS
    return value if value > 0 else MAX_PIXELS


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Colour conversion with fixed, documented choices.

    - transparency (RGBA, LA, palette with a transparent colour) is composited over white, because
      the colour stored under fully transparent pixels is arbitrary (often black);
    - 16-bit grayscale maps 0..65535 linearly to 0..255 (Pillow's own conversion would clip);
      32-bit integer grayscale is read as 16-bit data (clipped to 0..65535), as 16-bit PNGs may open so;
    - bilevel, grayscale, palette, CMYK, YCbCr and other modes use Pillow's conversion to RGB.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        # round(v / 257) in integers: v / 257 is never exactly k + 0.5, so (v + 128) // 257 is the same
        raw = np.asarray(image)
        gray = np.empty(raw.shape, np.uint8)
        for rows in _row_blocks(raw.shape):
            block = np.clip(raw[rows], 0, 65535).astype(np.uint32)
            gray[rows] = (block + 128) // 257
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise ExplainerError(
            "The image holds 32-bit floating-point pixels: save it as an 8- or 16-bit PNG or as a JPEG."
        )
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return _over_white(image if mode == "RGBA" else image.convert("RGBA"))
    try:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ValueError:
        raise ExplainerError(
            f"Images in colour mode {mode} cannot be converted to RGB: save it as an RGB PNG or JPEG."
        ) from None


def _row_blocks(shape: tuple[int, ...], pixels: int = 1 << 20):
    """Slices of about `pixels` pixels each, so conversions never hold a float copy of a large image."""
    step = max(1, pixels // max(1, shape[1]))
    for start in range(0, shape[0], step):
        yield slice(start, start + step)


def _over_white(rgba: Image.Image) -> np.ndarray:
    """Composite an RGBA image over white in integer arithmetic, one band of rows at a time (no float64
    image, no full-size copy: a 40 MP RGBA in float64 would take 1.3 GB).
    round(c·a/255 + 255·(255-a)/255) exactly."""
    width, height = rgba.size
    out = np.empty((height, width, 3), np.uint8)
    for rows in _row_blocks((height, width)):
        top, bottom = rows.start, min(rows.stop, height)
        block = np.asarray(rgba.crop((0, top, width, bottom))).astype(np.uint16)
        alpha = block[..., 3:]
        # c·a + 255·(255 − a) ≤ 65025, + 127 for rounding: fits in uint16
        out[top:bottom] = (block[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return out


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored rather than failing the upload."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF raises assorted errors inside Pillow
        return image


def max_file_bytes(max_pixels: int) -> int:
    """The largest file an image within `max_pixels` can need: 8 bytes a pixel (16-bit RGBA, uncompressed)
    plus 16 MB of metadata. Anything larger is refused by its size, before a byte of it is read."""
    return 8 * max_pixels + 16_000_000


def check_image_file(path: str | os.PathLike, max_pixels: int | None = None) -> int:
    """Check an image file on disk before it is read: its size, then its header (format, width × height)
    from the first bytes only. Returns the file's size; raises `ExplainerError` with one sentence.

    For tools that read files from folders (the batch CLI): `decode_image` needs the whole file in
    memory, so a 3 GB file named `.tif` must be refused before that, not after."""
    if max_pixels is None:
        max_pixels = max_pixels_from_env()
    size = os.stat(path).st_size
    if size == 0:
        raise ExplainerError("The file is empty: use a PNG or JPEG image.")
    if size > max_file_bytes(max_pixels):
        raise ExplainerError(
            f"The file is {size / 1e9:.2f} GB, larger than any image within the {max_pixels / 1e6:g} MP limit "
            f"can be (set {MAX_PIXELS_ENV} to change it): it is not an image segexplain can read."
        )
    with open(path, "rb") as handle:  # a file that cannot be opened is the caller's OSError
        width, height = _header_size(handle, max_pixels)
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)
    return size


def _header_size(handle, max_pixels: int) -> tuple[int, int]:
    """(width, height) from an image file's header; one-sentence `ExplainerError`s for everything else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(handle, formats=FORMATS) as image:
                return image.size  # the header only: no pixel is decoded here
        except UnidentifiedImageError:
            raise ExplainerError(
                "The file is not an image segexplain can read: use a PNG, JPEG, GIF, BMP, TIFF or WebP file."
            ) from None
        except Image.DecompressionBombError:
            raise ExplainerError(
                f"The image declares more pixels than the {max_pixels / 1e6:g} MP limit "
                f"(set {MAX_PIXELS_ENV} to change it): downscale it first."
            ) from None
        except Exception:  # Pillow's header parsers raise OSError, SyntaxError, ValueError, struct.error, ...
            raise ExplainerError(
                "The image file is damaged or truncated: export it again and use the complete file."
            ) from None


def decode_image(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Decode an uploaded PNG/JPEG/GIF/BMP/TIFF/WebP to a C-contiguous uint8 H×W×3 RGB array.

    Images above `max_pixels` (width × height from the header) are refused before decoding; animated
    images give their first frame; EXIF orientation is applied so phone photos stand upright; see
    `_to_rgb` for the colour conversions. Every failure is an `ExplainerError` with one sentence.
    `max_pixels` defaults to `max_pixels_from_env()`.
    """
    return decode_with(data, lambda image: _to_rgb(_upright(image)), max_pixels)


def decode_with(
    data: bytes, convert: Callable[[Image.Image], np.ndarray], max_pixels: int | None = None
) -> np.ndarray:
    """Open uploaded bytes with every safety check of `decode_image`, then `convert` the first frame.

    Shared by every upload of pixels (images, label maps): only the listed formats (no Ghostscript
    readers), the pixel limit checked from the header before decoding, and one-sentence errors.
    `convert` may raise `ExplainerError` to refuse what it cannot use.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExplainerError(f"decode_image expects the file's bytes, got {type(data).__name__}.")
    if len(data) == 0:
        raise ExplainerError("The file is empty: upload a PNG or JPEG image.")
    if max_pixels is None:
        max_pixels = max_pixels_from_env()
    if max_pixels <= 0:
        raise ExplainerError(f"max_pixels must be positive, got {max_pixels}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise _too_large(width, height, max_pixels)
                if width <= 0 or height <= 0:
                    raise ExplainerError("The image has no pixels: upload a non-empty PNG or JPEG image.")
                image.seek(0)
                image.load()
                pixels = convert(image)
        except ExplainerError:
            raise
        except Image.DecompressionBombError:
            hard_limit = 2 * (Image.MAX_IMAGE_PIXELS or max_pixels)
            raise ExplainerError(
                f"The image declares more pixels than the {min(max_pixels, hard_limit) / 1e6:g} MP limit "
                f"(set {MAX_PIXELS_ENV} to change it): downscale it before uploading."
            ) from None
        except UnidentifiedImageError:
            raise ExplainerError(
                "The file is not an image segexplain can read: upload a PNG, JPEG, GIF, BMP, TIFF or WebP file."
            ) from None
        except Exception:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, ...
            raise ExplainerError(
                "The image file is damaged or truncated: export it again and upload the complete file."
            ) from None
    return np.ascontiguousarray(pixels)
