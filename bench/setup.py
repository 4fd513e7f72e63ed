"""Shared set-up for benchmarks: an initialised instance in a temporary folder."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from server.runtime.config import Settings, load_settings
from tests.postgres import PostgresUnavailable, running_postgres
from tests.processes import ROOT, playfair_env


def instance_env(folder: Path, database_url: str | None = None) -> dict[str, str]:
    env = {
        "PLAYFAIR_INSTANCE__DATA_DIR": str(folder),
        "PLAYFAIR_SERVER__ACCESS_LOG": "false",
        "PLAYFAIR_LOGGING__LEVEL": "WARNING",
    }
    if database_url:
        env["PLAYFAIR_DATABASE__URL"] = database_url
    return env


def init_instance(env: dict[str, str]) -> Settings:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "init"],
        env=playfair_env(env), cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"playfair init failed: {result.stderr.strip()}")
    return load_settings(None, environ=env)


async def on_both_databases(
    name: str, measure: Callable[[str, Path], Awaitable[list[str]]]
) -> list[str]:
    """Run ``measure(database_url, folder)`` on a SQLite file, then on a throwaway
    PostgreSQL; prefix each figure with the database it came from."""
    out: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        figures = await measure(f"sqlite+aiosqlite:///{folder}/{name}.sqlite3", Path(folder))
        out += [f"SQLite: {line}" for line in figures]
    try:
        with running_postgres() as server, tempfile.TemporaryDirectory() as folder:
            admin = await asyncpg.connect(
                host=server.host, port=server.port, user=server.user, database="postgres"
            )
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            figures = await measure(server.url(name), Path(folder))
            out += [f"PostgreSQL: {line}" for line in figures]
    except PostgresUnavailable as exc:
        out.append(f"PostgreSQL: not measured ({exc})")
    return out
