"""The rules of the free part (models.stream_gate) and the timelines they stand on
(server/services/media/timeline.py), checked against ffprobe's own packet positions on real audio
made with ffmpeg, and as properties over any timeline (hypothesis)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.stream_gate import (
    OGG_TAIL_BYTES,
    Plan,
    Timeline,
    TimelineError,
    allowed_end,
    free_part,
    plan,
    wait_ms,
)
from server.services.media.ffmpeg import mp3_args, opus_args
from server.services.media.timeline import mp3_timeline, ogg_timeline, timeline_of

# (name, ffmpeg input options, encoder options): what the worker makes, and other shapes
# that partners' files or future renditions may have
SHAPES = [
    ("opus-rendition", [], [*opus_args("128k")], "ogg"),
    ("mp3-rendition", [], [*mp3_args("192k")], "mp3"),
    ("mp3-vbr", [], ["-c:a", "libmp3lame", "-q:a", "5"], "mp3"),
    ("mp3-mono-22k", ["-ac", "1", "-ar", "22050"], ["-c:a", "libmp3lame", "-b:a", "48k"], "mp3"),
    ("vorbis", [], ["-c:a", "libvorbis", "-q:a", "3"], "ogg"),
    ("opus-low", [], [*opus_args("32k")], "ogg"),
]


def encode(path: Path, seconds: float, encoder: list[str], inputs: list[str]) -> bytes:
    """Music-like audio whose loudness changes (so VBR bitrates vary): a tone whose
    volume swells, after a stretch of near silence."""
    source = (
        f"sine=frequency=330:duration={seconds}:sample_rate=48000,"
        "volume='if(lt(t,8),0.0005,0.2+0.2*sin(t))':eval=frame"
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source,
         "-ac", "2", *inputs, "-map_metadata", "-1", *encoder, str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path.read_bytes()


def packets(path: Path) -> list[tuple[int, int]]:
    """(pts in ms, byte position) of every audio packet, as ffprobe reads them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "packet=pts_time,pos", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found = []
    for line in out.splitlines():
        fields = line.strip().strip(",").split(",")
        if len(fields) < 2:
            continue
        pts, pos = fields[:2]
        if pos and pts and pos != "N/A":
            found.append((round(float(pts) * 1000), int(pos)))
    return found


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bytes, str]]:
    folder = tmp_path_factory.mktemp("timelines")
    made = {}
    for name, inputs, encoder, kind in SHAPES:
        path = folder / f"{name}.{kind}"
        made[name] = (path, encode(path, 70, encoder, inputs), kind)
    return made


@pytest.mark.parametrize("name", [shape[0] for shape in SHAPES])
def test_timelines_agree_with_ffprobe(
    encoded: dict[str, tuple[Path, bytes, str]], name: str
) -> None:
    path, data, kind = encoded[name]
    timeline = timeline_of(data, "audio/mpeg" if kind == "mp3" else "audio/ogg")
    assert timeline.kind == kind
    probed = packets(path)
    assert abs(timeline.duration_ms - (probed[-1][0] + 20)) < 120
    for moment in range(0, 70_000, 700):
        offset = timeline.offset_at(moment)
        # conservative: every packet that starts before the offset plays before the moment
        assert all(pts < moment + 1 for pts, pos in probed if pos < offset)
        # and close: the packets of more than 1.1 s earlier are all before the offset
        # (an Ogg page holds about a second)
        assert all(pos < offset for pts, pos in probed if pts < moment - 1100 and pts > 0)


def test_the_free_part_of_a_vbr_file_ends_at_the_moment_not_the_average(
    encoded: dict[str, tuple[Path, bytes, str]],
) -> None:
    """The first 8 s are near silence, which Opus codes in very few bytes: the average
    bitrate would put the 49.5-second mark far too late; the timeline does not."""
    path, data, _kind = encoded["opus-rendition"]
    timeline = ogg_timeline(data)
    free = free_part(timeline)
    assert (free.threshold_ms, free.read_ahead_ms) == (45_000, 4_500)
    probed = packets(path)
    # the mark is the first page that starts at or after 49.5 s (a page is about 1 s)
    assert 49_500 <= max(pts for pts, pos in probed if pos < free.mark) + 20 < 50_600
    assert min(pts for pts, pos in probed if pos >= free.mark) >= 49_500 - 20
    proportional = len(data) * 49_500 // timeline.duration_ms
    assert free.mark < proportional  # the naive estimate would give away more


def test_ogg_tail_is_free_only_past_the_free_part(
    encoded: dict[str, tuple[Path, bytes, str]],
) -> None:
    _path, data, _kind = encoded["opus-rendition"]
    free = free_part(ogg_timeline(data))
    assert free.tail_start == len(data) - OGG_TAIL_BYTES
    assert free.tail_start > free.mark
    assert plan(free, len(data) - 1000) is Plan.FREE
    assert plan(free, free.tail_start - 1) is Plan.CHARGE_FIRST
    _path, mp3, _kind = encoded["mp3-rendition"]
    assert free_part(mp3_timeline(mp3)).tail_start is None  # MP3 players read from the start


def test_not_audio_has_no_timeline() -> None:
    with pytest.raises(TimelineError):
        timeline_of(b"<html>" + b"x" * 5000, "audio/mpeg")
    with pytest.raises(TimelineError):
        ogg_timeline(b"OggS" + b"\x00" * 200)
    with pytest.raises(TimelineError):
        timeline_of(b"fLaC" + b"\x00" * 100, "audio/flac")


def test_a_short_track_keeps_its_last_frame_back(tmp_path: Path) -> None:
    data = encode(tmp_path / "short.mp3", 3, [*mp3_args("192k")], [])
    timeline = mp3_timeline(data)
    free = free_part(timeline)
    assert free.threshold_ms == timeline.duration_ms
    assert free.mark == timeline.points[-1][1] < len(data)
    assert timeline.time_at(free.mark) >= timeline.duration_ms - 60


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    count = draw(st.integers(1, 400))
    steps = draw(st.lists(st.integers(1, 1500), min_size=count, max_size=count))
    sizes = draw(st.lists(st.integers(1, 40_000), min_size=count, max_size=count))
    header = draw(st.integers(0, 5000))
    points, ms, offset = [], 0, header
    for step, size in zip(steps, sizes, strict=True):
        points.append((ms, offset))
        ms += step
        offset += size
    kind = draw(st.sampled_from(["ogg", "mp3"]))
    return Timeline(kind, offset + draw(st.integers(0, 200_000)), ms, tuple(points))


@given(timeline=timelines(), start_fraction=st.floats(0, 1), elapsed=st.integers(0, 400_000))
def test_nothing_past_the_free_part_before_the_charge(
    timeline: Timeline, start_fraction: float, elapsed: int
) -> None:
    free = free_part(timeline)
    start = int(start_fraction * (timeline.size - 1))
    decided = plan(free, start)
    if decided is Plan.FREE:
        assert timeline.kind == "ogg"
        assert free.tail_start is not None
        assert start >= free.tail_start >= free.mark
        assert timeline.size - start <= OGG_TAIL_BYTES
        return
    if decided is Plan.CHARGE_FIRST:
        assert start >= free.mark
        return
    reach = allowed_end(timeline, free, start, elapsed)
    assert start <= reach <= free.mark
    # no faster than listening from where the request started, plus the read-ahead
    assert timeline.time_at(reach - 1) <= timeline.time_at(start) + elapsed + free.read_ahead_ms
    assert reach <= allowed_end(timeline, free, start, elapsed + 1000)  # never shrinks
    later = elapsed + wait_ms(timeline, free, start, elapsed)
    grows = allowed_end(timeline, free, start, later) > reach
    assert grows or reach == free.mark or reach >= timeline.offset_at(10**9)


@given(timeline=timelines())
def test_the_free_part_is_the_threshold_and_the_read_ahead(timeline: Timeline) -> None:
    free = free_part(timeline)
    assert free.threshold_ms == min(45_000, timeline.duration_ms)
    assert free.read_ahead_ms == min(5_000, free.threshold_ms // 10)
    assert timeline.audio_start <= free.mark <= timeline.points[-1][1]
    reach = free.threshold_ms + free.read_ahead_ms
    marks = [point for point in timeline.points if point[1] == free.mark]
    assert len(marks) == 1
    [(mark_ms, _offset)] = marks
    if reach <= timeline.points[-1][0]:
        # the first frame starting at or after the threshold plus the read-ahead
        assert mark_ms >= reach
        assert all(ms < reach for ms, offset in timeline.points if offset < free.mark)
    else:
        assert free.mark == timeline.points[-1][1]  # a short track keeps its last frame
    # paced from the start, a stream reaches the mark no earlier than the threshold
    # (or, for a short track, the start of its last frame less the read-ahead)
    earliest = min(free.threshold_ms, mark_ms - free.read_ahead_ms)
    if earliest > 0:
        assert allowed_end(timeline, free, 0, earliest - 1) < free.mark
