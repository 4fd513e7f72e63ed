"""The catalogue's elements as the 1.16.1 schema draws them (``Child`` for a song,
``AlbumID3``, ``ArtistID3``, ``Genre``), with OpenSubsonic's additions, from plain values.

Attribute names and element order follow the XSD; ``None`` leaves an attribute out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from subsonic import ids
from subsonic.envelope import Node


@dataclass(frozen=True, kw_only=True)
class Song:
    id: int
    title: str
    album: str
    album_ref: str | None  # the album's Subsonic id (``al-5``), if it has one here
    artist: str
    artist_ref: str | None
    track: int | None
    disc: int | None
    year: int | None
    genres: Sequence[str] = ()
    duration_ms: int
    created: datetime
    cover_ref: str | None  # the getCoverArt id, if there is a picture
    size: int | None  # of what ``stream`` sends by default
    content_type: str | None
    suffix: str | None
    bitrate_kbps: int | None
    starred: datetime | None = None
    play_count: int | None = None
    played: datetime | None = None
    comment: str | None = None  # why the listener gets the preview, if they do
    isrc: str | None = None
    path: str | None = None
    partner: bool = False  # a partner's track (its id is a ``tr-…`` all the same)

    @property
    def ref(self) -> str:
        return ids.make(ids.Kind.TRACK, self.id)


def song(item: Song) -> Node:
    node = Node(
        {
            "id": item.ref,
            "parent": item.album_ref,
            "isDir": False,
            "title": item.title,
            "album": item.album,
            "artist": item.artist,
            "track": item.track,
            "year": item.year,
            "genre": item.genres[0] if item.genres else None,
            "coverArt": item.cover_ref,
            "size": item.size,
            "contentType": item.content_type,
            "suffix": item.suffix,
            "duration": round(item.duration_ms / 1000),
            "bitRate": item.bitrate_kbps,
            "path": item.path,
            "isVideo": False,
            "playCount": item.play_count,
            "discNumber": item.disc,
            "created": item.created,
            "starred": item.starred,
            "albumId": item.album_ref,
            "artistId": item.artist_ref,
            "type": "music",
            # OpenSubsonic
            "mediaType": "song",
            "played": item.played,
            "comment": item.comment,
            "displayArtist": item.artist,
            "displayAlbumArtist": item.artist,
        }
    )
    node.many("genres", (Node({"name": name}) for name in item.genres))
    if item.artist_ref is not None:
        node.many("artists", [Node({"id": item.artist_ref, "name": item.artist})])
        node.many("albumArtists", [Node({"id": item.artist_ref, "name": item.artist})])
    if item.isrc:
        node.many("isrc", [Node(text=item.isrc)])
    return node


@dataclass(frozen=True, kw_only=True)
class Album:
    ref: str  # ``al-5``
    name: str
    artist: str
    artist_ref: str | None
    cover_ref: str | None
    song_count: int
    duration_ms: int
    created: datetime
    year: int | None = None
    genres: Sequence[str] = ()
    starred: datetime | None = None
    play_count: int | None = None
    played: datetime | None = None
    release_date: str | None = None  # ISO date
    label: str | None = None
    kind: str | None = None  # album, ep, single …
    songs: Sequence[Song] = field(default_factory=tuple)


def album(item: Album, *, with_songs: bool = False) -> Node:
    node = Node(
        {
            "id": item.ref,
            "name": item.name,
            "artist": item.artist,
            "artistId": item.artist_ref,
            "coverArt": item.cover_ref,
            "songCount": item.song_count,
            "duration": round(item.duration_ms / 1000),
            "playCount": item.play_count,
            "created": item.created,
            "starred": item.starred,
            "year": item.year,
            "genre": item.genres[0] if item.genres else None,
            # OpenSubsonic
            "played": item.played,
            "displayArtist": item.artist,
            "isCompilation": False,
        }
    )
    node.many("genres", (Node({"name": name}) for name in item.genres))
    if item.artist_ref is not None:
        node.many("artists", [Node({"id": item.artist_ref, "name": item.artist})])
    if item.label:
        node.many("recordLabels", [Node({"name": item.label})])
    if item.kind:
        node.many("releaseTypes", [Node(text=item.kind)])
    if item.release_date:
        year, month, day = (int(part) for part in item.release_date.split("-"))
        node.one("releaseDate", Node({"year": year, "month": month, "day": day}))
    if with_songs:
        node.many("song", (song(track) for track in item.songs))
    return node


def album_as_directory_child(item: Album) -> Node:
    """An album as a ``Child`` with ``isDir`` (getMusicDirectory, getAlbumList)."""
    return Node(
        {
            "id": item.ref,
            "parent": item.artist_ref,
            "isDir": True,
            "title": item.name,
            "album": item.name,
            "artist": item.artist,
            "year": item.year,
            "genre": item.genres[0] if item.genres else None,
            "coverArt": item.cover_ref,
            "playCount": item.play_count,
            "created": item.created,
            "starred": item.starred,
            "albumId": item.ref,
            "artistId": item.artist_ref,
            "mediaType": "album",
        }
    )


@dataclass(frozen=True, kw_only=True)
class Artist:
    ref: str  # ``ar-12``
    name: str
    album_count: int
    cover_ref: str | None = None
    image_url: str | None = None
    starred: datetime | None = None
    sort_name: str | None = None


def artist(item: Artist, albums: Iterable[Album] | None = None) -> Node:
    node = Node(
        {
            "id": item.ref,
            "name": item.name,
            "coverArt": item.cover_ref,
            "artistImageUrl": item.image_url,
            "albumCount": item.album_count,
            "starred": item.starred,
            "sortName": item.sort_name,
        }
    )
    if albums is not None:
        node.many("album", (album(entry) for entry in albums))
    return node


def genre(name: str, songs: int, albums: int) -> Node:
    return Node({"songCount": songs, "albumCount": albums}, text=name)


def index_artist(item: Artist) -> Node:
    """An artist as ``getIndexes`` lists it (the ``Artist`` type, not ``ArtistID3``)."""
    return Node(
        {
            "id": item.ref,
            "name": item.name,
            "starred": item.starred,
            "coverArt": item.cover_ref,
            "artistImageUrl": item.image_url,
        }
    )


def indexed(
    artists: Iterable[Artist], letter_of: Callable[[Artist], str]
) -> list[tuple[str, list[Artist]]]:
    """Artists grouped by index letter, groups in order, as sorted within each."""
    groups: dict[str, list[Artist]] = {}
    for item in artists:
        groups.setdefault(letter_of(item), []).append(item)
    return sorted(groups.items(), key=lambda pair: (pair[0] == "#", pair[0]))


def artist_info(
    biography: str | None,
    small: str | None,
    medium: str | None,
    large: str | None,
    similar: Iterable[Node] = (),
) -> Node:
    """``ArtistInfo`` / ``ArtistInfo2``: biography, the image URLs, similar artists (Last.fm
    and MusicBrainz are left out: nothing here knows them)."""
    node = Node()
    node.text_child("biography", biography)
    node.text_child("smallImageUrl", small)
    node.text_child("mediumImageUrl", medium)
    node.text_child("largeImageUrl", large)
    node.many("similarArtist", similar)
    return node


def album_info(notes: str | None, small: str | None, medium: str | None, large: str | None) -> Node:
    node = Node()
    node.text_child("notes", notes)
    node.text_child("smallImageUrl", small)
    node.text_child("mediumImageUrl", medium)
    node.text_child("largeImageUrl", large)
    return node
