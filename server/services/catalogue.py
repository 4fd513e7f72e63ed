"""Catalogue operations shared by the API, the command line and the worker: making
artists and releases, publishing, and keeping the search index in step."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.base import utcnow
from models.catalogue import (
    Artist,
    ArtistKind,
    Label,
    Release,
    ReleaseKind,
    Tag,
    Track,
    TrackStatus,
    Visibility,
)
from models.handles import HandleKind, claim_handle
from models.search import DocumentKind, fold, index_document, remove_document
from models.users import User
from server.services.events import queue_deleted, queue_published_when_ready

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(title: str, limit: int = 80) -> str:
    slug = _NOT_SLUG.sub("-", fold(title)).strip("-")
    return slug[:limit].rstrip("-") or "untitled"


def normalise_tag(tag: str) -> str | None:
    name = "-".join(tag.strip().lower().split())[:64]
    return name or None


class CatalogueError(ValueError):
    """A catalogue change that cannot be made; the message says why."""


async def create_artist(
    session: AsyncSession,
    name: str,
    owner: User,
    *,
    display_name: str | None = None,
    kind: ArtistKind = ArtistKind.SOLO,
    summary: str = "",
) -> Artist:
    """Make an artist profile (flushing; the caller commits)."""
    canonical = await claim_handle(session, name, HandleKind.ARTIST)
    artist = Artist(
        name=canonical,
        display_name=(display_name or name).strip()[:200] or canonical,
        kind=kind,
        summary=summary,
        owner_id=owner.id,
    )
    session.add(artist)
    await session.flush()
    await index_artist(session, artist)
    return artist


async def create_label(
    session: AsyncSession, name: str, owner: User, *, display_name: str | None = None
) -> Label:
    canonical = await claim_handle(session, name, HandleKind.LABEL)
    label = Label(
        name=canonical, display_name=(display_name or name).strip()[:200], owner_id=owner.id
    )
    session.add(label)
    await session.flush()
    await index_document(session, DocumentKind.LABEL, label.id, label.display_name, label.name)
    return label


async def index_artist(session: AsyncSession, artist: Artist) -> None:
    await index_document(
        session,
        DocumentKind.ARTIST,
        artist.id,
        artist.display_name,
        f"{artist.name} {artist.summary[:1000]}",
    )


async def find_or_create_release(
    session: AsyncSession,
    artist: Artist,
    title: str,
    *,
    kind: ReleaseKind,
    release_date: object = None,
    genre: str = "",
) -> tuple[Release, bool]:
    """The artist's release with this title (any case), or a new draft one."""
    existing = await session.scalar(
        select(Release)
        .where(Release.artist_id == artist.id, func.lower(Release.title) == title.lower())
        .order_by(Release.id)
        .limit(1)
    )
    if existing is not None:
        return existing, False
    release = Release(
        artist_id=artist.id,
        title=title,
        slug=slugify(title),
        kind=kind,
        release_date=release_date,
        visibility=Visibility.DRAFT,
    )
    session.add(release)
    await session.flush()
    tag = normalise_tag(genre) if genre else None
    if tag:
        await set_tags(session, release, [tag])
    return release, True


async def set_tags(session: AsyncSession, release: Release, names: list[str]) -> None:
    from models.catalogue import release_tags

    wanted = {normalised for name in names if (normalised := normalise_tag(name))}
    tags = []
    for name in sorted(wanted):
        tag = await session.scalar(select(Tag).where(Tag.name == name))
        if tag is None:
            tag = Tag(name=name)
            session.add(tag)
            await session.flush()
        tags.append(tag)
    await session.execute(release_tags.delete().where(release_tags.c.release_id == release.id))
    if tags:
        await session.execute(
            release_tags.insert(), [{"release_id": release.id, "tag_id": tag.id} for tag in tags]
        )


async def load_release(session: AsyncSession, release_id: int) -> Release | None:
    return await session.scalar(
        select(Release)
        .where(Release.id == release_id)
        .options(
            selectinload(Release.artist),
            selectinload(Release.tracks).selectinload(Track.files),
            selectinload(Release.tags),
        )
    )


async def publish_release(session: AsyncSession, release_id: int) -> Release:
    """Make a release public and searchable (flushing; the caller commits)."""
    release = await load_release(session, release_id)
    if release is None:
        raise CatalogueError(f"release {release_id} does not exist")
    if not release.tracks:
        raise CatalogueError("a release without tracks cannot be published")
    if release.visibility is not Visibility.PUBLIC:
        release.visibility = Visibility.PUBLIC
        release.published_at = utcnow()
        await session.flush()
        await queue_published_when_ready(session, release.id)
    await index_release(session, release)
    for track in release.tracks:
        if track.status is TrackStatus.READY:
            await index_track(session, track, release)
    return release


async def index_release(session: AsyncSession, release: Release) -> None:
    tags = " ".join(tag.name for tag in release.tags)
    await index_document(
        session,
        DocumentKind.RELEASE,
        release.id,
        release.title,
        f"{release.artist.display_name} {release.artist.name} {tags} {release.description[:500]}",
    )


async def index_track(session: AsyncSession, track: Track, release: Release) -> None:
    await index_document(
        session,
        DocumentKind.TRACK,
        track.id,
        track.title,
        f"{release.artist.display_name} {track.artist_credit} {release.title} {track.genre}",
    )


async def unpublish_release(session: AsyncSession, release: Release) -> None:
    """Withdraw a release (needs it loaded with its artist and tracks)."""
    if release.visibility is Visibility.PUBLIC:
        await queue_deleted(session, release, release.artist.name)
    release.visibility = Visibility.DRAFT
    await remove_document(session, DocumentKind.RELEASE, release.id)
    for track in release.tracks:
        await remove_document(session, DocumentKind.TRACK, track.id)
