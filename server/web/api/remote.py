"""Playing tracks of partner instances (issue 7): resolve a partner's release into its
tracks, the price of the next play, play sessions and claims, and the cached audio."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, request
from quart.typing import ResponseReturnValue
from quart_schema import validate_request, validate_response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import Conflict, Forbidden, NotFound, UnprocessableEntity

from models.base import utcnow
from models.catalogue import FileRole, MediaFile
from models.remote_plays import RemoteListenerTrack, RemotePlaySession, RemoteTrack
from models.stream_gate import Timeline
from models.tokens import Scope
from server.services import remote_plays as rp
from server.services.activitypub.context import federation_of
from server.services.media.access import Decision, SessionState, may_stream_full
from server.services.media.gated import Charger, Gate, read_timeline, stored_timeline
from server.services.media.storage import LocalStorage
from server.services.money import retrying
from server.web.api.plays import PlayDone, PlayStart, Price, in_money_transaction
from server.web.auth import current_viewer, require, viewer_required
from server.web.current import resources_of
from server.web.media import HTTP_ERRORS, send_media

remote_api = Blueprint("remote_api", __name__)
remote_media = Blueprint("remote_media", __name__)


class ReleaseRef(BaseModel):
    uri: str = Field(min_length=8, max_length=2048, description="a partner's release URL")


class RemoteTrackOut(BaseModel):
    id: int
    uri: str
    title: str
    duration_ms: int
    position: int
    release_title: str
    free: bool


class RemoteTracks(BaseModel):
    items: list[RemoteTrackOut]


def _out(row: RemoteTrack) -> RemoteTrackOut:
    return RemoteTrackOut(
        id=row.id, uri=row.uri, title=row.title, duration_ms=row.duration_ms,
        position=row.position, release_title=row.release_title, free=row.free,
    )  # fmt: skip


@remote_api.post("/remote-releases")
@require(Scope.WRITE)  # it fetches from the partner and stores its tracks
@validate_request(ReleaseRef)
@validate_response(RemoteTracks)
async def resolve(data: ReleaseRef) -> RemoteTracks:
    """Make a partner's release playable here: its tracks, with ids to play them by."""
    try:
        rows = await rp.resolve_release(federation_of(resources_of(current_app)), data.uri)
    except rp.RemoteTrackError as error:
        raise UnprocessableEntity(str(error)) from None
    return RemoteTracks(items=[_out(row) for row in sorted(rows, key=lambda r: r.position)])


async def _track(session: AsyncSession, track_id: int) -> RemoteTrack:
    track = await session.get(RemoteTrack, track_id)
    if track is None:
        raise NotFound("there is no such remote track here")
    return track


@remote_api.get("/remote-tracks/<int:track_id>/price")
@require(Scope.READ)
@validate_response(Price)
async def price(track_id: int) -> Price:
    viewer = viewer_required()
    async with resources_of(current_app).read_sessionmaker() as session:
        q = await rp.quote_remote(session, viewer.user_id, await _track(session, track_id))
    return Price(**q.__dict__)


@remote_api.post("/remote-tracks/<int:track_id>/plays")
@require(Scope.PLAY)
@validate_response(PlayStart, 201)
async def start(track_id: int) -> tuple[PlayStart, int]:
    """A play session for a partner's track; the preview and the reason when the balance
    does not cover the play."""
    viewer = viewer_required()
    base = resources_of(current_app).settings.instance.base_url
    async with resources_of(current_app).sessionmaker() as session:
        track = await _track(session, track_id)
        q = await rp.quote_remote(session, viewer.user_id, track)
        quote = Price(**q.__dict__)
        if not q.affordable:
            return PlayStart(
                session=None, mode="preview", stream_url=track.preview_url or "",
                claim_url=None, quote=quote,
                reason=f"your balance ({q.balance} tokens) does not cover this play "
                f"({q.price} tokens): here is the preview; top up to hear it all",
            ), 201  # fmt: skip
        token = await rp.open_session(session, viewer.user_id, track)
    return PlayStart(
        session=token,
        mode="full",
        stream_url=f"{base}/remote-tracks/{track_id}/stream?session={token}",
        claim_url=f"{base}/api/v1/remote-plays/{token}/claim",
        quote=quote,
    ), 201


@remote_api.post("/remote-plays/<token>/claim")
@require(Scope.PLAY)
@validate_response(PlayDone)
async def claim(token: str) -> PlayDone:
    """Charge the play (once) and report it to the artist's instance with a Listen."""
    viewer = viewer_required()
    resources = resources_of(current_app)
    fed = federation_of(resources)
    result = await in_money_transaction(
        lambda s: rp.claim(s, fed, token, viewer.user_id, resources.settings.money)
    )
    return PlayDone(
        outcome=result.outcome,
        tokens=result.tokens,
        paid_number=result.paid_number,
        owned=result.owned,
        balance=result.balance,
    )


@remote_media.route("/remote-tracks/<int:track_id>/stream", methods=["GET", "HEAD"])
async def stream(track_id: int) -> ResponseReturnValue:
    """The partner's audio from our cache, by the same rule as local tracks
    (``access.may_stream_full``): in full for an owner, the free part for a play session
    that is not charged yet and the rest once it is."""
    viewer = await current_viewer()
    resources = resources_of(current_app)
    token = request.args.get("session") or None
    async with resources.read_sessionmaker() as session:
        track = await _track(session, track_id)
        state = (
            await session.get(RemoteListenerTrack, (viewer.user_id, track.id))
            if viewer is not None
            else None
        )
        found = None
        if token is not None:
            found = (
                await session.execute(
                    select(
                        RemotePlaySession.user_id,
                        RemotePlaySession.started_at,
                        RemotePlaySession.play_id,
                    ).where(
                        RemotePlaySession.token == token,
                        RemotePlaySession.remote_track_id == track.id,
                    )
                )
            ).first()
    decision = may_stream_full(
        viewer,
        ready=Decision(True),
        free=track.free,
        own=False,
        owned=bool(state and state.owned_at),
        partner=False,
        token=token,
        play_session=SessionState(found[0], found[1], found[2] is not None) if found else None,
        now=utcnow(),
        lifetime=resources.settings.money.play_session_lifetime,
    )
    if not decision.allowed:
        raise HTTP_ERRORS.get(decision.status, Forbidden)(decision.reason)
    storage = LocalStorage(resources.settings.media_dir)
    try:
        cached = await rp.cached_audio(
            federation_of(resources),
            storage,
            track_id,
            resources.settings.media.max_upload_bytes,
            resources.settings.federation.audio_cache_bytes,
        )
    except rp.RemoteTrackError as error:
        raise Conflict(str(error)) from None
    if cached.cache_key is None or cached.cache_sha256 is None:
        raise Conflict("the partner's audio is not in the cache")
    file = MediaFile(  # not stored: the shape send_media serves from
        role=FileRole.STREAM_MP3,
        storage_key=cached.cache_key,
        mime_type=cached.cache_type or "audio/mpeg",
        sha256=cached.cache_sha256,
        created_at=cached.cached_at or utcnow(),
    )
    if token is None:
        return await send_media(file, cache="private, max-age=3600")
    gate = None
    if decision.gated and viewer is not None:
        timeline = await _timeline(cached, storage)
        gate = Gate(timeline, _charger(token, viewer.user_id), resources.clock)
    return await send_media(file, cache="private, no-store", gate=gate)


def _charger(token: str, user_id: int) -> Charger:
    resources = resources_of(current_app)
    fed = federation_of(resources)

    async def charge() -> None:
        await retrying(
            resources.sessionmaker,
            lambda session: rp.charge_session(
                session, fed, token, user_id, resources.settings.money, heard_check=False
            ),
        )

    return charge


async def _timeline(track: RemoteTrack, storage: LocalStorage) -> Timeline | None:
    """The cached file's timeline: kept with the track, made from the file on first use."""
    assert track.cache_key is not None
    timeline = stored_timeline(track.cache_timeline, track.cache_bytes or 0)
    if timeline is None:
        timeline = await read_timeline(storage.path(track.cache_key), track.cache_type or "")
        if timeline is not None:
            async with resources_of(current_app).sessionmaker() as session:
                await session.execute(
                    update(RemoteTrack)
                    .where(RemoteTrack.id == track.id, RemoteTrack.cache_key == track.cache_key)
                    .values(cache_timeline=timeline.to_json())
                )
                await session.commit()
    return timeline


@remote_api.post("/remote-tracks/<int:track_id>/buy")
@require(Scope.PLAY)
@validate_response(PlayDone)
async def buy_now(track_id: int) -> PlayDone:
    """Own a partner's track at once for what is left of 1022 tokens."""
    viewer = viewer_required()
    resources = resources_of(current_app)
    fed = federation_of(resources)

    async def work(session: AsyncSession) -> rp.RemoteClaim:
        track = await _track(session, track_id)
        return await rp.buy(session, fed, viewer.user_id, track, resources.settings.money)

    result = await in_money_transaction(work)
    return PlayDone(
        outcome=result.outcome, tokens=result.tokens, paid_number=None, owned=True,
        balance=result.balance,
    )  # fmt: skip
