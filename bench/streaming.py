"""Streaming: 64 concurrent clients read one 10 MB file for 10 s in two shapes (random
256 KiB ranges, as players seek; the whole file, as players start a track), from
playfair (`playfair serve`, one process) in each way it serves audio, from nginx (one
worker, sendfile) serving the same file, and from supysonic (a Python Subsonic server,
waitress, in a virtual environment of its own) streaming the same file through its
Subsonic API, in the same run: MB/s, the ratio to nginx, and p50/p99 time to first byte.
The file is a real MP3 (made by ffmpeg), so that supysonic's scanner takes it.

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
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

from bench.setup import init_instance, instance_env
from bench.subsonic import PASSWORD, start_supysonic, stop_supysonic
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
from tests.audio import make_audio
from tests.nginx import start_nginx
from tests.postgres import free_port
from tests.processes import PlayfairProcess

TARGET_BYTES = 10 * 1000 * 1000  # about: an MP3 of 96 kb/s of this length
MP3_SECONDS = TARGET_BYTES * 8 / 96_000
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
    host: str,
    port: int,
    path: str,
    size: int,
    whole: bool,
    deadline: float,
    ttfb: list[float],
    failures: list[bytes] | None,
) -> tuple[int, int]:
    """Bytes and requests until the deadline. A redirect (the stream route's answer with
    audio links on) is followed once, as a player does, and its target kept. An answer
    that is not the audio asked for stops the run, or, with ``failures`` (for a reference
    server), is kept there (its status and the start of its body) and not counted."""
    reader, writer = await asyncio.open_connection(host, port)
    received = requests = 0
    rng = random.Random()  # noqa: S311 - load pattern, not secrets
    try:
        while time.perf_counter() < deadline:
            ranged = ""
            if not whole:
                start = rng.randrange(0, size - RANGE_BYTES)
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
            # a Subsonic server reports a failure as a 200 with an error document
            kind = fields.get(b"content-type", b"").split(b";")[0]
            document = kind in (b"application/json", b"text/xml", b"application/xml")
            if document or not status.startswith(b"HTTP/1.1 206" if ranged else b"HTTP/1.1 200"):
                body = await reader.readexactly(length)
                if failures is None:
                    raise RuntimeError(f"{status.decode(errors='replace')}: {body[:2000]!r}")
                failures.append(status + b" " + body[:200])
                continue
            remaining = length
            while remaining:
                remaining -= len(await reader.read(min(READ, remaining)))
            received += length
            requests += 1
    finally:
        writer.close()
    return received, requests


async def _load(url: str, size: int, *, whole: bool, failures: list[bytes] | None = None) -> Figure:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    ttfb: list[float] = []
    deadline = time.perf_counter() + SECONDS
    started = time.perf_counter()
    totals = await asyncio.gather(
        *(_client(parts.hostname or "", parts.port or 80, target, size, whole, deadline, ttfb,
                  failures)
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


async def _both(url: str, size: int) -> tuple[Figure, Figure]:
    return await _load(url, size, whole=False), await _load(url, size, whole=True)


async def _make_track(settings: Settings, mp3: Path) -> tuple[int, Path]:
    key = "tracks/bench/stream.mp3"
    path = settings.media_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mp3, path)
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
                          duration_ms=int(MP3_SECONDS * 1000))  # fmt: skip
            session.add(track)
            await session.flush()
            session.add(MediaFile(track_id=track.id, role=FileRole.STREAM_MP3, storage_key=key,
                                  mime_type="audio/mpeg", format="mp3",
                                  size_bytes=path.stat().st_size, sha256="0" * 64))  # fmt: skip
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


async def _playfair(env: dict[str, str], url: str, size: int) -> tuple[Figure, Figure]:
    server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
    try:
        return await _both(server.address() + url, size)
    finally:
        server.stop()


async def _behind_nginx(
    folder: Path, env: dict[str, str], settings: Settings, url: str, size: int, x_accel: str = ""
) -> tuple[Figure, Figure]:
    server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
    try:
        upstream = server.address().split("://", 1)[1]
        port = free_port()
        nginx = start_nginx(
            folder, _site(settings, f"127.0.0.1:{port}", upstream, x_accel=x_accel), port
        )
        try:
            return await _both(nginx.base + url, size)
        finally:
            nginx.stop()
    finally:
        server.stop()


def _supysonic(folder: Path, mp3: Path) -> tuple[subprocess.Popen[bytes], str]:
    """supysonic serving ``mp3`` (scanned from a music folder of its own); the process and
    the Subsonic stream URL of the track, as an app asks for it (no transcoding)."""
    music = folder / "music" / "Bench" / "Ten megabytes"
    music.mkdir(parents=True)
    shutil.copyfile(mp3, music / "01 - Ten megabytes.mp3")
    server, base = start_supysonic(folder, folder / "music")
    try:
        auth = {"u": "bench", "p": PASSWORD, "v": "1.16.1", "c": "bench", "f": "json"}
        found = httpx.get(f"{base}/rest/search3", params={**auth, "query": "Ten"}).json()
        [song] = found["subsonic-response"]["searchResult3"]["song"]
    except BaseException:
        stop_supysonic(server)
        raise
    query = urlencode({**auth, "id": song["id"], "format": "raw"})
    return server, f"{base}/rest/stream?{query}"


async def _supysonic_figures(
    folder: Path, mp3: Path, size: int, failed: tuple[list[bytes], list[bytes]]
) -> tuple[Figure | None, Figure]:
    """supysonic's ranges (None when it answers a range with the whole file) and whole
    files; the answers that were errors, for each shape, go to ``failed``."""
    server, url = await asyncio.to_thread(_supysonic, folder, mp3)
    try:
        async with httpx.AsyncClient() as http:
            probe = await http.get(url, headers={"Range": f"bytes=0-{RANGE_BYTES - 1}"})
        ranges = None
        if probe.status_code == 206:
            ranges = await _load(url, size, whole=False, failures=failed[0])
        return ranges, await _load(url, size, whole=True, failures=failed[1])
    finally:
        stop_supysonic(server)


async def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="playfair-bench-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        mp3 = await asyncio.to_thread(
            make_audio, folder / "ten.mp3", "mp3", seconds=MP3_SECONDS,
            tags={"artist": "Bench", "album": "Ten megabytes", "title": "Ten megabytes",
                  "track": "1"},
        )  # fmt: skip
        size = mp3.stat().st_size
        env = instance_env(folder / "data")
        settings = init_instance(env)
        track_id, file = await _make_track(settings, mp3)
        url = f"/tracks/{track_id}/stream?format=mp3"  # the MP3 rendition, as the file is
        serve_env = {**env, "PLAYFAIR_MEDIA__AUDIO_LINKS": "serve"}
        port = free_port()
        nginx = start_nginx(folder, _reference_site(port, file), port)
        try:
            reference = await _both(nginx.base + "/file", size)
        finally:
            nginx.stop()
        link = await _playfair(env, url, size)
        route = await _playfair(serve_env, url, size)
        proxied = await _behind_nginx(folder, env, settings, url, size)
        accel_env = {**serve_env, "PLAYFAIR_MEDIA__X_ACCEL_REDIRECT": "/_media/"}
        accel = await _behind_nginx(folder, accel_env, settings, url, size, x_accel="/_media/")
        failed: tuple[list[bytes], list[bytes]] = ([], [])
        theirs = await _supysonic_figures(folder, mp3, size, failed)
    figures = []
    for shape, index in ((f"random {RANGE_BYTES // 1024} KiB ranges", 0), ("whole file", 1)):
        ref = reference[index]
        figures.append(f"{shape}: reference, nginx alone (1 worker, sendfile): {ref.line()}")
        for label, measured in (
            ("playfair, audio link in-process", link[index]),
            ("playfair, stream route in-process (audio_links = serve)", route[index]),
            ("behind the nginx site, audio link served by nginx", proxied[index]),
            ("behind nginx, stream route with X-Accel-Redirect", accel[index]),
            ("reference, supysonic 0.7.9 (waitress, /rest/stream, format=raw)", theirs[index]),
        ):
            if measured is None:
                figures.append(f"{shape}: {label}: a range is answered with the whole file")
                continue
            ratio = measured.mb_per_s / ref.mb_per_s
            figures.append(f"{shape}: {label}: {measured.line()} ({ratio:.2f} of nginx alone)")
        if failed[index]:
            figures.append(
                f"{shape}: supysonic answered {len(failed[index])} requests with an error, "
                f"not counted above; the first: {failed[index][0].decode(errors='replace')}"
            )
    figures.append(
        f"({CLIENTS} clients, a {size / 1e6:.1f} MB MP3, {SECONDS:g} s each; "
        "a redirect is followed once per client and not counted)"
    )
    return figures
