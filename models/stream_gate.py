"""Stream-to-own enforced on the audio itself: how much of a paid track a listener may
receive before the play is charged, and how fast.

A play counts once the listener has heard min(45 s, length). The server cannot hear what
the listener hears, but it decides which bytes leave it. So, for a play session that is
not charged yet:

* the **free part** is the audio up to the threshold plus a short read-ahead
  (min(5 s, a tenth of the threshold)), up to the frame (or Ogg page) that starts there;
  for a track no longer than that, everything but its last frame;
* the free part is sent no faster than real time plus the read-ahead, counted from where
  each request starts, so a player that prefetches cannot reach the end of the free part
  before the threshold has passed (a listener who skips early is not charged);
* the first byte past the free part is sent only once the play is charged: a request
  that reaches it charges the play (if the balance does not cover it, the response ends
  there), a request that starts past it (a seek) charges the play before any byte;
* for Ogg, the container's last 96 KiB are free when they lie past the free part:
  browsers (and ExoPlayer, Firefox) read them to learn the duration before playing, and
  they hold a few seconds of the track's very end, never the music a cheater wants.

Everything here is pure: a :class:`Timeline` (which byte holds which moment, made by
``server/services/media/timeline.py`` from the file itself) in, byte offsets and decisions out.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

THRESHOLD_MS = 45_000
READ_AHEAD_MAX_MS = 5_000
OGG_TAIL_BYTES = 96 * 1024


class TimelineError(ValueError):
    """The bytes are not a file whose frames we can place in time."""


@dataclass(frozen=True)
class Timeline:
    """Where moments of an audio file are: ``points`` are (ms, byte offset) of frame or page
    starts, increasing in both, the first at the first audio byte (what comes before it
    is the container's header), the last at the last frame or page."""

    kind: str  # "ogg" or "mp3"
    size: int
    duration_ms: int
    points: tuple[tuple[int, int], ...]

    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise TimelineError("no audio frames")
        times = [ms for ms, _ in self.points]
        offsets = tuple(offset for _, offset in self.points)
        if times != sorted(times) or list(offsets) != sorted(offsets) or offsets[-1] >= self.size:
            raise TimelineError("frames out of order")
        object.__setattr__(self, "_offsets", offsets)

    @property
    def audio_start(self) -> int:
        return self.points[0][1]

    def offset_at(self, ms: int) -> int:
        """The start of the frame that plays at ``ms``: every byte before it plays earlier."""
        index = bisect.bisect_right(self.points, (ms, self.size)) - 1
        return self.points[max(index, 0)][1]

    def time_at(self, offset: int) -> int:
        """When the frame holding byte ``offset`` starts playing (0 in the header)."""
        index = bisect.bisect_right(self._offsets, offset) - 1
        return self.points[index][0] if index >= 0 else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": self.size,
            "duration_ms": self.duration_ms,
            "points": [list(point) for point in self.points],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Timeline:
        return cls(
            str(document["kind"]),
            int(document["size"]),
            int(document["duration_ms"]),
            tuple((int(ms), int(offset)) for ms, offset in document["points"]),
        )


@dataclass(frozen=True)
class FreePart:
    threshold_ms: int
    read_ahead_ms: int
    mark: int  # the first byte that needs a charged play
    tail_start: int | None  # bytes from here to the end are free (Ogg duration probes)


def free_part(timeline: Timeline) -> FreePart:
    threshold = min(THRESHOLD_MS, timeline.duration_ms)
    read_ahead = min(READ_AHEAD_MAX_MS, threshold // 10)
    # the first frame that starts at or after the threshold plus the read-ahead: paced,
    # a stream reaches it no earlier than the threshold; a short track keeps its last
    index = bisect.bisect_left(timeline.points, (threshold + read_ahead, -1))
    mark = timeline.points[min(index, len(timeline.points) - 1)][1]
    tail = None
    if timeline.kind == "ogg" and timeline.size - OGG_TAIL_BYTES >= mark:
        tail = timeline.size - OGG_TAIL_BYTES
    return FreePart(threshold, read_ahead, mark, tail)


class Plan(Enum):
    FREE = "free"  # send as asked: nothing in it needs a charge
    CHARGE_FIRST = "charge-first"  # it starts past the free part: charge, then send
    PACED = "paced"  # send the free part at listening speed; charge at the mark


def plan(free: FreePart, start: int) -> Plan:
    """What to do with a request from byte ``start`` for a session whose play is not
    charged yet."""
    if free.tail_start is not None and start >= free.tail_start:
        return Plan.FREE
    if start >= free.mark:
        return Plan.CHARGE_FIRST
    return Plan.PACED


def allowed_end(timeline: Timeline, free: FreePart, start: int, elapsed_ms: int) -> int:
    """How far (exclusive) a request that started at ``start`` may have been sent after
    ``elapsed_ms``: real time plus the read-ahead, from the moment where it started, and
    never past the mark."""
    reach = timeline.offset_at(timeline.time_at(start) + elapsed_ms + free.read_ahead_ms)
    return min(max(reach, start), free.mark)


def wait_ms(timeline: Timeline, free: FreePart, start: int, elapsed_ms: int) -> int:
    """How long until :func:`allowed_end` grows for this request (at least 1 ms)."""
    now_reach = timeline.time_at(start) + elapsed_ms + free.read_ahead_ms
    index = bisect.bisect_right(timeline.points, (now_reach, timeline.size))
    if index >= len(timeline.points):
        return 1000
    return max(timeline.points[index][0] - now_reach, 1)
