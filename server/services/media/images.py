"""Cover art, decoded and drawn anew before it is kept.

An embedded picture is whatever bytes the file's tags hold: a real image, or a valid
image header followed by HTML or script (a polyglot), an image with a tracker's metadata,
or a few bytes that claim a size of a billion pixels (a decompression bomb). Pillow
decodes it (JPEG, PNG or WebP only, its size checked before the pixels are decoded), and
only its pixels are written out again, at most ``MAX_SIDE`` pixels a side: JPEG, or PNG
when it has transparency, with no metadata at all (no EXIF, XMP, ICC profile or text
chunks). Nothing else of the original is kept. Pure and synchronous: call it in a thread.

Pillow is imported by the functions that use it, on the first picture: a web process would
otherwise hold it for nothing (pictures are handled by the worker and by the few requests
that upload or measure one).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import blurhash

if TYPE_CHECKING:
    from PIL import Image

INPUT_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_SOURCE_PIXELS = 40_000_000  # a 6000 × 6000 scan passes; refused before decoding
MAX_SIDE = 1400  # what is kept: enough for a sharp cover on any screen
JPEG_QUALITY = 88
BLURHASH_SIDE = 32  # the picture is shrunk to this before its BlurHash is computed
BLURHASH_COMPONENTS = 4  # per axis; Mastodon refuses more than 5


class BadImage(ValueError):
    pass


@dataclass(frozen=True)
class CleanImage:
    mime_type: str
    extension: str
    data: bytes
    width: int
    height: int


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def clean_image(data: bytes, max_side: int = MAX_SIDE) -> CleanImage:
    """The picture in ``data`` re-encoded from its pixels, at most ``max_side`` pixels a
    side; BadImage if it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns of (and above twice its limit refuses) a decompression bomb
            # when it opens one; ours is lower and checked below, before decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=INPUT_FORMATS) as image:
                width, height = image.size
                if width < 1 or height < 1 or width * height > MAX_SOURCE_PIXELS:
                    raise BadImage(f"a {width} × {height} picture is too large")
                alpha = _has_alpha(image)
                image.draft("RGB", (max_side, max_side))  # JPEG: decode at a smaller scale
                image.load()
                pixels = image.convert("RGBA" if alpha else "RGB")
    except BadImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise BadImage(f"not a JPEG, PNG or WebP picture: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated, corrupt
        raise BadImage(f"the picture cannot be decoded: {exc}") from None
    pixels.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    pixels.info.clear()  # nothing of the original's metadata goes out again
    out = io.BytesIO()
    if alpha:
        pixels.save(out, "PNG", optimize=True)
        mime_type, extension = "image/png", "png"
    else:
        pixels.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        mime_type, extension = "image/jpeg", "jpeg"
    return CleanImage(mime_type, extension, out.getvalue(), *pixels.size)


def blurhash_of(data: bytes) -> str:
    """The BlurHash of a picture kept by :func:`clean_image` (a placeholder a fediverse
    server shows while the picture loads); computed from a small copy of it."""
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
        small = image.convert("RGB")
    small.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BILINEAR)
    width, height = small.size
    data = small.tobytes()  # RGB, row by row
    rows = [
        [list(data[(y * width + x) * 3 : (y * width + x) * 3 + 3]) for x in range(width)]
        for y in range(height)
    ]
    return str(blurhash.encode(rows, BLURHASH_COMPONENTS, BLURHASH_COMPONENTS))


def fit_jpeg(data: bytes, width: int, height: int) -> CleanImage:
    """A picture (one :func:`clean_image` made) cut to exactly ``width`` × ``height``:
    scaled to cover that box and cropped about its centre, transparency on white, JPEG.
    For avatars (square) and headers (3:1)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
        image.load()
        source = image.convert("RGBA")
    flat = Image.new("RGB", source.size, "white")
    flat.paste(source, mask=source.getchannel("A"))
    fitted = ImageOps.fit(flat, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    out = io.BytesIO()
    fitted.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return CleanImage("image/jpeg", "jpg", out.getvalue(), *fitted.size)


def picture_size(path: Path) -> tuple[int, int] | None:
    """The width and height of the picture in the file at ``path`` (its header only is
    read), or None if it cannot be read as one."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            width, height = picture.size
    except (OSError, ValueError):
        return None
    return width, height
