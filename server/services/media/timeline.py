"""Which byte of an audio file holds which moment: the timeline stream-to-own is enforced
on (``models.stream_gate``). Pure parsers of the two containers we stream, MP3 frames and
Ogg pages (Opus or Vorbis), read from the file's own bytes; no decoding.

Times are conservative: a point's time is never later than the first sound its bytes
hold (MP3 frames are counted from the first audio frame, so the encoder's delay only
makes them early; an Ogg page starts when the previous page's last packet ended).
"""

from __future__ import annotations

from models.stream_gate import Timeline, TimelineError

MP3_POINT_EVERY_MS = 250  # enough resolution for pacing, few points for a long track

_MP3_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}


def timeline_of(data: bytes, mime_type: str) -> Timeline:
    """The timeline of a whole file, by its media type; TimelineError if it is neither an
    MP3 nor an Ogg file we can read."""
    if data[:4] == b"OggS":
        return ogg_timeline(data)
    if mime_type == "audio/mpeg" or data[:3] == b"ID3":
        return mp3_timeline(data)
    raise TimelineError(f"no timeline for {mime_type}")


def _mp3_header(data: bytes, pos: int) -> tuple[int, int, int, bool] | None:
    """(frame length, samples, sample rate, mono) of the frame header at ``pos``."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version_bits = (data[pos + 1] >> 3) & 3
    layer_bits = (data[pos + 1] >> 1) & 3
    bitrate_index = data[pos + 2] >> 4
    rate_index = (data[pos + 2] >> 2) & 3
    if version_bits == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    version = {3: 1, 2: 2, 0: 25}[version_bits]
    layer = 4 - layer_bits
    bitrate = _MP3_BITRATES[(min(version, 2), layer)][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (data[pos + 2] >> 1) & 1
    mono = (data[pos + 3] >> 6) == 3
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384, rate, mono
    if layer == 3 and version != 1:
        return 72 * bitrate // rate + padding, 576, rate, mono
    return 144 * bitrate // rate + padding, 1152, rate, mono


def _is_info_frame(data: bytes, pos: int, version_is_1: bool, mono: bool) -> bool:
    """The Xing/Info or VBRI frame some encoders put first: silence that decoders skip."""
    side = (17 if mono else 32) if version_is_1 else (9 if mono else 17)
    return data[pos + 4 + side : pos + 8 + side] in (b"Xing", b"Info") or (
        data[pos + 36 : pos + 40] == b"VBRI"
    )


def mp3_timeline(data: bytes) -> Timeline:
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    # the first frame is where two headers follow each other
    while pos < len(data):
        header = _mp3_header(data, pos)
        if header is not None and _mp3_header(data, pos + header[0]) is not None:
            break
        pos += 1
    else:
        raise TimelineError("no MPEG audio frames")
    first = _mp3_header(data, pos)
    assert first is not None
    if _is_info_frame(data, pos, (data[pos + 1] >> 3) & 3 == 3, first[3]):
        pos += first[0]
    points: list[tuple[int, int]] = []
    samples = 0
    rate = first[2]
    next_point = 0
    last = (0, pos)
    while pos < len(data):
        header = _mp3_header(data, pos)
        if header is None or pos + header[0] > len(data):
            break  # a trailing tag (ID3v1, APE) or a cut-off frame ends the audio
        length, frame_samples, rate, _mono = header
        last = (samples * 1000 // rate, pos)
        if last[0] >= next_point:
            points.append(last)
            next_point = last[0] + MP3_POINT_EVERY_MS
        samples += frame_samples
        pos += length
    if not points:
        raise TimelineError("no MPEG audio frames")
    if points[-1] != last:
        points.append(last)  # the last frame, which a short track's free part ends before
    return Timeline("mp3", len(data), samples * 1000 // rate, tuple(points))


def ogg_timeline(data: bytes) -> Timeline:
    pos = 0
    serial = None
    rate = 0
    pre_skip = 0
    previous_end = 0  # granule position where the previous page's last packet ended
    in_headers = True
    points: list[tuple[int, int]] = []
    while pos + 27 <= len(data):
        if data[pos : pos + 4] != b"OggS":
            raise TimelineError(f"no Ogg page at byte {pos}")
        granule = int.from_bytes(data[pos + 6 : pos + 14], "little", signed=True)
        page_serial = data[pos + 14 : pos + 18]
        segments = data[pos + 26]
        body = pos + 27 + segments
        end = body + sum(data[pos + 27 : body])
        if end > len(data):
            break  # a cut-off page
        if serial is None:
            serial = page_serial
            rate, pre_skip = _codec(data[body:end])
        elif page_serial != serial:
            raise TimelineError("more than one logical stream")
        if in_headers and granule > 0:
            in_headers = False
        if not in_headers:
            points.append((max(previous_end - pre_skip, 0) * 1000 // rate, pos))
            if granule >= 0:
                previous_end = granule
        pos = end
    if not points:
        raise TimelineError("no Ogg audio pages")
    return Timeline("ogg", len(data), max(previous_end - pre_skip, 0) * 1000 // rate,
                    tuple(points))  # fmt: skip


def _codec(first_packet: bytes) -> tuple[int, int]:
    """(granule rate, pre-skip) from the first packet of the stream."""
    if first_packet[:8] == b"OpusHead" and len(first_packet) >= 12:
        return 48000, int.from_bytes(first_packet[10:12], "little")
    if first_packet[:7] == b"\x01vorbis" and len(first_packet) >= 16:
        rate = int.from_bytes(first_packet[12:16], "little")
        if rate > 0:
            return rate, 0
    raise TimelineError("an Ogg stream that is neither Opus nor Vorbis")
