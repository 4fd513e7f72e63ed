"""Real playfair instances for tests: initialised in a folder, started as `playfair run`
on a loopback address of their own, driven through the command line and HTTP."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TEST_SECRET
from tests.processes import PlayfairProcess, run_playfair


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class Instance:
    env: dict[str, str]
    base: str
    process: PlayfairProcess | None = None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = run_playfair(list(args), self.env, stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start(self) -> None:
        bind = self.base.split("://", 1)[1]
        self.process = PlayfairProcess(["run", "--bind", bind], self.env)
        self.process.wait_for(r"worker \S+ started")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        assert self.process is not None
        return self.process.wait_for(pattern, timeout)

    def wait_for_count(self, pattern: str, count: int, timeout: float = 60) -> None:
        assert self.process is not None
        self.process.wait_for_count(pattern, count, timeout)

    def stop(self) -> str:
        assert self.process is not None
        self.process.stop()
        return self.process.output


def make_instance(folder: Path, host: str, database_url: str) -> Instance:
    base = f"http://{host}:{free_port(host)}"
    env = {
        "PLAYFAIR_INSTANCE__DATA_DIR": str(folder),
        "PLAYFAIR_INSTANCE__BASE_URL": base,
        "PLAYFAIR_INSTANCE__SECRET": TEST_SECRET,
        "PLAYFAIR_DATABASE__URL": database_url,
        "PLAYFAIR_FEDERATION__ALLOW_PRIVATE_ADDRESSES": "true",
        "PLAYFAIR_WORKER__POLL_INTERVAL": "100ms",
        "PLAYFAIR_SERVER__ACCESS_LOG": "false",
    }
    instance = Instance(env, base)
    instance.cli("init")
    return instance
