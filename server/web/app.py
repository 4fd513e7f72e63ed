"""The Quart application factory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from quart import Quart, g, request
from quart_schema import Info, QuartSchema

from models import ledger
from server.runtime.config import Settings
from server.runtime.net import client_address, parse_networks
from server.runtime.resources import Resources, open_resources
from server.web import i18n
from server.web.activitypub import activitypub
from server.web.api.catalogue import catalogue_api
from server.web.api.earnings import earnings_api
from server.web.api.federation import federation_api
from server.web.api.membership import membership_api
from server.web.api.playlists import playlists_api
from server.web.api.plays import payments_hooks, plays_api
from server.web.api.profiles import profiles_api
from server.web.api.remote import remote_api, remote_media
from server.web.api.uploads import UPLOAD_PATH, uploads_api
from server.web.audio_links import AudioLinkServer
from server.web.auth import current_viewer
from server.web.channel import channel
from server.web.current import EXTENSION_KEY, resources_of
from server.web.discovery import fediverse
from server.web.embed import embed
from server.web.errors import register_error_handlers
from server.web.feeds import feeds
from server.web.headers import (
    content_security_policy,
    form_targets,
    framing_allowed,
    security_headers,
)
from server.web.home import web
from server.web.input_limits import BoundedOpenAPI, LimitedRequest, install_input_limits, request_id
from server.web.media import media
from server.web.oauth_routes import oauth, well_known_oauth
from server.web.oauth_server import PlayfairAuthorizationServer
from server.web.pages.accounts import accounts
from server.web.pages.admin_accounts import admin
from server.web.pages.admin_federation import admin_federation
from server.web.pages.admin_members import admin_members
from server.web.pages.admin_money import admin_money
from server.web.pages.artist import artist_pages
from server.web.pages.listener import listener
from server.web.pages.profiles import profile_pages
from server.web.previews import SITE_TEXT, robots
from server.web.profile_media import profile_media
from server.web.sent import sent
from server.web.sessions import csrf_token, set_csrf_cookie, user_for_session
from server.web.subsonic import subsonic
from server.web.tags import tags

HERE = Path(__file__).resolve().parent

log = logging.getLogger("playfair.requests")


class PlayfairRequest(LimitedRequest):
    """Bodies are capped by server.max_body_bytes, except on the upload routes, which
    take media.max_upload_bytes and stream the body to disk themselves."""

    upload_paths: frozenset[str] = frozenset()
    upload_limit: int | None = None

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if path in self.upload_paths:
            kwargs["max_content_length"] = self.upload_limit
        super().__init__(method, scheme, path, *args, **kwargs)


def create_app(settings: Settings) -> Quart:
    app = Quart(
        __name__,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
        static_url_path="/static",
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.request_class = type(  # type: ignore[assignment]
        "PlayfairRequest",
        (PlayfairRequest,),
        {
            "upload_paths": frozenset({UPLOAD_PATH, "/dashboard/upload"}),
            "upload_limit": settings.media.max_upload_bytes,
        },
    )
    QuartSchema(
        app,
        openapi_path="/api/v1/openapi.json",
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,
        info=Info(
            title="playfair API",
            version="1",
            description="The catalogue, uploads and (later) plays of a playfair instance.",
        ),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        openapi_provider_class=BoundedOpenAPI,
    )
    app.config["PLAYFAIR_SETTINGS"] = settings
    trusted = parse_networks(settings.server.trusted_proxies)

    @app.before_serving
    async def _open() -> None:
        app.extensions[EXTENSION_KEY] = await open_resources(settings)

    @app.after_serving
    async def _close() -> None:
        resources: Resources | None = app.extensions.pop(EXTENSION_KEY, None)
        if resources is not None:
            await resources.close()

    @app.before_request
    async def _start_timer() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-Id"))

    @app.before_request
    async def _check_credentials() -> None:
        # A bad token is refused everywhere (RFC 6750 §3.1), also on public routes. The
        # OAuth endpoints read their own client credentials from the same header.
        # Subsonic's /rest/ reads its own credentials from the parameters.
        if "Authorization" in request.headers and not request.path.startswith(
            ("/oauth/", "/rest/")
        ):
            await current_viewer()

    @app.after_request
    async def _log_request(response):  # type: ignore[no-untyped-def]
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if settings.server.access_log:
            elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "fields": {
                        "ms": round(elapsed, 1),
                        "client": client_address(
                            request.remote_addr, request.headers.get("X-Forwarded-For"), trusted
                        ),
                        "request_id": g.get("request_id", ""),
                    }
                },
            )
        return response

    @app.context_processor
    async def _page_context() -> dict[str, Any]:
        user = await user_for_session()
        balance = None
        if user is not None:
            # Its own read: so templates must be rendered outside any session.
            async with resources_of(app).read_sessionmaker() as session:
                balance = await ledger.balance(session, ledger.wallet_key(user.id))
        return {"csrf_token": csrf_token, "signed_in": user, "wallet_balance": balance}

    @app.context_processor
    async def _preview_context() -> dict[str, Any]:
        # what templates/_preview.html needs for a page whose route made no link preview
        instance = settings.instance
        return {"site_base": instance.base_url, "site_name": instance.name, "site_text": SITE_TEXT}

    @app.after_request
    async def _csrf_cookie(response):  # type: ignore[no-untyped-def]
        set_csrf_cookie(response)
        return response

    https = settings.instance.base_url.startswith("https://")
    # remote posts' previews play from their servers (plain http only on lab networks)
    lab = settings.federation.allow_private_addresses
    audio_elsewhere = ("https:", "http:") if lab else ("https:",)

    @app.after_request
    async def _security_headers(response):  # type: ignore[no-untyped-def]
        framable = framing_allowed()
        csp = content_security_policy(
            remote_media_schemes=audio_elsewhere, form_targets=form_targets(), framable=framable
        )
        response.headers.update(security_headers(https=https, csp=csp, framable=framable))
        return response

    i18n.init_app(app)
    install_input_limits(app)
    register_error_handlers(app)
    app.register_blueprint(web)
    app.register_blueprint(accounts)
    app.register_blueprint(admin)
    app.register_blueprint(oauth)
    app.register_blueprint(well_known_oauth)
    app.register_blueprint(fediverse)
    app.register_blueprint(activitypub)
    app.register_blueprint(channel)
    app.register_blueprint(tags)
    app.register_blueprint(sent)
    app.register_blueprint(feeds)
    app.register_blueprint(robots)
    app.register_blueprint(embed)
    app.register_blueprint(listener)
    app.register_blueprint(artist_pages)
    app.register_blueprint(admin_members)
    app.register_blueprint(admin_money)
    app.register_blueprint(admin_federation)
    app.extensions["oauth_server"] = PlayfairAuthorizationServer()
    app.register_blueprint(media)
    app.register_blueprint(catalogue_api, url_prefix="/api/v1")
    app.register_blueprint(uploads_api, url_prefix="/api/v1")
    app.register_blueprint(membership_api, url_prefix="/api/v1")
    app.register_blueprint(federation_api, url_prefix="/api/v1")
    app.register_blueprint(remote_api, url_prefix="/api/v1")
    app.register_blueprint(playlists_api, url_prefix="/api/v1")
    app.register_blueprint(remote_media)
    app.register_blueprint(plays_api, url_prefix="/api/v1")
    app.register_blueprint(payments_hooks)
    app.register_blueprint(earnings_api, url_prefix="/api/v1")
    app.register_blueprint(profiles_api, url_prefix="/api/v1")
    app.register_blueprint(profile_pages)
    app.register_blueprint(profile_media)
    app.register_blueprint(subsonic)
    # signed audio links are answered before the framework (server/web/audio_links.py)
    app.asgi_app = AudioLinkServer(app, app.asgi_app)  # type: ignore[method-assign]
    return app


__all__ = ["create_app"]
