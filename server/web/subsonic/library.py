"""Subsonic methods of the listener's library: stars (``star``, ``unstar``,
``getStarred``, ``getStarred2``; ``setRating`` answers that ratings are not kept),
playlists (the web's own), the saved play queue and what is playing now. The work is in
``server.services.subsonic`` (stars, playlists, queue); these only read parameters and
draw the answer."""

from __future__ import annotations

from models.tokens import Scope
from server.runtime.values import whole_number
from server.services.subsonic import playlists, queue, stars
from server.services.subsonic import songs as song_rows
from server.web.subsonic.call import Call, Method, Methods
from subsonic import ids
from subsonic.envelope import Node
from subsonic.errors import Code, SubsonicError, missing
from subsonic.library import Playlist, Starred, now_playing, play_queue, playlist, starred, starred2
from subsonic.library import playlists as playlists_node
from subsonic.params import MAX_VALUES, Params

Kind = ids.Kind


def _numbers(params: Params, name: str, *kinds: Kind) -> list[int]:
    return [ids.parse_as(value, *kinds)[1] for value in params.all(name) if value]


def _targets(params: Params) -> stars.Targets:
    """``id`` (a song, or an album or artist as older apps send them), ``albumId`` and
    ``artistId``, each repeatable."""
    targets = stars.Targets()
    for value in params.all("id"):
        kind, number = ids.parse_as(value, Kind.TRACK, Kind.ALBUM, Kind.ARTIST)
        {Kind.TRACK: targets.tracks, Kind.ALBUM: targets.releases,
         Kind.ARTIST: targets.artists}[kind].append(number)  # fmt: skip
    targets.releases += _numbers(params, "albumId", Kind.ALBUM)
    targets.artists += _numbers(params, "artistId", Kind.ARTIST)
    if not (targets.tracks or targets.releases or targets.artists):
        raise missing("id")
    return targets


async def star(call: Call) -> Node:
    targets = _targets(call.params)
    async with call.resources.sessionmaker() as session:
        await stars.star(session, call.listener.user_id, targets)
    return Node()


async def unstar(call: Call) -> Node:
    targets = _targets(call.params)
    async with call.resources.sessionmaker() as session:
        await stars.unstar(session, call.listener.user_id, targets)
    return Node()


async def _starred(call: Call) -> Starred:
    async with call.resources.read_sessionmaker() as session:
        purse = await song_rows.wallet(session, call.listener.user_id)
        return await stars.starred(session, purse, call.resources.settings.instance.base_url)


async def get_starred(call: Call) -> Node:
    return starred(await _starred(call))


async def get_starred2(call: Call) -> Node:
    return starred2(await _starred(call))


async def set_rating(call: Call) -> Node:
    raise SubsonicError(Code.GENERIC, "ratings are not kept here: star what you like instead")


def _playlist_id(params: Params, name: str) -> int:
    return ids.parse_as(params.required(name), Kind.PLAYLIST)[1]


def _with_songs(item: Playlist) -> Node:
    reply = Node()
    reply.one("playlist", playlist(item, with_songs=True))
    return reply


async def get_playlists(call: Call) -> Node:
    async with call.resources.read_sessionmaker() as session:
        found = await playlists.lists(session, call.listener, call.params.get("username") or None)
    return playlists_node(found)


async def get_playlist(call: Call) -> Node:
    playlist_id = _playlist_id(call.params, "id")
    async with call.resources.read_sessionmaker() as session:
        return _with_songs(await playlists.one(session, call.listener, playlist_id))


async def create_playlist(call: Call) -> Node:
    """A new playlist (``name``), or, with ``playlistId``, that one's songs replaced."""
    songs = _numbers(call.params, "songId", Kind.TRACK)
    name = call.params.get("name")
    async with call.resources.sessionmaker() as session:
        if call.params.get("playlistId"):
            playlist_id = _playlist_id(call.params, "playlistId")
            made = await playlists.replace(session, call.listener, playlist_id, songs, name)
        else:
            name = call.params.required("name")
            made = await playlists.create(session, call.listener, name, songs)
    return _with_songs(made)


def _indexes(params: Params, name: str) -> list[int]:
    found = []
    for value in params.all(name):
        index = whole_number(value, high=MAX_VALUES)
        if index is None:
            raise SubsonicError(Code.GENERIC, f"{name!r} must be an index from 0")
        found.append(index)
    return found


async def update_playlist(call: Call) -> Node:
    params = call.params
    playlist_id = _playlist_id(params, "playlistId")
    change = playlists.Change(
        name=params.get("name"),
        comment=params.get("comment"),
        public=params.boolean("public") if params.get("public") else None,
        add=_numbers(params, "songIdToAdd", Kind.TRACK),
        remove_indexes=_indexes(params, "songIndexToRemove"),
    )
    async with call.resources.sessionmaker() as session:
        await playlists.update(session, call.listener, playlist_id, change)
    return Node()


async def delete_playlist(call: Call) -> Node:
    playlist_id = _playlist_id(call.params, "id")
    async with call.resources.sessionmaker() as session:
        await playlists.delete(session, call.listener, playlist_id)
    return Node()


async def get_play_queue(call: Call) -> Node:
    """The saved queue; an empty answer when none is saved, as the API has it."""
    async with call.resources.read_sessionmaker() as session:
        saved = await queue.load(session, call.listener)
    reply = Node()
    if saved is not None:
        reply.one("playQueue", play_queue(saved))
    return reply


async def save_play_queue(call: Call) -> Node:
    """Keep the queue (``id`` repeated, ``current``, ``position`` in ms); none: forget it."""
    params = call.params
    songs = _numbers(params, "id", Kind.TRACK)
    current = params.get("current")
    current_id = ids.parse_as(current, Kind.TRACK)[1] if songs and current else None
    position = params.integer("position", 0, low=0) or 0
    async with call.resources.sessionmaker() as session:
        await queue.save(session, call.listener, songs, current_id, position, call.client)
    return Node()


async def get_now_playing(call: Call) -> Node:
    async with call.resources.read_sessionmaker() as session:
        return now_playing(await queue.now_playing(session, call.listener))


METHODS: Methods = {
    "star": Method(star, scope=Scope.WRITE),
    "unstar": Method(unstar, scope=Scope.WRITE),
    "getStarred": Method(get_starred),
    "getStarred2": Method(get_starred2),
    "setRating": Method(set_rating, scope=Scope.WRITE),
    "getPlaylists": Method(get_playlists),
    "getPlaylist": Method(get_playlist),
    "createPlaylist": Method(create_playlist, scope=Scope.WRITE),
    "updatePlaylist": Method(update_playlist, scope=Scope.WRITE),
    "deletePlaylist": Method(delete_playlist, scope=Scope.WRITE),
    "getPlayQueue": Method(get_play_queue),
    "savePlayQueue": Method(save_play_queue, scope=Scope.WRITE),
    "getNowPlaying": Method(get_now_playing),
}
