"""The classic credentials against app passwords, throttled like log-in (to be built)."""

from __future__ import annotations

from server.runtime.resources import Resources
from server.services.viewers import Viewer
from subsonic.errors import Code, SubsonicError


async def by_token(resources: Resources, username: str, token: str, salt: str) -> Viewer:
    raise SubsonicError(Code.WRONG_CREDENTIALS, "wrong user name or app password")


async def by_password(resources: Resources, username: str, password: str) -> Viewer:
    raise SubsonicError(Code.WRONG_CREDENTIALS, "wrong user name or app password")
