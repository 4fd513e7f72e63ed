"""Sending the audio of a play session whose play is not charged yet: the free part at
listening speed, the rest only once the play is charged (the rules are in
``models.stream_gate``; this module applies them to a file and a request).

The charge itself is a callable given by the caller (a local play or a partner's track),
run in a database session of its own and shielded from the request's cancellation, so
that a listener who hangs up exactly then is charged completely or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.catalogue import MediaFile
from models.stream_gate import (
    FreePart,
    Plan,
    Timeline,
    TimelineError,
    allowed_end,
    free_part,
    plan,
    wait_ms,
)
from server.runtime.clock import Clock
from server.services.errors import Refused
from server.services.media.reads import open_file, read_chunk
from server.services.media.timeline import timeline_of
from server.services.money import MoneyError

log = logging.getLogger("playfair.media")

CHUNK = 64 * 1024

# Charge the session's play once; raises MoneyError when it cannot be charged.
Charger = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Gate:
    """What send_media needs to serve a session that is not charged yet."""

    timeline: Timeline | None  # None: the file cannot be placed in time; charge first
    charge: Charger
    clock: Clock


async def read_timeline(path: Path, mime_type: str) -> Timeline | None:
    """The file's timeline, parsed in a thread; None (logged) if it has none."""
    try:
        data = await asyncio.to_thread(path.read_bytes)
        return await asyncio.to_thread(timeline_of, data, mime_type)
    except (OSError, TimelineError) as error:
        log.warning("no timeline for %s: %s", path.name, error)
        return None


async def file_timeline(
    file: MediaFile, path: Path, keep: Callable[[Timeline], Awaitable[None]]
) -> Timeline | None:
    """The timeline of a file to stream: the one kept with it if it still fits, otherwise
    made from the file and handed to ``keep``."""
    timeline = stored_timeline(file.timeline, file.size_bytes)
    if timeline is None:
        timeline = await read_timeline(path, file.mime_type)
        if timeline is not None:
            await keep(timeline)
    return timeline


def stored_timeline(document: dict[str, Any] | None, size: int) -> Timeline | None:
    """A timeline kept in the database, if it is one and still fits the file."""
    if not document:
        return None
    try:
        timeline = Timeline.from_json(document)
    except (KeyError, TypeError, ValueError):
        return None
    return timeline if timeline.size == size else None


def refusal(error: MoneyError) -> Refused:
    """A charge refused while streaming: 402 (too low a balance) and 410 (the session is
    over) as they are, anything else a conflict with the stream."""
    return Refused(str(error), error.status if error.status in (402, 410) else 409)


async def charge_shielded(charge: Charger) -> MoneyError | None:
    """Run the charge to its end even if the request is cancelled meanwhile; the refusal,
    if it was refused."""
    task = asyncio.ensure_future(charge())
    task.add_done_callback(_consume)
    try:
        await asyncio.shield(task)
    except MoneyError as error:
        return error
    return None


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        if not isinstance(error, MoneyError):
            log.error("charging a play failed", exc_info=error)


class StreamCut(Exception):
    """A whole-file answer (no Range) reached the free part's end and its play could not
    be charged: the connection is closed there, short of its Content-Length, so the
    client knows the body is incomplete. Expected, so logged as one line (serve.py)."""


@dataclass(frozen=True)
class Gated:
    """How to answer: ``body`` None sends the bytes as asked; ``last`` is the last byte a
    ranged answer may include (the byte before the free part's end), or None."""

    body: AsyncIterator[bytes] | None = None
    last: int | None = None


async def gated_body(gate: Gate, path: Path, start: int, end: int, *, ranged: bool) -> Gated:
    """The answer to a request for bytes ``start``–``end`` (inclusive) of a session whose
    play is not charged yet.

    Free bytes (an Ogg file's last 96 KiB) go as asked. A request that starts past the
    free part charges the play first (an HTTP error if it cannot be). Otherwise the free
    part goes at listening speed: a ranged answer stops before the mark (a 206 with a
    shorter Content-Range than asked, which players follow with a request for the rest,
    and that one charges); a whole-file answer goes on past the mark once the play is
    charged, and is cut there if it cannot be.
    """
    if gate.timeline is None:
        decision, free = Plan.CHARGE_FIRST, None
    else:
        free = free_part(gate.timeline)
        decision = plan(free, start)
    if decision is Plan.FREE:
        return Gated()
    if decision is Plan.CHARGE_FIRST or gate.timeline is None or free is None:
        refused = await charge_shielded(gate.charge)
        if refused is not None:
            raise refusal(refused)
        return Gated()
    last = min(end, free.mark - 1) if ranged else end
    body = paced_chunks(path, start, last - start + 1, gate.timeline, free, gate.charge,
                        gate.clock)  # fmt: skip
    return Gated(body, last if ranged else None)


async def paced_chunks(
    path: Path,
    start: int,
    length: int,
    timeline: Timeline,
    free: FreePart,
    charge: Charger,
    clock: Clock,
) -> AsyncIterator[bytes]:
    """Bytes ``start``… of the file: up to the mark no faster than listening speed plus
    the read-ahead, past it only once the play is charged (StreamCut if it cannot be)."""
    began = clock.monotonic()
    charged = False
    position, end = start, start + length
    fd = open_file(path)
    try:
        while position < end:
            limit = end
            if not charged:
                if position >= free.mark:
                    refused = await charge_shielded(charge)
                    if refused is not None:
                        log.info("a stream ends at the free part: %s", refused)
                        raise StreamCut(str(refused))
                    charged = True
                    continue
                elapsed = int((clock.monotonic() - began) * 1000)
                limit = min(end, allowed_end(timeline, free, start, elapsed))
                if limit <= position:
                    await clock.sleep(wait_ms(timeline, free, start, elapsed) / 1000)
                    continue
            data = await read_chunk(fd, position, min(CHUNK, limit - position))
            if not data:
                return
            position += len(data)
            yield data
    finally:
        os.close(fd)
