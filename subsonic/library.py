"""A listener's library as the 1.16.1 schema draws it: ``Playlist`` and
``PlaylistWithSongs``, ``PlayQueue``, ``NowPlayingEntry`` and the two ``Starred``
elements, from plain values (songs, albums and artists as ``subsonic.elements`` has them).

Attribute names and element order follow the XSD; ``None`` leaves an attribute out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from subsonic import ids
from subsonic.elements import Album, Artist, Song, album, album_as_directory_child, artist, song
from subsonic.envelope import Node


@dataclass(frozen=True, kw_only=True)
class Playlist:
    id: int
    name: str
    comment: str
    owner: str
    public: bool
    created: datetime
    changed: datetime
    songs: Sequence[Song] = field(default_factory=tuple)


def playlist(item: Playlist, *, with_songs: bool = False) -> Node:
    """``Playlist`` (``getPlaylists``), or ``PlaylistWithSongs`` with its ``entry`` songs."""
    cover = next((entry.cover_ref for entry in item.songs if entry.cover_ref), None)
    node = Node(
        {
            "id": ids.make(ids.Kind.PLAYLIST, item.id),
            "name": item.name,
            "comment": item.comment or None,
            "owner": item.owner,
            "public": item.public,
            "songCount": len(item.songs),
            "duration": round(sum(entry.duration_ms for entry in item.songs) / 1000),
            "created": item.created,
            "changed": item.changed,
            "coverArt": cover,
        }
    )
    if with_songs:
        node.many("entry", (song(entry) for entry in item.songs))
    return node


def playlists(items: Sequence[Playlist]) -> Node:
    reply = Node()
    reply.one("playlists", Node()).many("playlist", (playlist(item) for item in items))
    return reply


@dataclass(frozen=True, kw_only=True)
class PlayQueue:
    songs: Sequence[Song]
    current: int | None  # a track id
    position_ms: int
    username: str
    changed: datetime
    changed_by: str


def play_queue(item: PlayQueue) -> Node:
    node = Node(
        {
            "current": ids.make(ids.Kind.TRACK, item.current) if item.current else None,
            "position": item.position_ms,
            "username": item.username,
            "changed": item.changed,
            "changedBy": item.changed_by,
        }
    )
    node.many("entry", (song(entry) for entry in item.songs))
    return node


@dataclass(frozen=True, kw_only=True)
class NowPlaying:
    song: Song
    username: str
    minutes_ago: int
    player_id: int
    player_name: str | None = None


def now_playing(items: Sequence[NowPlaying]) -> Node:
    entries = []
    for item in items:
        entry = song(item.song)
        entry.attrs.update(
            username=item.username,
            minutesAgo=item.minutes_ago,
            playerId=item.player_id,
            playerName=item.player_name,
        )
        entries.append(entry)
    reply = Node()
    reply.one("nowPlaying", Node()).many("entry", entries)
    return reply


@dataclass(frozen=True, kw_only=True)
class Starred:
    artists: Sequence[Artist] = ()
    albums: Sequence[Album] = ()
    songs: Sequence[Song] = ()


def starred(item: Starred) -> Node:
    """``getStarred``: artists as ``Artist``, albums as directories (``Child``)."""
    body = Node()
    body.many(
        "artist",
        (Node({"id": entry.ref, "name": entry.name, "artistImageUrl": entry.image_url,
               "starred": entry.starred}) for entry in item.artists),
    )  # fmt: skip
    body.many("album", (album_as_directory_child(entry) for entry in item.albums))
    body.many("song", (song(entry) for entry in item.songs))
    reply = Node()
    reply.one("starred", body)
    return reply


def starred2(item: Starred) -> Node:
    """``getStarred2``: artists and albums as their ID3 elements."""
    body = Node()
    body.many("artist", (artist(entry) for entry in item.artists))
    body.many("album", (album(entry) for entry in item.albums))
    body.many("song", (song(entry) for entry in item.songs))
    reply = Node()
    reply.one("starred2", body)
    return reply
