"""Tracks of every origin as Subsonic songs for one listener: what ``stream`` sends them
by default (the MP3 rendition), whether they starred it, how often they played it, and,
when their wallet does not cover the next paid play, why they will hear the preview."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.catalogue import (
    Artist,
    Favourite,
    FileRole,
    MediaFile,
    PriceModel,
    Release,
    Tag,
    Track,
    TrackStatus,
    Visibility,
    release_tags,
)
from models.federation import RemoteActor
from models.plays import ListenerTrack, Play
from models.remote_plays import RemoteListenerTrack, RemotePlay, RemoteTrack
from server.services.plays import Quote, quote_of
from subsonic import ids
from subsonic.elements import Song
from subsonic.errors import SubsonicError

DEFAULT_ROLE = FileRole.STREAM_MP3  # what ``stream`` sends unless asked for another format


@dataclass(frozen=True)
class Wallet:
    """What decides whether a listener hears a paid track or its preview."""

    user_id: int
    balance: int


def preview_reason(price: int, balance: int) -> str:
    """The song's comment when the next play is not covered: the app plays the preview."""
    return (
        f"Preview only: the next play costs {price} tokens and your wallet holds {balance}. "
        "Top up on the web to hear it in full."
    )


def _comment(quote: Quote) -> str | None:
    """A song's comment: why the listener will hear its preview, if they will."""
    return None if quote.affordable else preview_reason(quote.price, quote.balance)


async def wallet(session: AsyncSession, user_id: int) -> Wallet:
    return Wallet(user_id, await ledger.balance(session, ledger.wallet_key(user_id)))


def cover_ref(release_id: int, has_cover: bool) -> str | None:
    return ids.make(ids.Kind.ALBUM, release_id) if has_cover else None


async def with_covers(session: AsyncSession, release_ids: Collection[int]) -> set[int]:
    """Which of these releases have a cover."""
    return set(
        await session.scalars(
            select(MediaFile.release_id).where(
                MediaFile.release_id.in_(list(release_ids)), MediaFile.role == FileRole.COVER
            )
        )
    )


async def tag_names(session: AsyncSession, release_ids: Collection[int]) -> dict[int, list[str]]:
    """Each release's tags, by name."""
    tags: dict[int, list[str]] = {}
    for release_id, name in await session.execute(
        select(release_tags.c.release_id, Tag.name)
        .join(Tag, Tag.id == release_tags.c.tag_id)
        .where(release_tags.c.release_id.in_(list(release_ids)))
        .order_by(Tag.name)
    ):
        tags.setdefault(release_id, []).append(name)
    return tags


async def local_songs(
    session: AsyncSession, purse: Wallet, track_ids: Sequence[int]
) -> dict[int, Song]:
    """The local tracks among ``track_ids`` the listener may see (public, or their own),
    playable ones only, as songs."""
    if not track_ids:
        return {}
    rows = (
        await session.execute(
            select(Track, Release, Artist)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(Track.id.in_(track_ids), Track.status == TrackStatus.READY)
            .where((Release.visibility == Visibility.PUBLIC) | (Artist.owner_id == purse.user_id))
        )
    ).all()
    if not rows:
        return {}
    found = [row[0].id for row in rows]
    release_ids = {row[1].id for row in rows}
    files = {
        file.track_id: file
        for file in await session.scalars(
            select(MediaFile).where(MediaFile.track_id.in_(found), MediaFile.role == DEFAULT_ROLE)
        )
    }
    covers = await with_covers(session, release_ids)
    tags = await tag_names(session, release_ids)
    starred = {
        track_id: at
        for track_id, at in await session.execute(
            select(Favourite.track_id, Favourite.created_at).where(
                Favourite.user_id == purse.user_id, Favourite.track_id.in_(found)
            )
        )
    }
    plays = {
        track_id: (count, last)
        for track_id, count, last in await session.execute(
            select(Play.track_id, func.count(), func.max(Play.at))
            .where(Play.user_id == purse.user_id, Play.track_id.in_(found))
            .group_by(Play.track_id)
        )
    }
    counts = {
        state.track_id: state
        for state in await session.scalars(
            select(ListenerTrack).where(
                ListenerTrack.user_id == purse.user_id, ListenerTrack.track_id.in_(found)
            )
        )
    }
    songs = {}
    for track, release, artist in rows:
        file = files.get(track.id)
        state = counts.get(track.id)
        free = track.price_model is PriceModel.FREE or artist.owner_id == purse.user_id
        comment = _comment(quote_of(state, free=free, balance=purse.balance))
        genres = [track.genre] if track.genre else tags.get(release.id, [])
        count, last = plays.get(track.id, (None, None))
        songs[track.id] = Song(
            id=track.id,
            title=track.title,
            album=release.title,
            album_ref=ids.make(ids.Kind.ALBUM, release.id),
            artist=track.artist_credit or artist.display_name,
            artist_ref=ids.make(ids.Kind.ARTIST, artist.id),
            track=track.position,
            disc=track.disc,
            year=release.release_date.year if release.release_date else None,
            genres=genres,
            duration_ms=track.duration_ms,
            created=release.published_at or track.created_at,
            cover_ref=cover_ref(release.id, release.id in covers),
            size=file.size_bytes if file else None,
            content_type=file.mime_type if file else None,
            suffix=file.format if file else None,
            bitrate_kbps=round(file.bitrate / 1000) if file and file.bitrate else None,
            starred=starred.get(track.id),
            play_count=count,
            played=last,
            comment=comment,
            isrc=track.isrc,
            path=f"{artist.name}/{release.slug}/{track.position:02d}-{track.slug}.mp3",
        )
    return songs


async def partner_refs(
    session: AsyncSession, release_uris: Collection[str], artist_uris: Collection[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """The number that names each partner release and artist (``pal-…``, ``par-…``): the
    lowest id of their tracks known here (see :mod:`subsonic.ids`)."""
    releases: dict[str, int] = {}
    artists: dict[str, int] = {}
    if release_uris:
        releases = {
            uri: number
            for uri, number in await session.execute(
                select(RemoteTrack.release_uri, func.min(RemoteTrack.id))
                .where(RemoteTrack.release_uri.in_(list(release_uris)))
                .group_by(RemoteTrack.release_uri)
            )
        }
    if artist_uris:
        artists = {
            uri: number
            for uri, number in await session.execute(
                select(RemoteTrack.artist_uri, func.min(RemoteTrack.id))
                .where(RemoteTrack.artist_uri.in_(list(artist_uris)))
                .group_by(RemoteTrack.artist_uri)
            )
        }
    return releases, artists


async def partner_songs(
    session: AsyncSession, purse: Wallet, track_ids: Sequence[int]
) -> dict[int, Song]:
    """Partners' tracks among ``track_ids``, as songs (the artist's name as their server
    gave it)."""
    if not track_ids:
        return {}
    rows = (
        await session.execute(
            select(RemoteTrack, RemoteActor.name)
            .outerjoin(RemoteActor, RemoteActor.uri == RemoteTrack.artist_uri)
            .where(RemoteTrack.id.in_(track_ids))
        )
    ).all()
    counts = {
        state.remote_track_id: state
        for state in await session.scalars(
            select(RemoteListenerTrack).where(
                RemoteListenerTrack.user_id == purse.user_id,
                RemoteListenerTrack.remote_track_id.in_([row[0].id for row in rows]),
            )
        )
    }
    plays = {
        track_id: (count, last)
        for track_id, count, last in await session.execute(
            select(RemotePlay.remote_track_id, func.count(), func.max(RemotePlay.at))
            .where(
                RemotePlay.user_id == purse.user_id,
                RemotePlay.remote_track_id.in_([row[0].id for row in rows]),
            )
            .group_by(RemotePlay.remote_track_id)
        )
    }
    releases, artists = await partner_refs(
        session, {row[0].release_uri for row in rows}, {row[0].artist_uri for row in rows}
    )
    songs = {}
    for remote, artist_name in rows:
        state = counts.get(remote.id)
        comment = _comment(quote_of(state, free=remote.free, balance=purse.balance))
        count, last = plays.get(remote.id, (None, None))
        songs[remote.id] = Song(
            id=remote.id,
            title=remote.title,
            album=remote.release_title,
            album_ref=ids.make(ids.Kind.PARTNER_ALBUM, releases[remote.release_uri]),
            artist=artist_name or remote.artist_uri,
            artist_ref=ids.make(ids.Kind.PARTNER_ARTIST, artists[remote.artist_uri]),
            track=remote.position,
            disc=None,
            year=None,
            duration_ms=remote.duration_ms,
            created=remote.fetched_at,
            cover_ref=None,
            size=None,
            content_type="audio/mpeg",
            suffix="mp3",
            bitrate_kbps=None,
            play_count=count,
            played=last,
            comment=comment,
            partner=True,
        )
    return songs


async def songs(session: AsyncSession, purse: Wallet, track_ids: Sequence[int]) -> list[Song]:
    """The tracks with these ids, of either origin (they share one id space), that the
    listener may see, in the order given; the others are left out."""
    local = await local_songs(session, purse, track_ids)
    partner = await partner_songs(session, purse, [n for n in track_ids if n not in local])
    found = local | partner
    return [found[n] for n in track_ids if n in found]


async def songs_by_ref(session: AsyncSession, purse: Wallet, refs: Sequence[str]) -> list[Song]:
    """The songs named by Subsonic ids (``tr-…``), in the order given; other ids and songs
    the listener may not see are left out."""
    numbers = []
    for ref in refs:
        try:
            kind, number = ids.parse(ref)
        except SubsonicError:
            continue
        if kind is ids.Kind.TRACK:
            numbers.append(number)
    found = {song.ref: song for song in await songs(session, purse, numbers)}
    return [found[ref] for ref in refs if ref in found]
