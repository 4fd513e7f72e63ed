"""Discovery for the fediverse: WebFinger, host-meta, NodeInfo, and the instance actor.

(Artist, label and listener actor documents, inboxes and delivery arrive with the rest
of the federation issue.)"""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from quart import Blueprint, Response, current_app, jsonify, request
from quart.typing import ResponseReturnValue
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest, NotFound

from federation.discovery import (
    ACTIVITY_JSON,
    Usage,
    host_meta,
    host_of,
    instance_actor,
    nodeinfo,
    nodeinfo_links,
    parse_acct,
    webfinger,
)
from federation.http import VERSION
from federation.objects import image_object
from models.accounts import WebSession
from models.base import utcnow
from models.catalogue import Release, Visibility
from models.handles import Handle, HandleKind
from models.profiles import INSTANCE_ACTOR
from models.users import AccountStatus, User
from server.runtime.config import SignupMode
from server.services.profiles import profile_view
from server.web.current import resources_of

fediverse = Blueprint("fediverse", __name__)
PATHS = {HandleKind.ARTIST: "artists", HandleKind.LABEL: "labels", HandleKind.USER: "users"}


def _json(document: object, content_type: str) -> Response:
    response = jsonify(document)
    response.headers["Content-Type"] = content_type
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@fediverse.get("/.well-known/webfinger")
async def webfinger_route() -> ResponseReturnValue:
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    resource = request.args.get("resource")
    if not resource:
        raise BadRequest("the resource parameter is missing (acct:name@host)")
    if resource in (f"{base}/actor", f"acct:{host_of(base)}@{host_of(base)}"):
        document = webfinger(base, host_of(base), f"{base}/actor", f"{base}/")
        return _json(document, "application/jrd+json")
    parsed = parse_acct(resource)
    if resource.startswith(base + "/"):
        kind_path, _, name = resource[len(base) + 1 :].partition("/")
        parsed = (name.lower(), host_of(base)) if kind_path in PATHS.values() else None
    if parsed is None or parsed[1] != host_of(base).lower():
        raise NotFound(f"{resource!r} is not an account on this instance")
    async with resources.read_sessionmaker() as session:
        handle = await session.get(Handle, parsed[0])
    if handle is None:
        raise NotFound(f"{resource!r} is not an account on this instance")
    url = f"{base}/{PATHS[handle.kind]}/{handle.name}"
    return _json(webfinger(base, handle.name, url, url), "application/jrd+json")


@fediverse.get("/.well-known/host-meta")
async def host_meta_route() -> ResponseReturnValue:
    base = resources_of(current_app).settings.instance.base_url
    return Response(host_meta(base), 200, {"Content-Type": "application/xrd+xml"})


@fediverse.get("/.well-known/nodeinfo")
async def nodeinfo_index() -> ResponseReturnValue:
    base = resources_of(current_app).settings.instance.base_url
    return _json(nodeinfo_links(base), "application/json")


@fediverse.get("/nodeinfo/<version>")
async def nodeinfo_route(version: str) -> ResponseReturnValue:
    if version not in ("2.0", "2.1"):
        raise NotFound("NodeInfo 2.0 and 2.1 are served")
    resources = resources_of(current_app)
    now = utcnow()

    async def active_since(days: int) -> int:
        return (
            await session.scalar(
                select(func.count(func.distinct(WebSession.user_id))).where(
                    WebSession.last_seen_at >= now - timedelta(days=days)
                )
            )
            or 0
        )

    async with resources.read_sessionmaker() as session:
        users = (
            await session.scalar(
                select(func.count()).select_from(User).where(User.status == AccountStatus.ACTIVE)
            )
            or 0
        )
        posts = (
            await session.scalar(
                select(func.count())
                .select_from(Release)
                .where(Release.visibility == Visibility.PUBLIC)
            )
            or 0
        )
        usage = Usage(users, await active_since(30), await active_since(180), posts)
    settings = resources.settings
    document = nodeinfo(
        version,
        VERSION,
        settings.instance.base_url,
        settings.instance.name,
        settings.accounts.signup is SignupMode.OPEN,
        usage,
    )
    profile = f'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/{version}#"'
    return _json(document, profile)


@fediverse.get("/actor")
async def actor_route() -> ResponseReturnValue:
    resources = resources_of(current_app)
    keys = resources.keys
    base = resources.settings.instance.base_url
    async with resources.read_sessionmaker() as session:
        profile = await profile_view(session, base, None, INSTANCE_ACTOR)
    document = instance_actor(
        resources.settings.instance.base_url,
        resources.settings.instance.name,
        keys.rsa.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        keys.rsa_name,
        keys.ed25519.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        keys.ed25519_name,
        icon=image_object(profile.icon_url, profile.icon_type),
        image=image_object(profile.image_url, profile.image_type),
    )
    return _json(document, ACTIVITY_JSON)
