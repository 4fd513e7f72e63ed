"""Listeners' playlists: make, rename, add and remove tracks, read. A playlist is its
owner's; public ones can be seen by anybody, drafts by the owner only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.catalogue import (
    Artist,
    Playlist,
    PlaylistItem,
    Release,
    Track,
    TrackStatus,
    Visibility,
)

MAX_ITEMS = 1000
MAX_DESCRIPTION = 2000


class PlaylistError(ValueError):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


async def create(
    session: AsyncSession,
    user_id: int,
    title: str,
    *,
    public: bool = False,
    description: str = "",
    track_ids: Sequence[int] = (),
) -> Playlist:
    """A new playlist, with these tracks in this order if any are given (all of them or,
    if one cannot be added, none and no playlist)."""
    title = _title(title)
    await _check_addable(session, track_ids, {})
    playlist = Playlist(
        user_id=user_id,
        title=title,
        description=_description(description),
        visibility=Visibility.PUBLIC if public else Visibility.DRAFT,
    )
    session.add(playlist)
    await session.flush()
    _append(session, playlist.id, 0, track_ids)
    await session.commit()
    return playlist


def _title(title: str) -> str:
    title = title.strip()
    if not 1 <= len(title) <= 200:
        raise PlaylistError("a playlist's title is 1 to 200 characters")
    return title


def _description(text: str) -> str:
    if len(text) > MAX_DESCRIPTION:
        raise PlaylistError(f"a playlist's description is at most {MAX_DESCRIPTION} characters")
    return text


async def owned(
    session: AsyncSession, user_id: int, playlist_id: int, *, lock: bool = False
) -> Playlist:
    """The user's playlist; ``lock`` holds its row until the transaction ends (on
    PostgreSQL; a SQLite transaction holds the whole database's write lock anyway)."""
    query = select(Playlist).where(Playlist.id == playlist_id)
    if lock:
        query = query.with_for_update()
    playlist = await session.scalar(query)
    if playlist is None or playlist.user_id != user_id:
        raise PlaylistError("you have no such playlist", 404)
    return playlist


async def add(session: AsyncSession, user_id: int, playlist_id: int, track_id: int) -> None:
    """Add a track at the end, once: a track is in a playlist at most once. Adds to one
    playlist take turns on its row, so concurrent adds never take the same place and
    the same track added twice at once lands once (the others are told it is there)."""
    await edit(session, user_id, playlist_id, add=[track_id])


async def edit(
    session: AsyncSession,
    user_id: int,
    playlist_id: int,
    *,
    title: str | None = None,
    description: str | None = None,
    public: bool | None = None,
    remove_positions: Sequence[int] = (),
    add: Sequence[int] = (),
    replace: Sequence[int] | None = None,
) -> Playlist:
    """Change the user's playlist in one transaction: its title, description and
    visibility; the items at ``remove_positions`` go, then the tracks of ``add`` come at
    the end in order (``replace``: the items become exactly these tracks). Nothing changes
    unless all of it can: an empty place, a track that cannot be added or one already in
    the playlist refuses the whole edit. Edits of one playlist take turns on its row."""
    playlist = await owned(session, user_id, playlist_id, lock=True)
    new_title = _title(title) if title is not None else None
    new_description = _description(description) if description is not None else None
    rows = await session.execute(
        select(PlaylistItem.position, PlaylistItem.track_id).where(
            PlaylistItem.playlist_id == playlist.id
        )
    )
    items = {position: track_id for position, track_id in rows}
    gone = set(remove_positions)
    for position in sorted(gone):
        if position not in items:
            raise PlaylistError("that place in the playlist is empty", 404)
    if replace is not None:
        gone = set(items)
        add = replace
    kept = {track_id: position for position, track_id in items.items() if position not in gone}
    await _check_addable(session, add, kept)
    # the place after the last one is where adds go, and that place is what is capped
    last = 0 if replace is not None else max(items, default=0)
    if add and last + len(add) > MAX_ITEMS:
        raise PlaylistError(f"a playlist holds at most {MAX_ITEMS} tracks", 409)
    if gone:
        await session.execute(
            delete(PlaylistItem).where(
                PlaylistItem.playlist_id == playlist.id, PlaylistItem.position.in_(gone)
            )
        )
    _append(session, playlist.id, last, add)
    if new_title is not None:
        playlist.title = new_title
    if new_description is not None:
        playlist.description = new_description
    if public is not None:
        playlist.visibility = Visibility.PUBLIC if public else Visibility.DRAFT
    playlist.changed_at = utcnow()
    await session.commit()
    return playlist


async def _check_addable(
    session: AsyncSession, track_ids: Sequence[int], there: dict[int, int]
) -> None:
    """Refuse tracks that cannot be added: not a ready public track of ours, already in
    the playlist (``there``: track id to its place), or given twice."""
    if not track_ids:
        return
    found = set(
        await session.scalars(
            select(Track.id)
            .join(Release, Release.id == Track.release_id)
            .where(
                Track.id.in_(set(track_ids)),
                Track.status == TrackStatus.READY,
                Release.visibility == Visibility.PUBLIC,
            )
        )
    )
    seen: set[int] = set()
    for track_id in track_ids:
        if track_id not in found:
            message = (
                "there is no such track to add"
                if len(track_ids) == 1
                else f"there is no track {track_id} to add"
            )
            raise PlaylistError(message, 404)
        if track_id in there:
            raise PlaylistError(f"this track is in the playlist already, at {there[track_id]}", 409)
        if track_id in seen:
            raise PlaylistError(
                f"track {track_id} is given twice: a track is in a playlist once", 409
            )
        seen.add(track_id)


def _append(session: AsyncSession, playlist_id: int, last: int, track_ids: Sequence[int]) -> None:
    session.add_all(
        PlaylistItem(playlist_id=playlist_id, position=last + offset, track_id=track_id)
        for offset, track_id in enumerate(track_ids, start=1)
    )


async def remove(session: AsyncSession, user_id: int, playlist_id: int, position: int) -> None:
    playlist = await owned(session, user_id, playlist_id)
    result = await session.execute(
        delete(PlaylistItem).where(
            PlaylistItem.playlist_id == playlist.id, PlaylistItem.position == position
        )
    )
    if not getattr(result, "rowcount", 0):
        raise PlaylistError("that place in the playlist is empty", 404)
    playlist.changed_at = utcnow()
    await session.commit()


async def delete_playlist(session: AsyncSession, user_id: int, playlist_id: int) -> None:
    playlist = await owned(session, user_id, playlist_id)
    await session.delete(playlist)
    await session.commit()


@dataclass(frozen=True)
class PlaylistView:
    playlist: Playlist
    rows: list[tuple[int, Track, Release, Artist]]  # position, track, release, artist


async def view(session: AsyncSession, viewer_id: int | None, playlist_id: int) -> PlaylistView:
    playlist = await session.get(Playlist, playlist_id)
    if playlist is None or (
        playlist.visibility is not Visibility.PUBLIC and playlist.user_id != viewer_id
    ):
        raise PlaylistError("there is no such playlist", 404)
    rows: Any = (  # Rows of (position, track, release, artist)
        await session.execute(
            select(PlaylistItem.position, Track, Release, Artist)
            .join(Track, Track.id == PlaylistItem.track_id)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(PlaylistItem.playlist_id == playlist.id, Release.visibility == Visibility.PUBLIC)
            .order_by(PlaylistItem.position)
        )
    ).all()
    return PlaylistView(playlist, [tuple(row) for row in rows])
