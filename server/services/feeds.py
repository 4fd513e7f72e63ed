"""What the RSS and Atom feeds list: the newest published tracks of an artist, a label or
the whole instance, each with its public preview (docs/architecture.md#outside-the-fediverse).

One item per track, not per release: a podcast app plays one enclosure per item, so a
release as one item could offer only one of its tracks. Only public releases' ready
tracks with a preview are listed; drafts never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.catalogue import (
    Artist,
    FileRole,
    Label,
    MediaFile,
    Release,
    Track,
    TrackStatus,
    Visibility,
)

FEED_LENGTH = 50


@dataclass(frozen=True)
class FeedItem:
    track_id: int
    title: str
    release_id: int
    release_title: str
    artist_name: str
    artist_display_name: str
    description: str  # the release's, plain text
    published: datetime
    cover_type: str | None
    preview_type: str
    preview_bytes: int
    preview_ms: int | None


@dataclass(frozen=True)
class FeedSource:
    """Whose feed it is: an artist, a label, or (kind None) the instance."""

    kind: str | None
    name: str | None
    display_name: str
    summary: str
    created: datetime | None


async def feed_source(session: AsyncSession, kind: str, name: str) -> FeedSource | None:
    """The artist or label called ``name``, or None when there is none."""
    model = Artist if kind == "artists" else Label
    # select() of a union of classes is typed as their common base
    row = cast(
        "Artist | Label | None",
        await session.scalar(select(model).where(model.name == name.lower())),
    )
    if row is None:
        return None
    return FeedSource(kind, row.name, row.display_name, row.summary, row.created_at)


async def feed_items(
    session: AsyncSession, source: FeedSource, limit: int = FEED_LENGTH
) -> list[FeedItem]:
    """The newest ``limit`` tracks of ``source``'s public releases, newest release first
    and in their order within a release."""
    query = _items_query()
    if source.kind == "artists":
        query = query.where(Artist.name == source.name)
    elif source.kind == "labels":
        label_id = select(Label.id).where(Label.name == source.name).scalar_subquery()
        query = query.where(Release.label_id == label_id)
    rows = (await session.execute(query.limit(limit))).all()
    return [
        FeedItem(
            track.id, track.title, release.id, release.title, artist.name, artist.display_name,
            release.description, cast(datetime, release.published_at),  # set: see _items_query
            cover_type, preview.mime_type, preview.size_bytes, preview.duration_ms,
        )
        for track, release, artist, preview, cover_type in rows
    ]  # fmt: skip


def _items_query() -> Select[Track, Release, Artist, MediaFile, str | None]:
    preview = aliased(MediaFile)
    cover = aliased(MediaFile)
    public: ColumnElement[bool] = Release.visibility == Visibility.PUBLIC
    return (
        select(Track, Release, Artist, preview, cover.mime_type)
        .join(Release, Release.id == Track.release_id)
        .join(Artist, Artist.id == Release.artist_id)
        .join(preview, (preview.track_id == Track.id) & (preview.role == FileRole.PREVIEW_MP3))
        .outerjoin(cover, (cover.release_id == Release.id) & (cover.role == FileRole.COVER))
        .where(public, Release.published_at.is_not(None), Track.status == TrackStatus.READY)
        .order_by(
            Release.published_at.desc(), Release.id.desc(), Track.disc, Track.position, Track.id
        )
    )
