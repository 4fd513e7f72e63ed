"""App passwords (``models.app_passwords``): made, listed and revoked by their listener
(or an admin at the command line), and checked against Subsonic's classic credentials,
``t`` = md5(app password + ``s``) or the password itself in ``p``.

Only an active account's unrevoked app passwords open anything; the account password
never does. Checking one opens the listener's few sealed passwords (at most
:data:`MAX_ACTIVE`) and compares each: no query by the password is possible, since the
token changes with every salt. Throttling is the web floor's (``server.web.subsonic.
app_password_auth``).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.app_passwords import (
    NAME_LENGTH,
    SEALING_PURPOSE,
    SEPARATOR,
    AppPassword,
    new_app_password,
    normalise_typed,
    spellings,
)
from models.base import utcnow
from models.sealing import sealer
from models.users import AccountStatus, User
from server.services.errors import Refused
from subsonic.tokens import token_matches

log = logging.getLogger("playfair.app_passwords")

MAX_ACTIVE = 10  # one per app and device is plenty; a limit keeps each check cheap
LAST_USED_GRAIN = timedelta(hours=1)  # last_used_at is written at most this often


@dataclass(frozen=True)
class Made:
    row: AppPassword
    password: str  # the only time it is given out


@dataclass(frozen=True)
class Verified:
    """Credentials that matched: whose, and which app password."""

    user: User
    app_password_id: int
    last_used_at: datetime | None

    def due_for_touch(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_GRAIN


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise Refused("give the app password a name (the app or device it is for)", 422)
    if len(cleaned) > NAME_LENGTH:
        raise Refused(f"the name is longer than {NAME_LENGTH} characters", 422)
    return cleaned


async def list_active(session: AsyncSession, user_id: int) -> list[AppPassword]:
    return list(
        await session.scalars(
            select(AppPassword)
            .where(AppPassword.user_id == user_id, AppPassword.revoked_at.is_(None))
            .order_by(AppPassword.id)
        )
    )


async def create(session: AsyncSession, user: User, name: str, secret: str) -> Made:
    """Make an app password for ``user``'s app ``name``; commits. Refused (409) past
    :data:`MAX_ACTIVE` active ones or for a name already in use."""
    cleaned = _clean_name(name)
    active = await list_active(session, user.id)
    if len(active) >= MAX_ACTIVE:
        raise Refused(
            f"you have {MAX_ACTIVE} app passwords already: revoke one you no longer use", 409
        )
    if any(row.name.casefold() == cleaned.casefold() for row in active):
        raise Refused(f"you have an app password named {cleaned!r} already", 409)
    password = new_app_password()
    row = AppPassword(
        user_id=user.id,
        name=cleaned,
        password_sealed=sealer(secret, SEALING_PURPOSE).encrypt(password.encode()),
    )
    session.add(row)
    await session.commit()
    return Made(row, password)


async def revoke(session: AsyncSession, user_id: int, app_password_id: int) -> bool:
    """Revoke one of ``user_id``'s app passwords for good; commits. False if it has no
    such active app password."""
    result = await session.execute(
        update(AppPassword)
        .where(
            AppPassword.id == app_password_id,
            AppPassword.user_id == user_id,
            AppPassword.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def revoke_named(session: AsyncSession, user_id: int, name: str) -> bool:
    """Revoke ``user_id``'s active app password named ``name`` (any case); commits."""
    row = await session.scalar(
        select(AppPassword).where(
            AppPassword.user_id == user_id,
            AppPassword.revoked_at.is_(None),
            func.lower(AppPassword.name) == " ".join(name.split()).lower(),
        )
    )
    if row is None:
        return False
    return await revoke(session, user_id, row.id)


async def _candidates(
    session: AsyncSession, secret: str, username: str
) -> list[tuple[AppPassword, User, str]]:
    """The active account ``username``'s unrevoked app passwords, opened."""
    rows = await session.execute(
        select(AppPassword, User)
        .join(User, User.id == AppPassword.user_id)
        .where(
            User.username == username.strip().lower(),
            User.status == AccountStatus.ACTIVE,
            AppPassword.revoked_at.is_(None),
        )
        .order_by(AppPassword.id)
    )
    opener = sealer(secret, SEALING_PURPOSE)
    opened = []
    for row, user in rows:
        try:
            opened.append((row, user, opener.decrypt(row.password_sealed).decode()))
        except InvalidToken:
            log.warning("app password %s cannot be opened with this instance secret", row.id)
    return opened


def _verified(row: AppPassword, user: User) -> Verified:
    return Verified(user, row.id, row.last_used_at)


async def verify_token(
    session: AsyncSession, secret: str, username: str, token: str, salt: str
) -> Verified | None:
    """The account whose app password gives ``token`` = md5(password + ``salt``)."""
    for row, user, password in await _candidates(session, secret, username):
        if any(token_matches(spelling, salt, token) for spelling in spellings(password)):
            return _verified(row, user)
    return None


async def verify_password(
    session: AsyncSession, secret: str, username: str, password: str
) -> Verified | None:
    """The account with the app password ``password`` (as typed: case, spaces and
    separators aside)."""
    typed = normalise_typed(password).encode()
    for row, user, stored in await _candidates(session, secret, username):
        if hmac.compare_digest(typed, stored.replace(SEPARATOR, "").encode()):
            return _verified(row, user)
    return None


async def record_use(
    session: AsyncSession, verified: Verified, now: datetime | None = None
) -> None:
    """Note that the app password was used (coarsely: see :data:`LAST_USED_GRAIN`)."""
    now = now or utcnow()
    if not verified.due_for_touch(now):
        return
    await session.execute(
        update(AppPassword)
        .where(AppPassword.id == verified.app_password_id)
        .values(last_used_at=now)
    )
    await session.commit()
