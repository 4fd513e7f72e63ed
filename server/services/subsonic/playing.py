"""Playing through the Subsonic API: which play session a request belongs to, which of a
track's renditions it gets, and what a scrobble claims.

Subsonic has no play sessions in its URLs: an app asks for ``stream?id=tr-7`` again and
again, with Range to continue or seek, sometimes twice at once. :func:`listening` maps
such a request onto this listener's play sessions (``server.services.plays``), so that one
listening is one play and a new listening is the next (the rule and its limits are in
docs/decisions.md, "Subsonic (issue 15): one listening, one play session"). The stream
itself, its gate and its charge are the web player's (``server.web.media``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import FileRole, MediaFile
from models.pricing import buy_now_cost
from models.stream_gate import Timeline
from models.users import User
from server.runtime.resources import Resources
from server.services import plays
from server.services.money import MoneyError, retrying

# what a ``format`` asks for, of our renditions (the worker makes both:
# server/services/media/transcode.py)
FORMATS = {"mp3": FileRole.STREAM_MP3, "opus": FileRole.STREAM_OPUS, "ogg": FileRole.STREAM_OPUS}
RAW = "raw"


# how long after a listening could have ended a scrobble still claims it
SCROBBLE_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class Rendition:
    role: FileRole
    bitrate: int | None  # bits per second, as measured on the file


def wants_mp3(available: Sequence[Rendition], format: str | None, max_kbps: int | None) -> bool:
    """Whether a request with this ``format`` and ``maxBitRate`` gets the MP3 rendition
    (otherwise the Opus one); a partner's track has one file whatever is asked.

    ``mp3`` and ``opus``/``ogg`` name their rendition; ``raw`` is the best we have (the
    highest bitrate); anything else (or nothing) is MP3, which every app plays, unless a
    ``maxBitRate`` below it leaves only Opus within the limit."""
    chosen = (format or "").lower()
    if chosen in FORMATS:
        return FORMATS[chosen] is FileRole.STREAM_MP3
    rates = {r.role: r.bitrate or 0 for r in available}
    mp3, opus = rates.get(FileRole.STREAM_MP3), rates.get(FileRole.STREAM_OPUS)
    if mp3 is None or opus is None:
        return opus is None
    if chosen == RAW:
        return mp3 >= opus
    limit = (max_kbps or 0) * 1000
    return not (limit and mp3 > limit >= opus)


async def renditions(session: AsyncSession, track: plays.Playable) -> list[Rendition]:
    """The streaming renditions we keep of a local track (none for a partner's)."""
    rows = await session.execute(
        select(MediaFile.role, MediaFile.bitrate).where(
            MediaFile.track_id == track.id,
            MediaFile.role.in_([FileRole.STREAM_MP3, FileRole.STREAM_OPUS]),
        )
    )
    return [Rendition(role, bitrate) for role, bitrate in rows.all()]


def start_byte(timeline: Timeline, seconds: int) -> int:
    """Where an MP3 started ``seconds`` in begins: the frame that plays then (every byte
    before it plays earlier); the header before the first frame is left out too."""
    if seconds <= 0 or timeline.kind != "mp3":
        return 0
    return timeline.offset_at(seconds * 1000)


def continues(range_header: str | None) -> bool:
    """Whether a request continues a listening rather than starting one: its Range asks
    for bytes that do not start at byte 0 (a suffix range is the end of the file). A
    malformed header starts nothing either way: the stream answers it with 416."""
    if range_header is None:
        return False
    unit, _, spec = range_header.partition("=")
    first = spec.split(",")[0].split("-")[0].strip()
    if unit.strip().lower() != "bytes":
        return False
    if first == "":
        return "-" in spec
    return first.isascii() and first.isdigit() and int(first) > 0


def download_refusal(quote: plays.Quote) -> str | None:
    """Why this listener may not download a track (only free, owned and own tracks are
    downloaded), or None."""
    if quote.free or quote.owned:
        return None
    return (
        f"own this track first: {buy_now_cost(quote.paid_plays)} tokens buy it now, or "
        f"{quote.plays_until_owned} more paid plays make it yours"
    )


async def _latest(session: AsyncSession, track: plays.Playable, user_id: int) -> Any:
    """The listener's most recently opened play session of the track (web or Subsonic)."""
    rows = track.origin.rows
    return await session.scalar(
        select(rows.sessions)
        .where(rows.sessions.user_id == user_id, rows.session_track == track.id)
        .order_by(rows.sessions.id.desc())
        .limit(1)
    )


async def listening(
    session: AsyncSession,
    track: plays.Playable,
    user_id: int,
    *,
    continuing: bool,
    affordable: bool,
    now: datetime,
    lifetime: timedelta,
) -> str | None:
    """The play session a stream request of this listener belongs to, opened if it
    starts a new listening; None when it gets the preview (the next play is not
    affordable). In a writing session; it commits.

    The listener's latest session of the track, while open (``lifetime``), is continued
    when it is not charged yet (a request from byte 0 restarts its clock: the listening
    begins again), or when it is charged and the request continues it (a Range past byte
    0) or comes while the track could still be playing (within its length of the
    session's start: a player that asks for the beginning again mid-listening is not
    charged twice). Otherwise a request is a new listening: a new session, or the preview.
    Decisions of one listener take turns (their user row is locked; on SQLite the
    writing transaction is the lock), so two requests at once never open two sessions
    for one listening."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    latest = await _latest(session, track, user_id)
    if latest is not None and now - latest.started_at <= lifetime:
        if latest.play_id is None:
            if continuing:
                return str(latest.token)
            if affordable:
                await _restart(session, track, latest.id, now)
                return str(latest.token)
            return None
        playing = now - latest.started_at < timedelta(milliseconds=track.duration_ms)
        if continuing or playing:
            return str(latest.token)
    if not affordable:
        return None
    return await plays.open_session(session, user_id, track)


async def _restart(
    session: AsyncSession, track: plays.Playable, session_id: int, now: datetime
) -> None:
    rows = track.origin.rows
    await session.execute(
        update(rows.sessions)
        .where(rows.sessions.id == session_id, rows.unclaimed)
        .values(started_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()


async def open_session_token(
    session: AsyncSession,
    track: plays.Playable,
    user_id: int,
    *,
    now: datetime,
    lifetime: timedelta,
) -> str | None:
    """The token of the listener's latest session of the track while it is open."""
    latest = await _latest(session, track, user_id)
    if latest is None or now - latest.started_at > lifetime:
        return None
    return str(latest.token)


async def scrobble(
    resources: Resources,
    origins: plays.Origins,
    track: plays.Playable,
    user_id: int,
    now: datetime,
) -> plays.ClaimResult | None:
    """A player's "played" for a track: the claim of the listener's latest session
    (``plays.claim``: charged once min(45 s, length) has passed since it opened, by the
    server's clock, and once only), if that listening could still be going on: it began
    no longer ago than the track lasts plus :data:`SCROBBLE_GRACE`. Apps queue scrobbles
    while offline and send them later; a late one must not charge a listening that was
    skipped after a few seconds. Nothing when there is no such session, or when the claim
    is refused (too early, too low a balance, expired): a scrobble is a report, never a
    failure."""
    settings = resources.settings.money
    window = min(
        settings.play_session_lifetime,
        timedelta(milliseconds=track.duration_ms) + SCROBBLE_GRACE,
    )
    async with resources.read_sessionmaker() as session:
        token = await open_session_token(session, track, user_id, now=now, lifetime=window)
    if token is None:
        return None
    try:
        return await retrying(
            resources.sessionmaker, lambda s: plays.claim(s, origins, token, user_id, settings)
        )
    except MoneyError:
        return None
