"""Subsonic apps: 64 simulated apps at once, each round getAlbumList2 (newest), getAlbum
of one of those albums and a stream of one of its tracks read to the end, against
playfair (`playfair run`, one process) and against supysonic (a Python Subsonic server)
serving the same MP3 files in the same run; rounds per second for each, and the ratio.

supysonic is installed by the benchmark into a virtual environment of its own
(bench/out/supysonic-venv, never into the project's), configured on a temporary folder
holding the same files, scanned, and served by its WSGI app under waitress on loopback.
Both servers get the same credentials form (``u`` + ``p``: supysonic has no token
scheme; ours is checked against an app password) and the same MP3 bytes: playfair's MP3
rendition, supysonic's file as it is (``format=raw``, no transcoding). The tracks are
free, so that playfair streams them unpaced: a paid track's free part is sent at
listening speed (docs/architecture.md, "A paid play of a local track"), which would
measure the clock, not the server."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.audio import make_audio
from tests.instances import make_instance
from tests.postgres import free_port

APPS = 64
ROUNDS = 8  # per app
ALBUMS = 4
TRACKS = 4  # per album
SECONDS = 20.0  # each track's length
SUPYSONIC = "supysonic==0.7.9"
WAITRESS = "waitress==3.0.2"
WAITRESS_THREADS = 64  # a thread per app: with fewer, its calls queue behind whole streams
VENV = Path(__file__).parent / "out" / "supysonic-venv"
PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway account on loopback


def _library(folder: Path) -> Path:
    """The MP3 files both servers serve: ALBUMS folders of TRACKS tagged tracks."""
    root = folder / "music"
    for album in range(ALBUMS):
        path = root / f"Album {album + 1}"
        path.mkdir(parents=True)
        for number in range(TRACKS):
            make_audio(
                path / f"{number + 1:02d} - Song {number + 1}.mp3", "mp3", seconds=SECONDS,
                frequency=220 + 40 * (album * TRACKS + number),
                tags={"title": f"Song {album + 1}.{number + 1}", "album": f"Album {album + 1}",
                      "artist": "Bench Band", "track": str(number + 1)},
            )  # fmt: skip
    return root


async def _app(
    http: httpx.AsyncClient, auth: dict[str, str], stream_format: str, times: list[float]
) -> int:
    """One app's rounds; the bytes it heard."""
    rng = random.Random()  # noqa: S311 - which album an app opens, not a secret
    heard = 0
    query = {**auth, "v": "1.16.1", "c": "bench", "f": "json"}
    for _ in range(ROUNDS):
        started = time.perf_counter()
        listing = await _json(http, "getAlbumList2", {**query, "type": "newest", "size": "20"})
        album = rng.choice(_items(listing["albumList2"], "album"))
        found = await _json(http, "getAlbum", {**query, "id": album["id"]})
        song = rng.choice(_items(found["album"], "song"))
        params = {**auth, "v": "1.16.1", "c": "bench", "id": song["id"], "format": stream_format}
        async with http.stream("GET", "/rest/stream", params=params) as answer:
            if answer.status_code != 200 or not answer.headers["content-type"].startswith("audio"):
                raise RuntimeError(f"stream: {answer.status_code} {answer.headers}")
            async for chunk in answer.aiter_raw():
                heard += len(chunk)
        times.append(time.perf_counter() - started)
    return heard


def _items(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = parent.get(key, [])
    return items if isinstance(items, list) else [items]


async def _json(http: httpx.AsyncClient, method: str, params: dict[str, str]) -> dict[str, Any]:
    answer = await http.get(f"/rest/{method}", params=params)
    body: dict[str, Any] = answer.json()["subsonic-response"]
    if body.get("status") != "ok":
        raise RuntimeError(f"{method}: {body}")
    return body


Figures = tuple[float, float, float, float]


async def _load(base: str, auth: dict[str, str], stream_format: str) -> Figures:
    """Rounds per second, MB/s, and the p50 and p99 of a round in ms."""
    limits = httpx.Limits(max_connections=APPS, max_keepalive_connections=APPS)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        await _json(http, "ping", {**auth, "v": "1.16.1", "c": "bench", "f": "json"})
        times: list[float] = []
        started = time.perf_counter()
        heard = await asyncio.gather(*(_app(http, auth, stream_format, times) for _ in range(APPS)))
        elapsed = time.perf_counter() - started
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return (
        len(times) / elapsed,
        sum(heard) / elapsed / 1e6,
        statistics.median(times) * 1000,
        p99 * 1000,
    )


def _playfair(folder: Path, music: Path) -> Figures:
    instance = make_instance(folder / "playfair", "127.0.0.1",
                             f"sqlite+aiosqlite:///{folder}/playfair.sqlite3")  # fmt: skip
    instance.start()
    try:
        instance.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD + "\n")
        instance.cli("artist", "add", "benchband", "--owner", "mira", "--display-name",
                     "Bench Band")  # fmt: skip
        instance.cli("import", str(music), "--artist", "benchband", "--free")
        instance.wait_for_count(r"release \d+ announced", ALBUMS, timeout=600)
        instance.cli("user", "add", "bench", stdin=PASSWORD + "\n")
        password = instance.cli("app-password", "add", "bench", "--name", "bench")
        return asyncio.run(_load(instance.base, {"u": "bench", "p": password}, "mp3"))
    finally:
        instance.stop()


def supysonic_venv() -> Path:
    """supysonic and waitress in a virtual environment of their own (made once)."""
    bin_dir = VENV / "bin"
    if not (bin_dir / "supysonic-server").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                        SUPYSONIC, WAITRESS], check=True)  # fmt: skip
    return bin_dir


def supysonic_home(folder: Path) -> tuple[Path, Path, dict[str, str]]:
    """A supysonic set up in ``folder``/supysonic: its venv's bin folder, its home (where
    it runs) and the environment to run it in."""
    bin_dir = supysonic_venv()
    home = folder / "supysonic"
    (home / "cache").mkdir(parents=True)
    # supysonic reads supysonic.conf from the folder it runs in
    (home / "supysonic.conf").write_text(
        f"[base]\ndatabase_uri = sqlite:///{home}/supysonic.db\n"
        f"[webapp]\ncache_dir = {home}/cache\nlog_level = WARNING\nmount_webui = no\n"
        f"[daemon]\nsocket = {home}/daemon.sock\nrun_watcher = no\n"
    )
    return bin_dir, home, {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}


def start_supysonic(folder: Path, music: Path) -> tuple[subprocess.Popen[bytes], str]:
    """supysonic (waitress, ``WAITRESS_THREADS`` threads) with the user ``bench`` and the
    music folder ``music`` scanned, answering; its process and base URL."""
    bin_dir, home, env = supysonic_home(folder)

    def cli(*args: str) -> None:
        subprocess.run([str(bin_dir / "supysonic-cli"), *args], cwd=home, env=env,
                       check=True, capture_output=True, text=True)  # fmt: skip

    cli("user", "add", "bench", "-p", PASSWORD)
    cli("folder", "add", "music", str(music))
    cli("folder", "scan", "--foreground", "music")
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "supysonic-server"), "-S", "waitress", "-h", "127.0.0.1", "-p", str(port),
         "--threads", str(WAITRESS_THREADS)],
        cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base, server)
    except BaseException:
        stop_supysonic(server)
        raise
    return server, base


def stop_supysonic(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=30)


def _supysonic(folder: Path, music: Path) -> Figures:
    server, base = start_supysonic(folder, music)
    try:
        return asyncio.run(_load(base, {"u": "bench", "p": PASSWORD}, "raw"))
    finally:
        stop_supysonic(server)


def wait_for(base: str, process: subprocess.Popen[bytes]) -> None:
    """Until supysonic at ``base`` answers (or its process exits)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise RuntimeError(f"supysonic exited: {process.stderr.read().decode()}")
        try:
            httpx.get(f"{base}/rest/ping", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{base} did not come up")


def _line(name: str, figures: Figures) -> str:
    rounds, megabytes, p50, p99 = figures
    return (f"{name}: {rounds:6.1f} rounds/s ({megabytes:6.1f} MB/s of audio), "
            f"a round p50 {p50:7.1f} ms, p99 {p99:7.1f} ms")  # fmt: skip


async def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="playfair-bench-subsonic-") as name:
        folder = Path(name)
        music = _library(folder)
        # both measured with the event loop of a thread of their own: asyncio.run in each
        ours = await asyncio.to_thread(_playfair, folder, music)
        print(_line("playfair", ours), flush=True)  # kept, whatever the reference does
        # supysonic (its SQLite under 64 apps at once) sometimes leaves one call unanswered
        # for minutes; such a run is dropped and run again, and the output says so
        dropped = 0
        while True:
            try:
                theirs = await asyncio.to_thread(_supysonic, folder / f"s{dropped}", music)
                break
            except httpx.TimeoutException:
                dropped += 1
                if dropped == 3:
                    raise
        shutil.rmtree(music)
    return [
        _line("playfair", ours),
        _line(f"reference, supysonic 0.7.9 (waitress, {WAITRESS_THREADS} threads)", theirs),
        f"playfair / supysonic: {ours[0] / theirs[0]:.2f} of the rounds per second",
        f"({APPS} apps at once, {ROUNDS} rounds each: getAlbumList2 newest + getAlbum + a whole "
        f"stream; {ALBUMS * TRACKS} free MP3 tracks of {SECONDS:.0f} s, unpaced; u + p on both; "
        "SQLite on both)"
        + (
            f"; {dropped} supysonic run(s) dropped: a call went unanswered for 60 s"
            if dropped
            else ""
        ),
    ]
