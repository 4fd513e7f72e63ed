"""The instance's data folder and secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from server.runtime.config import Settings


class InstanceNotInitialised(Exception):
    """There is no instance secret yet; `playfair init` makes one."""


def ensure_data_dir(settings: Settings) -> Path:
    data_dir = settings.instance.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "media").mkdir(exist_ok=True)
    except OSError as exc:
        raise InstanceNotInitialised(
            f"cannot create the data folder {data_dir}: {exc.strerror}"
        ) from None
    return data_dir


def ensure_secret(settings: Settings) -> str:
    """The configured secret, or the one in the secret file, made (mode 0600) if missing."""
    if settings.instance.secret:
        return settings.instance.secret
    path = settings.secret_file
    if not path.exists():
        ensure_data_dir(settings)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
    return read_secret(settings)


def read_secret(settings: Settings) -> str:
    if settings.instance.secret:
        return settings.instance.secret
    try:
        secret = settings.secret_file.read_text().strip()
    except FileNotFoundError:
        raise InstanceNotInitialised(
            f"no instance secret in {settings.secret_file}: run `playfair init` first"
        ) from None
    if len(secret) < 32:
        raise InstanceNotInitialised(f"the instance secret in {settings.secret_file} is too short")
    return secret
