"""Making accounts: name rules, password hashing (Argon2id)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Invitation, RetiredName, keyed_digest
from models.base import utcnow
from models.handles import HandleKind, NameTaken, claim_handle
from models.names import normalise_name
from models.users import AccountStatus, Role, User

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()  # argon2-cffi's defaults follow RFC 9106's recommendations


class AccountError(ValueError):
    """The account cannot be made; the message says why."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise AccountError("a password may have at most 1024 characters")


async def create_user(
    session: AsyncSession,
    name: str,
    password: str,
    role: Role,
    email: str | None = None,
    *,
    status: AccountStatus = AccountStatus.ACTIVE,
    wants_role: Role | None = None,
    name_key: str | None = None,
    invitation: Invitation | None = None,
    starter_balance: int = 0,
) -> User:
    """Make an account and commit it; its name is claimed in the shared namespace (and
    checked against retired names when ``name_key`` is given)."""
    canonical = normalise_name(name)  # a bad name is reported before the password
    check_password(password)
    try:
        if (
            name_key is not None
            and await session.get(RetiredName, keyed_digest(name_key, canonical)) is not None
        ):
            raise NameTaken(f"the name {canonical!r} is already taken")
        username = await claim_handle(session, name, HandleKind.USER)
        user = User(
            username=username,
            password_hash=hash_password(password),
            role=role,
            email=email,
            status=status,
            wants_role=wants_role,
        )
        session.add(user)
        if invitation is not None:
            invitation.used_at = utcnow()
        await session.flush()
        if starter_balance:
            from server.services.money import grant_starter_balance

            await grant_starter_balance(session, user.id, starter_balance)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return user
