"""Stars: a starred song is a favourite (``server.services.favourites``, the web's own),
a starred album or artist a row of ``album_stars`` / ``artist_stars`` (models.library),
which only the Subsonic API shows. Partners' tracks cannot be starred: favourites hold
this instance's tracks (docs/decisions.md).

Every id of a call is checked before anything changes: one that names nothing the
listener may see refuses the whole call."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import (
    Artist,
    Favourite,
    Release,
    Track,
    TrackStatus,
    Visibility,
)
from models.library import AlbumStar, ArtistStar
from models.remote_plays import RemoteTrack
from server.services import favourites
from server.services.errors import NotFoundError, Refused
from server.services.subsonic import catalogue
from server.services.subsonic import songs as song_rows
from server.services.subsonic.songs import Wallet
from subsonic import ids
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
    """Star all of them, or nothing; starring what is starred already changes nothing,
    also when two calls star the same thing at once (the one that loses the insert race
    finds the other's rows and tries again)."""
    for _ in range(3):
        try:
            await _star(session, user_id, targets)
            return
        except IntegrityError:
            await session.rollback()
    raise Refused("the stars changed meanwhile: try again", 409)


async def _star(session: AsyncSession, user_id: int, targets: Targets) -> None:
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


async def starred(session: AsyncSession, purse: Wallet, base_url: str) -> Starred:
    """Everything the listener starred, the newest star first (albums and artists as
    browsing shows them, ``server.services.subsonic.catalogue``)."""
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
    artist_ids = [artist_id for artist_id, _ in artist_rows]
    artists = {
        item.ref: item
        for item in await catalogue.local_artists(session, user_id, base_url, artist_ids)
    }
    release_ids = [release_id for release_id, _ in album_rows]
    albums = await catalogue.local_albums(session, purse, release_ids)
    return Starred(
        artists=[
            artists[ids.make(ids.Kind.ARTIST, n)]
            for n in artist_ids
            if ids.make(ids.Kind.ARTIST, n) in artists
        ],
        albums=[albums[n] for n in release_ids if n in albums],
        songs=await song_rows.songs(session, purse, track_ids),
    )
