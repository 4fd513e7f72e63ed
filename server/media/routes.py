"""Audio and cover files over HTTP: ranges, conditional requests, HEAD, X-Accel-Redirect."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

from quart import Blueprint, Response, current_app, request
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import Conflict, Forbidden, NotFound, RequestedRangeNotSatisfiable

from models.base import utcnow
from models.catalogue import Artist, FileRole, MediaFile, Release, Track
from models.plays import ListenerTrack, PlaySession
from server.activitypub.signed import signed_by_partner
from server.auth import Viewer, current_viewer
from server.media.access import may_preview, may_stream_full, visible_track
from server.media.ranges import (
    RangeError,
    http_date,
    if_range_allows,
    not_modified,
    parse_range,
)
from server.media.storage import LocalStorage
from server.resources import resources_of

media = Blueprint("media", __name__)
CHUNK = 256 * 1024


def storage() -> LocalStorage:
    return LocalStorage(resources_of(current_app).settings.media_dir)


async def _track_for_viewer(
    track_id: int,
) -> tuple[Track, Release, Artist, dict[FileRole, MediaFile]]:
    viewer = await current_viewer()
    async with resources_of(current_app).read_sessionmaker() as session:
        track, release, artist = await visible_track(session, track_id, viewer)
        files = {
            file.role: file
            for file in await session.scalars(
                select(MediaFile).where(MediaFile.track_id == track_id)
            )
        }
    return track, release, artist, files


def _wants_mp3() -> bool:
    chosen = request.args.get("format")
    if chosen is not None:
        if chosen not in ("opus", "mp3"):
            raise NotFound(f"no {chosen!r} rendition: choose opus or mp3")
        return chosen == "mp3"
    accept = request.accept_mimetypes
    return bool(accept) and accept["audio/ogg"] < accept["audio/mpeg"]


@media.route("/tracks/<int:track_id>/stream", methods=["GET", "HEAD"])
async def stream(track_id: int) -> ResponseReturnValue:
    track, _release, artist, files = await _track_for_viewer(track_id)
    viewer = await current_viewer()
    paid_for = await _paid_for(track, viewer) or await _partner_request()
    decision = may_stream_full(viewer, track, artist, paid_for=paid_for)
    if not decision.allowed:
        raise (Conflict if "not yet playable" in decision.reason else Forbidden)(decision.reason)
    role = FileRole.STREAM_MP3 if _wants_mp3() else FileRole.STREAM_OPUS
    if role not in files:
        raise Conflict("the track's streaming files are not ready")
    return await send_media(files[role], cache="private, max-age=3600")


async def _paid_for(track: Track, viewer: Viewer | None) -> bool:
    """A live play session in the URL (a capability: unguessable, for this track, expiring),
    or a listener who owns the track."""
    resources = resources_of(current_app)
    token = request.args.get("session")
    async with resources.read_sessionmaker() as session:
        if token:
            started = await session.scalar(
                select(PlaySession.started_at).where(
                    PlaySession.token == token, PlaySession.track_id == track.id
                )
            )
            lifetime = resources.settings.money.play_session_lifetime
            if started is not None and utcnow() - started <= lifetime:
                return True
        if viewer is not None:
            owned = await session.scalar(
                select(ListenerTrack.owned_at).where(
                    ListenerTrack.user_id == viewer.user_id, ListenerTrack.track_id == track.id
                )
            )
            return owned is not None
    return False


async def _partner_request() -> bool:
    return await signed_by_partner() is not None


@media.route("/tracks/<int:track_id>/preview", methods=["GET", "HEAD"])
async def preview(track_id: int) -> ResponseReturnValue:
    track, _release, _artist, files = await _track_for_viewer(track_id)
    decision = may_preview(track)
    if not decision.allowed or FileRole.PREVIEW_MP3 not in files:
        raise Conflict(decision.reason or "the preview is not ready")
    return await send_media(files[FileRole.PREVIEW_MP3], cache="public, max-age=86400")


@media.route("/releases/<int:release_id>/cover", methods=["GET", "HEAD"])
async def cover(release_id: int) -> ResponseReturnValue:
    viewer = await current_viewer()
    async with resources_of(current_app).read_sessionmaker() as session:
        row = (
            await session.execute(
                select(Release, Artist, MediaFile)
                .join(Artist, Artist.id == Release.artist_id)
                .join(MediaFile, MediaFile.release_id == Release.id)
                .where(Release.id == release_id, MediaFile.role == FileRole.COVER)
            )
        ).first()
    if row is None:
        raise NotFound(f"release {release_id} has no cover")
    release, artist, file = row
    if release.visibility.value != "public" and (
        viewer is None or viewer.user_id != artist.owner_id
    ):
        raise NotFound(f"release {release_id} has no cover")
    return await send_media(file, cache="public, max-age=86400")


async def _chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        remaining = length
        while remaining > 0:
            data = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await asyncio.to_thread(handle.close)


async def send_media(file: MediaFile, *, cache: str) -> ResponseReturnValue:
    settings = resources_of(current_app).settings.media
    path = storage().path(file.storage_key)
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except FileNotFoundError:
        raise NotFound("the file is missing from the media store") from None
    etag = f'"{file.sha256[:32]}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": http_date(file.created_at),
        "Cache-Control": cache,
        "Content-Type": file.mime_type,
        # RFC 9530: the digest of the whole file, also on ranges, so that a partner
        # caching our audio can check what it stored.
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(file.sha256)).decode()}:",
    }
    if not_modified(
        etag, file.created_at, request.headers.get("If-None-Match"),
        request.headers.get("If-Modified-Since"),
    ):  # fmt: skip
        return Response(b"", 304, headers)
    if settings.x_accel_redirect:
        headers["X-Accel-Redirect"] = settings.x_accel_redirect + file.storage_key
        return Response(b"", 200, headers)
    byte_range = None
    if if_range_allows(etag, file.created_at, request.headers.get("If-Range")):
        try:
            byte_range = parse_range(request.headers.get("Range"), size)
        except RangeError as exc:
            raise RequestedRangeNotSatisfiable(description=str(exc), length=size) from None
    start, length, status = 0, size, 200
    if byte_range is not None:
        start, length, status = byte_range.start, byte_range.length, 206
        headers["Content-Range"] = byte_range.content_range(size)
    headers["Content-Length"] = str(length)
    body = b"" if request.method == "HEAD" else _chunks(path, start, length)
    response = Response(body, status, headers)
    # Content-Length is ours: for HEAD it is what a GET would send.
    response.automatically_set_content_length = False
    response.headers["Content-Length"] = str(length)
    response.timeout = None  # a long file over a slow link may take its time
    return response
