"""Web throughput: requests per second to `playfair serve` (/healthz, which queries the
database, and the home page), next to a bare Hypercorn "hello" app started the same way
and measured by the same client in the same run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.processes import PlayfairProcess, playfair_env

REQUESTS = 2000
CONCURRENCY = 16
ROOT = Path(__file__).resolve().parent.parent

BARE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
"""


async def _load(url: str) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        await client.get(url)  # warm up
        counter = iter(range(REQUESTS))

        async def worker() -> None:
            for _ in counter:
                response = await client.get(url)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return REQUESTS / (time.perf_counter() - started)


async def run() -> list[str]:
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        env = {
            "PLAYFAIR_INSTANCE__DATA_DIR": folder,
            "PLAYFAIR_SERVER__ACCESS_LOG": "false",
            "PLAYFAIR_LOGGING__LEVEL": "WARNING",
        }
        init = subprocess.run(
            [sys.executable, "-m", "server.cli", "init"],
            env=playfair_env(env), cwd=ROOT, capture_output=True, check=False,
        )  # fmt: skip
        if init.returncode:
            return [f"not measured: init failed: {init.stderr.decode()}"]
        server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
        try:
            address = server.address()
            figures.append(f"playfair /healthz: {await _load(address + '/healthz'):7.0f} req/s")
            figures.append(f"playfair home page: {await _load(address + '/'):7.0f} req/s")
        finally:
            server.stop()
        app_file = Path(folder) / "bare_app.py"
        app_file.write_text(BARE_APP)
        bare = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "--bind", "127.0.0.1:0", "bare_app:app"],
            cwd=folder, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert bare.stdout is not None
            line = bare.stdout.readline()
            address = line.rsplit("Running on ", 1)[1].split()[0]
            figures.append(f"reference, bare Hypercorn app: {await _load(address):7.0f} req/s")
        finally:
            bare.terminate()
            bare.wait()
    figures.append(f"({REQUESTS} requests, {CONCURRENCY} at a time, one httpx client process)")
    return figures
