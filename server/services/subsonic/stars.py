"""Stars: a starred song is a favourite (``server.services.favourites``, the web's own),
a starred album or artist a row of ``album_stars`` / ``artist_stars`` (models.library),
which only the Subsonic API shows. Partners' tracks cannot be starred: favourites hold
this instance's tracks (docs/decisions.md).

Every id of a call is checked before anything changes: one that names nothing the
listener may see refuses the whole call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import (
    Artist,
    Favourite,
    FileRole,
    MediaFile,
    Release,
    Tag,
    Track,
    TrackStatus,
    Visibility,
    release_tags,
)
from models.library import AlbumStar, ArtistStar
from models.remote_plays import RemoteTrack
from server.services import favourites
from server.services.errors import NotFoundError, Refused
from server.services.subsonic import songs as song_rows
from server.services.subsonic.songs import Wallet, cover_ref
from subsonic import ids
from subsonic.elements import Album
from subsonic.elements import Artist as ArtistValue
from subsonic.library import Starred

PARTNER_TRACK = (
    "a partner's track cannot be starred here: stars of songs are this instance's "
    "favourites, which hold its own tracks only"
)


@dataclass
class Targets:
    """What one star or unstar call names, by kind."""

    tracks: list[int] = field(default_factory=list)
    releases: list[int] = field(default_factory=list)
    artists: list[int] = field(default_factory=list)


def visible_release(user_id: int) -> ColumnElement[bool]:
    """A release the listener may see: public, or of an artist they manage."""
    return (Release.visibility == Visibility.PUBLIC) | Release.artist_id.in_(
        select(Artist.id).where(Artist.owner_id == user_id)
    )


async def _check(
    session: AsyncSession, user_id: int, targets: Targets, *, starring: bool
) -> Targets:
    """The local tracks, releases and artists named; refused (404) when one is not there
    for the listener. A partner's track: refused when starring, nothing to do when
    unstarring (it cannot have been starred)."""
    local = set(
        await session.scalars(
            select(Track.id)
            .join(Release, Release.id == Track.release_id)
            .where(Track.id.in_(targets.tracks))
            .where(visible_release(user_id), Track.status == TrackStatus.READY)
            if starring
            else select(Track.id).where(Track.id.in_(targets.tracks))
        )
    )
    partner = set(
        await session.scalars(select(RemoteTrack.id).where(RemoteTrack.id.in_(targets.tracks)))
    )
    for track_id in targets.tracks:
        if track_id in local:
            continue
        if track_id in partner:
            if starring:
                raise Refused(PARTNER_TRACK, 422)
            continue
        raise NotFoundError(f"there is no song {ids.make(ids.Kind.TRACK, track_id)}")
    releases = set(
        await session.scalars(
            select(Release.id).where(Release.id.in_(targets.releases), visible_release(user_id))
            if starring
            else select(Release.id).where(Release.id.in_(targets.releases))
        )
    )
    for release_id in targets.releases:
        if release_id not in releases:
            raise NotFoundError(f"there is no album {ids.make(ids.Kind.ALBUM, release_id)}")
    artists = set(await session.scalars(select(Artist.id).where(Artist.id.in_(targets.artists))))
    for artist_id in targets.artists:
        if artist_id not in artists:
            raise NotFoundError(f"there is no artist {ids.make(ids.Kind.ARTIST, artist_id)}")
    return Targets(
        [t for t in targets.tracks if t in local], list(dict.fromkeys(targets.releases)),
        list(dict.fromkeys(targets.artists)),
    )  # fmt: skip


async def star(session: AsyncSession, user_id: int, targets: Targets) -> None:
    """Star all of them, or nothing; starring what is starred already changes nothing."""
    found = await _check(session, user_id, targets, starring=True)
    await favourites.add(session, user_id, found.tracks)
    there = set(
        await session.scalars(
            select(AlbumStar.release_id).where(
                AlbumStar.user_id == user_id, AlbumStar.release_id.in_(found.releases)
            )
        )
    )
    session.add_all(
        AlbumStar(user_id=user_id, release_id=r) for r in found.releases if r not in there
    )
    there = set(
        await session.scalars(
            select(ArtistStar.artist_id).where(
                ArtistStar.user_id == user_id, ArtistStar.artist_id.in_(found.artists)
            )
        )
    )
    session.add_all(
        ArtistStar(user_id=user_id, artist_id=a) for a in found.artists if a not in there
    )
    await session.commit()


async def unstar(session: AsyncSession, user_id: int, targets: Targets) -> None:
    """Unstar all of them, or nothing; unstarring what is not starred is no error."""
    found = await _check(session, user_id, targets, starring=False)
    await favourites.remove(session, user_id, found.tracks)
    if found.releases:
        await session.execute(
            delete(AlbumStar).where(
                AlbumStar.user_id == user_id, AlbumStar.release_id.in_(found.releases)
            )
        )
    if found.artists:
        await session.execute(
            delete(ArtistStar).where(
                ArtistStar.user_id == user_id, ArtistStar.artist_id.in_(found.artists)
            )
        )
    await session.commit()


async def albums(
    session: AsyncSession, user_id: int, release_ids: Sequence[int],
    starred: dict[int, datetime] | None = None,
) -> list[Album]:  # fmt: skip
    """The releases among ``release_ids`` the listener may see, as albums, in that order
    (their songs' count and length count ready tracks)."""
    if not release_ids:
        return []
    rows = {
        release.id: (release, artist)
        for release, artist in await session.execute(
            select(Release, Artist)
            .join(Artist, Artist.id == Release.artist_id)
            .where(Release.id.in_(release_ids), visible_release(user_id))
        )
    }
    totals = {
        release_id: (count, length)
        for release_id, count, length in await session.execute(
            select(Track.release_id, func.count(), func.coalesce(func.sum(Track.duration_ms), 0))
            .where(Track.release_id.in_(rows), Track.status == TrackStatus.READY)
            .group_by(Track.release_id)
        )
    }
    covers = set(
        await session.scalars(
            select(MediaFile.release_id).where(
                MediaFile.release_id.in_(rows), MediaFile.role == FileRole.COVER
            )
        )
    )
    tags: dict[int, list[str]] = {}
    for release_id, name in await session.execute(
        select(release_tags.c.release_id, Tag.name)
        .join(Tag, Tag.id == release_tags.c.tag_id)
        .where(release_tags.c.release_id.in_(rows))
        .order_by(Tag.name)
    ):
        tags.setdefault(release_id, []).append(name)
    found = []
    for release_id in release_ids:
        if release_id not in rows:
            continue
        release, artist = rows[release_id]
        count, length = totals.get(release_id, (0, 0))
        found.append(
            Album(
                ref=ids.make(ids.Kind.ALBUM, release.id),
                name=release.title,
                artist=artist.display_name,
                artist_ref=ids.make(ids.Kind.ARTIST, artist.id),
                cover_ref=cover_ref(release.id, release.id in covers),
                song_count=int(count),
                duration_ms=int(length),
                created=release.published_at or release.created_at,
                year=release.release_date.year if release.release_date else None,
                genres=tags.get(release.id, []),
                starred=(starred or {}).get(release.id),
                release_date=release.release_date.isoformat() if release.release_date else None,
                kind=release.kind.value,
            )
        )
    return found


async def artists(
    session: AsyncSession, user_id: int, artist_ids: Sequence[int],
    starred: dict[int, datetime] | None = None,
) -> list[ArtistValue]:  # fmt: skip
    """These artists, in that order, with the count of their releases the listener may see."""
    if not artist_ids:
        return []
    rows = {
        artist.id: artist
        for artist in await session.scalars(select(Artist).where(Artist.id.in_(artist_ids)))
    }
    counts = {
        artist_id: count
        for artist_id, count in await session.execute(
            select(Release.artist_id, func.count())
            .where(Release.artist_id.in_(rows), visible_release(user_id))
            .group_by(Release.artist_id)
        )
    }
    return [
        ArtistValue(
            ref=ids.make(ids.Kind.ARTIST, artist_id),
            name=rows[artist_id].display_name,
            album_count=int(counts.get(artist_id, 0)),
            starred=(starred or {}).get(artist_id),
        )
        for artist_id in artist_ids
        if artist_id in rows
    ]


async def starred(session: AsyncSession, purse: Wallet) -> Starred:
    """Everything the listener starred, the newest star first."""
    user_id = purse.user_id
    track_ids = list(
        await session.scalars(
            select(Favourite.track_id)
            .where(Favourite.user_id == user_id)
            .order_by(Favourite.created_at.desc(), Favourite.track_id)
        )
    )
    album_rows = (
        await session.execute(
            select(AlbumStar.release_id, AlbumStar.created_at)
            .where(AlbumStar.user_id == user_id)
            .order_by(AlbumStar.created_at.desc(), AlbumStar.release_id)
        )
    ).all()
    artist_rows = (
        await session.execute(
            select(ArtistStar.artist_id, ArtistStar.created_at)
            .where(ArtistStar.user_id == user_id)
            .order_by(ArtistStar.created_at.desc(), ArtistStar.artist_id)
        )
    ).all()
    return Starred(
        artists=await artists(
            session, user_id, [a for a, _ in artist_rows], {a: at for a, at in artist_rows}
        ),
        albums=await albums(
            session, user_id, [r for r, _ in album_rows], {r: at for r, at in album_rows}
        ),
        songs=await song_rows.songs(session, purse, track_ids),
    )


async def starred_release_ids(session: AsyncSession, user_id: int) -> list[int]:
    """The releases the listener starred, the newest star first (getAlbumList's
    ``type=starred`` lists these)."""
    return list(
        await session.scalars(
            select(AlbumStar.release_id)
            .where(AlbumStar.user_id == user_id)
            .order_by(AlbumStar.created_at.desc(), AlbumStar.release_id)
        )
    )
