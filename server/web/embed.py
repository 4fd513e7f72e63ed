"""The embeddable player and oEmbed (docs/architecture.md#outside-the-fediverse).

``/embed/releases/{id}`` and ``/embed/tracks/{id}`` are small pages without the site's
chrome, made to be framed by any site (the only responses whose policy allows it:
``server/web/headers.py`` :func:`allow_framing`). They play exactly what an anonymous
visitor may hear (``server/services/media/access.py``): a free track in full, any other
its public preview; they neither set nor read a cookie of their own and show nothing of
who is signed in. ``/oembed`` answers oEmbed 1.0 ``rich`` documents whose html is an
iframe of the embed page, for the public release and track pages of this instance only.
"""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, jsonify, render_template, request
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.exceptions import NotImplemented as NotImplementedHere

from federation.objects import ReleaseInfo, TrackInfo
from federation.urls import cover_url, embed_url, page_url, preview_url, stream_url
from models.catalogue import FileRole, MediaFile, PriceModel
from server.runtime.values import whole_number
from server.services.activitypub.publish import load_release_info, load_track_info
from server.services.media.images import picture_size
from server.services.media.storage import LocalStorage
from server.web.current import resources_of
from server.web.headers import allow_framing
from server.web.previews import EMBED_SIZES

embed = Blueprint("embed", __name__)

CACHE = "public, max-age=300"
MAX_SIDE = 4000
# Our own page URLs that have an embed: /releases/{id} and /tracks/{id}.
_PAGE_PATH = re.compile(r"^/(releases|tracks)/([0-9]{1,18})/?$")


def audio_source(track: TrackInfo) -> str | None:
    """What an anonymous visitor may hear of ``track`` (a path on this origin): a free
    track whole, any other track's preview; None when there is nothing to play yet."""
    if track.price_model == PriceModel.FREE.value:
        return stream_url("", track.id)
    if track.preview_type:
        return preview_url("", track.id)
    return None


async def _release_of_track(session: AsyncSession, track_id: int) -> tuple[ReleaseInfo, TrackInfo]:
    found = await load_track_info(session, track_id)
    if found is None:
        raise NotFound("there is no such public track here")
    return found


async def _page(
    release: ReleaseInfo, tracks: tuple[TrackInfo, ...], kind: str, key: int
) -> Response:
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    body = await render_template(
        "embed.html",
        release=release,
        tracks=[(track, audio_source(track)) for track in tracks],
        single=kind == "tracks",
        page=page_url(base, kind, key),
        instance=resources.settings.instance,
    )
    allow_framing()
    return Response(body, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": CACHE})


@embed.get("/embed/releases/<int:release_id>")
async def release_embed(release_id: int) -> ResponseReturnValue:
    async with resources_of(current_app).read_sessionmaker() as session:
        info = await load_release_info(session, release_id)
    if info is None:
        raise NotFound("there is no such public release here")
    return await _page(info, info.tracks, "releases", release_id)


@embed.get("/embed/tracks/<int:track_id>")
async def track_embed(track_id: int) -> ResponseReturnValue:
    async with resources_of(current_app).read_sessionmaker() as session:
        info, track = await _release_of_track(session, track_id)
    return await _page(info, (track,), "tracks", track_id)


def _limit(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    value = whole_number(raw, low=1, high=100_000)
    if value is None:
        raise BadRequest(f"{name} must be a whole number of pixels from 1")
    return value


def _our_page(url: str, base_url: str) -> tuple[str, int]:
    """(kind, id) of one of our release or track pages, else 404."""
    try:
        parts = urlsplit(url)
        ours = urlsplit(base_url)
    except ValueError:
        raise NotFound("that is not a URL of this instance") from None
    same = (parts.scheme.lower(), parts.netloc.lower()) == (ours.scheme, ours.netloc)
    match = _PAGE_PATH.match(parts.path) if same else None
    if match is None:
        raise NotFound("only this instance's release and track pages can be embedded")
    return match.group(1), int(match.group(2))


async def _cover_size(session: AsyncSession, release_id: int) -> tuple[int, int] | None:
    key = await session.scalar(
        select(MediaFile.storage_key).where(
            MediaFile.release_id == release_id, MediaFile.role == FileRole.COVER
        )
    )
    if key is None:
        return None
    path = LocalStorage(resources_of(current_app).settings.media_dir).path(key)

    def measure(file: Path) -> tuple[int, int] | None:
        size = picture_size(file)
        return size if size is not None and 0 < max(size) <= MAX_SIDE else None

    return await asyncio.to_thread(measure, path)


@embed.get("/oembed")
async def oembed() -> ResponseReturnValue:
    fmt = request.args.get("format", "json")
    if fmt != "json":
        raise NotImplementedHere(f"oEmbed is served as json here, not {fmt!r}")
    url = request.args.get("url", "")
    if not url:
        raise BadRequest("url is required: the address of a release or track page")
    max_width, max_height = _limit("maxwidth"), _limit("maxheight")
    resources = resources_of(current_app)
    settings = resources.settings.instance
    kind, key = _our_page(url, settings.base_url)
    async with resources.read_sessionmaker() as session:
        if kind == "releases":
            info = await load_release_info(session, key)
            if info is None:
                raise NotFound("there is no such public release here")
            title = info.title
        else:
            info, track = await _release_of_track(session, key)
            title = track.title
        thumbnail = await _cover_size(session, info.id) if info.cover_type else None
    width, height = EMBED_SIZES[kind]
    width, height = min(width, max_width or width), min(height, max_height or height)
    player = embed_url(settings.base_url, kind, key)
    document: dict[str, Any] = {
        "version": "1.0",
        "type": "rich",
        "provider_name": settings.name,
        "provider_url": f"{settings.base_url}/",
        "title": title,
        "author_name": info.artist_display_name,
        "author_url": page_url(settings.base_url, "artists", info.artist_name),
        "width": width,
        "height": height,
        "cache_age": 3600,
        "html": (
            f'<iframe src="{html.escape(player)}" width="{width}" height="{height}" '
            f'title="{html.escape(title)}" loading="lazy" allow="autoplay" '
            'style="border:0"></iframe>'
        ),
    }
    if thumbnail is not None:
        document["thumbnail_url"] = cover_url(settings.base_url, info.id)
        document["thumbnail_width"], document["thumbnail_height"] = thumbnail
    response = jsonify(document)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = CACHE
    return response
