"""The play queue an app saves so another can take it up (``savePlayQueue`` /
``getPlayQueue``, one per listener, models.library), and what is being played now
(``getNowPlaying``): what apps said they started (``record_now_playing``, for
``scrobble submission=false``) and open play sessions of either origin, each while no
longer ago than its track lasts.

Listeners here are pseudonymous to each other, so a listener sees only their own
plays in ``getNowPlaying``; an admin sees everybody's (docs/decisions.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.catalogue import Track
from models.library import MAX_QUEUE, PlayQueue
from models.library import NowPlaying as NowPlayingRow
from models.plays import PlaySession
from models.remote_plays import RemotePlaySession, RemoteTrack
from models.users import User
from server.services.errors import NotFoundError, Refused
from server.services.subsonic import songs as song_rows
from server.services.viewers import Viewer
from subsonic import ids
from subsonic.library import NowPlaying
from subsonic.library import PlayQueue as PlayQueueValue

# sessions older than this are not looked at (a track longer than it stops showing)
NOW_PLAYING_WINDOW = timedelta(hours=3)
CLIENT_NAME = 100  # characters of the app's name kept


async def save(
    session: AsyncSession,
    viewer: Viewer,
    track_ids: Sequence[int],
    current: int | None,
    position_ms: int,
    client: str,
) -> None:
    """Keep this queue as the listener's (none: forget it). Every id must be a song the
    listener may play; otherwise nothing is saved."""
    if not track_ids:
        await session.execute(delete(PlayQueue).where(PlayQueue.user_id == viewer.user_id))
        await session.commit()
        return
    if len(track_ids) > MAX_QUEUE:
        raise Refused(f"a play queue holds at most {MAX_QUEUE} songs", 422)
    purse = await song_rows.wallet(session, viewer.user_id)
    found = {entry.id for entry in await song_rows.songs(session, purse, track_ids)}
    for track_id in track_ids:
        if track_id not in found:
            raise NotFoundError(f"there is no song {ids.make(ids.Kind.TRACK, track_id)}")
    if current is not None and current not in found:
        raise Refused("the current song must be one of the queue's", 422)
    queue = await session.get(PlayQueue, viewer.user_id)
    if queue is None:
        queue = PlayQueue(user_id=viewer.user_id)
        session.add(queue)
    queue.track_ids = list(track_ids)
    queue.current_id = current
    queue.position_ms = position_ms
    queue.changed_at = utcnow()
    queue.changed_by = client[:CLIENT_NAME]
    await session.commit()


async def load(session: AsyncSession, viewer: Viewer) -> PlayQueueValue | None:
    """The saved queue (songs gone since are left out), or None if there is none."""
    queue = await session.get(PlayQueue, viewer.user_id)
    if queue is None:
        return None
    purse = await song_rows.wallet(session, viewer.user_id)
    entries = await song_rows.songs(session, purse, [int(i) for i in queue.track_ids])
    shown = {entry.id for entry in entries}
    return PlayQueueValue(
        songs=entries,
        current=queue.current_id if queue.current_id in shown else None,
        position_ms=queue.position_ms,
        username=viewer.username,
        changed=queue.changed_at,
        changed_by=queue.changed_by,
    )


async def record_now_playing(
    session: AsyncSession, user_id: int, track_id: int, client: str
) -> None:
    """An app says its listener started this track (``scrobble`` with
    ``submission=false``): kept as that app's now playing, in the caller's transaction
    (the caller commits). A track that is not here is refused (404)."""
    known = await session.scalar(select(Track.id).where(Track.id == track_id)) or (
        await session.scalar(select(RemoteTrack.id).where(RemoteTrack.id == track_id))
    )
    if known is None:
        raise NotFoundError(f"there is no song {ids.make(ids.Kind.TRACK, track_id)}")
    player = client[:CLIENT_NAME]
    values = {"track_id": track_id, "at": utcnow()}
    mine = (NowPlayingRow.user_id == user_id) & (NowPlayingRow.player == player)
    moved = await session.execute(update(NowPlayingRow).where(mine).values(**values))
    if getattr(moved, "rowcount", 0):
        return
    try:
        async with session.begin_nested():
            session.add(NowPlayingRow(user_id=user_id, player=player, **values))
    except IntegrityError:  # the same app said so at the same moment: the later one wins
        await session.execute(update(NowPlayingRow).where(mine).values(**values))


async def now_playing(
    session: AsyncSession, viewer: Viewer, now: datetime | None = None
) -> list[NowPlaying]:
    """For each listener the viewer may see (themselves; everybody for an admin), what
    each of their apps said it started, and the newest play session if it is newer than
    those; each only while within its track's length."""
    now = now or utcnow()
    since = now - NOW_PLAYING_WINDOW
    others = not viewer.is_admin
    # (started, track id, username, player id, player name) of each candidate
    found: list[tuple[datetime, int, str, int, str | None]] = []
    reported_at: dict[int, datetime] = {}
    for track_table in (Track, RemoteTrack):
        reported = (
            select(NowPlayingRow, track_table.duration_ms, User.username)
            .join(track_table, track_table.id == NowPlayingRow.track_id)
            .join(User, User.id == NowPlayingRow.user_id)
            .where(NowPlayingRow.at >= since)
        )
        if others:
            reported = reported.where(NowPlayingRow.user_id == viewer.user_id)
        for row, length, username in await session.execute(reported):
            if row.at + timedelta(milliseconds=length) < now:
                continue
            found.append((row.at, row.track_id, username, row.id, row.player or None))
            reported_at[row.user_id] = max(row.at, reported_at.get(row.user_id, row.at))
    local = (
        select(PlaySession.user_id, PlaySession.track_id, PlaySession.started_at,
               Track.duration_ms, User.username)
        .join(Track, Track.id == PlaySession.track_id)
        .join(User, User.id == PlaySession.user_id)
        .where(PlaySession.started_at >= since)
    )  # fmt: skip
    remote = (
        select(RemotePlaySession.user_id, RemotePlaySession.remote_track_id,
               RemotePlaySession.started_at, RemoteTrack.duration_ms, User.username)
        .join(RemoteTrack, RemoteTrack.id == RemotePlaySession.remote_track_id)
        .join(User, User.id == RemotePlaySession.user_id)
        .where(RemotePlaySession.started_at >= since)
    )  # fmt: skip
    if others:
        local = local.where(PlaySession.user_id == viewer.user_id)
        remote = remote.where(RemotePlaySession.user_id == viewer.user_id)
    newest: dict[int, tuple[datetime, int, str]] = {}
    for query in (local, remote):
        for user_id, track_id, started, length, username in await session.execute(query):
            if started + timedelta(milliseconds=length) < now:
                continue  # over by now
            if user_id not in newest or newest[user_id][0] < started:
                newest[user_id] = (started, track_id, username)
    for user_id, (started, track_id, username) in newest.items():
        if user_id not in reported_at or reported_at[user_id] < started:
            found.append((started, track_id, username, 0, None))
    found.sort(key=lambda item: item[0], reverse=True)
    purse = await song_rows.wallet(session, viewer.user_id)
    songs = {
        entry.id: entry
        for entry in await song_rows.songs(session, purse, [item[1] for item in found])
    }
    return [
        NowPlaying(
            song=songs[track_id],
            username=username,
            minutes_ago=int((now - started).total_seconds() // 60),
            # a play session does not know which app opened it: player 0
            player_id=player_id,
            player_name=player_name,
        )
        for started, track_id, username, player_id, player_name in found
        if track_id in songs
    ]
