"""Running the web server (Hypercorn) and the worker, alone or together.

The listening socket is bound before anything else starts, so a port in use is reported
at once with one line; Hypercorn is then handed the bound socket (``fd://``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from server.runtime.config import Settings
from server.runtime.resources import open_resources
from server.runtime.sockets import bind_socket
from server.services.jobs import build_worker
from server.services.media.gated import StreamCut
from server.services.media.storage import sweep_leftovers
from server.web.app import create_app

log = logging.getLogger("playfair")


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def serve(
    settings: Settings,
    *,
    with_worker: bool,
    announce: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop``); with the worker in the same process if asked."""
    sock = bind_socket(settings.server.host, settings.server.port)
    await asyncio.to_thread(sweep_leftovers, settings.media_dir)
    host, port = sock.getsockname()[:2]
    address = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if settings.instance.base_url.endswith(":0"):
        # Derived from a bind to port 0: the real port is known only now.
        instance = settings.instance.model_copy(update={"base_url": address})
        settings = settings.model_copy(update={"instance": instance})
    stop = stop or asyncio.Event()
    _install_signal_handlers(stop)

    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = _hypercorn_errors()
    config.graceful_timeout = settings.server.shutdown_timeout.total_seconds()
    config.include_server_header = False

    app = create_app(settings)
    worker_task: asyncio.Task[None] | None = None

    @app.before_serving
    async def _announce() -> None:
        nonlocal worker_task
        if with_worker:
            worker_resources = await open_resources(settings)
            worker = build_worker(worker_resources)

            async def _run_worker() -> None:
                try:
                    await worker.run_forever(stop)
                finally:
                    await worker_resources.close()

            worker_task = asyncio.create_task(_run_worker(), name="worker")
        announce(
            f"playfair is running at {address}/ (public address {settings.instance.base_url}/"
            f"{', with the worker' if with_worker else ''}); press Ctrl+C to stop"
        )

    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task


class _DeliberateCuts(logging.Filter):
    """Hypercorn logs every response an app ends early as an error with a traceback; a
    stream cut at the free part (StreamCut) is deliberate and logged where it happens."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCut))


def _hypercorn_errors() -> logging.Logger:
    logger = logging.getLogger("hypercorn.error")
    if not any(isinstance(existing, _DeliberateCuts) for existing in logger.filters):
        logger.addFilter(_DeliberateCuts())
    return logger


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    _install_signal_handlers(stop)
    await asyncio.to_thread(sweep_leftovers, settings.media_dir)
    resources = await open_resources(settings)
    try:
        await build_worker(resources).run_forever(stop)
    finally:
        await resources.close()
