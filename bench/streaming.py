"""Streaming: 64 concurrent clients fetch random 256 KiB ranges of a 10 MB file for 15 s
from playfair (`playfair serve`, one process) and from nginx (one worker) serving the
same file in the same run; MB/s for each, the ratio, and p50/p99 time to first byte.

The client is a small asyncio HTTP/1.1 client on raw sockets (keep-alive, one
connection per simulated client), so that the measuring side costs as little as it can;
it shares the machine's two cores with the server it measures, as it does with nginx."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.setup import init_instance, instance_env
from models.catalogue import (
    FileRole,
    MediaFile,
    PriceModel,
    Release,
    Track,
    TrackStatus,
    Visibility,
)
from models.database import create_engine, create_sessionmaker
from models.users import Role
from server.runtime.resources import database_options
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from tests.postgres import free_port
from tests.processes import PlayfairProcess

FILE_BYTES = 10 * 1000 * 1000
RANGE_BYTES = 256 * 1024
CLIENTS = 64
SECONDS = 15.0


async def _client(host: str, port: int, path: str, deadline: float, ttfb: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    received = 0
    rng = random.Random()  # noqa: S311 - load pattern, not secrets
    try:
        while time.perf_counter() < deadline:
            start = rng.randrange(0, FILE_BYTES - RANGE_BYTES)
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Range: bytes={start}-{start + RANGE_BYTES - 1}\r\n\r\n"
            )
            sent = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            ttfb.append(time.perf_counter() - sent)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if not head.startswith(b"HTTP/1.1 206"):
                raise RuntimeError(head.decode(errors="replace").splitlines()[0])
            await reader.readexactly(length)
            received += length
    finally:
        writer.close()
    return received


async def _load(url: str) -> tuple[float, float, float]:
    parts = urlsplit(url)
    ttfb: list[float] = []
    deadline = time.perf_counter() + SECONDS
    started = time.perf_counter()
    totals = await asyncio.gather(
        *(_client(parts.hostname or "", parts.port or 80, parts.path, deadline, ttfb)
          for _ in range(CLIENTS))
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    ttfb.sort()
    p99 = ttfb[min(len(ttfb) - 1, int(len(ttfb) * 0.99))]
    return sum(totals) / elapsed / 1e6, statistics.median(ttfb) * 1000, p99 * 1000


async def _make_track(env: dict[str, str], folder: Path) -> tuple[int, Path]:
    settings = init_instance(env)
    data = os.urandom(FILE_BYTES)
    key = "tracks/bench/stream.opus"
    path = settings.media_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    engine = create_engine(database_options(settings))
    try:
        async with create_sessionmaker(engine)() as session:
            user = await create_user(session, "bench", "a long password", Role.ARTIST)
            artist = await create_artist(session, "benchartist", user)
            release = Release(artist_id=artist.id, title="Bench", slug="bench",
                              visibility=Visibility.PUBLIC)  # fmt: skip
            session.add(release)
            await session.flush()
            track = Track(release_id=release.id, artist_id=artist.id, title="Ten megabytes",
                          slug="ten", status=TrackStatus.READY, price_model=PriceModel.FREE,
                          duration_ms=600_000)  # fmt: skip
            session.add(track)
            await session.flush()
            session.add(MediaFile(track_id=track.id, role=FileRole.STREAM_OPUS, storage_key=key,
                                  mime_type="audio/ogg; codecs=opus", format="opus",
                                  size_bytes=FILE_BYTES, sha256="0" * 64))  # fmt: skip
            await session.commit()
            return track.id, path
    finally:
        await engine.dispose()


def _start_nginx(
    folder: Path, file: Path, *, upstream: str | None = None, media: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """nginx serving ``file`` at /file; with ``upstream``, also proxying everything else
    to playfair and serving its X-Accel-Redirect answers from ``media`` under /_media/."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    root = folder / f"nginx-{port}"
    (root / "logs").mkdir(parents=True)
    conf = root / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    proxy = ""
    if upstream and media:
        proxy = (
            f"location / {{ proxy_pass {upstream}; proxy_http_version 1.1;"
            ' proxy_set_header Connection ""; proxy_set_header Range $http_range;'
            " proxy_set_header If-Range $http_if_range; }\n"
            f"location /_media/ {{ internal; alias {media}/; }}\n"
        )
    conf.write_text(
        f"{user}\nworker_processes 1;\ndaemon off;\nerror_log {root}/logs/error.log;\n"
        f"pid {root}/nginx.pid;\nevents {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n"
        f"  server {{ listen 127.0.0.1:{port}; location = /file {{ alias {file}; }}\n"
        f"  {proxy} }} }}\n"
    )
    process = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf)], stderr=subprocess.PIPE)
    return process, f"http://127.0.0.1:{port}"


async def _wait_for(url: str) -> None:
    parts = urlsplit(url)
    for _ in range(200):
        try:
            _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"{url} did not come up")


async def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="playfair-bench-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        env = instance_env(folder / "data")
        track_id, file = await _make_track(env, folder)
        server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
        try:
            address = server.address()
            ours = await _load(f"{address}/tracks/{track_id}/stream")
        finally:
            server.stop()
        nginx, nginx_url = _start_nginx(folder, file)
        try:
            await _wait_for(nginx_url)
            theirs = await _load(nginx_url + "/file")
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=30)
        accel_env = {**env, "PLAYFAIR_MEDIA__X_ACCEL_REDIRECT": "/_media/"}
        server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], accel_env)
        try:
            address = server.address()
            nginx, nginx_url = _start_nginx(folder, file, upstream=address, media=file.parents[2])
            try:
                await _wait_for(nginx_url)
                accel = await _load(f"{nginx_url}/tracks/{track_id}/stream")
            finally:
                nginx.send_signal(signal.SIGQUIT)
                nginx.wait(timeout=30)
        finally:
            server.stop()
    figures = [
        f"playfair: {ours[0]:7.1f} MB/s, time to first byte p50 {ours[1]:6.1f} ms, "
        f"p99 {ours[2]:6.1f} ms",
        f"reference, nginx (1 worker, sendfile): {theirs[0]:7.1f} MB/s, "
        f"time to first byte p50 {theirs[1]:6.1f} ms, p99 {theirs[2]:6.1f} ms",
        f"playfair / nginx: {ours[0] / theirs[0]:.2f} of the throughput",
        f"playfair behind nginx with X-Accel-Redirect: {accel[0]:7.1f} MB/s, "
        f"time to first byte p50 {accel[1]:6.1f} ms, p99 {accel[2]:6.1f} ms "
        f"({accel[0] / theirs[0]:.2f} of nginx alone)",
        f"({CLIENTS} clients, random {RANGE_BYTES // 1024} KiB ranges of a "
        f"{FILE_BYTES // 1_000_000} MB file, {SECONDS:g} s each)",
    ]
    return figures
