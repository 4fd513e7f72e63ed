"""The federation API: following (here and on other servers), the feed, a release's
fediverse conversation, follow requests for artists who approve followers, and the
admins' deliveries, domain policies, actor blocks and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, request
from quart_schema import validate_request, validate_response
from sqlalchemy import select
from werkzeug.exceptions import BadRequest, Forbidden, NotFound, UnprocessableEntity

from models.federation import (
    DeliveryState,
    DomainPolicy,
    DomainPolicyKind,
    Interaction,
    RemoteActor,
    Report,
)
from models.tokens import Scope
from server.services.activitypub import follows as following
from server.services.activitypub.context import Federation, federation_of
from server.services.activitypub.delivery import replay
from server.services.activitypub.moderation import (
    ModerationError,
    block_actor,
    list_deliveries,
    remove_domain_policy,
    set_domain_policy,
)
from server.services.activitypub.remote import ResolveError, resolve
from server.web.api.earnings import own_artist
from server.web.auth import require, viewer_required
from server.web.current import resources_of

federation_api = Blueprint("federation_api", __name__)


class FollowIn(BaseModel):
    account: str = Field(
        min_length=1, max_length=2048, description="@name@host, an actor URL, or a local name"
    )


class FollowOut(BaseModel):
    id: int
    state: str
    actor: str
    handle: str
    name: str
    local: bool


class FollowList(BaseModel):
    items: list[FollowOut]


class ActorOut(BaseModel):
    id: str
    type: str
    handle: str
    name: str
    summary_html: str
    url: str | None
    icon_url: str | None


class FeedItemOut(BaseModel):
    uri: str
    author: str
    author_handle: str
    title: str | None
    content_html: str
    url: str | None
    published: datetime
    previews: list[dict[str, Any]]
    cover: str | None
    local_release_id: int | None
    release_uri: str | None


class Feed(BaseModel):
    items: list[FeedItemOut]


class ReplyOut(BaseModel):
    author: str
    author_url: str | None
    content_html: str
    published: datetime


class Conversation(BaseModel):
    likes: int
    boosts: int
    replies: list[ReplyOut]


class FollowRequestOut(BaseModel):
    id: int
    actor: str
    handle: str
    name: str


class FollowRequests(BaseModel):
    items: list[FollowRequestOut]


class DeliveryOut(BaseModel):
    id: int
    activity: str
    type: str
    inbox: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    stuck: bool  # delivering past its lease (its worker stopped): a replay takes it


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class ReplayIn(BaseModel):
    ids: list[int] | None = Field(default=None, description="null: every failed delivery")


class Replayed(BaseModel):
    replayed: int


class DomainIn(BaseModel):
    domain: str = Field(min_length=1, max_length=255)
    policy: DomainPolicyKind
    reason: str = Field(default="", max_length=2000)


class DomainOut(BaseModel):
    domain: str
    policy: str
    reason: str


class DomainList(BaseModel):
    items: list[DomainOut]


class ActorBlockIn(BaseModel):
    actor: str = Field(min_length=8, max_length=2048)
    reason: str = Field(default="", max_length=2000)


class ReportOut(BaseModel):
    id: int
    reporter: str
    objects: list[str]
    content: str
    created_at: datetime


class ReportList(BaseModel):
    items: list[ReportOut]


def _federation() -> Federation:
    return federation_of(resources_of(current_app))


def _admin() -> None:
    if not viewer_required().is_admin:
        raise Forbidden("this is for the instance's admins")


@federation_api.post("/follows")
@require(Scope.WRITE)
@validate_request(FollowIn)
@validate_response(FollowOut, 201)
async def create_follow(data: FollowIn) -> tuple[FollowOut, int]:
    viewer = viewer_required()
    try:
        made = await following.follow(_federation(), viewer.username, data.account)
    except following.FollowError as error:
        raise UnprocessableEntity(str(error)) from None
    out = FollowOut(
        id=made.follow.id,
        state=made.follow.state.value,
        actor=made.actor_uri,
        handle=made.handle,
        name=made.name,
        local=made.local,
    )
    return out, 201


@federation_api.get("/follows")
@require(Scope.READ)
@validate_response(FollowList)
async def list_follows() -> FollowList:
    viewer = viewer_required()
    fed = _federation()
    async with fed.read_sessionmaker() as session:
        rows = await following.list_follows(session, fed, viewer.username)
    return FollowList(items=[FollowOut(**row) for row in rows])


@federation_api.delete("/follows/<int:follow_id>")
@require(Scope.WRITE)
async def delete_follow(follow_id: int) -> tuple[str, int]:
    viewer = viewer_required()
    if not await following.unfollow(_federation(), viewer.username, follow_id):
        raise NotFound("you do not follow anybody by that follow id")
    return "", 204


@federation_api.get("/resolve")
@require(Scope.WRITE)  # it fetches the actor from its server and keeps a copy
@validate_response(ActorOut)
async def resolve_actor() -> ActorOut:
    query = request.args.get("q", "").strip()
    if not query or len(query) > 2048:
        raise BadRequest("q must be @name@host or an actor URL")
    try:
        actor = await resolve(_federation(), query)
    except ResolveError as error:
        raise UnprocessableEntity(str(error)) from None
    return ActorOut(
        id=actor.uri,
        type=actor.type,
        handle=following.remote_handle(actor),
        name=actor.name,
        summary_html=actor.summary_html,
        url=actor.url,
        icon_url=actor.icon_url,
    )


@federation_api.get("/feed")
@require(Scope.READ)
@validate_response(Feed)
async def feed() -> Feed:
    viewer = viewer_required()
    fed = _federation()
    async with fed.read_sessionmaker() as session:
        items = await following.feed(session, fed, viewer.username)
    return Feed(items=[FeedItemOut(**item.__dict__) for item in items])


@federation_api.get("/releases/<int:release_id>/conversation")
@validate_response(Conversation)
async def conversation(release_id: int) -> Conversation:
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = (
            await session.execute(
                select(Interaction, RemoteActor)
                .join(RemoteActor, RemoteActor.id == Interaction.actor_id)
                .where(Interaction.release_id == release_id)
                .order_by(Interaction.published_at)
            )
        ).all()
    kinds = [interaction.kind.value for interaction, _ in rows]
    return Conversation(
        likes=kinds.count("like"),
        boosts=kinds.count("announce"),
        replies=[
            ReplyOut(
                author=actor.name or actor.uri,
                author_url=actor.url or actor.uri,
                content_html=interaction.content_html,
                published=interaction.published_at,
            )
            for interaction, actor in rows
            if interaction.kind.value == "reply"
        ],
    )


async def _own_artist(name: str) -> str:
    refusal = "only the artist's own account answers its follow requests"
    return (await own_artist(name, refusal)).name


@federation_api.get("/artists/<name>/follow-requests")
@require(Scope.READ)
@validate_response(FollowRequests)
async def follow_requests(name: str) -> FollowRequests:
    artist = await _own_artist(name)
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = await following.pending_followers(session, _federation(), artist)
    return FollowRequests(
        items=[
            FollowRequestOut(id=ask.follow.id, actor=ask.actor, handle=ask.handle, name=ask.name)
            for ask in rows
        ]
    )


@federation_api.post("/artists/<name>/follow-requests/<int:follow_id>/<any(accept, reject):verb>")
@require(Scope.WRITE)
async def answer_follow_request(name: str, follow_id: int, verb: str) -> tuple[str, int]:
    artist = await _own_artist(name)
    if not await following.answer_request(_federation(), artist, follow_id, verb == "accept"):
        raise NotFound("there is no pending follow request by that id")
    return "", 204


@federation_api.get("/admin/deliveries")
@require(Scope.ADMIN)
@validate_response(DeliveryList)
async def deliveries() -> DeliveryList:
    _admin()
    raw = request.args.get("state")
    try:
        state = DeliveryState(raw) if raw else None
    except ValueError:
        known = ", ".join(s.value for s in DeliveryState)
        raise BadRequest(f"state must be one of {known}") from None
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = await list_deliveries(session, state)
    return DeliveryList(items=[DeliveryOut(**row.__dict__) for row in rows])


@federation_api.post("/admin/deliveries/replay")
@require(Scope.ADMIN)
@validate_request(ReplayIn)
@validate_response(Replayed)
async def replay_deliveries(data: ReplayIn) -> Replayed:
    _admin()
    async with resources_of(current_app).sessionmaker() as session:
        return Replayed(replayed=await replay(session, data.ids))


@federation_api.get("/admin/domains")
@require(Scope.ADMIN)
@validate_response(DomainList)
async def domains() -> DomainList:
    _admin()
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = (await session.scalars(select(DomainPolicy).order_by(DomainPolicy.domain))).all()
    return DomainList(
        items=[DomainOut(domain=r.domain, policy=r.policy.value, reason=r.reason) for r in rows]
    )


@federation_api.post("/admin/domains")
@require(Scope.ADMIN)
@validate_request(DomainIn)
@validate_response(DomainOut, 201)
async def add_domain(data: DomainIn) -> tuple[DomainOut, int]:
    _admin()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            row = await set_domain_policy(session, data.domain, data.policy, data.reason)
        except ModerationError as error:
            raise UnprocessableEntity(str(error)) from None
        return DomainOut(domain=row.domain, policy=row.policy.value, reason=row.reason), 201


@federation_api.delete("/admin/domains/<domain>")
@require(Scope.ADMIN)
async def delete_domain(domain: str) -> tuple[str, int]:
    _admin()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            removed = await remove_domain_policy(session, domain)
        except ModerationError as error:
            raise UnprocessableEntity(str(error)) from None
    if not removed:
        raise NotFound(f"there is no policy for {domain!r}")
    return "", 204


@federation_api.post("/admin/actor-blocks")
@require(Scope.ADMIN)
@validate_request(ActorBlockIn)
async def add_actor_block(data: ActorBlockIn) -> tuple[dict[str, str], int]:
    _admin()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await block_actor(session, data.actor, data.reason)
        except ModerationError as error:
            raise UnprocessableEntity(str(error)) from None
    return {"blocked": data.actor}, 201


@federation_api.get("/admin/reports")
@require(Scope.ADMIN)
@validate_response(ReportList)
async def reports() -> ReportList:
    _admin()
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = (await session.scalars(select(Report).order_by(Report.id.desc()).limit(200))).all()
    return ReportList(
        items=[
            ReportOut(
                id=r.id,
                reporter=r.reporter_uri,
                objects=r.objects,
                content=r.content,
                created_at=r.created_at,
            )
            for r in rows
        ]
    )


class PostRef(BaseModel):
    uri: str = Field(min_length=8, max_length=2048, description="the post's id, from the feed")


class ReplyIn(PostRef):
    content: str = Field(min_length=1, max_length=5000, description="plain text")


class Sent(BaseModel):
    id: str


@federation_api.post("/feed/like")
@require(Scope.WRITE)
@validate_request(PostRef)
@validate_response(Sent, 201)
async def like_post(data: PostRef) -> tuple[Sent, int]:
    try:
        uri = await following.like(_federation(), viewer_required().username, data.uri)
    except following.FollowError as error:
        raise NotFound(str(error)) from None
    return Sent(id=uri), 201


@federation_api.post("/feed/reply")
@require(Scope.WRITE)
@validate_request(ReplyIn)
@validate_response(Sent, 201)
async def reply_to_post(data: ReplyIn) -> tuple[Sent, int]:
    try:
        uri = await following.reply(
            _federation(), viewer_required().username, data.uri, data.content
        )
    except following.FollowError as error:
        raise NotFound(str(error)) from None
    return Sent(id=uri), 201
