"""Playlists over the Subsonic API: the web's own (``server.services.playlists`` makes
every change), seen as Subsonic lists them. A listener changes only their own; they see
their own and anybody's public ones, an admin every one. Playlists hold this instance's
tracks only: a partner's track is refused with a reason (docs/decisions.md).

Subsonic removes songs by their index in the list the app was shown; here each index
is turned into the item's place before the web's service removes it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import Playlist, PlaylistItem, Visibility
from models.remote_plays import RemoteTrack
from models.users import User
from server.services import playlists as web
from server.services.errors import NotFoundError, Refused
from server.services.subsonic import songs as song_rows
from server.services.viewers import Viewer
from subsonic import ids
from subsonic.elements import Song
from subsonic.library import Playlist as PlaylistValue

PARTNER_TRACK = (
    "a partner's track cannot be put in a playlist here: playlists hold this instance's "
    "own tracks (add it to the play queue instead)"
)


@dataclass(frozen=True)
class Change:
    """What ``updatePlaylist`` asks for."""

    name: str | None = None
    comment: str | None = None
    public: bool | None = None
    add: Sequence[int] = ()
    remove_indexes: Sequence[int] = ()


def _missing(playlist_id: int) -> NotFoundError:
    return NotFoundError(f"there is no playlist {ids.make(ids.Kind.PLAYLIST, playlist_id)}")


async def _playlist(
    session: AsyncSession, viewer: Viewer, playlist_id: int, *, change: bool
) -> Playlist:
    """The playlist if the viewer may see it (and, to ``change`` it, if it is theirs:
    another's they can see is refused with 403, one they cannot see does not exist)."""
    playlist = await session.get(Playlist, playlist_id)
    if playlist is None:
        raise _missing(playlist_id)
    mine = playlist.user_id == viewer.user_id
    seen = mine or playlist.visibility is Visibility.PUBLIC or viewer.is_admin
    if not seen:
        raise _missing(playlist_id)
    if change and not mine:
        raise Refused("only its owner can change a playlist", 403)
    return playlist


async def _items(session: AsyncSession, playlist_id: int) -> list[tuple[int, int]]:
    rows = await session.execute(
        select(PlaylistItem.position, PlaylistItem.track_id)
        .where(PlaylistItem.playlist_id == playlist_id)
        .order_by(PlaylistItem.position)
    )
    return [(position, track_id) for position, track_id in rows]


async def _shown(
    session: AsyncSession, purse: song_rows.Wallet, playlist_id: int
) -> list[tuple[int, Song]]:
    """The playlist's items the listener is shown, in order: (place, song)."""
    items = await _items(session, playlist_id)
    found = {
        entry.id: entry
        for entry in await song_rows.songs(session, purse, [track for _, track in items])
    }
    return [(position, found[track]) for position, track in items if track in found]


async def _value(
    session: AsyncSession, viewer: Viewer, playlist: Playlist, owner: str
) -> PlaylistValue:
    purse = await song_rows.wallet(session, viewer.user_id)
    return _made(playlist, owner, await _shown(session, purse, playlist.id))


def _made(playlist: Playlist, owner: str, shown: list[tuple[int, Song]]) -> PlaylistValue:
    return PlaylistValue(
        id=playlist.id,
        name=playlist.title,
        comment=playlist.description,
        owner=owner,
        public=playlist.visibility is Visibility.PUBLIC,
        created=playlist.created_at,
        changed=playlist.changed_at or playlist.created_at,
        songs=[entry for _, entry in shown],
    )


async def _owner_name(session: AsyncSession, playlist: Playlist) -> str:
    return await session.scalar(select(User.username).where(User.id == playlist.user_id)) or ""


async def lists(
    session: AsyncSession, viewer: Viewer, username: str | None = None
) -> list[PlaylistValue]:
    """The viewer's playlists; with ``username``, that user's public ones (every one of
    them for an admin)."""
    owner_id, owner = viewer.user_id, viewer.username
    query = select(Playlist)
    if username is not None and username.lower() != viewer.username.lower():
        user = await session.scalar(select(User).where(User.username == username.lower()))
        if user is None:
            return []  # as for a user without public playlists: names are not told apart
        owner_id, owner = user.id, user.username
        if not viewer.is_admin:
            query = query.where(Playlist.visibility == Visibility.PUBLIC)
    found = list(
        await session.scalars(query.where(Playlist.user_id == owner_id).order_by(Playlist.id))
    )
    # every list's items, and their songs, in one go each (not a query per playlist)
    items: dict[int, list[tuple[int, int]]] = {playlist.id: [] for playlist in found}
    for playlist_id, position, track_id in await session.execute(
        select(PlaylistItem.playlist_id, PlaylistItem.position, PlaylistItem.track_id)
        .where(PlaylistItem.playlist_id.in_(list(items)))
        .order_by(PlaylistItem.playlist_id, PlaylistItem.position)
    ):
        items[playlist_id].append((position, track_id))
    purse = await song_rows.wallet(session, viewer.user_id)
    wanted = sorted({track for entries in items.values() for _, track in entries})
    songs = {entry.id: entry for entry in await song_rows.songs(session, purse, wanted)}
    return [
        _made(playlist, owner, [(p, songs[t]) for p, t in items[playlist.id] if t in songs])
        for playlist in found
    ]


async def one(session: AsyncSession, viewer: Viewer, playlist_id: int) -> PlaylistValue:
    playlist = await _playlist(session, viewer, playlist_id, change=False)
    return await _value(session, viewer, playlist, await _owner_name(session, playlist))


async def _local_only(session: AsyncSession, track_ids: Sequence[int]) -> None:
    if track_ids and await session.scalar(
        select(RemoteTrack.id).where(RemoteTrack.id.in_(track_ids)).limit(1)
    ):
        raise Refused(PARTNER_TRACK, 422)


def _refused(error: web.PlaylistError) -> Refused:
    return Refused(str(error), error.status)


async def create(
    session: AsyncSession, viewer: Viewer, name: str, track_ids: Sequence[int]
) -> PlaylistValue:
    await _local_only(session, track_ids)
    try:
        made = await web.create(session, viewer.user_id, name, track_ids=track_ids)
    except web.PlaylistError as error:
        raise _refused(error) from None
    return await one(session, viewer, made.id)


async def replace(
    session: AsyncSession,
    viewer: Viewer,
    playlist_id: int,
    track_ids: Sequence[int],
    name: str | None = None,
) -> PlaylistValue:
    """``createPlaylist`` with ``playlistId``: its songs become these (and its name
    ``name``, if given)."""
    await _playlist(session, viewer, playlist_id, change=True)
    await _local_only(session, track_ids)
    try:
        await web.edit(session, viewer.user_id, playlist_id, title=name, replace=track_ids)
    except web.PlaylistError as error:
        raise _refused(error) from None
    return await one(session, viewer, playlist_id)


async def update(session: AsyncSession, viewer: Viewer, playlist_id: int, change: Change) -> None:
    await _playlist(session, viewer, playlist_id, change=True)
    await _local_only(session, change.add)
    positions = []
    if change.remove_indexes:
        purse = await song_rows.wallet(session, viewer.user_id)
        shown = await _shown(session, purse, playlist_id)
        for index in change.remove_indexes:
            if not 0 <= index < len(shown):
                raise NotFoundError(
                    f"there is no song at index {index}: the playlist shows {len(shown)}"
                )
            positions.append(shown[index][0])
    try:
        await web.edit(
            session, viewer.user_id, playlist_id, title=change.name, description=change.comment,
            public=change.public, remove_positions=positions, add=change.add,
        )  # fmt: skip
    except web.PlaylistError as error:
        raise _refused(error) from None


async def delete(session: AsyncSession, viewer: Viewer, playlist_id: int) -> None:
    await _playlist(session, viewer, playlist_id, change=True)
    try:
        await web.delete_playlist(session, viewer.user_id, playlist_id)
    except web.PlaylistError as error:
        raise _refused(error) from None
