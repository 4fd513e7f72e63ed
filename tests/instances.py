"""Real playfair instances for tests: initialised in a folder, started as `playfair run`
on a loopback address of their own, driven through the command line and HTTP."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.keys import InstanceKeys, load_instance_keys
from models.database import DatabaseOptions, create_engine, create_sessionmaker
from models.ledger import AccountKind, LedgerAccount
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
    # a new interpreter for `run`, not a fork (tests.forker): for tests about the
    # process tree itself
    spawn: bool = False

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = run_playfair(list(args), self.env, stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start(self) -> None:
        bind = self.base.split("://", 1)[1]
        self.process = PlayfairProcess(["run", "--bind", bind], self.env, spawn=self.spawn)
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

    def kill(self) -> PlayfairProcess:
        """SIGKILL, as a crash; returns the dead process (its output, its pid). `start`
        runs the instance again."""
        assert self.process is not None
        killed, self.process = self.process, None
        killed.kill()
        return killed


def make_instance(folder: Path, host: str, database_url: str, *, init: bool = True) -> Instance:
    """An instance's settings, and its folder and database made by `playfair init` (leave
    that to `run` with ``init=False`` when the database is migrated already)."""
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
    if init:
        instance.cli("init")
    return instance


@contextlib.asynccontextmanager
async def database_of(instance: Instance) -> AsyncIterator[AsyncSession]:
    """A session on the instance's own database (tests look behind its API with it)."""
    engine = create_engine(DatabaseOptions(url=instance.env["PLAYFAIR_DATABASE__URL"]))
    try:
        async with create_sessionmaker(engine, on_nested="raise")() as session:
            yield session
    finally:
        await engine.dispose()


async def instance_keys(instance: Instance) -> InstanceKeys:
    """The instance's keys, decrypted: to sign as its instance actor from a test."""
    async with database_of(instance) as session:
        return await load_instance_keys(session, TEST_SECRET)


async def peer_balances(instance: Instance) -> list[int]:
    """Balances of the instance's accounts with other instances (owed either way)."""
    async with database_of(instance) as session:
        rows = await session.scalars(
            select(LedgerAccount.balance).where(LedgerAccount.kind == AccountKind.PEER)
        )
        return list(rows)
