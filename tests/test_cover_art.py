"""Cover art is decoded and drawn anew before it is kept: polyglots, fakes, metadata,
huge sizes and decompression bombs (the rule alone, then through real uploads on both
databases)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from mutagen.id3 import APIC, ID3
from PIL import Image
from quart.typing import TestClientProtocol as Client

from server.services.media.images import MAX_SIDE, BadImage, clean_image
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, artist, upload

__all__ = ["artist"]

HOSTILE = b"<html><body><script>alert(document.cookie)</script></body></html>"


def picture(fmt: str = "JPEG", size: tuple[int, int] = (32, 24), mode: str = "RGB",
            **options: object) -> bytes:  # fmt: skip
    out = io.BytesIO()
    Image.new(mode, size, (120, 40, 140, 200)[: len(mode)]).save(out, fmt, **options)
    return out.getvalue()


def with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Tracker Camera"  # Make
    exif[0x8825] = {2: (52.0, 22.0, 1.0)}  # GPS latitude
    return picture(exif=exif.tobytes(), icc_profile=b"\0" * 128, comment=b"secret comment")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb)."""
    data = picture("PNG", (1, 1))
    ihdr = struct.pack(">II", width, height) + data[24:29]
    chunk = b"IHDR" + ihdr
    return data[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_polyglot_comes_out_as_a_clean_image() -> None:
    clean = clean_image(picture() + HOSTILE)
    assert clean.mime_type == "image/jpeg"
    assert b"<script" not in clean.data and b"<html" not in clean.data
    assert clean.data.endswith(b"\xff\xd9"), "nothing after the end of the JPEG"
    assert decoded(clean.data).size == (32, 24)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff\xe0" + HOSTILE, b"\x89PNG\r\n\x1a\n" + HOSTILE, HOSTILE, b"",
     b"RIFF\0\0\0\0WEBP" + HOSTILE, picture("GIF"), picture("BMP"), picture()[:200]],
)  # fmt: skip
def test_what_is_not_a_picture_is_refused(data: bytes) -> None:
    with pytest.raises(BadImage):
        clean_image(data)


def test_metadata_is_stripped() -> None:
    original = with_exif()
    assert b"Tracker Camera" in original and b"secret comment" in original
    clean = clean_image(original)
    assert b"Tracker Camera" not in clean.data and b"secret comment" not in clean.data
    image = decoded(clean.data)
    assert dict(image.getexif()) == {}
    assert "icc_profile" not in image.info and "exif" not in image.info
    assert "comment" not in image.info


def test_transparency_is_kept_as_png_without_text_chunks() -> None:
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "someone@example.org")
    clean = clean_image(picture("PNG", mode="RGBA", pnginfo=text))
    assert clean.mime_type == "image/png"
    assert b"someone@example.org" not in clean.data
    assert decoded(clean.data).mode == "RGBA"


def test_large_pictures_are_made_smaller_and_bombs_refused() -> None:
    big = clean_image(picture(size=(3000, 2000)))
    assert (big.width, big.height) == (MAX_SIDE, round(MAX_SIDE * 2000 / 3000))
    assert decoded(big.data).size == (big.width, big.height)
    for width, height in ((8000, 8000), (30000, 30000), (1, 10**8)):
        with pytest.raises(BadImage):
            clean_image(png_claiming(width, height))
    assert clean_image(png_claiming(1, 1)).width == 1, "the patched header itself is sound"


def audio_with_picture(tmp_path: Path, data: bytes, mime: str = "image/jpeg") -> Path:
    path = make_audio(tmp_path / "song.mp3", "mp3", seconds=0.5,
                      tags={"title": "Night Swim", "album": "Tides"})  # fmt: skip
    tags = ID3(path)
    tags.add(APIC(encoding=3, mime=mime, type=3, desc="Cover", data=data))
    tags.save(path, v2_version=3)
    return path


async def test_an_uploaded_polyglot_is_stored_as_a_clean_image(
    client: Client, artist: Account, tmp_path: Path
) -> None:
    path = audio_with_picture(tmp_path, picture() + HOSTILE, mime="text/html")
    body = await (await upload(client, artist, path)).get_json()
    assert body["release"]["cover_url"], body
    response = await client.get(f"/releases/{body['release']['id']}/cover", headers=artist.headers)
    assert response.status_code == 200
    assert response.content_type == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    data = await response.get_data()
    assert b"<script" not in data
    assert decoded(data).size == (32, 24)


async def test_an_uploaded_fake_picture_is_not_kept(
    client: Client, artist: Account, tmp_path: Path
) -> None:
    path = audio_with_picture(tmp_path, b"\xff\xd8\xff\xe0" + HOSTILE)
    response = await upload(client, artist, path)
    assert response.status_code == 202, "the track itself is fine"
    body = await response.get_json()
    assert body["release"]["cover_url"] is None
    cover = await client.get(f"/releases/{body['release']['id']}/cover", headers=artist.headers)
    assert cover.status_code == 404
