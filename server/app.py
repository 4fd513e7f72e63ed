"""The Quart application factory."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

from quart import Quart, g, request

from server.config import Settings
from server.net import client_address, parse_networks
from server.resources import EXTENSION_KEY, Resources, open_resources

ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("playfair.requests")


def create_app(settings: Settings) -> Quart:
    app = Quart(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        static_url_path="/static",
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
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
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]

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

    from server.errors import register_error_handlers
    from server.web import web

    register_error_handlers(app)
    app.register_blueprint(web)
    return app


__all__ = ["create_app"]
