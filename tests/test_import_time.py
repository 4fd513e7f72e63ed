"""Importing our code does no work: no password hashing, no key generation, no files read,
no connections, no processes. Every command, worker and test imports most of the tree, and
work done at import is paid by all of them (and fails where it cannot be done, e.g. a file
that is not there yet). A module that needs such a value computes it on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A child process imports every module of ours with the expensive or effectful calls patched
# to raise; the third-party packages those calls live in are imported first (their own
# import-time reading is theirs), ours after the patches are in place.
CHILD = textwrap.dedent(
    """
    import builtins, importlib, io, pathlib, pkgutil, socket, subprocess, sys

    import argon2
    import argon2.low_level
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    # the third-party packages our modules import, loaded before the traps are set
    for name in ("quart", "quart_schema", "hypercorn", "sqlalchemy", "sqlalchemy.ext.asyncio",
                 "alembic", "authlib", "httpx", "pydantic", "click", "babel",
                 "babel.support", "bleach", "mutagen", "PIL.Image", "rfc8785", "http_sf",
                 "jinja2", "werkzeug", "asyncpg", "aiosqlite"):
        importlib.import_module(name)

    done = []

    def trap(what):
        def refuse(*args, **kwargs):
            done.append(what)
            raise AssertionError(f"{what} at import time")
        return refuse

    argon2.PasswordHasher.hash = trap("argon2 hashing")
    argon2.PasswordHasher.verify = trap("argon2 verifying")
    argon2.low_level.hash_secret = trap("argon2 hashing")
    argon2.low_level.hash_secret_raw = trap("argon2 hashing")
    rsa.generate_private_key = trap("RSA key generation")
    ed25519.Ed25519PrivateKey.generate = trap("Ed25519 key generation")
    builtins.open = trap("opening a file")
    io.open = trap("opening a file")
    pathlib.Path.open = trap("opening a file")
    pathlib.Path.read_text = trap("reading a file")
    pathlib.Path.read_bytes = trap("reading a file")
    socket.socket.connect = trap("a network connection")
    subprocess.Popen.__init__ = trap("starting a process")

    imported = []
    for package in ("models", "federation", "server"):
        module = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if info.name.startswith("models.migrations"):
                continue  # alembic's scripts, run by alembic, not imported
            importlib.import_module(info.name)
            imported.append(info.name)
    assert not done, done
    print(len(imported))
    """
)


def test_importing_every_module_does_no_work() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 100  # the walk found the tree, not an empty package


def test_no_module_holds_a_password_hash() -> None:
    """The timing-safe log-in compares against a dummy hash; it is made on first use."""
    import importlib
    import pkgutil

    import server

    for info in pkgutil.walk_packages(server.__path__, "server."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            assert not (isinstance(value, str) and value.startswith("$argon2")), (
                f"{info.name}.{name} holds an Argon2 hash made at import"
            )


def _child(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_models_loads_no_table() -> None:
    loaded = _child(
        """
        import sys
        import models
        print(sorted(name for name in sys.modules if name.startswith("models")))
        """
    )
    assert loaded == "['models']"


def test_load_all_loads_every_table_module() -> None:
    """A table module added to models/ but not to load_all() would be missed by the
    migrations' comparison and by sessions' ordering of writes."""
    by_load_all = _child(
        """
        import models
        print(sorted(models.load_all().tables))
        """
    )
    by_walk = _child(
        """
        import importlib, pkgutil
        import models
        from models.base import Base
        for info in pkgutil.iter_modules(models.__path__, "models."):
            if not info.name.startswith("models.migrations"):
                importlib.import_module(info.name)
        print(sorted(Base.metadata.tables))
        """
    )
    assert by_load_all == by_walk
    assert "tracks" in by_load_all and "ledger_entries" in by_load_all


def test_a_serving_process_loads_only_what_it_serves_with(tmp_path: Path) -> None:
    """Memory a web or worker process holds for nothing: alembic (a serving process only
    asks for the database's revision, with one query), Pillow (loaded on the first picture),
    PostgreSQL's driver on SQLite, and the packages httpsig brought (pkg_resources scans
    every installed distribution at import). Each would stay resident in every process."""
    database = tmp_path / "db.sqlite3"
    loaded = _child(
        f"""
        import asyncio, sqlite3, sys
        import server.cli, server.serve
        from models import migrate
        connection = sqlite3.connect({str(database)!r})
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES (?)", (migrate.HEAD,))
        connection.commit()
        at = asyncio.run(migrate.current_revision("sqlite+aiosqlite:///{database}"))
        heavy = ("alembic", "mako", "PIL", "asyncpg", "httpsig", "pkg_resources", "Crypto")
        print(at == migrate.HEAD, sorted(name for name in heavy if name in sys.modules))
        """
    )
    assert loaded == "True []"
