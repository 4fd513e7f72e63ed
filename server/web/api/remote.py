"""Tracks of partner instances (issue 7): resolve a partner's release into its tracks,
which are then played like any track here (``/api/v1/tracks/{id}``, its price, plays and
buy; ``/api/v1/plays/{session}/claim``; ``/tracks/{id}/stream``).

The routes partners' tracks had before they shared the one track API answer with a 308
to the same request there, for one release (``docs/decisions.md``), and only for an id
that is a partner's track here, so that an old client never lands on another track.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, redirect, request
from quart.typing import ResponseReturnValue
from quart_schema import deprecate, validate_request, validate_response
from sqlalchemy import select
from werkzeug.exceptions import NotFound, UnprocessableEntity

from models.remote_plays import RemotePlaySession, RemoteTrack
from models.tokens import Scope
from server.services import remote_plays as rp
from server.services.activitypub.context import federation_of
from server.web.api import schemas as s
from server.web.api.present import partner_origin
from server.web.auth import require
from server.web.current import resources_of

remote_api = Blueprint("remote_api", __name__)
remote_media = Blueprint("remote_media", __name__)


class ReleaseRef(BaseModel):
    uri: str = Field(min_length=8, max_length=2048, description="a partner's release URL")


class RemoteTrackOut(BaseModel):
    id: int = Field(description="its id among the tracks here: play it at api_url")
    uri: str
    title: str
    duration_ms: int
    position: int
    release_title: str
    free: bool
    api_url: str
    origin: s.TrackOrigin


class RemoteTracks(BaseModel):
    items: list[RemoteTrackOut]


def _out(base: str, row: RemoteTrack, payee_uri: str) -> RemoteTrackOut:
    return RemoteTrackOut(
        id=row.id, uri=row.uri, title=row.title, duration_ms=row.duration_ms,
        position=row.position, release_title=row.release_title, free=row.free,
        api_url=f"{base}/api/v1/tracks/{row.id}", origin=partner_origin(payee_uri),
    )  # fmt: skip


@remote_api.post("/remote-releases")
@require(Scope.WRITE)  # it fetches from the partner and stores its tracks
@validate_request(ReleaseRef)
@validate_response(RemoteTracks)
async def resolve(data: ReleaseRef) -> RemoteTracks:
    """Make a partner's release playable here: its tracks, with ids to play them by."""
    resources = resources_of(current_app)
    try:
        rows, payee = await rp.resolve_release(federation_of(resources), data.uri)
    except rp.RemoteTrackError as error:
        raise UnprocessableEntity(str(error)) from None
    base = resources.settings.instance.base_url
    return RemoteTracks(
        items=[_out(base, row, payee.uri) for row in sorted(rows, key=lambda r: r.position)]
    )


async def _moved(track_id: int, path: str) -> ResponseReturnValue:
    async with resources_of(current_app).read_sessionmaker() as session:
        if await session.get(RemoteTrack, track_id) is None:
            raise NotFound("there is no such remote track here")
    query = request.query_string.decode("latin-1")
    return redirect(path + (f"?{query}" if query else ""), 308)


@remote_api.get("/remote-tracks/<int:track_id>/price")
@require(Scope.READ)  # as the route it moved to
@deprecate
async def price(track_id: int) -> ResponseReturnValue:
    """Moved to ``/api/v1/tracks/{id}/price``."""
    return await _moved(track_id, f"/api/v1/tracks/{track_id}/price")


@remote_api.post("/remote-tracks/<int:track_id>/plays")
@require(Scope.PLAY)  # as the route it moved to
@deprecate
async def start(track_id: int) -> ResponseReturnValue:
    """Moved to ``/api/v1/tracks/{id}/plays``."""
    return await _moved(track_id, f"/api/v1/tracks/{track_id}/plays")


@remote_api.post("/remote-tracks/<int:track_id>/buy")
@require(Scope.PLAY)  # as the route it moved to
@deprecate
async def buy_now(track_id: int) -> ResponseReturnValue:
    """Moved to ``/api/v1/tracks/{id}/buy``."""
    return await _moved(track_id, f"/api/v1/tracks/{track_id}/buy")


@remote_api.post("/remote-plays/<token>/claim")
@require(Scope.PLAY)  # as the route it moved to
@deprecate
async def claim(token: str) -> ResponseReturnValue:
    """Moved to ``/api/v1/plays/{session}/claim``."""
    async with resources_of(current_app).read_sessionmaker() as session:
        found = await session.scalar(
            select(RemotePlaySession.id).where(RemotePlaySession.token == token)
        )
    if found is None:
        raise NotFound("there is no such play session")
    return redirect(f"/api/v1/plays/{token}/claim", 308)


@remote_media.route("/remote-tracks/<int:track_id>/stream", methods=["GET", "HEAD"])
@deprecate
async def stream(track_id: int) -> ResponseReturnValue:
    """Moved to ``/tracks/{id}/stream``."""
    return await _moved(track_id, f"/tracks/{track_id}/stream")
