"""Where media files live: a folder on disk (S3-compatible storage can take its place
behind the same few methods).

Files are never written in place: each is made under a temporary name in the process's
own scratch folder (``incoming/<host>-<pid>-<random>/``, on the same file system) and
renamed into the store when complete, so a reader or a crash never meets a half-written
file under a storage key. The process holds an exclusive ``flock`` on the scratch folder's
``.lock`` for as long as it lives; the kernel lets go of it however the process ends
(SIGKILL included), so :meth:`LocalStorage.sweep`, run when the web server or the worker
starts and every hour, removes exactly the folders of processes that are gone, with
whatever uploads, renditions or cached partner audio they were writing.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
NEW_PREFIX = ".new-"  # a scratch folder being set up (renamed once locked)
# Files straight in incoming/ (from versions before scratch folders) and set-ups that
# never finished are removed once they are this old.
LOOSE_FILE_AGE = 3600.0


@dataclass
class _Scratch:
    pid: int
    folder: Path
    lock: int  # the descriptor holding the flock, open for the life of the process


_scratch: dict[Path, _Scratch] = {}  # incoming folder → this process's scratch folder
_scratch_guard = threading.Lock()  # temporary files are also made from worker threads


def _make_scratch(incoming: Path) -> _Scratch:
    """A new scratch folder, locked before it gets its final name: a sweep never sees
    it unlocked."""
    incoming.mkdir(parents=True, exist_ok=True)
    name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    setup = Path(tempfile.mkdtemp(prefix=NEW_PREFIX, dir=incoming))
    lock = os.open(setup / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = incoming / name
    os.rename(setup, folder)
    atexit.register(_remove_own, folder, os.getpid())
    return _Scratch(os.getpid(), folder, lock)


def _remove_own(folder: Path, pid: int) -> None:
    """At a normal exit a process removes its own scratch folder (a sweep is for those
    that could not); a child that inherited the handler leaves its parent's alone."""
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)


def scratch_folder(incoming: Path) -> Path:
    """This process's scratch folder under ``incoming`` (made on first use)."""
    with _scratch_guard:
        current = _scratch.get(incoming)
        if current is not None and current.pid == os.getpid() and current.folder.is_dir():
            return current.folder
        if current is not None and current.pid == os.getpid():
            os.close(current.lock)  # removed from under us (by hand): start a new one
        _scratch[incoming] = current = _make_scratch(incoming)
        return current.folder


def _owner_gone(folder: Path) -> bool:
    """True if no living process holds the folder's lock (then we hold it now, and the
    folder is ours to remove)."""
    try:
        lock = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # a scratch folder always has its lock: this is a broken one
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(lock)  # closing drops our lock; the owner is gone and never comes back
    return True


# A key of plain segments of safe characters (no "..", no empty or hidden segment): it
# names a path under the root as it is, with nothing to resolve. Keys we make are so.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
MAX_PLAIN_KEY = 512


def plain_key(key: str) -> bool:
    return len(key) <= MAX_PLAIN_KEY and bool(_PLAIN_KEY.fullmatch(key))


@functools.lru_cache(maxsize=16)
def _resolved(root: Path) -> Path:
    return root.resolve()


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        root = _resolved(self.root)
        if plain_key(key):  # the common case, on every request for a file: no syscalls
            return root / key
        resolved = (root / key).resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(f"storage key {key!r} leaves the media folder")
        return resolved

    def temporary_file(self, suffix: str = "") -> Path:
        """A new empty file in this process's scratch folder (on the store's file system,
        so :meth:`put` is a rename); removed by a sweep if the process dies first."""
        self.prepare()
        fd, name = tempfile.mkstemp(dir=scratch_folder(self.incoming), suffix=suffix)
        os.close(fd)
        return Path(name)

    def put(self, source: Path, key: str) -> Path:
        """Move ``source`` into the store under ``key`` (replacing what was there), at
        once: readers see the old file or the new one, never a part."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except OSError:  # another file system: copy beside the target, then rename
            beside = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
            try:
                shutil.copyfile(source, beside)
                os.replace(beside, target)
            finally:
                beside.unlink(missing_ok=True)
            source.unlink()
        return target

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def sweep(self, now: float | None = None) -> list[Path]:
        """Remove what processes that are gone were writing: their scratch folders, and
        old loose files; returns what was removed. Safe beside running processes."""
        if not self.incoming.is_dir():
            return []
        now = time.time() if now is None else now
        removed = []
        for entry in sorted(self.incoming.iterdir()):
            try:
                old = now - entry.lstat().st_mtime > LOOSE_FILE_AGE
                if entry.is_dir() and not entry.is_symlink():
                    # a set-up that never finished is told by its age (it takes a moment)
                    setup = entry.name.startswith(NEW_PREFIX)
                    if old if setup else _owner_gone(entry):
                        shutil.rmtree(entry)
                        removed.append(entry)
                elif old:
                    entry.unlink()
                    removed.append(entry)
            except FileNotFoundError:
                continue  # removed meanwhile (by its owner, or another sweep)
        return removed


def sweep_leftovers(root: Path) -> int:
    """:meth:`LocalStorage.sweep` of the media folder, logged; how many were removed."""
    removed = LocalStorage(root).sweep()
    for path in removed:
        log.warning("removed %s, left behind by a process that stopped", path)
    return len(removed)
