"""The catalogue API: artists, labels, releases, tracks, browsing and search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quart import Blueprint, current_app, request
from quart_schema import validate_querystring, validate_response
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from models import catalogue as m
from models.federation import RemoteActor
from models.search import DocumentKind, search
from server.services import plays
from server.services.local_plays import LocalTrack
from server.services.origins import origins
from server.services.remote_plays import PartnerTrack
from server.services.viewers import Viewer
from server.web.api import present
from server.web.api import schemas as s
from server.web.auth import current_viewer
from server.web.current import resources_of

catalogue_api = Blueprint("catalogue_api", __name__)


def base_url() -> str:
    return resources_of(current_app).settings.instance.base_url


def open_session() -> AsyncSession:
    """The catalogue API only reads."""
    return resources_of(current_app).read_sessionmaker()


def _next(total: int, limit: int, offset: int) -> str | None:
    if offset + limit >= total:
        return None
    args = request.args.to_dict()
    args.update(limit=str(limit), offset=str(offset + limit))
    query = "&".join(f"{key}={value}" for key, value in args.items())
    return f"{base_url()}{request.path}?{query}"


def _visible_releases(viewer: Viewer | None) -> object:
    public = m.Release.visibility == m.Visibility.PUBLIC
    if viewer is None:
        return public
    return or_(public, m.Artist.owner_id == viewer.user_id)


async def release_summaries(
    session: AsyncSession, releases: Sequence[tuple[m.Release, m.Artist]]
) -> list[s.ReleaseSummary]:
    ids = [release.id for release, _ in releases]
    tags: dict[int, list[str]] = {release_id: [] for release_id in ids}
    covers: set[int] = set()
    if ids:
        for release_id, name in await session.execute(
            select(m.release_tags.c.release_id, m.Tag.name)
            .join(m.Tag, m.Tag.id == m.release_tags.c.tag_id)
            .where(m.release_tags.c.release_id.in_(ids))
            .order_by(m.Tag.name)
        ):
            tags[release_id].append(name)
        covers = set(
            await session.scalars(
                select(m.MediaFile.release_id).where(
                    m.MediaFile.release_id.in_(ids), m.MediaFile.role == m.FileRole.COVER
                )
            )
        )
    base = base_url()
    return [
        present.release_summary(base, release, artist, tags[release.id], release.id in covers)
        for release, artist in releases
    ]


async def _fetch_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], query: s.PageQuery
) -> tuple[list[Any], dict[str, Any]]:
    """One page of rows and the paging fields (total, limit, offset, next) around them."""
    total = await session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = list((await session.execute(statement.limit(query.limit).offset(query.offset))).all())
    paging = {
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "next": _next(total, query.limit, query.offset),
    }
    return rows, paging


async def _release_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], query: s.PageQuery
) -> s.ReleasePage:
    rows, paging = await _fetch_page(session, statement, query)
    items = await release_summaries(session, [(r, a) for r, a in rows])
    return s.ReleasePage(items=items, **paging)


def _releases_query(viewer: Viewer | None) -> Select[m.Release, m.Artist]:
    return (
        select(m.Release, m.Artist)
        .join(m.Artist, m.Artist.id == m.Release.artist_id)
        .where(_visible_releases(viewer))  # type: ignore[arg-type]
        .order_by(m.Release.published_at.desc().nulls_last(), m.Release.id.desc())
    )


@catalogue_api.get("/releases")
@validate_querystring(s.ReleaseQuery)
@validate_response(s.ReleasePage)
async def list_releases(query_args: s.ReleaseQuery) -> s.ReleasePage:
    """New releases, newest first; `tag` narrows them to one tag."""
    statement = _releases_query(None)
    if query_args.tag:
        statement = statement.where(
            m.Release.id.in_(
                select(m.release_tags.c.release_id)
                .join(m.Tag, m.Tag.id == m.release_tags.c.tag_id)
                .where(m.Tag.name == query_args.tag.lower())
            )
        )
    async with open_session() as session:
        return await _release_page(session, statement, query_args)


@catalogue_api.get("/browse/staff-picks")
@validate_querystring(s.PageQuery)
@validate_response(s.ReleasePage)
async def staff_picks(query_args: s.PageQuery) -> s.ReleasePage:
    """Releases the instance's staff picked."""
    statement = _releases_query(None).where(m.Release.staff_pick.is_(True))
    async with open_session() as session:
        return await _release_page(session, statement, query_args)


@catalogue_api.get("/browse/featured-artists")
@validate_querystring(s.PageQuery)
@validate_response(s.ArtistPage)
async def featured_artists(query_args: s.PageQuery) -> s.ArtistPage:
    """Artists the instance features."""
    statement = select(m.Artist).where(m.Artist.featured.is_(True)).order_by(m.Artist.display_name)
    async with open_session() as session:
        rows, paging = await _fetch_page(session, statement, query_args)
    return s.ArtistPage(items=[present.artist(base_url(), row) for (row,) in rows], **paging)


async def _artist_or_404(session: AsyncSession, name: str) -> m.Artist:
    artist = await session.scalar(select(m.Artist).where(m.Artist.name == name.lower()))
    if artist is None:
        raise NotFound(f"there is no artist {name!r}")
    return artist


@catalogue_api.get("/artists/<name>")
@validate_response(s.Artist)
async def get_artist(name: str) -> s.Artist:
    async with open_session() as session:
        return present.artist(base_url(), await _artist_or_404(session, name))


@catalogue_api.get("/artists/<name>/releases")
@validate_querystring(s.PageQuery)
@validate_response(s.ReleasePage)
async def artist_releases(name: str, query_args: s.PageQuery) -> s.ReleasePage:
    viewer = await current_viewer()
    async with open_session() as session:
        artist = await _artist_or_404(session, name)
        statement = _releases_query(viewer).where(m.Release.artist_id == artist.id)
        return await _release_page(session, statement, query_args)


def _tracks_query(viewer: Viewer | None) -> Select[m.Track, m.Release, m.Artist]:
    return (
        select(m.Track, m.Release, m.Artist)
        .join(m.Release, m.Release.id == m.Track.release_id)
        .join(m.Artist, m.Artist.id == m.Track.artist_id)
        .where(_visible_releases(viewer))  # type: ignore[arg-type]
    )


@catalogue_api.get("/artists/<name>/top-tracks")
@validate_querystring(s.PageQuery)
@validate_response(s.TrackPage)
async def artist_top_tracks(name: str, query_args: s.PageQuery) -> s.TrackPage:
    """The artist's playable tracks, most favourited first (plays count once the money
    issue records them)."""
    async with open_session() as session:
        artist = await _artist_or_404(session, name)
        favourites = (
            select(func.count())
            .select_from(m.Favourite)
            .where(m.Favourite.track_id == m.Track.id)
            .scalar_subquery()
        )
        statement = (
            _tracks_query(None)
            .where(m.Track.artist_id == artist.id, m.Track.status == m.TrackStatus.READY)
            .order_by(favourites.desc(), m.Release.published_at.desc(), m.Track.position)
        )
        rows, paging = await _fetch_page(session, statement, query_args)
    return s.TrackPage(items=[present.track(base_url(), t, r, a) for t, r, a in rows], **paging)


@catalogue_api.get("/labels/<name>")
@validate_response(s.Label)
async def get_label(name: str) -> s.Label:
    async with open_session() as session:
        label = await session.scalar(
            select(m.Label)
            .where(m.Label.name == name.lower())
            .options(selectinload(m.Label.artists))
        )
        if label is None:
            raise NotFound(f"there is no label {name!r}")
        return present.label(base_url(), label, list(label.artists))


@catalogue_api.get("/releases/<int:release_id>")
@validate_response(s.Release)
async def get_release(release_id: int) -> s.Release:
    viewer = await current_viewer()
    async with open_session() as session:
        row = (
            await session.execute(_releases_query(viewer).where(m.Release.id == release_id))
        ).first()
        if row is None:
            raise NotFound(f"there is no release {release_id}")
        release, artist = row
        [summary] = await release_summaries(session, [(release, artist)])
        tracks = (
            await session.execute(
                _tracks_query(viewer)
                .where(m.Track.release_id == release_id)
                .order_by(m.Track.disc, m.Track.position, m.Track.id)
            )
        ).all()
        label_name = None
        if release.label_id is not None:
            label_name = await session.scalar(
                select(m.Label.name).where(m.Label.id == release.label_id)
            )
    base = base_url()
    return s.Release(
        **summary.model_dump(),
        description=release.description,
        license=release.license,
        label=label_name,
        tracks=[present.track(base, t, r, a) for t, r, a in tracks],
    )


@catalogue_api.get("/tracks/<int:track_id>")
@validate_response(s.Track)
async def get_track(track_id: int) -> s.Track:
    """A track here, ours or a partner's (``origin`` says which), with the signed-in
    listener's next price."""
    viewer = await current_viewer()
    async with open_session() as session:
        track = await plays.find(session, origins(resources_of(current_app)), track_id, viewer)
        if isinstance(track, LocalTrack):
            shown = present.track(base_url(), track.track, track.release, track.artist)
        else:
            assert isinstance(track, PartnerTrack)
            artist = await session.scalar(
                select(RemoteActor).where(RemoteActor.uri == track.remote.artist_uri)
            )
            shown = present.partner_track(base_url(), track, artist)
        if viewer is not None:
            q = await plays.quote(session, viewer.user_id, track)
            shown.listener = s.ListenerPrice(
                next_play_price=q.price, plays_until_owned=q.plays_until_owned, owned=q.owned
            )
    return shown


@catalogue_api.get("/search")
@validate_querystring(s.SearchQuery)
@validate_response(s.SearchResults)
async def search_catalogue(query_args: s.SearchQuery) -> s.SearchResults:
    """Full-text search over artists, labels, public releases and playable tracks;
    every word matches as a prefix, accents do not matter."""
    kinds = (DocumentKind(query_args.kind),) if query_args.kind else tuple(DocumentKind)
    base = base_url()
    async with open_session() as session:
        hits = await search(
            session, query_args.q, kinds=kinds, limit=query_args.limit, offset=query_args.offset
        )
        items: list[s.SearchHit] = []
        for hit in hits:
            item = s.SearchHit(kind=hit.kind.value, rank=hit.rank)
            if hit.kind is DocumentKind.ARTIST:
                row = await session.get(m.Artist, hit.object_id)
                if row is None:
                    continue
                item.artist = present.artist(base, row)
            elif hit.kind is DocumentKind.LABEL:
                label = await session.scalar(
                    select(m.Label)
                    .where(m.Label.id == hit.object_id)
                    .options(selectinload(m.Label.artists))
                )
                if label is None:
                    continue
                item.label = present.label(base, label, list(label.artists))
            elif hit.kind is DocumentKind.RELEASE:
                found = (
                    await session.execute(
                        _releases_query(None).where(m.Release.id == hit.object_id)
                    )
                ).first()
                if found is None:
                    continue
                [item.release] = await release_summaries(session, [(found[0], found[1])])
            else:
                track_row = (
                    await session.execute(_tracks_query(None).where(m.Track.id == hit.object_id))
                ).first()
                if track_row is None:
                    continue
                item.track = present.track(base, *track_row)
            items.append(item)
    full = len(hits) == query_args.limit
    return s.SearchResults(
        query=query_args.q,
        items=items,
        limit=query_args.limit,
        offset=query_args.offset,
        next=_next(query_args.offset + query_args.limit + 1, query_args.limit, query_args.offset)
        if full
        else None,
    )
