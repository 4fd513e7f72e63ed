"""Uploads and publishing: an artist's files become tracks.

The multipart body is parsed as it arrives (werkzeug's sans-I/O decoder, which Quart
uses too) and the file part goes straight to a temporary file while it is hashed, so an
upload never sits in memory. Options come in the query string (or in form fields sent
before the file): ``artist``, ``release``, ``album``, ``free``, ``publish``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from quart import Blueprint, current_app, request
from quart_schema import validate_request, validate_response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    ServiceUnavailable,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from models import catalogue as m
from models.base import utcnow
from models.tokens import Scope
from models.users import Role
from server.runtime.values import whole_number
from server.services.catalogue import (
    CatalogueError,
    index_release,
    load_release,
    publish_release,
    set_tags,
    slugify,
    unpublish_release,
)
from server.services.events import queue_updated
from server.services.media.ingest import IncomingFile, IngestError, ingest
from server.services.media.storage import LocalStorage
from server.services.viewers import Viewer
from server.web.api import present
from server.web.api import schemas as s
from server.web.api.catalogue import base_url, release_summaries
from server.web.auth import CREATORS, require, viewer_required
from server.web.current import resources_of

uploads_api = Blueprint("uploads_api", __name__)
UPLOAD_PATH = "/api/v1/uploads"
MAX_FIELD_BYTES = 1024


@dataclass
class Received:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    path: Path | None = None
    size: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)


def _next_event(decoder: MultipartDecoder) -> Event:
    try:
        return decoder.next_event()
    except ValueError:  # werkzeug's parse errors, and part headers that are not UTF-8
        raise BadRequest("the upload is not well-formed multipart/form-data") from None


async def receive_multipart(storage: LocalStorage, limit: int) -> Received:
    """Stream the body to disk; on any error the temporary file is removed."""
    content_type, options = parse_options_header(request.headers.get("Content-Type", ""))
    if content_type != "multipart/form-data" or "boundary" not in options:
        raise UnsupportedMediaType("send the file as multipart/form-data with a part named 'file'")
    # No max_form_memory_size: werkzeug applies it to its raw buffer, which holds whole
    # network chunks of the file too; field sizes are checked below instead.
    decoder = MultipartDecoder(options["boundary"].encode())
    received = Received()
    handle: IO[bytes] | None = None
    current: str | None = None  # "file", a field name, or None for an ignored part
    field_value = bytearray()
    total = 0
    try:
        async for chunk in request.body:
            total += len(chunk)
            if total > limit:
                raise RequestEntityTooLarge()
            decoder.receive_data(chunk)
            while not isinstance(event := _next_event(decoder), NeedData | Epilogue):
                if isinstance(event, File) and event.name == "file":
                    if received.path is not None:
                        raise BadRequest("send one file per upload")
                    received.file_name = Path(event.filename or "upload").name[:255]
                    if "\x00" in received.file_name:
                        raise BadRequest("the file name has a NUL in it")
                    received.path = storage.temporary_file()
                    handle = received.path.open("wb")
                    current = "file"
                elif isinstance(event, File):
                    current = None
                elif isinstance(event, Field):
                    current, field_value = event.name, bytearray()
                elif isinstance(event, Data):
                    if current == "file" and handle is not None:
                        handle.write(event.data)
                        received.digest.update(event.data)
                        received.size += len(event.data)
                    elif current is not None:
                        field_value += event.data
                        if len(field_value) > MAX_FIELD_BYTES:
                            raise BadRequest(f"the form field {current!r} is too long")
                        if not event.more_data:
                            value = field_value.decode(errors="replace")
                            if "\x00" in value:
                                raise BadRequest(f"the form field {current!r} has a NUL in it")
                            received.fields[current] = value
            if isinstance(event, Epilogue):
                break
        decoder.receive_data(None)
        if received.path is None:
            raise BadRequest("the upload has no part named 'file'")
    except RequestEntityTooLarge:
        _discard(handle, received)
        raise RequestEntityTooLarge(
            f"the upload is larger than the limit of {limit} bytes"
        ) from None
    except BaseException:
        _discard(handle, received)
        raise
    if handle is not None:
        handle.close()
    return received


def _discard(handle: IO[bytes] | None, received: Received) -> None:
    if handle is not None:
        handle.close()
    if received.path is not None:
        received.path.unlink(missing_ok=True)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


async def _artist_for(viewer: Viewer, name: str | None) -> m.Artist:
    if viewer.role not in CREATORS:
        raise Forbidden("only artist, label and admin accounts can upload")
    async with resources_of(current_app).sessionmaker() as session:
        statement = select(m.Artist).order_by(m.Artist.id)
        if name:
            statement = statement.where(m.Artist.name == name.lower())
        if viewer.role is not Role.ADMIN:
            statement = statement.where(m.Artist.owner_id == viewer.user_id)
        artists = list(await session.scalars(statement.limit(2)))
    if not artists:
        raise NotFound(
            f"you manage no artist named {name!r}" if name else "you manage no artist profile yet"
        )
    if len(artists) > 1:
        raise BadRequest("you manage several artists: name one with ?artist=NAME")
    return artists[0]


@uploads_api.post("/uploads")
@require(Scope.UPLOAD)
@validate_response(s.Upload, 202)
async def upload() -> tuple[s.Upload, int]:
    """Upload one audio file (multipart/form-data, part `file`). Answers 202 at once with
    the track in `processing`; the worker makes its renditions."""
    viewer = viewer_required()
    settings = resources_of(current_app).settings
    received = await receive_multipart(
        LocalStorage(settings.media_dir), settings.media.max_upload_bytes
    )
    track, release, artist = await accept_upload(viewer, received)
    async with resources_of(current_app).sessionmaker() as session:
        [summary] = await release_summaries(session, [(release, artist)])
    return s.Upload(track=present.track(base_url(), track, release, artist), release=summary), 202


async def accept_upload(viewer: Viewer, received: Received) -> tuple[m.Track, m.Release, m.Artist]:
    """Ingest a received upload for the viewer (the API and the dashboard's form):
    options from the form fields sent before the file, or the query string."""
    resources = resources_of(current_app)
    settings = resources.settings
    assert received.path is not None
    assert received.file_name is not None
    options = {**received.fields, **request.args.to_dict()}
    try:
        artist = await _artist_for(viewer, options.get("artist") or None)
        release_id = options.get("release") or None
        if release_id is not None and whole_number(release_id) is None:
            raise BadRequest("release must be a release id")
    except BaseException:
        received.path.unlink(missing_ok=True)
        raise
    incoming = IncomingFile(
        received.path, received.file_name, received.size, received.digest.hexdigest()
    )
    try:
        track = await ingest(
            resources.sessionmaker,
            LocalStorage(settings.media_dir),
            artist.id,
            incoming,
            ffmpeg=settings.media.ffmpeg,
            time_limit=settings.media.ffmpeg_timeout.total_seconds(),
            release_id=int(release_id) if release_id else None,
            album_fallback=options.get("album") or None,
            price_model=m.PriceModel.FREE
            if _flag(options.get("free"))
            else m.PriceModel.STREAM_TO_OWN,
        )
    except IngestError as exc:
        raise _http_error(exc) from None
    async with resources.sessionmaker() as session:
        if _flag(options.get("publish")):
            await publish_release(session, track.release_id)
            await session.commit()
        release = await session.get(m.Release, track.release_id)
        fresh = await session.get(m.Track, track.id)
        assert release is not None
        assert fresh is not None
    return fresh, release, artist


def _http_error(exc: IngestError) -> HTTPException:
    kinds: dict[int, type[HTTPException]] = {
        400: BadRequest,
        404: NotFound,
        415: UnsupportedMediaType,
        422: UnprocessableEntity,
        503: ServiceUnavailable,
    }
    return kinds.get(exc.status, UnprocessableEntity)(str(exc))


@uploads_api.post("/releases/<int:release_id>/publish")
@require(Scope.WRITE)
@validate_response(s.ReleaseSummary)
async def publish(release_id: int) -> s.ReleaseSummary:
    """Make one of your releases public: it appears in new releases and search."""
    async with resources_of(current_app).sessionmaker() as session:
        release, artist = await _own_release(session, release_id)
        try:
            await publish_release(session, release_id)
        except CatalogueError as exc:
            raise UnprocessableEntity(str(exc)) from None
        await session.commit()
        [summary] = await release_summaries(session, [(release, artist)])
    return summary


async def _own_release(session: AsyncSession, release_id: int) -> tuple[m.Release, m.Artist]:
    viewer = viewer_required()
    row = (
        await session.execute(
            select(m.Release, m.Artist)
            .join(m.Artist, m.Artist.id == m.Release.artist_id)
            .where(m.Release.id == release_id)
        )
    ).first()
    if row is None or (viewer.role is not Role.ADMIN and row[1].owner_id != viewer.user_id):
        raise NotFound(f"you have no release {release_id}")
    return row[0], row[1]


@uploads_api.patch("/releases/<int:release_id>")
@require(Scope.WRITE)
@validate_request(s.ReleaseChange)
@validate_response(s.ReleaseSummary)
async def change_release(release_id: int, data: s.ReleaseChange) -> s.ReleaseSummary:
    """Edit a release's title, description or tags; followers get an Update if it is public."""
    async with resources_of(current_app).sessionmaker() as session:
        await _own_release(session, release_id)
        release = await load_release(session, release_id)
        assert release is not None
        if data.title is not None:
            release.title = data.title.strip()
            release.slug = slugify(release.title)
        if data.description is not None:
            release.description = data.description
        if data.tags is not None:
            await set_tags(session, release, data.tags)
        if release.visibility is m.Visibility.PUBLIC:
            await index_release(session, release)
            await queue_updated(session, release.id, utcnow())
        await session.commit()
        [summary] = await release_summaries(session, [(release, release.artist)])
    return summary


@uploads_api.delete("/releases/<int:release_id>/publication")
@require(Scope.WRITE)
async def withdraw(release_id: int) -> tuple[str, int]:
    """Withdraw a published release (back to draft); followers get a Delete of its Note."""
    async with resources_of(current_app).sessionmaker() as session:
        await _own_release(session, release_id)
        release = await load_release(session, release_id)
        assert release is not None
        await unpublish_release(session, release)
        await session.commit()
    return "", 204
