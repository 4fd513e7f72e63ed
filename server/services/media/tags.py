"""Reading tags and embedded cover art with mutagen, and the rules they must meet.

``read_tags`` turns whatever the container holds (ID3, Vorbis comments, MP4 atoms) into
one :class:`RawTags`; ``clean_tags`` is pure: it fills gaps from the file name and
refuses absurd values with a reason a person understands.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import Picture

LIMITS = {"title": 300, "artist": 300, "album": 300, "album_artist": 300, "genre": 100}
ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")
MAX_PICTURE_BYTES = 10 * 1024 * 1024


class TagError(ValueError):
    """A tag cannot be accepted; the message names it and says why."""


class UnreadableAudio(ValueError):
    """mutagen cannot parse the file as the format its content claims."""


@dataclass(frozen=True)
class RawTags:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    album_artist: str | None = None
    track_number: str | None = None
    disc_number: str | None = None
    date: str | None = None
    genre: str | None = None
    isrc: str | None = None
    compilation: bool = False
    duration_seconds: float | None = None
    bitrate: int | None = None
    pictures: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class TrackTags:
    title: str
    artist: str
    album: str | None
    album_artist: str | None
    position: int
    disc: int
    release_date: date | None
    year: int | None
    genre: str
    isrc: str | None
    compilation: bool


def _first(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
        if value is None:
            return None
    text = getattr(value, "text", None)
    if text is not None:  # an ID3 frame
        return _first(text)
    return str(value)


def _id3(tags: Any) -> dict[str, Any]:
    def frame(name: str) -> str | None:
        found = tags.getall(name) if hasattr(tags, "getall") else []
        return _first(found[0]) if found else None

    pictures = tuple(
        (apic.mime or "image/jpeg", bytes(apic.data)) for apic in tags.getall("APIC")
    ) if hasattr(tags, "getall") else ()  # fmt: skip
    return {
        "title": frame("TIT2"),
        "artist": frame("TPE1"),
        "album": frame("TALB"),
        "album_artist": frame("TPE2"),
        "track_number": frame("TRCK"),
        "disc_number": frame("TPOS"),
        "date": frame("TDRC") or frame("TYER"),
        "genre": frame("TCON"),
        "isrc": frame("TSRC"),
        "compilation": frame("TCMP") == "1",
        "pictures": pictures,
    }


def _vorbis(audio: Any) -> dict[str, Any]:
    tags = audio.tags or {}

    def get(name: str) -> str | None:
        return _first(tags.get(name)) if name in tags else None

    pictures: list[tuple[str, bytes]] = [
        (picture.mime or "image/jpeg", bytes(picture.data))
        for picture in getattr(audio, "pictures", [])
    ]
    for encoded in tags.get("metadata_block_picture", []) if tags else []:
        try:
            picture = Picture(base64.b64decode(encoded))  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001, S112 - a broken picture is skipped, not fatal
            continue
        pictures.append((picture.mime or "image/jpeg", bytes(picture.data)))
    return {
        "title": get("title"),
        "artist": get("artist"),
        "album": get("album"),
        "album_artist": get("albumartist") or get("album artist"),
        "track_number": get("tracknumber"),
        "disc_number": get("discnumber"),
        "date": get("date") or get("year"),
        "genre": get("genre"),
        "isrc": get("isrc"),
        "compilation": get("compilation") == "1",
        "pictures": tuple(pictures),
    }


def _mp4(tags: Any) -> dict[str, Any]:
    def get(name: str) -> str | None:
        return _first(tags.get(name)) if name in tags else None

    def number(name: str) -> str | None:
        value = tags.get(name)
        if not value:
            return None
        index, total = value[0]
        return f"{index}/{total}" if total else str(index)

    isrc = tags.get("----:com.apple.iTunes:ISRC")
    covers = tags.get("covr", [])
    return {
        "title": get("\xa9nam"),
        "artist": get("\xa9ART"),
        "album": get("\xa9alb"),
        "album_artist": get("aART"),
        "track_number": number("trkn"),
        "disc_number": number("disk"),
        "date": get("\xa9day"),
        "genre": get("\xa9gen"),
        "isrc": bytes(isrc[0]).decode(errors="replace") if isrc else None,
        "compilation": bool(tags.get("cpil")),
        "pictures": tuple(
            ("image/png" if cover.imageformat == 14 else "image/jpeg", bytes(cover))
            for cover in covers
        ),
    }


def read_tags(path: Path) -> RawTags:
    try:
        audio = mutagen.File(path)
    except Exception as exc:  # noqa: BLE001 - mutagen raises many kinds for broken files
        raise UnreadableAudio(f"the file cannot be read as audio: {exc}") from None
    if audio is None:
        raise UnreadableAudio("the file cannot be read as audio")
    kind = type(audio).__name__
    values: dict[str, Any] = {}
    if audio.tags is not None:
        if kind in ("MP4",):
            values = _mp4(audio.tags)
        elif kind in ("FLAC", "OggVorbis", "OggOpus"):
            values = _vorbis(audio)
        elif hasattr(audio.tags, "getall"):
            values = _id3(audio.tags)
    elif kind == "FLAC":
        values = _vorbis(audio)  # pictures without comments
    info = getattr(audio, "info", None)
    length = getattr(info, "length", None)
    bitrate = getattr(info, "bitrate", None)
    return RawTags(
        **{key: value for key, value in values.items() if key in RawTags.__dataclass_fields__},
        duration_seconds=float(length) if length else None,
        bitrate=int(bitrate) if bitrate else None,
    )


_LEADING_NUMBER = re.compile(r"^\s*(?:(\d{1,2})[-.](?=\d))?(\d{1,3})(?:\s*[-._)]\s*|\s+)(.+)$")


def names_from_file_name(file_name: str) -> tuple[int | None, int | None, str]:
    """``"01 - Into the Night.flac"`` → ``(None, 1, "Into the Night")``;
    ``"2-03_song_name.mp3"`` → ``(2, 3, "song name")``."""
    stem = Path(file_name).stem.strip() or "Untitled"
    disc = position = None
    match = _LEADING_NUMBER.match(stem)
    if match:
        disc = int(match.group(1)) if match.group(1) else None
        position = int(match.group(2))
        stem = match.group(3)
    if " " not in stem:
        stem = stem.replace("_", " ")
    return disc, position, " ".join(stem.split()) or "Untitled"


def _check_text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = unicodedata.normalize("NFC", value).strip().strip("\x00")
    if not value:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in value):
        raise TagError(f"the {name.replace('_', ' ')} tag contains control characters")
    limit = LIMITS[name]
    if len(value) > limit:
        raise TagError(
            f"the {name.replace('_', ' ')} tag is {len(value)} characters long; "
            f"at most {limit} are accepted"
        )
    return value


def _number(name: str, value: str | None) -> int | None:
    """``"3"``, ``"3/12"`` → 3; nonsense is refused; absurd numbers too."""
    if value is None or not value.strip():
        return None
    head = value.strip().split("/", 1)[0].strip()
    if not (head.isascii() and head.isdigit()) or len(head) > 4:
        raise TagError(f"the {name} tag {value[:20]!r} is not a number")
    number = int(head)
    if not 0 < number <= 999:
        raise TagError(f"the {name} tag {number} is out of range 1-999")
    return number


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def _date(value: str | None) -> tuple[date | None, int | None]:
    if not value:
        return None, None
    match = _DATE.match(value.strip())
    if not match:
        return None, None  # unknown date formats are dropped, not refused
    year = int(match.group(1))
    if not 1000 <= year <= 2999:
        return None, None
    try:
        full = date(year, int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        full = None
    return (full if match.group(2) else None), year


def clean_tags(raw: RawTags, file_name: str) -> TrackTags:
    """Check tags and fill what is missing from the file name."""
    file_disc, file_position, file_title = names_from_file_name(file_name)
    title = _check_text("title", raw.title) or file_title[: LIMITS["title"]]
    artist = _check_text("artist", raw.artist) or ""
    album = _check_text("album", raw.album)
    album_artist = _check_text("album_artist", raw.album_artist)
    genre = _check_text("genre", raw.genre) or ""
    position = _number("track number", raw.track_number) or file_position or 1
    disc = _number("disc number", raw.disc_number) or file_disc or 1
    isrc = None
    if raw.isrc:
        candidate = raw.isrc.strip().replace("-", "").upper()
        isrc = candidate if ISRC.match(candidate) else None
    release_date, year = _date(raw.date)
    return TrackTags(
        title=title,
        artist=artist,
        album=album,
        album_artist=album_artist,
        position=position,
        disc=disc,
        release_date=release_date,
        year=year,
        genre=genre,
        isrc=isrc,
        compilation=raw.compilation,
    )
