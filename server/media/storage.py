"""Where media files live: a folder on disk (S3-compatible storage can take its place
behind the same few methods)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        resolved = (self.root / key).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key {key!r} leaves the media folder")
        return resolved

    def temporary_file(self, suffix: str = "") -> Path:
        """A new empty file beside the store (same file system, so moves are renames)."""
        self.prepare()
        fd, name = tempfile.mkstemp(dir=self.incoming, suffix=suffix)
        os.close(fd)
        return Path(name)

    def put(self, source: Path, key: str) -> Path:
        """Move ``source`` into the store under ``key`` (replacing what was there)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except OSError:
            shutil.move(str(source), target)
        return target

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()
