"""Audio and cover files over HTTP: ranges, conditional requests, HEAD, X-Accel-Redirect."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator

from quart import Blueprint, Response, current_app, request
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import (
    Conflict,
    Forbidden,
    Gone,
    HTTPException,
    NotFound,
    RequestedRangeNotSatisfiable,
    Unauthorized,
)

from models.base import utcnow
from models.catalogue import Artist, FileRole, MediaFile, Release, Track
from models.stream_gate import Timeline
from server.runtime.config import AudioLinkMode
from server.services import money, plays
from server.services.media.access import may_preview, may_stream, visible_track
from server.services.media.gated import Charger, Gate, file_timeline, gated_body
from server.services.media.links import link_secret, signed_link
from server.services.media.ranges import (
    ByteRange,
    RangeError,
    http_date,
    if_range_allows,
    not_modified,
    parse_range,
)
from server.services.media.reads import file_chunks
from server.services.media.storage import LocalStorage
from server.services.origins import origins
from server.web.auth import current_viewer
from server.web.current import resources_of
from server.web.signed import signed_by_partner

media = Blueprint("media", __name__)


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
    """The whole track, ours or a partner's, for those who may hear it
    (``access.may_stream``); for a play session that is not charged yet, the free part,
    and the rest once it is charged."""
    viewer = await current_viewer()
    resources = resources_of(current_app)
    here = origins(resources)
    token = request.args.get("session") or None
    signed = await _partner_request()
    async with resources.read_sessionmaker() as session:
        track = await plays.find(session, here, track_id, viewer)
        decision = await may_stream(
            session,
            track,
            viewer,
            token=token,
            signed_by_partner=signed,
            now=utcnow(),
            lifetime=resources.settings.money.play_session_lifetime,
        )
        if not decision.allowed:
            raise HTTP_ERRORS.get(decision.status, Forbidden)(decision.reason)
        audio = await track.origin.stored_audio(session, track, mp3=_wants_mp3())
    audio = audio or await track.origin.audio(track, mp3=_wants_mp3(), resources=resources)
    media_settings = resources.settings.media
    if decision.linkable and not signed and media_settings.audio_links is AudioLinkMode.REDIRECT:
        link = signed_link(
            audio.file.storage_key,
            link_secret(resources.secret),
            now=time.time(),
            lifetime=int(media_settings.audio_link_lifetime.total_seconds()),
        )
        if link is not None:  # (a partner's audio cached without an extension has none)
            # the link is this viewer's: not for shared caches
            return Response(b"", 307, {"Location": link, "Cache-Control": "private, no-store"})
    if token is None:
        return await send_media(audio.file, cache="private, max-age=3600")
    gated_for = viewer.user_id if decision.gated and viewer is not None else None
    return await send_session_audio(audio, here, token, gated_for)


async def send_session_audio(
    audio: plays.Audio, here: plays.Origins, token: str, gated_for: int | None, *, skip: int = 0
) -> ResponseReturnValue:
    """The audio of the play session ``token`` to its listener, once ``access.may_stream``
    allowed it: gated (``models.stream_gate``) while its play is not charged, the play
    charged to ``gated_for`` when the stream passes the free part; in full otherwise
    (``gated_for`` None); from byte ``skip`` on (``send_media``). The web player's stream
    and Subsonic's ``stream`` both send through here."""
    gate = None
    if gated_for is not None:
        resources = resources_of(current_app)
        gate = Gate(await audio_timeline(audio), _charger(here, token, gated_for), resources.clock)
    # a session's audio is for its listener alone: kept out of shared caches and history
    return await send_media(audio.file, cache="private, no-store", gate=gate, skip=skip)


HTTP_ERRORS: dict[int, type[HTTPException]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    410: Gone,
}


def _charger(here: plays.Origins, token: str, user_id: int) -> Charger:
    resources = resources_of(current_app)

    async def charge() -> None:
        await money.retrying(
            resources.sessionmaker,
            lambda session: plays.charge_session(
                session, here, token, user_id, resources.settings.money, heard_check=False
            ),
        )

    return charge


async def audio_timeline(audio: plays.Audio) -> Timeline | None:
    """The file's timeline: kept with it, made from it on first use."""

    async def keep(timeline: Timeline) -> None:
        async with resources_of(current_app).sessionmaker() as session:
            await session.execute(audio.keep_timeline(timeline.to_json()))
            await session.commit()

    return await file_timeline(audio.file, storage().path(audio.file.storage_key), keep)


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
    file, public = await _release_file(release_id, FileRole.COVER, "cover")
    return await send_media(file, cache="public, max-age=86400" if public else DRAFT_CACHE)


@media.route("/releases/<int:release_id>/sampler", methods=["GET", "HEAD"])
async def sampler(release_id: int) -> ResponseReturnValue:
    """The release's sampler (excerpts of its tracks' previews): as public as they are.
    Made anew under the same URL when the tracks change, so kept in caches for an hour."""
    file, public = await _release_file(release_id, FileRole.SAMPLER, "sampler")
    return await send_media(file, cache="public, max-age=3600" if public else DRAFT_CACHE)


# a draft's file, seen by its artist alone: never kept by a shared cache
DRAFT_CACHE = "private, no-store"


async def _release_file(release_id: int, role: FileRole, what: str) -> tuple[MediaFile, bool]:
    """A file of a public release (of a draft, for its artist only), or 404; and whether
    the release is public."""
    viewer = await current_viewer()
    async with resources_of(current_app).read_sessionmaker() as session:
        row = (
            await session.execute(
                select(Release, Artist, MediaFile)
                .join(Artist, Artist.id == Release.artist_id)
                .join(MediaFile, MediaFile.release_id == Release.id)
                .where(Release.id == release_id, MediaFile.role == role)
            )
        ).first()
    if row is None:
        raise NotFound(f"release {release_id} has no {what}")
    release, artist, file = row
    public = release.visibility.value == "public"
    if not public and (viewer is None or viewer.user_id != artist.owner_id):
        raise NotFound(f"release {release_id} has no {what}")
    return file, public


async def send_media(
    file: MediaFile, *, cache: str, gate: Gate | None = None, skip: int = 0
) -> ResponseReturnValue:
    """The file with ranges, conditional requests and HEAD. With a ``gate`` (a play
    session not charged yet) the body follows ``models.stream_gate``: free bytes as asked,
    the free part at listening speed, the rest once the play is charged. ``skip``: the
    representation is the file from that byte on (an MP3 started at a frame: Subsonic's
    ``timeOffset``), ranges are of it, and the gate sees the file's own offsets."""
    settings = resources_of(current_app).settings.media
    path = storage().path(file.storage_key)
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except FileNotFoundError:
        raise NotFound("the file is missing from the media store") from None
    skip = min(max(skip, 0), size)
    size -= skip
    etag = f'"{file.sha256[:32]}-{skip}"' if skip else f'"{file.sha256[:32]}"'
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
    if skip:  # not the whole file: its digest is not this representation's
        del headers["Repr-Digest"]
    if not_modified(
        etag, file.created_at, request.headers.get("If-None-Match"),
        request.headers.get("If-Modified-Since"),
    ):  # fmt: skip
        return Response(b"", 304, headers)
    byte_range = None
    if if_range_allows(etag, file.created_at, request.headers.get("If-Range")):
        try:
            byte_range = parse_range(request.headers.get("Range"), size)
        except RangeError as exc:
            raise RequestedRangeNotSatisfiable(description=str(exc), length=size) from None
    start, length, status = 0, size, 200
    if byte_range is not None:
        start, length, status = byte_range.start, byte_range.length, 206
    body: bytes | AsyncIterator[bytes] = b""
    if request.method != "HEAD":
        body = file_chunks(path, skip + start, length)
    if gate is not None and request.method != "HEAD":
        first = skip + start
        gated = await gated_body(gate, path, first, first + length - 1, ranged=bool(byte_range))
        if gated.last is not None and byte_range is not None:
            byte_range = ByteRange(start, gated.last - skip)
            length = byte_range.length
        body = gated.body or file_chunks(path, first, length)
    elif settings.x_accel_redirect and gate is None and not skip:
        headers["X-Accel-Redirect"] = settings.x_accel_redirect + file.storage_key
        return Response(b"", 200, headers)
    if byte_range is not None:
        headers["Content-Range"] = byte_range.content_range(size)
    response = Response(body, status, headers)
    # Content-Length is ours: for HEAD it is what a GET would send.
    response.automatically_set_content_length = False
    response.headers["Content-Length"] = str(length)
    response.timeout = None  # a long file over a slow link may take its time
    return response
