"""What a file really is, told from its first bytes rather than its name."""

from __future__ import annotations

from enum import StrEnum


class AudioFormat(StrEnum):
    MP3 = "mp3"
    FLAC = "flac"
    OGG_VORBIS = "ogg_vorbis"
    OPUS = "opus"
    M4A = "m4a"
    AAC = "aac"
    WAV = "wav"
    AIFF = "aiff"


MIME_TYPES = {
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.OGG_VORBIS: "audio/ogg",
    AudioFormat.OPUS: "audio/ogg",
    AudioFormat.M4A: "audio/mp4",
    AudioFormat.AAC: "audio/aac",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.AIFF: "audio/aiff",
}

EXTENSIONS = {
    AudioFormat.MP3: "mp3",
    AudioFormat.FLAC: "flac",
    AudioFormat.OGG_VORBIS: "ogg",
    AudioFormat.OPUS: "opus",
    AudioFormat.M4A: "m4a",
    AudioFormat.AAC: "aac",
    AudioFormat.WAV: "wav",
    AudioFormat.AIFF: "aiff",
}

ACCEPTED = "MP3, FLAC, Ogg Vorbis, Opus, AAC/M4A, WAV or AIFF"
SNIFF_BYTES = 4096


def id3_size(head: bytes) -> int:
    """How many bytes an ID3v2 tag at the start takes, from its 10-byte header (0 if none).

    ID3v2 tags may precede MP3 frames and, against the spec, FLAC streams too."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7
    size |= head[9] & 0x7F
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _skip_id3(head: bytes) -> bytes:
    return head[id3_size(head) :]


def _is_mpeg_audio_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    # version 01 is reserved, layer 00 is reserved, bitrate 1111 and rate 11 are invalid
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and sample_rate != 0b11


def _is_adts(head: bytes) -> bool:
    # ADTS: sync 0xFFF, layer 00 (that is what tells AAC from MPEG layers)
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


def sniff(head: bytes) -> AudioFormat | None:
    """Recognise one of the accepted formats from the file's first bytes (4 KiB is plenty
    for everything but an MP3 behind a large ID3 tag; pass more when ``head`` starts with
    ``ID3``)."""
    if head[:4] == b"OggS" and len(head) >= 36:
        if head[28:36] == b"OpusHead":
            return AudioFormat.OPUS
        if head[28:35] == b"\x01vorbis":
            return AudioFormat.OGG_VORBIS
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return AudioFormat.WAV
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return AudioFormat.AIFF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"mp42", b"isom", b"mp41", b"iso2", b"dash", b"M4P "):
            return AudioFormat.M4A
        return None
    body = _skip_id3(head)
    if body[:4] == b"fLaC":
        return AudioFormat.FLAC
    if _is_adts(body):
        return AudioFormat.AAC
    if _is_mpeg_audio_frame(body):
        return AudioFormat.MP3
    return None
