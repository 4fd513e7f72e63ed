"""Streaming: 64 concurrent clients read one 10 MB file for 10 s in two shapes (random
256 KiB ranges, as players seek; the whole file, as players start a track), from
playfair (`playfair serve`, one process) in each way it serves audio, and from nginx (one
worker, sendfile) serving the same file in the same run: MB/s, the ratio to nginx, and
p50/p99 time to first byte.

The ways: a signed audio link (the stream route redirects once, then the link is served
by playfair's audio layer without the framework or the database); the stream route itself
(`media.audio_links = "serve"`, every range decided by the access rules); behind the nginx
site `playfair nginx-site` prints (the link checked and served by nginx alone); and the
stream route behind nginx with X-Accel-Redirect.

The client is a small asyncio HTTP/1.1 client on raw sockets (keep-alive, one
connection per simulated client), so that the measuring side costs as little as it can;
it shares the machine's two cores with the server it measures, as it does with nginx."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
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
from server.runtime.config import Settings
from server.runtime.instance import read_secret
from server.runtime.nginx_site import NginxSite, nginx_site
from server.runtime.resources import database_options
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.services.media.links import TYPES, link_secret
from tests.nginx import start_nginx
from tests.postgres import free_port
from tests.processes import PlayfairProcess

FILE_BYTES = 10 * 1000 * 1000
RANGE_BYTES = 256 * 1024
CLIENTS = 64
SECONDS = 10.0
READ = 1024 * 1024


@dataclass(frozen=True)
class Figure:
    mb_per_s: float
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    requests_per_s: float

    def line(self) -> str:
        return (
            f"{self.mb_per_s:7.1f} MB/s ({self.requests_per_s:6.0f} req/s), time to first byte "
            f"p50 {self.ttfb_p50_ms:6.1f} ms, p99 {self.ttfb_p99_ms:6.1f} ms"
        )


async def _head(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields


async def _client(
    host: str, port: int, path: str, whole: bool, deadline: float, ttfb: list[float]
) -> tuple[int, int]:
    """Bytes and requests until the deadline. A redirect (the stream route's answer with
    audio links on) is followed once, as a player does, and its target kept."""
    reader, writer = await asyncio.open_connection(host, port)
    received = requests = 0
    rng = random.Random()  # noqa: S311 - load pattern, not secrets
    try:
        while time.perf_counter() < deadline:
            ranged = ""
            if not whole:
                start = rng.randrange(0, FILE_BYTES - RANGE_BYTES)
                ranged = f"Range: bytes={start}-{start + RANGE_BYTES - 1}\r\n"
            sent = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{ranged}\r\n".encode())
            status, fields = await _head(reader)
            length = int(fields.get(b"content-length", b"0"))
            if status.startswith(b"HTTP/1.1 307"):
                await reader.readexactly(length)
                path = fields[b"location"].decode()
                continue
            ttfb.append(time.perf_counter() - sent)
            if not status.startswith(b"HTTP/1.1 206" if ranged else b"HTTP/1.1 200"):
                raise RuntimeError(status.decode(errors="replace"))
            remaining = length
            while remaining:
                remaining -= len(await reader.read(min(READ, remaining)))
            received += length
            requests += 1
    finally:
        writer.close()
    return received, requests


async def _load(url: str, *, whole: bool) -> Figure:
    parts = urlsplit(url)
    ttfb: list[float] = []
    deadline = time.perf_counter() + SECONDS
    started = time.perf_counter()
    totals = await asyncio.gather(
        *(_client(parts.hostname or "", parts.port or 80, parts.path, whole, deadline, ttfb)
          for _ in range(CLIENTS))
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    ttfb.sort()
    p99 = ttfb[min(len(ttfb) - 1, int(len(ttfb) * 0.99))]
    return Figure(
        sum(received for received, _ in totals) / elapsed / 1e6,
        statistics.median(ttfb) * 1000,
        p99 * 1000,
        sum(requests for _, requests in totals) / elapsed,
    )


async def _both(url: str) -> tuple[Figure, Figure]:
    return await _load(url, whole=False), await _load(url, whole=True)


async def _make_track(settings: Settings) -> tuple[int, Path]:
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


def _site(settings: Settings, listen: str, upstream: str, *, x_accel: str = "") -> str:
    return nginx_site(
        NginxSite(
            server_name="localhost",
            listen=listen,
            upstream=upstream,
            media_dir=settings.media_dir.resolve(),
            link_secret=link_secret(read_secret(settings)),
            types=TYPES,
            x_accel=x_accel,
        )
    )


def _reference_site(port: int, file: Path) -> str:
    return (
        f"server {{ listen 127.0.0.1:{port}; sendfile on; tcp_nopush on;\n"
        f"  location = /file {{ alias {file}; }} }}\n"
    )


async def _playfair(env: dict[str, str], url: str) -> tuple[Figure, Figure]:
    server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
    try:
        return await _both(server.address() + url)
    finally:
        server.stop()


async def _behind_nginx(
    folder: Path, env: dict[str, str], settings: Settings, url: str, x_accel: str = ""
) -> tuple[Figure, Figure]:
    server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
    try:
        upstream = server.address().split("://", 1)[1]
        port = free_port()
        nginx = start_nginx(
            folder, _site(settings, f"127.0.0.1:{port}", upstream, x_accel=x_accel), port
        )
        try:
            return await _both(nginx.base + url)
        finally:
            nginx.stop()
    finally:
        server.stop()


async def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="playfair-bench-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        env = instance_env(folder / "data")
        settings = init_instance(env)
        track_id, file = await _make_track(settings)
        url = f"/tracks/{track_id}/stream"
        serve_env = {**env, "PLAYFAIR_MEDIA__AUDIO_LINKS": "serve"}
        port = free_port()
        nginx = start_nginx(folder, _reference_site(port, file), port)
        try:
            reference = await _both(nginx.base + "/file")
        finally:
            nginx.stop()
        link = await _playfair(env, url)
        route = await _playfair(serve_env, url)
        proxied = await _behind_nginx(folder, env, settings, url)
        accel_env = {**serve_env, "PLAYFAIR_MEDIA__X_ACCEL_REDIRECT": "/_media/"}
        accel = await _behind_nginx(folder, accel_env, settings, url, x_accel="/_media/")
    figures = []
    for shape, index in ((f"random {RANGE_BYTES // 1024} KiB ranges", 0), ("whole file", 1)):
        ref = reference[index]
        figures.append(f"{shape}: reference, nginx alone (1 worker, sendfile): {ref.line()}")
        for label, measured in (
            ("playfair, audio link in-process", link),
            ("playfair, stream route in-process (audio_links = serve)", route),
            ("behind the nginx site, audio link served by nginx", proxied),
            ("behind nginx, stream route with X-Accel-Redirect", accel),
        ):
            figure = measured[index]
            ratio = figure.mb_per_s / ref.mb_per_s
            figures.append(f"{shape}: {label}: {figure.line()} ({ratio:.2f} of nginx alone)")
    figures.append(
        f"({CLIENTS} clients, a {FILE_BYTES // 1_000_000} MB file, {SECONDS:g} s each; "
        "a redirect is followed once per client and not counted)"
    )
    return figures
