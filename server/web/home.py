"""The web pages and the health check."""

from __future__ import annotations

from quart import Blueprint, current_app, jsonify, render_template
from quart.typing import ResponseReturnValue
from sqlalchemy import func, select, text

from models.catalogue import Artist, FileRole, MediaFile, Release, Visibility
from models.users import User
from server.web.current import resources_of
from server.web.previews import home_preview

web = Blueprint("web", __name__)


@web.get("/healthz")
async def healthz() -> ResponseReturnValue:
    resources = resources_of(current_app)
    try:
        async with resources.read_engine.connect() as connection:  # never the write lock
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        return jsonify({"status": "unavailable", "database": type(exc).__name__}), 503
    return jsonify({"status": "ok", "database": "ok"})


@web.get("/")
async def home() -> ResponseReturnValue:
    """New releases, staff picks and featured artists (the full site arrives with the web
    issue; this page already shows what the catalogue holds)."""
    resources = resources_of(current_app)
    instance = resources.settings.instance
    public = Release.visibility == Visibility.PUBLIC
    newest = (
        select(Release, Artist)
        .join(Artist, Artist.id == Release.artist_id)
        .where(public)
        .order_by(Release.published_at.desc(), Release.id.desc())
    )
    async with resources.read_sessionmaker() as session:
        new_releases = (await session.execute(newest.limit(12))).all()
        staff_picks = (await session.execute(newest.where(Release.staff_pick).limit(6))).all()
        featured = (
            await session.scalars(
                select(Artist).where(Artist.featured).order_by(Artist.display_name).limit(12)
            )
        ).all()
        shown = {release.id for release, _artist in [*new_releases, *staff_picks]}
        covers = set(
            await session.scalars(
                select(MediaFile.release_id).where(
                    MediaFile.role == FileRole.COVER, MediaFile.release_id.in_(shown)
                )
            )
        )
        accounts = await session.scalar(select(func.count()).select_from(User))
    return await render_template(
        "home.html",
        instance=instance,
        new_releases=new_releases,
        staff_picks=staff_picks,
        featured=featured,
        covers=covers,
        accounts=accounts or 0,
        preview=home_preview(instance.base_url, instance.name),
    )


@web.get("/manifest.webmanifest")
async def manifest() -> ResponseReturnValue:
    """Installable: a web app manifest (name, icons, colours, start page)."""
    instance = resources_of(current_app).settings.instance
    document = {
        "name": instance.name,
        "short_name": instance.name[:12],
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#fbfaf7",
        "theme_color": "#7a2e8f",
        "icons": [
            {"src": "/static/icon.svg", "sizes": "any", "type": "image/svg+xml"},
            {"src": "/static/icon.svg", "sizes": "any", "type": "image/svg+xml",
             "purpose": "maskable"},
        ],
    }  # fmt: skip
    response = jsonify(document)
    response.headers["Content-Type"] = "application/manifest+json"
    return response


@web.get("/sw.js")
async def service_worker() -> ResponseReturnValue:
    """The service worker, served from the root so that its scope is the whole site."""
    response = await current_app.send_static_file("sw.js")
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@web.get("/offline")
async def offline() -> ResponseReturnValue:
    """What the service worker shows when a page cannot be reached."""
    return await render_template(
        "offline.html", instance=resources_of(current_app).settings.instance
    )
