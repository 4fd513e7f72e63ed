"""Subsonic methods for browsing and searching: music folders, indexes, artists, albums,
songs, album lists, genres, search, artist and album info, top and similar songs, cover
art and avatars. The queries are in :mod:`server.services.subsonic.catalogue`; these
handlers read the parameters and draw the answer in the XSD's element order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from quart import Response, request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.sanitize import plain_text
from federation.urls import cover_url, page_url
from models.catalogue import Artist as ArtistRow
from models.catalogue import Release
from server.services.media.images import MAX_SIDE
from server.services.media.storage import LocalStorage
from server.services.subsonic import catalogue, pictures
from server.services.subsonic.catalogue import (
    IGNORED_ARTICLES,
    Folder,
    ListQuery,
    ListType,
    Paging,
    SongFilter,
)
from server.services.subsonic.songs import Wallet, songs_by_ref, wallet
from server.web.subsonic.call import Call, Method, Methods
from subsonic import elements, ids
from subsonic.envelope import Node
from subsonic.errors import Code, SubsonicError, not_found

T = TypeVar("T")
MAX_LIST = 500  # the most items one call lists (album lists, random songs, search pages)
MAX_OFFSET = 1_000_000  # beyond any catalogue here; keeps the numbers within the database's


async def _read(call: Call, work: Callable[[AsyncSession, Wallet], Awaitable[T]]) -> T:
    """Run ``work`` in a read-only session with the listener's wallet."""
    async with call.resources.read_sessionmaker() as session:
        purse = await wallet(session, call.listener.user_id)
        return await work(session, purse)


def _base_url(call: Call) -> str:
    return call.resources.settings.instance.base_url


def _folders(call: Call) -> tuple[Folder, ...]:
    number = call.params.integer("musicFolderId")
    chosen = catalogue.folders(number)
    if not chosen:
        raise SubsonicError(Code.NOT_FOUND, f"there is no music folder {number}")
    return chosen


def _size(call: Call, name: str, default: int) -> int:
    value = call.params.integer(name, default, low=0, high=MAX_LIST)
    assert value is not None
    return value


def _offset(call: Call, name: str = "offset") -> int:
    value = call.params.integer(name, 0, low=0, high=MAX_OFFSET)
    assert value is not None
    return value


def _id(call: Call, *kinds: ids.Kind) -> str:
    """The ``id`` parameter, checked to be of one of ``kinds`` (code 70 otherwise)."""
    value = call.params.required("id")
    ids.parse_as(value, *kinds)
    return value


def _articles() -> str:
    return " ".join(IGNORED_ARTICLES)


def _millis(moment: datetime | None) -> int:
    if moment is None:
        return 0
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


# --- folders, indexes, artists -------------------------------------------------------------


async def get_music_folders(call: Call) -> Node:
    reply = Node()
    folders = reply.one("musicFolders", Node())
    folders.many(
        "musicFolder",
        (Node({"id": int(f), "name": catalogue.FOLDER_NAMES[f]}) for f in Folder),
    )
    return reply


async def get_indexes(call: Call) -> Node:
    chosen = _folders(call)
    since = call.params.integer("ifModifiedSince", 0) or 0

    async def work(session: AsyncSession, purse: Wallet) -> Node:
        modified = _millis(await catalogue.last_modified(session, purse.user_id))
        reply = Node()
        indexes = reply.one(
            "indexes", Node({"lastModified": modified, "ignoredArticles": _articles()})
        )
        if since and modified <= since:
            return reply  # nothing new since the app last asked
        artists = await catalogue.all_artists(session, purse.user_id, _base_url(call), chosen)
        indexes.many(
            "index",
            (
                Node(
                    {"name": letter},
                    children=[("artist", [elements.index_artist(a) for a in group])],
                )
                for letter, group in elements.indexed(
                    artists, lambda a: catalogue.index_letter(a.name)
                )
            ),
        )
        return reply

    return await _read(call, work)


async def get_artists(call: Call) -> Node:
    chosen = _folders(call)

    async def work(session: AsyncSession, purse: Wallet) -> Node:
        artists = await catalogue.all_artists(session, purse.user_id, _base_url(call), chosen)
        reply = Node()
        index = reply.one("artists", Node({"ignoredArticles": _articles()}))
        index.many(
            "index",
            (
                Node({"name": letter}, children=[("artist", [elements.artist(a) for a in group])])
                for letter, group in elements.indexed(
                    artists, lambda a: catalogue.index_letter(a.name)
                )
            ),
        )
        return reply

    return await _read(call, work)


async def _artist_page(call: Call, ref: str) -> catalogue.ArtistPage:
    async def work(session: AsyncSession, purse: Wallet) -> catalogue.ArtistPage | None:
        return await catalogue.artist_page(session, purse, _base_url(call), ref)

    page = await _read(call, work)
    if page is None:
        raise not_found(f"artist {ref}")
    return page


async def get_artist(call: Call) -> Node:
    page = await _artist_page(call, _id(call, ids.Kind.ARTIST, ids.Kind.PARTNER_ARTIST))
    reply = Node()
    reply.one("artist", elements.artist(page.artist, page.albums))
    return reply


async def _album(call: Call, ref: str) -> elements.Album:
    async def work(
        session: AsyncSession, purse: Wallet
    ) -> tuple[elements.Album, list[elements.Song]] | None:
        return await catalogue.album_songs(session, purse, ref)

    found = await _read(call, work)
    if found is None:
        raise not_found(f"album {ref}")
    album, songs = found
    return dataclasses.replace(album, songs=songs)


async def get_album(call: Call) -> Node:
    album = await _album(call, _id(call, ids.Kind.ALBUM, ids.Kind.PARTNER_ALBUM))
    reply = Node()
    reply.one("album", elements.album(album, with_songs=True))
    return reply


async def get_song(call: Call) -> Node:
    ref = _id(call, ids.Kind.TRACK)
    found = await _read(call, lambda session, purse: songs_by_ref(session, purse, [ref]))
    if not found:
        raise not_found(f"song {ref}")
    reply = Node()
    reply.one("song", elements.song(found[0]))
    return reply


async def get_music_directory(call: Call) -> Node:
    ref = _id(
        call, ids.Kind.ARTIST, ids.Kind.PARTNER_ARTIST, ids.Kind.ALBUM, ids.Kind.PARTNER_ALBUM
    )
    kind, _number = ids.parse(ref)
    reply = Node()
    if kind in (ids.Kind.ARTIST, ids.Kind.PARTNER_ARTIST):
        page = await _artist_page(call, ref)
        directory = reply.one(
            "directory",
            Node({"id": page.artist.ref, "name": page.artist.name, "starred": page.artist.starred}),
        )
        directory.many("child", (elements.album_as_directory_child(a) for a in page.albums))
        return reply
    album = await _album(call, ref)
    directory = reply.one(
        "directory",
        Node(
            {
                "id": album.ref,
                "parent": album.artist_ref,
                "name": album.name,
                "starred": album.starred,
                "playCount": album.play_count,
                "played": album.played,
            }
        ),
    )
    directory.many("child", (elements.song(s) for s in album.songs))
    return reply


# --- album lists ---------------------------------------------------------------------------


def _list_query(call: Call) -> ListQuery:
    name = call.params.required("type")
    try:
        kind = ListType(name)
    except ValueError:
        raise SubsonicError(
            Code.GENERIC,
            f"unknown album list type {name!r}: use one of {', '.join(t.value for t in ListType)}",
        ) from None
    genre = call.params.required("genre") if kind is ListType.BY_GENRE else None
    from_year = to_year = None
    if kind is ListType.BY_YEAR:
        from_year = call.params.required_integer("fromYear", low=1)
        to_year = call.params.required_integer("toYear", low=1)
    return ListQuery(
        kind, _size(call, "size", 10), _offset(call), _folders(call), genre, from_year, to_year
    )


async def _album_list(call: Call) -> list[elements.Album]:
    query = _list_query(call)
    return await _read(call, lambda session, purse: catalogue.album_list(session, purse, query))


async def get_album_list(call: Call) -> Node:
    albums = await _album_list(call)
    reply = Node()
    reply.one("albumList", Node()).many(
        "album", (elements.album_as_directory_child(a) for a in albums)
    )
    return reply


async def get_album_list2(call: Call) -> Node:
    albums = await _album_list(call)
    reply = Node()
    reply.one("albumList2", Node()).many("album", (elements.album(a) for a in albums))
    return reply


# --- songs and genres ----------------------------------------------------------------------


def _songs(name: str, found: list[elements.Song]) -> Node:
    reply = Node()
    reply.one(name, Node()).many("song", (elements.song(s) for s in found))
    return reply


async def get_random_songs(call: Call) -> Node:
    size = _size(call, "size", 10)
    chosen = SongFilter(
        call.params.get("genre") or None,
        call.params.integer("fromYear", low=1),
        call.params.integer("toYear", low=1),
    )
    where = _folders(call)
    found = await _read(
        call, lambda session, purse: catalogue.random_songs(session, purse, size, chosen, where)
    )
    return _songs("randomSongs", found)


async def get_genres(call: Call) -> Node:
    found = await _read(call, lambda session, purse: catalogue.genres(session, purse.user_id))
    reply = Node()
    reply.one("genres", Node()).many(
        "genre", (elements.genre(g.name, g.songs, g.albums) for g in found)
    )
    return reply


async def get_songs_by_genre(call: Call) -> Node:
    genre = call.params.required("genre")
    count, offset = _size(call, "count", 10), _offset(call)
    if Folder.LOCAL not in _folders(call):  # partners' tracks have no genre
        return _songs("songsByGenre", [])
    found = await _read(
        call, lambda session, purse: catalogue.songs_by_genre(session, purse, genre, count, offset)
    )
    return _songs("songsByGenre", found)


async def get_top_songs(call: Call) -> Node:
    name = call.params.required("artist")
    count = _size(call, "count", 50)
    found = await _read(
        call, lambda session, purse: catalogue.top_songs(session, purse, name, count)
    )
    return _songs("topSongs", found)


async def _similar(call: Call) -> list[elements.Song]:
    ref = _id(call, ids.Kind.ARTIST, ids.Kind.ALBUM, ids.Kind.TRACK)
    count = _size(call, "count", 50)
    found = await _read(
        call, lambda session, purse: catalogue.similar_songs(session, purse, ref, count)
    )
    if found is None:
        raise not_found(ref)
    return found


async def get_similar_songs(call: Call) -> Node:
    return _songs("similarSongs", await _similar(call))


async def get_similar_songs2(call: Call) -> Node:
    return _songs("similarSongs2", await _similar(call))


# --- search --------------------------------------------------------------------------------


def _paging(call: Call) -> Paging:
    return Paging(
        (_size(call, "artistCount", 20), _offset(call, "artistOffset")),
        (_size(call, "albumCount", 20), _offset(call, "albumOffset")),
        (_size(call, "songCount", 20), _offset(call, "songOffset")),
    )


async def _search(call: Call) -> catalogue.Found:
    query = call.params.get("query") or ""
    paging, where = _paging(call), _folders(call)
    return await _read(
        call,
        lambda session, purse: catalogue.search_catalogue(
            session, purse, _base_url(call), query, paging, where
        ),
    )


async def search2(call: Call) -> Node:
    found = await _search(call)
    reply = Node()
    result = reply.one("searchResult2", Node())
    result.many("artist", (elements.index_artist(a) for a in found.artists))
    result.many("album", (elements.album_as_directory_child(a) for a in found.albums))
    result.many("song", (elements.song(s) for s in found.songs))
    return reply


async def search3(call: Call) -> Node:
    found = await _search(call)
    reply = Node()
    result = reply.one("searchResult3", Node())
    result.many("artist", (elements.artist(a) for a in found.artists))
    result.many("album", (elements.album(a) for a in found.albums))
    result.many("song", (elements.song(s) for s in found.songs))
    return reply


# --- info ----------------------------------------------------------------------------------


def _with_link(text: str | None, url: str | None) -> str | None:
    """Our text, then where to read more (the page on the web)."""
    parts = [part for part in (text, url) if part]
    return "\n\n".join(parts) or None


async def _artist_info(call: Call, *, id3: bool) -> Node:
    ref = _id(call, ids.Kind.ARTIST, ids.Kind.PARTNER_ARTIST)
    count = _size(call, "count", 20)
    base = _base_url(call)

    async def work(
        session: AsyncSession, purse: Wallet
    ) -> tuple[catalogue.ArtistPage, list[elements.Artist], str | None] | None:
        page = await catalogue.artist_page(session, purse, base, ref)
        if page is None:
            return None
        similar = await catalogue.similar_artists(session, purse.user_id, base, page, count)
        url = None
        kind, number = ids.parse(ref)
        if kind is ids.Kind.ARTIST:
            name = await session.scalar(select(ArtistRow.name).where(ArtistRow.id == number))
            url = page_url(base, "artists", name) if name else None
        return page, similar, url

    found = await _read(call, work)
    if found is None:
        raise not_found(f"artist {ref}")
    page, similar, url = found
    image = page.image_url
    info = elements.artist_info(
        _with_link(page.biography, url),
        image,
        image,
        image,
        (elements.artist(a) if id3 else elements.index_artist(a) for a in similar),
    )
    reply = Node()
    reply.one("artistInfo2" if id3 else "artistInfo", info)
    return reply


async def get_artist_info(call: Call) -> Node:
    return await _artist_info(call, id3=False)


async def get_artist_info2(call: Call) -> Node:
    return await _artist_info(call, id3=True)


async def _album_info(call: Call) -> Node:
    ref = _id(call, ids.Kind.ALBUM, ids.Kind.PARTNER_ALBUM)
    base = _base_url(call)

    async def work(session: AsyncSession, purse: Wallet) -> Node | None:
        (album,) = await catalogue.albums_by_ref(session, purse, [ref]) or (None,)
        if album is None:
            return None
        kind, number = ids.parse(album.ref)
        if kind is not ids.Kind.ALBUM:
            return elements.album_info(None, None, None, None)
        description = await session.scalar(select(Release.description).where(Release.id == number))
        image = cover_url(base, number) if album.cover_ref else None
        notes = _with_link(
            plain_text(description or "") or None, page_url(base, "releases", number)
        )
        return elements.album_info(notes, image, image, image)

    info = await _read(call, work)
    if info is None:
        raise not_found(f"album {ref}")
    reply = Node()
    reply.one("albumInfo", info)
    return reply


# --- pictures ------------------------------------------------------------------------------


async def _send_picture(
    call: Call, picture: catalogue.Picture | None, size: int | None
) -> Response:
    if picture is None:
        raise SubsonicError(Code.NOT_FOUND, "there is no picture of that")
    settings = call.resources.settings
    try:
        found = await pictures.sized(
            LocalStorage(settings.media_dir), settings.instance.data_dir, picture, size
        )
    except pictures.PictureUnavailable:
        raise SubsonicError(
            Code.NOT_FOUND, "the picture cannot be read from the media store"
        ) from None
    cache = "public, max-age=86400" if picture.public else "private, no-store"
    headers = {"ETag": found.etag, "Cache-Control": cache, "Content-Type": found.mime_type}
    if found.etag in request.headers.get("If-None-Match", ""):
        return Response(b"", 304, headers)
    try:
        data = await asyncio.to_thread(found.path.read_bytes)
    except FileNotFoundError:
        raise SubsonicError(Code.NOT_FOUND, "the picture is missing from the media store") from None
    return Response(data, 200, headers)


async def get_cover_art(call: Call) -> Response:
    ref = call.params.required("id")
    size = call.params.integer("size", low=1, high=MAX_SIDE)
    async with call.resources.read_sessionmaker() as session:
        picture = await catalogue.picture(session, call.listener.user_id, ref)
    return await _send_picture(call, picture, size)


async def get_avatar(call: Call) -> Response:
    username = call.params.required("username")
    async with call.resources.read_sessionmaker() as session:
        picture = await catalogue.user_avatar(session, username)
    return await _send_picture(call, picture, None)


METHODS: Methods = {
    "getMusicFolders": Method(get_music_folders),
    "getIndexes": Method(get_indexes),
    "getArtists": Method(get_artists),
    "getArtist": Method(get_artist),
    "getAlbum": Method(get_album),
    "getSong": Method(get_song),
    "getMusicDirectory": Method(get_music_directory),
    "getAlbumList": Method(get_album_list),
    "getAlbumList2": Method(get_album_list2),
    "getRandomSongs": Method(get_random_songs),
    "getGenres": Method(get_genres),
    "getSongsByGenre": Method(get_songs_by_genre),
    "getTopSongs": Method(get_top_songs),
    "getSimilarSongs": Method(get_similar_songs),
    "getSimilarSongs2": Method(get_similar_songs2),
    "search2": Method(search2),
    "search3": Method(search3),
    "getArtistInfo": Method(get_artist_info),
    "getArtistInfo2": Method(get_artist_info2),
    "getAlbumInfo": Method(_album_info),
    "getAlbumInfo2": Method(_album_info),
    "getCoverArt": Method(get_cover_art),
    "getAvatar": Method(get_avatar),
}
