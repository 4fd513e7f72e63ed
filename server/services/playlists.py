"""Listeners' playlists: make, rename, add and remove tracks, read. A playlist is its
owner's; public ones can be seen by anybody, drafts by the owner only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

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


class PlaylistError(ValueError):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


async def create(
    session: AsyncSession, user_id: int, title: str, *, public: bool = False
) -> Playlist:
    title = title.strip()
    if not 1 <= len(title) <= 200:
        raise PlaylistError("a playlist's title is 1 to 200 characters")
    playlist = Playlist(
        user_id=user_id,
        title=title,
        visibility=Visibility.PUBLIC if public else Visibility.DRAFT,
    )
    session.add(playlist)
    await session.commit()
    return playlist


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
    playlist = await owned(session, user_id, playlist_id, lock=True)
    track = await session.scalar(
        select(Track)
        .join(Release, Release.id == Track.release_id)
        .where(
            Track.id == track_id,
            Track.status == TrackStatus.READY,
            Release.visibility == Visibility.PUBLIC,
        )
    )
    if track is None:
        raise PlaylistError("there is no such track to add", 404)
    there = await session.scalar(
        select(PlaylistItem.position).where(
            PlaylistItem.playlist_id == playlist.id, PlaylistItem.track_id == track_id
        )
    )
    if there is not None:
        raise PlaylistError(f"this track is in the playlist already, at {there}", 409)
    last = await session.scalar(
        select(func.max(PlaylistItem.position)).where(PlaylistItem.playlist_id == playlist.id)
    )
    if (last or 0) >= MAX_ITEMS:
        raise PlaylistError(f"a playlist holds at most {MAX_ITEMS} tracks", 409)
    session.add(PlaylistItem(playlist_id=playlist.id, position=(last or 0) + 1, track_id=track_id))
    await session.commit()


async def remove(session: AsyncSession, user_id: int, playlist_id: int, position: int) -> None:
    playlist = await owned(session, user_id, playlist_id)
    result = await session.execute(
        delete(PlaylistItem).where(
            PlaylistItem.playlist_id == playlist.id, PlaylistItem.position == position
        )
    )
    if not getattr(result, "rowcount", 0):
        raise PlaylistError("that place in the playlist is empty", 404)
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
