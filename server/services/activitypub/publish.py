"""Telling the fediverse about releases: Create when published, Update when edited,
Delete when withdrawn, and the label's Announce (docs/architecture.md#federation).

A job is queued (in the transaction that publishes, or that finishes the last track's
transcoding, or the release's sampler: the Note carries the sampler or a preview, see
``server.services.events``) that records the activity and queues one delivery per
follower inbox.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import (
    ReleaseInfo,
    SamplerInfo,
    TrackInfo,
    announce_release,
    create_release,
    delete_release,
    update_release,
)
from models.catalogue import FileRole, Label, MediaFile, Release, Track, TrackStatus, Visibility
from models.federation import OutboundActivity
from server.runtime.worker import JobContext
from server.services.activitypub.channels import send_channel_uploads
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import deliver, follower_inboxes, record_activity
from server.services.catalogue import load_release
from server.services.media.sampler import MAX_SAMPLER_TRACKS


def release_info(
    release: Release,
    label_name: str | None,
    cover_type: str | None,
    *,
    cover_blurhash: str | None = None,
    sampler: MediaFile | None = None,
) -> ReleaseInfo:
    """Needs the release loaded with its artist, tracks (with files) and tags."""
    assert release.published_at is not None
    tracks = []
    for track in sorted(release.tracks, key=lambda t: (t.disc, t.position, t.id)):
        if track.status is not TrackStatus.READY:
            continue
        preview = next((f for f in track.files if f.role is FileRole.PREVIEW_MP3), None)
        tracks.append(
            TrackInfo(
                track.id,
                track.title,
                track.position,
                track.duration_ms,
                track.license or release.license,
                track.price_model.value,
                release.artist.name,
                preview.mime_type if preview else None,
                disc=track.disc,
                preview_duration_ms=preview.duration_ms if preview else None,
            )
        )
    previewed = sum(1 for track in tracks if track.preview_type)
    sampled = None
    if sampler is not None and previewed >= 2:
        sampled = SamplerInfo(min(previewed, MAX_SAMPLER_TRACKS), sampler.duration_ms)
    return ReleaseInfo(
        release.id,
        release.title,
        release.artist.name,
        release.artist.display_name,
        label_name,
        release.description,
        release.license,
        release.published_at,
        None,
        cover_type,
        tuple(sorted(tag.name for tag in release.tags)),
        tuple(tracks),
        sampled,
        cover_blurhash,
    )


async def load_release_info(session: AsyncSession, release_id: int) -> ReleaseInfo | None:
    """The public release as the builders need it, or None when it is not public."""
    release = await load_release(session, release_id)
    if release is None or release.visibility is not Visibility.PUBLIC:
        return None
    label_name = None
    if release.label_id is not None:
        label_name = await session.scalar(select(Label.name).where(Label.id == release.label_id))
    files = {
        file.role: file
        for file in await session.scalars(
            select(MediaFile).where(
                MediaFile.release_id == release.id,
                MediaFile.role.in_([FileRole.COVER, FileRole.SAMPLER]),
            )
        )
    }
    cover = files.get(FileRole.COVER)
    return release_info(
        release,
        label_name,
        cover.mime_type if cover else None,
        cover_blurhash=cover.blurhash if cover else None,
        sampler=files.get(FileRole.SAMPLER),
    )


async def load_track_info(
    session: AsyncSession, track_id: int
) -> tuple[ReleaseInfo, TrackInfo] | None:
    """A ready track of a public release, with the release, as the builders need them."""
    release_id = await session.scalar(select(Track.release_id).where(Track.id == track_id))
    info = await load_release_info(session, release_id) if release_id is not None else None
    track = next((t for t in info.tracks if t.id == track_id), None) if info else None
    return (info, track) if info is not None and track is not None else None


log = logging.getLogger(__name__)


async def run_published(context: JobContext, payload: dict[str, object]) -> None:
    fed = federation_of(context.resources)
    release_id = int(str(payload["release"]))
    async with fed.sessionmaker() as session:
        info = await load_release_info(session, release_id)
        if info is None:
            return  # withdrawn before it went out
        document = create_release(fed.base_url, info)
        row, _ = await record_activity(
            session, document, info.artist_name, release_id=release_id, public=True
        )
        count = await deliver(session, row, await follower_inboxes(session, [info.artist_name]))
        log.info("release %s announced: %s deliveries queued", release_id, count)
        uploads = await send_channel_uploads(session, fed.base_url, info)
        log.info("release %s sent to Funkwhale channels: %s deliveries queued", release_id, uploads)
        if info.label_name:
            announce = announce_release(
                fed.base_url, info.label_name, release_id, info.artist_name, info.published
            )
            row, _ = await record_activity(
                session, announce, info.label_name, release_id=release_id, public=True
            )
            await deliver(session, row, await follower_inboxes(session, [info.label_name]))
        await session.commit()


async def run_updated(context: JobContext, payload: dict[str, object]) -> None:
    fed = federation_of(context.resources)
    release_id = int(str(payload["release"]))
    version = datetime.fromtimestamp(int(str(payload["version"])) / 1000, UTC)
    async with fed.sessionmaker() as session:
        info = await load_release_info(session, release_id)
        if info is None:
            return
        document = update_release(fed.base_url, info, version)
        row, _ = await record_activity(session, document, info.artist_name, release_id=release_id)
        await deliver(session, row, await follower_inboxes(session, [info.artist_name]))
        await session.commit()


async def run_deleted(context: JobContext, payload: dict[str, object]) -> None:
    fed = federation_of(context.resources)
    release_id, artist = int(str(payload["release"])), str(payload["artist"])
    when = datetime.fromtimestamp(int(str(payload["at"])), UTC)
    async with fed.sessionmaker() as session:
        sent = await session.scalar(
            select(OutboundActivity.id).where(
                OutboundActivity.release_id == release_id, OutboundActivity.type == "Create"
            )
        )
        if sent is None:
            return  # it never went out
        document = delete_release(fed.base_url, release_id, artist, when)
        document["id"] += f"/{int(when.timestamp())}"
        row, _ = await record_activity(session, document, artist, release_id=release_id)
        await deliver(session, row, await follower_inboxes(session, [artist]))
        await session.commit()
