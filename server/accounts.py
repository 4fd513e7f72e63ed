"""Making accounts: name rules, password hashing (Argon2id)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from models.handles import HandleKind, claim_handle
from models.names import normalise_name
from models.users import Role, User

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
    session: AsyncSession, name: str, password: str, role: Role, email: str | None = None
) -> User:
    """Make an account and commit it; its name is claimed in the shared namespace."""
    normalise_name(name)  # a bad name is reported before the password
    check_password(password)
    try:
        username = await claim_handle(session, name, HandleKind.USER)
        user = User(
            username=username, password_hash=hash_password(password), role=role, email=email
        )
        session.add(user)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return user
