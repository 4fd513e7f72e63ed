"""Shared set-up for benchmarks: an initialised instance in a temporary folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from server.config import Settings, load_settings
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
