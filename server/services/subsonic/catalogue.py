"""The catalogue as a Subsonic listener browses it: albums and artists of both music
folders (1: this instance's releases; 2: the partners' tracks known here, grouped by
release), the album lists, genres, search, and what one artist or album is like.

What a listener sees: public releases, and their own artists' drafts; never another
artist's draft. An album is a release with at least one ready track. Every loader takes
many ids at once, so an album of twenty songs is a handful of queries, not twenty.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import profile_image_url
from federation.sanitize import plain_text
from models.catalogue import (
    Artist,
    Favourite,
    FileRole,
    Label,
    MediaFile,
    Playlist,
    PlaylistItem,
    Release,
    Tag,
    Track,
    TrackStatus,
    Visibility,
    release_tags,
)
from models.federation import RemoteActor
from models.library import AlbumStar, ArtistStar
from models.plays import Play
from models.profiles import ActorImage, ImageRole, ImageState
from models.remote_plays import RemotePlay, RemoteTrack
from models.search import DocumentKind, fold, search
from models.users import AccountStatus, User
from server.services.catalogue import normalise_tag
from server.services.subsonic.songs import (
    Wallet,
    cover_ref,
    local_songs,
    partner_refs,
    partner_songs,
    tag_names,
    with_covers,
)
from subsonic import ids
from subsonic.elements import Album, Song
from subsonic.elements import Artist as ArtistItem

IGNORED_ARTICLES = ("The", "El", "La", "Los", "Las", "Le", "Les")


class Folder(IntEnum):
    LOCAL = 1
    PARTNERS = 2


FOLDER_NAMES = {Folder.LOCAL: "This instance", Folder.PARTNERS: "Partners"}


def folders(folder: int | None) -> tuple[Folder, ...]:
    """The folders a ``musicFolderId`` asks for (none: both); an unknown one is none."""
    if folder is None:
        return tuple(Folder)
    return tuple(f for f in Folder if f == folder)


def sort_name(name: str) -> str:
    """The name as indexes sort it: folded, a leading article moved away."""
    folded = fold(name).strip()
    for article in IGNORED_ARTICLES:
        prefix = article.lower() + " "
        if folded.startswith(prefix) and len(folded) > len(prefix):
            return folded[len(prefix) :]
    return folded


def index_letter(name: str) -> str:
    first = sort_name(name)[:1].upper()
    return first if first.isalpha() and first.isascii() else "#"


# --- who may see what ----------------------------------------------------------------------


def visible(user_id: int) -> ColumnElement[bool]:
    """Over ``Release`` joined to its ``Artist``: public, or the listener's own draft."""
    return or_(Release.visibility == Visibility.PUBLIC, Artist.owner_id == user_id)


def has_ready_track() -> ColumnElement[bool]:
    return exists(
        select(Track.id).where(Track.release_id == Release.id, Track.status == TrackStatus.READY)
    )


def visible_releases(user_id: int) -> Select[int]:
    """The ids of the releases the listener sees as albums."""
    return (
        select(Release.id)
        .join(Artist, Artist.id == Release.artist_id)
        .where(visible(user_id), has_ready_track())
    )


def ready_tracks(user_id: int) -> Select[int]:
    """The ids of the tracks the listener sees as songs."""
    return (
        select(Track.id)
        .join(Release, Release.id == Track.release_id)
        .join(Artist, Artist.id == Release.artist_id)
        .where(Track.status == TrackStatus.READY, visible(user_id))
    )


def _released(release: Release) -> datetime:
    return release.published_at or release.created_at


# --- albums --------------------------------------------------------------------------------


async def local_albums(
    session: AsyncSession, purse: Wallet, release_ids: Collection[int]
) -> dict[int, Album]:
    """The listener's view of these releases, without their songs."""
    if not release_ids:
        return {}
    wanted = list(release_ids)
    rows = (
        await session.execute(
            select(Release, Artist, Label.display_name)
            .join(Artist, Artist.id == Release.artist_id)
            .outerjoin(Label, Label.id == Release.label_id)
            .where(Release.id.in_(wanted), visible(purse.user_id))
        )
    ).all()
    found = [row[0].id for row in rows]
    if not found:
        return {}
    stats = {
        release_id: (count, duration)
        for release_id, count, duration in await session.execute(
            select(Track.release_id, func.count(), func.coalesce(func.sum(Track.duration_ms), 0))
            .where(Track.release_id.in_(found), Track.status == TrackStatus.READY)
            .group_by(Track.release_id)
        )
    }
    covers = await with_covers(session, found)
    tags = await tag_names(session, found)
    track_genres: dict[int, list[str]] = {}
    for release_id, name in await session.execute(
        select(Track.release_id, Track.genre)
        .where(Track.release_id.in_(found), Track.status == TrackStatus.READY, Track.genre != "")
        .distinct()
        .order_by(Track.genre)
    ):
        track_genres.setdefault(release_id, []).append(name)
    starred = {
        release_id: at
        for release_id, at in await session.execute(
            select(AlbumStar.release_id, AlbumStar.created_at).where(
                AlbumStar.user_id == purse.user_id, AlbumStar.release_id.in_(found)
            )
        )
    }
    plays = {
        release_id: (count, last)
        for release_id, count, last in await session.execute(
            select(Track.release_id, func.count(Play.id), func.max(Play.at))
            .join(Play, Play.track_id == Track.id)
            .where(Play.user_id == purse.user_id, Track.release_id.in_(found))
            .group_by(Track.release_id)
        )
    }
    albums = {}
    for release, artist, label in rows:
        if release.id not in stats:
            continue  # no ready track: nothing to play
        count, duration = stats[release.id]
        play_count, played = plays.get(release.id, (None, None))
        albums[release.id] = Album(
            ref=ids.make(ids.Kind.ALBUM, release.id),
            name=release.title,
            artist=artist.display_name,
            artist_ref=ids.make(ids.Kind.ARTIST, artist.id),
            cover_ref=cover_ref(release.id, release.id in covers),
            song_count=count,
            duration_ms=int(duration),
            created=_released(release),
            year=release.release_date.year if release.release_date else None,
            genres=tags.get(release.id) or track_genres.get(release.id, []),
            starred=starred.get(release.id),
            play_count=play_count,
            played=played,
            release_date=release.release_date.isoformat() if release.release_date else None,
            label=label,
            kind=release.kind.value,
        )
    return albums


async def partner_albums(
    session: AsyncSession, purse: Wallet, track_ids: Collection[int]
) -> dict[str, Album]:
    """The partner releases that these partner tracks belong to, by release URI."""
    if not track_ids:
        return {}
    uris = set(
        await session.scalars(
            select(RemoteTrack.release_uri).where(RemoteTrack.id.in_(list(track_ids)))
        )
    )
    if not uris:
        return {}
    rows = (
        await session.execute(
            select(
                RemoteTrack.release_uri,
                func.count(),
                func.coalesce(func.sum(RemoteTrack.duration_ms), 0),
                func.min(RemoteTrack.fetched_at),
                func.max(RemoteTrack.release_title),
                func.min(RemoteTrack.artist_uri),
            )
            .where(RemoteTrack.release_uri.in_(uris))
            .group_by(RemoteTrack.release_uri)
        )
    ).all()
    artist_uris = {row[5] for row in rows}
    names = await _partner_artist_names(session, artist_uris)
    releases, artists = await partner_refs(session, uris, artist_uris)
    plays = {
        uri: (count, last)
        for uri, count, last in await session.execute(
            select(RemoteTrack.release_uri, func.count(RemotePlay.id), func.max(RemotePlay.at))
            .join(RemotePlay, RemotePlay.remote_track_id == RemoteTrack.id)
            .where(RemotePlay.user_id == purse.user_id, RemoteTrack.release_uri.in_(uris))
            .group_by(RemoteTrack.release_uri)
        )
    }
    albums = {}
    for uri, count, duration, fetched, title, artist_uri in rows:
        play_count, played = plays.get(uri, (None, None))
        albums[uri] = Album(
            ref=ids.make(ids.Kind.PARTNER_ALBUM, releases[uri]),
            name=title or uri,
            artist=names.get(artist_uri) or artist_uri,
            artist_ref=ids.make(ids.Kind.PARTNER_ARTIST, artists[artist_uri]),
            cover_ref=None,
            song_count=count,
            duration_ms=int(duration),
            created=fetched,
            play_count=play_count,
            played=played,
        )
    return albums


async def _partner_artist_names(session: AsyncSession, uris: Collection[str]) -> dict[str, str]:
    if not uris:
        return {}
    return {
        uri: name or username or uri
        for uri, name, username in await session.execute(
            select(RemoteActor.uri, RemoteActor.name, RemoteActor.preferred_username).where(
                RemoteActor.uri.in_(list(uris))
            )
        )
    }


async def albums_by_ref(session: AsyncSession, purse: Wallet, refs: Sequence[str]) -> list[Album]:
    """The albums named by ``al-…`` / ``pal-…`` ids, in the order given, each once; the
    others are left out."""
    local = [n for k, n in map(ids.parse, refs) if k is ids.Kind.ALBUM]
    partner = [n for k, n in map(ids.parse, refs) if k is ids.Kind.PARTNER_ALBUM]
    found = {a.ref: a for a in (await local_albums(session, purse, local)).values()}
    by_track = {}
    if partner:
        uris = dict(
            (
                await session.execute(
                    select(RemoteTrack.id, RemoteTrack.release_uri).where(
                        RemoteTrack.id.in_(partner)
                    )
                )
            ).all()
        )
        loaded = await partner_albums(session, purse, partner)
        by_track = {
            ids.make(ids.Kind.PARTNER_ALBUM, n): loaded[uris[n]] for n in partner if n in uris
        }
    found |= by_track
    seen: set[str] = set()
    result = []
    for ref in refs:
        album = found.get(ref)
        if album is not None and album.ref not in seen:
            seen.add(album.ref)
            result.append(album)
    return result


async def album_songs(
    session: AsyncSession, purse: Wallet, ref: str
) -> tuple[Album, list[Song]] | None:
    """An album (``al-…`` or ``pal-…``) with its songs in order; None if the listener sees
    no such album."""
    (album,) = await albums_by_ref(session, purse, [ref]) or (None,)
    if album is None:
        return None
    kind, number = ids.parse(album.ref)
    if kind is ids.Kind.ALBUM:
        track_ids = list(
            await session.scalars(
                select(Track.id)
                .where(Track.release_id == number, Track.status == TrackStatus.READY)
                .order_by(Track.disc, Track.position, Track.id)
            )
        )
        found = await local_songs(session, purse, track_ids)
    else:
        uri = select(RemoteTrack.release_uri).where(RemoteTrack.id == number).scalar_subquery()
        track_ids = list(
            await session.scalars(
                select(RemoteTrack.id)
                .where(RemoteTrack.release_uri == uri)
                .order_by(RemoteTrack.position, RemoteTrack.id)
            )
        )
        found = await partner_songs(session, purse, track_ids)
    return album, [found[n] for n in track_ids if n in found]


# --- album lists ---------------------------------------------------------------------------


class ListType(StrEnum):
    NEWEST = "newest"
    RANDOM = "random"
    FREQUENT = "frequent"
    RECENT = "recent"
    STARRED = "starred"
    HIGHEST = "highest"
    BY_NAME = "alphabeticalByName"
    BY_ARTIST = "alphabeticalByArtist"
    BY_GENRE = "byGenre"
    BY_YEAR = "byYear"


@dataclass(frozen=True)
class ListQuery:
    type: ListType
    size: int
    offset: int
    folders: tuple[Folder, ...]
    genre: str | None = None
    from_year: int | None = None
    to_year: int | None = None


# one entry of a list before the albums are loaded: how it sorts, and its id
Entry = tuple[tuple[object, ...], str]


async def album_list(session: AsyncSession, purse: Wallet, query: ListQuery) -> list[Album]:
    """One page of an album list. Each folder gives its first ``offset + size`` entries in
    the list's order; merged, the page is the same as one list over both would give."""
    window = query.offset + query.size
    entries: list[Entry] = []
    if Folder.LOCAL in query.folders:
        entries += await _local_entries(session, purse.user_id, query, window)
    if Folder.PARTNERS in query.folders:
        entries += await _partner_entries(session, purse.user_id, query, window)
    if query.type is ListType.RANDOM:
        random.shuffle(entries)
        page = entries[: query.size]
    else:
        entries.sort(key=lambda entry: entry[0])
        page = entries[query.offset : window]
    return await albums_by_ref(session, purse, [ref for _key, ref in page])


def _local_ref(number: int) -> str:
    return ids.make(ids.Kind.ALBUM, number)


def _partner_ref(number: int) -> str:
    return ids.make(ids.Kind.PARTNER_ALBUM, number)


def _ts(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def genre_condition(genre: str) -> ColumnElement[bool]:
    """Over ``Track`` joined to its ``Release``: the song is of ``genre`` (its own genre,
    or when it has none, one of its release's tags), as songs are shown."""
    tag = normalise_tag(genre) or ""
    tagged = exists(
        select(release_tags.c.release_id)
        .join(Tag, Tag.id == release_tags.c.tag_id)
        .where(release_tags.c.release_id == Track.release_id, Tag.name == tag)
    )
    return or_(func.lower(Track.genre) == genre.strip().lower(), (Track.genre == "") & tagged)


def year_bounds(from_year: int | None, to_year: int | None) -> tuple[date, date, bool]:
    """The dates between the two years, and whether the list runs backwards (from > to)."""
    low, high = from_year or 1, to_year or 9999
    backwards = low > high
    low, high = (min(max(year, 1), 9999) for year in (min(low, high), max(low, high)))
    return date(low, 1, 1), date(high, 12, 31), backwards


async def _local_entries(
    session: AsyncSession, user_id: int, query: ListQuery, window: int
) -> list[Entry]:
    shown = visible_releases(user_id)
    ref = _local_ref
    kind = query.type
    if kind is ListType.RANDOM:
        picked = await session.scalars(shown.order_by(func.random()).limit(query.size))
        return [((0,), ref(n)) for n in picked]
    if kind is ListType.NEWEST:
        moment = func.coalesce(Release.published_at, Release.created_at)
        rows = await session.execute(
            shown.add_columns(moment).order_by(moment.desc(), Release.id.desc()).limit(window)
        )
        return [((-_ts(at), -n), ref(n)) for n, at in rows]
    if kind in (ListType.FREQUENT, ListType.RECENT):
        count, last = func.count(Play.id), func.max(Play.at)
        order = (count.desc(), last.desc()) if kind is ListType.FREQUENT else (last.desc(),)
        rows = await session.execute(
            select(Track.release_id, count, last)
            .join(Play, Play.track_id == Track.id)
            .where(Play.user_id == user_id, Track.release_id.in_(shown))
            .group_by(Track.release_id)
            .order_by(*order, Track.release_id)
            .limit(window)
        )
        if kind is ListType.FREQUENT:
            return [((-c, -_ts(at), n), ref(n)) for n, c, at in rows]
        return [((-_ts(at), n), ref(n)) for n, _c, at in rows]
    if kind is ListType.STARRED:
        rows = await session.execute(
            select(AlbumStar.release_id, AlbumStar.created_at)
            .where(AlbumStar.user_id == user_id, AlbumStar.release_id.in_(shown))
            .order_by(AlbumStar.created_at.desc(), AlbumStar.release_id)
            .limit(window)
        )
        return [((-_ts(at), n), ref(n)) for n, at in rows]
    if kind is ListType.HIGHEST:
        # no ratings here: the most favourited, by everyone
        count = func.count(Favourite.user_id)
        rows = await session.execute(
            select(Track.release_id, count)
            .join(Favourite, Favourite.track_id == Track.id)
            .where(Track.release_id.in_(shown))
            .group_by(Track.release_id)
            .order_by(count.desc(), Track.release_id)
            .limit(window)
        )
        return [((-c, n), ref(n)) for n, c in rows]
    if kind is ListType.BY_GENRE:
        assert query.genre is not None
        found = list(
            await session.scalars(
                select(Track.release_id)
                .where(
                    Track.status == TrackStatus.READY,
                    Track.release_id.in_(shown),
                    genre_condition(query.genre),
                )
                .distinct()
            )
        )
        titles = await _titles(session, found)
        return [((fold(titles[n]), n), ref(n)) for n in found]
    if kind is ListType.BY_YEAR:
        low, high, backwards = year_bounds(query.from_year, query.to_year)
        rows = await session.execute(
            shown.add_columns(Release.release_date).where(
                Release.release_date >= low, Release.release_date <= high
            )
        )
        sign = -1 if backwards else 1
        return [((sign * on.toordinal(), sign * n), ref(n)) for n, on in rows]
    # alphabetical: folded in Python, so "Émile" sorts with "E" on both databases
    rows = await session.execute(shown.add_columns(Release.title, Artist.display_name))
    if kind is ListType.BY_ARTIST:
        return [((sort_name(a), fold(t), n), ref(n)) for n, t, a in rows]
    return [((fold(t), n), ref(n)) for n, t, _a in rows]


async def _titles(session: AsyncSession, release_ids: list[int]) -> dict[int, str]:
    if not release_ids:
        return {}
    return dict(
        (
            await session.execute(
                select(Release.id, Release.title).where(Release.id.in_(release_ids))
            )
        ).all()
    )


async def _partner_entries(
    session: AsyncSession, user_id: int, query: ListQuery, window: int
) -> list[Entry]:
    """Partner releases carry no genre, year or favourites: only the lists that do not need
    them have any."""
    ref = _partner_ref
    kind = query.type
    first = func.min(RemoteTrack.id)
    grouped = select(first).group_by(RemoteTrack.release_uri)
    if kind is ListType.RANDOM:
        picked = await session.scalars(grouped.order_by(func.random()).limit(query.size))
        return [((0,), ref(n)) for n in picked]
    if kind is ListType.NEWEST:
        moment = func.min(RemoteTrack.fetched_at)
        rows = await session.execute(
            grouped.add_columns(moment).order_by(moment.desc(), first.desc()).limit(window)
        )
        return [((-_ts(at), -n), ref(n)) for n, at in rows]
    if kind in (ListType.FREQUENT, ListType.RECENT):
        count, last = func.count(RemotePlay.id), func.max(RemotePlay.at)
        order = (count.desc(), last.desc()) if kind is ListType.FREQUENT else (last.desc(),)
        rows = await session.execute(
            select(first, count, last)
            .join(RemotePlay, RemotePlay.remote_track_id == RemoteTrack.id)
            .where(RemotePlay.user_id == user_id)
            .group_by(RemoteTrack.release_uri)
            .order_by(*order)
            .limit(window)
        )
        # ``first`` here is the lowest played track; it names the release all the same
        if kind is ListType.FREQUENT:
            return [((-c, -_ts(at), n), ref(n)) for n, c, at in rows]
        return [((-_ts(at), n), ref(n)) for n, _c, at in rows]
    if kind in (ListType.BY_NAME, ListType.BY_ARTIST):
        rows = await session.execute(
            grouped.add_columns(
                func.max(RemoteTrack.release_title), func.min(RemoteTrack.artist_uri)
            )
        )
        listed = rows.all()
        names = await _partner_artist_names(session, {uri for _n, _t, uri in listed})
        if kind is ListType.BY_ARTIST:
            return [
                ((sort_name(names.get(uri) or uri), fold(t), n), ref(n)) for n, t, uri in listed
            ]
        return [((fold(t), n), ref(n)) for n, t, _uri in listed]
    return []


# --- artists -------------------------------------------------------------------------------


async def avatars(session: AsyncSession, names: Collection[str]) -> dict[str, ActorImage]:
    """The avatar shown now of each of these actors that has one."""
    if not names:
        return {}
    newest = (
        select(func.max(ActorImage.id))
        .where(
            ActorImage.actor.in_(list(names)),
            ActorImage.role == ImageRole.AVATAR,
            ActorImage.state == ImageState.READY,
            ActorImage.storage_key.is_not(None),
        )
        .group_by(ActorImage.actor)
    )
    return {
        row.actor: row
        for row in await session.scalars(select(ActorImage).where(ActorImage.id.in_(newest)))
    }


async def local_artists(
    session: AsyncSession, user_id: int, base_url: str, artist_ids: Collection[int] | None = None
) -> list[ArtistItem]:
    """The artists with at least one album the listener sees (these ids only, if given),
    sorted as indexes sort them."""
    query = (
        select(Artist, func.count(func.distinct(Release.id)))
        .join(Release, Release.artist_id == Artist.id)
        .where(visible(user_id), has_ready_track())
        .group_by(Artist.id)
    )
    if artist_ids is not None:
        query = query.where(Artist.id.in_(list(artist_ids)))
    rows = (await session.execute(query)).all()
    pictures = await avatars(session, [artist.name for artist, _n in rows])
    starred = {
        artist_id: at
        for artist_id, at in await session.execute(
            select(ArtistStar.artist_id, ArtistStar.created_at).where(
                ArtistStar.user_id == user_id,
                ArtistStar.artist_id.in_([artist.id for artist, _n in rows]),
            )
        )
    }
    items = []
    for artist, count in rows:
        picture = pictures.get(artist.name)
        items.append(
            ArtistItem(
                ref=ids.make(ids.Kind.ARTIST, artist.id),
                name=artist.display_name,
                album_count=count,
                cover_ref=ids.make(ids.Kind.ARTIST, artist.id) if picture else None,
                image_url=profile_image_url(base_url, "artists", artist.name, "avatar", picture.id)
                if picture
                else None,
                sort_name=sort_name(artist.display_name),
                starred=starred.get(artist.id),
            )
        )
    return sorted(items, key=lambda item: (item.sort_name or "", item.ref))


async def partner_artists(
    session: AsyncSession, track_ids: Collection[int] | None = None
) -> list[ArtistItem]:
    """The partners' artists known here (those who made these partner tracks, if given)."""
    query = select(
        RemoteTrack.artist_uri,
        func.min(RemoteTrack.id),
        func.count(func.distinct(RemoteTrack.release_uri)),
    ).group_by(RemoteTrack.artist_uri)
    if track_ids is not None:
        uris = select(RemoteTrack.artist_uri).where(RemoteTrack.id.in_(list(track_ids)))
        query = query.where(RemoteTrack.artist_uri.in_(uris))
    rows = (await session.execute(query)).all()
    names = await _partner_artist_names(session, {uri for uri, _n, _c in rows})
    icons = dict(
        (
            await session.execute(
                select(RemoteActor.uri, RemoteActor.icon_url).where(
                    RemoteActor.uri.in_([uri for uri, _n, _c in rows])
                )
            )
        ).all()
    )
    items = [
        ArtistItem(
            ref=ids.make(ids.Kind.PARTNER_ARTIST, number),
            name=names.get(uri) or uri,
            album_count=count,
            image_url=icons.get(uri),
            sort_name=sort_name(names.get(uri) or uri),
        )
        for uri, number, count in rows
    ]
    return sorted(items, key=lambda item: (item.sort_name or "", item.ref))


async def all_artists(
    session: AsyncSession, user_id: int, base_url: str, chosen: tuple[Folder, ...]
) -> list[ArtistItem]:
    items: list[ArtistItem] = []
    if Folder.LOCAL in chosen:
        items += await local_artists(session, user_id, base_url)
    if Folder.PARTNERS in chosen:
        items += await partner_artists(session)
    return sorted(items, key=lambda item: (item.sort_name or "", item.ref))


async def last_modified(session: AsyncSession, user_id: int) -> datetime | None:
    """When what the indexes show last changed: the newest album or partner track."""
    local = await session.scalar(
        select(func.max(func.coalesce(Release.published_at, Release.created_at))).where(
            Release.id.in_(visible_releases(user_id))
        )
    )
    partner = await session.scalar(select(func.max(RemoteTrack.fetched_at)))
    moments = [m for m in (local, partner) if m is not None]
    return max(moments, key=_ts) if moments else None


@dataclass(frozen=True)
class ArtistPage:
    artist: ArtistItem
    albums: list[Album]
    biography: str | None = None
    image_url: str | None = None
    tags: tuple[str, ...] = ()


async def artist_page(
    session: AsyncSession, purse: Wallet, base_url: str, ref: str
) -> ArtistPage | None:
    """An artist (``ar-…`` or ``par-…``) with their albums, newest first; None if the
    listener sees no album of theirs."""
    kind, number = ids.parse(ref)
    if kind is ids.Kind.ARTIST:
        found = await local_artists(session, purse.user_id, base_url, [number])
        if not found:
            return None
        release_ids = list(
            await session.scalars(
                visible_releases(purse.user_id)
                .where(Release.artist_id == number)
                .order_by(Release.release_date.desc(), Release.id.desc())
            )
        )
        albums = await local_albums(session, purse, release_ids)
        row = await session.get(Artist, number)
        assert row is not None
        tags = tuple(
            await session.scalars(
                select(Tag.name)
                .join(release_tags, release_tags.c.tag_id == Tag.id)
                .where(release_tags.c.release_id.in_(release_ids))
                .distinct()
            )
        )
        return ArtistPage(
            found[0],
            [albums[n] for n in release_ids if n in albums],
            plain_text(row.summary) or None,
            found[0].image_url,
            tags,
        )
    if kind is ids.Kind.PARTNER_ARTIST:
        found = await partner_artists(session, [number])
        if not found:
            return None
        artist_uri = (
            select(RemoteTrack.artist_uri).where(RemoteTrack.id == number).scalar_subquery()
        )
        firsts = list(
            await session.scalars(
                select(func.min(RemoteTrack.id))
                .where(RemoteTrack.artist_uri == artist_uri)
                .group_by(RemoteTrack.release_uri)
            )
        )
        albums_by_uri = await partner_albums(session, purse, firsts)
        summary = await session.scalar(
            select(RemoteActor.summary_html).where(RemoteActor.uri == artist_uri)
        )
        listed = sorted(albums_by_uri.values(), key=lambda a: fold(a.name))
        return ArtistPage(found[0], listed, plain_text(summary or "") or None, found[0].image_url)
    return None


async def similar_artists(
    session: AsyncSession, user_id: int, base_url: str, page: ArtistPage, count: int
) -> list[ArtistItem]:
    """Local artists sharing the most release tags with this one (none without tags)."""
    if not page.tags:
        return []
    _kind, number = ids.parse(page.artist.ref)
    shared = func.count(func.distinct(Tag.id))
    rows = await session.execute(
        select(Release.artist_id, shared)
        .join(release_tags, release_tags.c.release_id == Release.id)
        .join(Tag, Tag.id == release_tags.c.tag_id)
        .where(
            Tag.name.in_(page.tags),
            Release.id.in_(visible_releases(user_id)),
            Release.artist_id != number,
        )
        .group_by(Release.artist_id)
        .order_by(shared.desc(), Release.artist_id)
        .limit(count)
    )
    order = [artist_id for artist_id, _n in rows]
    found = {a.ref: a for a in await local_artists(session, user_id, base_url, order)}
    return [found[r] for r in (ids.make(ids.Kind.ARTIST, n) for n in order) if r in found]


# --- songs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SongFilter:
    genre: str | None = None
    from_year: int | None = None
    to_year: int | None = None


def _filtered_tracks(user_id: int, chosen: SongFilter) -> Select[int]:
    query = ready_tracks(user_id)
    if chosen.genre:
        query = query.where(genre_condition(chosen.genre))
    if chosen.from_year is not None or chosen.to_year is not None:
        low, high, _backwards = year_bounds(chosen.from_year, chosen.to_year)
        query = query.where(Release.release_date >= low, Release.release_date <= high)
    return query


async def random_songs(
    session: AsyncSession, purse: Wallet, size: int, chosen: SongFilter, where: tuple[Folder, ...]
) -> list[Song]:
    local: list[int] = []
    partner: list[int] = []
    if Folder.LOCAL in where:
        local = list(
            await session.scalars(
                _filtered_tracks(purse.user_id, chosen).order_by(func.random()).limit(size)
            )
        )
    if Folder.PARTNERS in where and chosen == SongFilter():
        partner = list(
            await session.scalars(select(RemoteTrack.id).order_by(func.random()).limit(size))
        )
    found = list((await local_songs(session, purse, local)).values()) + list(
        (await partner_songs(session, purse, partner)).values()
    )
    random.shuffle(found)
    return found[:size]


async def songs_by_genre(
    session: AsyncSession, purse: Wallet, genre: str, count: int, offset: int
) -> list[Song]:
    """Our songs of one genre, newest release first, in album order."""
    track_ids = list(
        await session.scalars(
            _filtered_tracks(purse.user_id, SongFilter(genre=genre))
            .order_by(
                func.coalesce(Release.published_at, Release.created_at).desc(),
                Release.id.desc(),
                Track.disc,
                Track.position,
                Track.id,
            )
            .limit(count)
            .offset(offset)
        )
    )
    found = await local_songs(session, purse, track_ids)
    return [found[n] for n in track_ids if n in found]


async def top_songs(
    session: AsyncSession, purse: Wallet, artist_name: str, count: int
) -> list[Song]:
    """An artist's songs (by display name, accents and case aside), most favourited first,
    then most played."""
    wanted = fold(artist_name).strip()
    candidates = [
        n
        for n, name in await session.execute(select(Artist.id, Artist.display_name))
        if fold(name).strip() == wanted
    ]
    if not candidates:
        return []
    favourites = select(func.count()).where(Favourite.track_id == Track.id).scalar_subquery()
    plays = select(func.count()).where(Play.track_id == Track.id).scalar_subquery()
    track_ids = list(
        await session.scalars(
            ready_tracks(purse.user_id)
            .where(Release.artist_id.in_(candidates))
            .order_by(favourites.desc(), plays.desc(), Track.id)
            .limit(count)
        )
    )
    found = await local_songs(session, purse, track_ids)
    return [found[n] for n in track_ids if n in found]


async def similar_songs(
    session: AsyncSession, purse: Wallet, ref: str, count: int
) -> list[Song] | None:
    """Songs of other releases that share a tag or a genre with the artist, album or song
    ``ref`` names, in random order; None if the listener sees no such thing."""
    kind, number = ids.parse(ref)
    shown = ready_tracks(purse.user_id)
    if kind is ids.Kind.ARTIST:
        own = shown.where(Release.artist_id == number)
    elif kind is ids.Kind.ALBUM:
        own = shown.where(Track.release_id == number)
    elif kind is ids.Kind.TRACK:
        own = shown.where(Track.id == number)
    else:
        return None
    own_ids = list(await session.scalars(own))
    if not own_ids:
        return None
    releases = select(Track.release_id).where(Track.id.in_(own_ids))
    tag_ids = select(release_tags.c.tag_id).where(release_tags.c.release_id.in_(releases))
    genres = [
        g.lower()
        for g in await session.scalars(
            select(Track.genre).where(Track.id.in_(own_ids), Track.genre != "").distinct()
        )
    ]
    tagged = exists(
        select(release_tags.c.release_id).where(
            release_tags.c.release_id == Track.release_id, release_tags.c.tag_id.in_(tag_ids)
        )
    )
    condition = or_(tagged, func.lower(Track.genre).in_(genres)) if genres else tagged
    track_ids = list(
        await session.scalars(
            shown.where(condition, Track.release_id.not_in(releases))
            .order_by(func.random())
            .limit(count)
        )
    )
    found = await local_songs(session, purse, track_ids)
    return [found[n] for n in track_ids if n in found]


@dataclass(frozen=True)
class GenreCount:
    name: str
    songs: int
    albums: int


async def genres(session: AsyncSession, user_id: int) -> list[GenreCount]:
    """Every genre a song shows (its own, or its release's tags), with how many songs and
    albums the listener sees in it; names that differ only in case are one genre."""
    tracks = (
        await session.execute(
            select(Track.id, Track.release_id, Track.genre)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Release.artist_id)
            .where(Track.status == TrackStatus.READY, visible(user_id))
        )
    ).all()
    tags: dict[int, list[str]] = {}
    for release_id, name in await session.execute(
        select(release_tags.c.release_id, Tag.name)
        .join(Tag, Tag.id == release_tags.c.tag_id)
        .where(release_tags.c.release_id.in_({row[1] for row in tracks} or {0}))
    ):
        tags.setdefault(release_id, []).append(name)
    shown: dict[str, str] = {}
    songs: dict[str, int] = {}
    albums: dict[str, set[int]] = {}
    for _track_id, release_id, genre in tracks:
        for name in [genre] if genre else tags.get(release_id, []):
            key = name.lower()
            shown.setdefault(key, name)
            songs[key] = songs.get(key, 0) + 1
            albums.setdefault(key, set()).add(release_id)
    return sorted(
        (GenreCount(shown[key], songs[key], len(albums[key])) for key in shown),
        key=lambda item: fold(item.name),
    )


# --- search --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paging:
    artists: tuple[int, int]  # (count, offset)
    albums: tuple[int, int]
    songs: tuple[int, int]


@dataclass(frozen=True)
class Found:
    artists: list[ArtistItem]
    albums: list[Album]
    songs: list[Song]


def is_everything(query: str) -> bool:
    """Apps list the whole library with an empty query, some as ``""``."""
    return query.strip().strip('"').strip() == ""


async def search_catalogue(
    session: AsyncSession,
    purse: Wallet,
    base_url: str,
    query: str,
    paging: Paging,
    where: tuple[Folder, ...],
) -> Found:
    if is_everything(query):
        return await _everything(session, purse, base_url, paging, where)
    if Folder.LOCAL not in where:
        return Found([], [], [])  # partners' tracks are not in the search index
    (artist_count, artist_offset), (album_count, album_offset), (song_count, song_offset) = (
        paging.artists, paging.albums, paging.songs,
    )  # fmt: skip
    artist_hits = (
        await search(
            session, query, kinds=(DocumentKind.ARTIST,), limit=artist_count, offset=artist_offset
        )
        if artist_count
        else []
    )
    album_hits = (
        await search(
            session, query, kinds=(DocumentKind.RELEASE,), limit=album_count, offset=album_offset
        )
        if album_count
        else []
    )
    song_hits = (
        await search(
            session, query, kinds=(DocumentKind.TRACK,), limit=song_count, offset=song_offset
        )
        if song_count
        else []
    )
    artist_order = [hit.object_id for hit in artist_hits]
    artists = (
        {a.ref: a for a in await local_artists(session, purse.user_id, base_url, artist_order)}
        if artist_order
        else {}
    )
    albums = await local_albums(session, purse, [hit.object_id for hit in album_hits])
    songs = await local_songs(session, purse, [hit.object_id for hit in song_hits])
    return Found(
        [artists[r] for r in (ids.make(ids.Kind.ARTIST, n) for n in artist_order) if r in artists],
        [albums[hit.object_id] for hit in album_hits if hit.object_id in albums],
        [songs[hit.object_id] for hit in song_hits if hit.object_id in songs],
    )


async def _everything(
    session: AsyncSession, purse: Wallet, base_url: str, paging: Paging, where: tuple[Folder, ...]
) -> Found:
    """Everything, a page of each kind: artists and albums by name, songs by album, ours
    before the partners'."""
    count, offset = paging.artists
    artists = (
        (await all_artists(session, purse.user_id, base_url, where))[offset : offset + count]
        if count
        else []
    )
    count, offset = paging.albums
    albums: list[Album] = []
    if count:
        albums = await album_list(session, purse, ListQuery(ListType.BY_NAME, count, offset, where))
    count, offset = paging.songs
    songs: list[Song] = []
    if count:
        local_total = 0
        local_ids: list[int] = []
        if Folder.LOCAL in where:
            shown = ready_tracks(purse.user_id)
            local_total = (
                await session.scalar(select(func.count()).select_from(shown.subquery())) or 0
            )
            local_ids = list(
                await session.scalars(
                    shown.order_by(Release.id, Track.disc, Track.position, Track.id)
                    .limit(count)
                    .offset(offset)
                )
            )
        partner_ids: list[int] = []
        if Folder.PARTNERS in where and len(local_ids) < count:
            partner_ids = list(
                await session.scalars(
                    select(RemoteTrack.id)
                    .order_by(RemoteTrack.release_uri, RemoteTrack.position, RemoteTrack.id)
                    .limit(count - len(local_ids))
                    .offset(max(offset - local_total, 0))
                )
            )
        local = await local_songs(session, purse, local_ids)
        partner = await partner_songs(session, purse, partner_ids)
        songs = [local[n] for n in local_ids if n in local] + [
            partner[n] for n in partner_ids if n in partner
        ]
    return Found(artists, albums, songs)


# --- pictures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    storage_key: str
    mime_type: str
    sha256: str
    public: bool  # may a shared cache keep it


async def release_cover(session: AsyncSession, user_id: int, release_id: int) -> Picture | None:
    row = (
        await session.execute(
            select(MediaFile, Release.visibility)
            .join(Release, Release.id == MediaFile.release_id)
            .join(Artist, Artist.id == Release.artist_id)
            .where(
                MediaFile.release_id == release_id,
                MediaFile.role == FileRole.COVER,
                visible(user_id),
            )
        )
    ).first()
    if row is None:
        return None
    file, visibility = row
    return Picture(file.storage_key, file.mime_type, file.sha256, visibility is Visibility.PUBLIC)


def _avatar_picture(image: ActorImage | None) -> Picture | None:
    if image is None or image.storage_key is None or image.sha256 is None:
        return None
    return Picture(image.storage_key, image.mime_type, image.sha256, True)


async def picture(session: AsyncSession, user_id: int, ref: str) -> Picture | None:
    """The picture ``getCoverArt`` sends for an album, a song (its album's cover), an
    artist (their avatar) or a playlist (the cover of its first song that has one)."""
    kind, number = ids.parse(ref)
    if kind is ids.Kind.ALBUM:
        return await release_cover(session, user_id, number)
    if kind is ids.Kind.TRACK:
        release_id = await session.scalar(select(Track.release_id).where(Track.id == number))
        return await release_cover(session, user_id, release_id) if release_id else None
    if kind is ids.Kind.ARTIST:
        if not await session.scalar(
            select(func.count()).select_from(
                visible_releases(user_id).where(Release.artist_id == number).subquery()
            )
        ):
            return None
        name = await session.scalar(select(Artist.name).where(Artist.id == number))
        found = await avatars(session, [name]) if name else {}
        return _avatar_picture(found.get(name or ""))
    if kind is ids.Kind.PLAYLIST:
        playlist = await session.get(Playlist, number)
        if playlist is None or (
            playlist.visibility is not Visibility.PUBLIC and playlist.user_id != user_id
        ):
            return None
        release_ids = await session.scalars(
            select(Track.release_id)
            .join(PlaylistItem, PlaylistItem.track_id == Track.id)
            .where(PlaylistItem.playlist_id == number)
            .order_by(PlaylistItem.position)
        )
        for release_id in release_ids:
            cover = await release_cover(session, user_id, release_id)
            if cover is not None:
                return cover
    return None


async def user_avatar(session: AsyncSession, username: str) -> Picture | None:
    """The avatar of a user: their own, else that of the first artist or label they run."""
    user = await session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None or user.status is not AccountStatus.ACTIVE:
        return None
    names = [user.username.lower()]
    names += list(
        await session.scalars(
            select(Artist.name).where(Artist.owner_id == user.id).order_by(Artist.id)
        )
    )
    names += list(
        await session.scalars(
            select(Label.name).where(Label.owner_id == user.id).order_by(Label.id)
        )
    )
    found = await avatars(session, names)
    for name in names:
        if name in found:
            return _avatar_picture(found[name])
    return None
