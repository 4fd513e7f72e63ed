"""Pure media rules: format sniffing, tags, ranges and conditional requests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.services.media.formats import AudioFormat, id3_size, sniff
from server.services.media.ranges import (
    ByteRange,
    RangeError,
    http_date,
    if_range_allows,
    not_modified,
    parse_range,
)
from server.services.media.tags import RawTags, TagError, clean_tags, names_from_file_name
from tests.audio import make_audio, make_cover

EXPECTED = {
    "mp3": AudioFormat.MP3,
    "flac": AudioFormat.FLAC,
    "ogg": AudioFormat.OGG_VORBIS,
    "opus": AudioFormat.OPUS,
    "m4a": AudioFormat.M4A,
    "wav": AudioFormat.WAV,
    "aiff": AudioFormat.AIFF,
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_sniff_real_files(tmp_path: Path, fmt: str) -> None:
    path = make_audio(tmp_path / f"a.{fmt}", fmt, seconds=0.5)
    assert sniff(path.read_bytes()[:4096]) is EXPECTED[fmt]


def test_sniff_mp3_behind_a_large_id3_tag(tmp_path: Path) -> None:
    cover = make_cover(tmp_path / "c.png")
    path = make_audio(tmp_path / "a.mp3", "mp3", seconds=0.5, cover=cover, tags={"title": "x"})
    data = path.read_bytes()
    size = id3_size(data[:10])
    assert size > 100
    assert sniff(data[:10] + bytes(size - 10) + data[size : size + 4096]) is AudioFormat.MP3


@pytest.mark.parametrize(
    "head",
    [b"", b"hello, this is text", b"\x89PNG\r\n\x1a\n" + bytes(100), b"RIFF\0\0\0\0AVI ",
     b"OggS" + bytes(24) + b"\x80theora" + bytes(8), b"\xff\xff\xff\xff", b"ID3\x03\0\0\0\0\0\x05"],
)  # fmt: skip
def test_sniff_refuses_what_is_not_accepted_audio(head: bytes) -> None:
    assert sniff(head) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01 - Into the Night.flac", (None, 1, "Into the Night")),
        ("2-03_song_name.mp3", (2, 3, "song name")),
        ("07. Closing.wav", (None, 7, "Closing")),
        ("Just a title.ogg", (None, None, "Just a title")),
        ("1999.mp3", (None, None, "1999")),
        (".mp3", (None, None, ".mp3")),
    ],
)
def test_names_from_file_name(name: str, expected: tuple[int | None, int | None, str]) -> None:
    assert names_from_file_name(name) == expected


def test_clean_tags_fills_from_the_file_name() -> None:
    tags = clean_tags(RawTags(), "03 - Low Water.flac")
    assert (tags.title, tags.position, tags.disc, tags.album) == ("Low Water", 3, 1, None)


def test_clean_tags_reads_numbers_dates_and_isrc() -> None:
    tags = clean_tags(
        RawTags(title=" Song ", track_number="4/12", disc_number="2/2", date="2024-05-17",
                isrc="us-abc-24-00001", genre="Post-Punk"),
        "x.mp3",
    )  # fmt: skip
    assert tags.title == "Song"
    assert (tags.position, tags.disc) == (4, 2)
    assert tags.release_date is not None
    assert tags.release_date.isoformat() == "2024-05-17"
    assert tags.year == 2024
    assert tags.isrc == "USABC2400001"
    year_only = clean_tags(RawTags(date="1987", isrc="not an isrc"), "x.mp3")
    assert (year_only.release_date, year_only.year, year_only.isrc) == (None, 1987, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (RawTags(title="x" * 301), "title tag is 301 characters long"),
        (RawTags(album="y" * 5000), "album tag is 5000 characters long"),
        (RawTags(title="bad\x07bell"), "title tag contains control characters"),
        (RawTags(artist="new\nline"), "artist tag contains control characters"),
        (RawTags(track_number="seven"), "track number tag 'seven' is not a number"),
        (RawTags(track_number="99999"), "not a number"),
        (RawTags(disc_number="0"), "out of range"),
    ],
)
def test_clean_tags_refuses_absurd_values(raw: RawTags, reason: str) -> None:
    with pytest.raises(TagError, match=reason):
        clean_tags(raw, "x.mp3")


SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-499", ByteRange(0, 499)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),
        ("bytes=999-999", ByteRange(999, 999)),
        ("BYTES = 1-2", ByteRange(1, 2)),
        ("bytes=0-1, 5-6", None),  # several ranges: the whole file
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("bytes=1000-", "starts at byte 1000; the file has 1000 bytes"),
        ("bytes=5000-6000", "starts at byte 5000"),
        ("bytes=-0", "asks for no bytes"),
        ("bytes=9-3", "the end is before the start"),
        ("bytes=abc", "malformed"),
        ("bytes=-", "malformed"),
        ("items=0-5", "malformed"),
        ("bytes 0-5", "malformed"),
        ("bytes=0-1,x", "malformed"),
    ],
)
def test_parse_range_refuses(header: str, reason: str) -> None:
    with pytest.raises(RangeError, match=reason):
        parse_range(header, SIZE)


MODIFIED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ETAG = '"abc123"'


def test_conditional_requests() -> None:
    assert not_modified(ETAG, MODIFIED, '"abc123"', None)
    assert not_modified(ETAG, MODIFIED, 'W/"abc123", "zzz"', None)
    assert not_modified(ETAG, MODIFIED, "*", None)
    assert not not_modified(ETAG, MODIFIED, '"other"', http_date(MODIFIED))  # INM wins
    assert not_modified(ETAG, MODIFIED, None, http_date(MODIFIED))
    assert not not_modified(ETAG, MODIFIED, None, "Thu, 01 Jan 2026 00:00:00 GMT")
    assert not not_modified(ETAG, MODIFIED, None, "not a date")
    assert not not_modified(ETAG, MODIFIED, None, None)


def test_if_range() -> None:
    assert if_range_allows(ETAG, MODIFIED, None)
    assert if_range_allows(ETAG, MODIFIED, ETAG)
    assert not if_range_allows(ETAG, MODIFIED, '"stale"')
    assert not if_range_allows(ETAG, MODIFIED, 'W/"abc123"')  # weak never matches
    assert if_range_allows(ETAG, MODIFIED, http_date(MODIFIED))
    assert not if_range_allows(ETAG, MODIFIED, "Thu, 01 Jan 2026 00:00:00 GMT")
