"""Avatars and headers over HTTP (docs/architecture.md#actor-profiles).

Each version has its own URL (``/artists/{name}/avatar/{version}.jpg``, the instance
actor's under ``/actor/``), so it is cached for a year as immutable; a replaced version
answers 404.
"""

from __future__ import annotations

import asyncio

from quart import Blueprint, Response, current_app, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound
from werkzeug.http import http_date

from models.profiles import INSTANCE_ACTOR
from server.services.media.storage import LocalStorage
from server.services.profiles import image_role, shown_image
from server.web.current import resources_of

profile_media = Blueprint("profile_media", __name__)
CACHE = "public, max-age=31536000, immutable"
ROLES = "<any(avatar, header):role>"


@profile_media.route(
    f"/<any(artists, labels):kind>/<name>/{ROLES}/<int:version>.jpg", methods=["GET", "HEAD"]
)
async def actor_image(kind: str, name: str, role: str, version: int) -> ResponseReturnValue:
    return await _send(name.lower(), role, version)


@profile_media.route(f"/actor/{ROLES}/<int:version>.jpg", methods=["GET", "HEAD"])
async def instance_image(role: str, version: int) -> ResponseReturnValue:
    return await _send(INSTANCE_ACTOR, role, version)


async def _send(actor: str, role: str, version: int) -> ResponseReturnValue:
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        row = await shown_image(session, actor, image_role(role), version)
    if row is None or row.storage_key is None or row.sha256 is None:
        raise NotFound("there is no such picture (a newer one may have replaced it)")
    etag = f'"{row.sha256[:32]}"'
    headers = {"ETag": etag, "Cache-Control": CACHE, "Content-Type": row.mime_type}
    if row.ready_at is not None:
        headers["Last-Modified"] = http_date(row.ready_at)
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", 304, headers)
    path = LocalStorage(resources.settings.media_dir).path(row.storage_key)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NotFound("the picture is missing from the media store") from None
    response = Response(b"" if request.method == "HEAD" else data, 200, headers)
    response.automatically_set_content_length = False  # for HEAD, what a GET would send
    response.headers["Content-Length"] = str(len(data))
    return response
