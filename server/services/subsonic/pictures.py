"""Pictures at the size an app asks for (``getCoverArt``'s ``size``): the stored cover or
avatar shrunk with Pillow, in a thread, and kept on disk beside the media store under the
picture's digest and the size, so each (picture, size) is made once. A new cover has a new
digest, hence a new file; the cache holds only pictures at most ``MAX_SIDE`` a side and
may be emptied at any time (it is made again on request)."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from server.services.media.images import MAX_SIDE, BadImage, clean_image
from server.services.media.storage import LocalStorage
from server.services.subsonic.catalogue import Picture

CACHE_FOLDER = "sized-pictures"  # under the instance's data folder


@dataclass(frozen=True)
class PictureFile:
    path: Path
    mime_type: str
    etag: str  # the picture's digest and size: the same bytes for ever


class PictureUnavailable(Exception):
    """The stored picture is missing or cannot be read: nothing to show."""


def bucket(size: int) -> int:
    """The size a picture is made at for an asked ``size``: the next of a few steps (16
    px apart up to 128, 64 up to 512, 128 beyond), so one account cannot make the cache
    hold every size of every picture; apps scale what they get."""
    for step, up_to in ((16, 128), (64, 512), (128, MAX_SIDE)):
        if size <= up_to:
            return min(-(-size // step) * step, MAX_SIDE)
    return MAX_SIDE


def cache_root(data_dir: Path) -> Path:
    return data_dir / "cache" / CACHE_FOLDER


def _shrink(source: Path, target: Path, size: int) -> str:
    made = clean_image(source.read_bytes(), max_side=size)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    partial.write_bytes(made.data)
    os.replace(partial, target)  # readers see the whole file or none
    return made.mime_type


async def sized(
    storage: LocalStorage, data_dir: Path, picture: Picture, size: int | None
) -> PictureFile:
    """The picture as stored, or at most ``size`` pixels a side (never enlarged; ``size``
    rounded up to its :func:`bucket`). PictureUnavailable if the stored one cannot be
    read."""
    original = storage.path(picture.storage_key)
    if size is not None:
        size = bucket(size)
    if size is None or size >= MAX_SIDE:
        return PictureFile(original, picture.mime_type, f'"{picture.sha256[:32]}"')
    digest = picture.sha256
    folder = cache_root(data_dir) / digest[:2]
    for extension, mime_type in (("jpeg", "image/jpeg"), ("png", "image/png")):
        cached = folder / f"{digest}-{size}.{extension}"
        if cached.is_file():
            return PictureFile(cached, mime_type, f'"{digest[:32]}-{size}"')
    # the stored picture is JPEG unless it has transparency (media.images): so is the copy
    extension = "png" if picture.mime_type == "image/png" else "jpeg"
    target = folder / f"{digest}-{size}.{extension}"
    try:
        mime_type = await asyncio.to_thread(_shrink, original, target, size)
    except (OSError, BadImage) as error:
        raise PictureUnavailable(str(error)) from None
    return PictureFile(target, mime_type, f'"{digest[:32]}-{size}"')
