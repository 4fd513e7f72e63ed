"""The classic credentials (``u`` with ``t`` + ``s``, or ``p``) against the listener's
app passwords (``server.services.app_passwords``), throttled like log-in: failures
count, per address and per account name, and once too many failed a call is refused
before its credentials are checked (``server.web.throttle``, "Subsonic apps").

Every refusal is code 40; "no such account", "wrong password", "revoked" and "account
not active" read the same, so that nobody learns which names exist or which passwords
were once right. What these credentials may do: read, write and play (never upload, and
never admin, whatever the account's role)."""

from __future__ import annotations

import math

from models.base import utcnow
from models.tokens import Scope
from server.runtime.resources import Resources
from server.services import app_passwords
from server.services.viewers import Viewer
from server.web.throttle import subsonic_failed, subsonic_wait
from subsonic import tokens
from subsonic.errors import Code, SubsonicError

SCOPES = frozenset({Scope.READ, Scope.WRITE, Scope.PLAY})
WRONG = "wrong user name or app password (make one in Settings, Apps)"
NAME_LENGTH = 40  # longer than any account name: the rest is never looked at


def _name(username: str) -> str:
    return username.strip().lower()[:NAME_LENGTH]


async def _refuse_if_throttled(name: str) -> None:
    wait = await subsonic_wait(name)
    if wait is not None:
        minutes = max(1, math.ceil(wait / 60))
        raise SubsonicError(
            Code.WRONG_CREDENTIALS,
            f"too many failed log-ins: wait up to {minutes} minutes and try again",
        )


async def _outcome(
    resources: Resources, name: str, verified: app_passwords.Verified | None
) -> Viewer:
    if verified is None:
        await subsonic_failed(name)
        raise SubsonicError(Code.WRONG_CREDENTIALS, WRONG)
    if verified.due_for_touch(utcnow()):
        async with resources.sessionmaker() as session:
            await app_passwords.record_use(session, verified)
    user = verified.user
    return Viewer(user.id, user.username, user.role, SCOPES)


async def by_token(resources: Resources, username: str, token: str, salt: str) -> Viewer:
    tokens.check_salt(salt)
    name = _name(username)
    await _refuse_if_throttled(name)
    async with resources.read_sessionmaker() as session:
        verified = await app_passwords.verify_token(session, resources.secret, name, token, salt)
    return await _outcome(resources, name, verified)


async def by_password(resources: Resources, username: str, password: str) -> Viewer:
    typed = tokens.decode_password(password)
    name = _name(username)
    await _refuse_if_throttled(name)
    async with resources.read_sessionmaker() as session:
        verified = await app_passwords.verify_password(session, resources.secret, name, typed)
    return await _outcome(resources, name, verified)
