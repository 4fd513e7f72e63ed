"""Making accounts: name rules, password hashing (Argon2id)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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
    username = normalise_name(name)
    check_password(password)
    exists = await session.scalar(
        select(func.count()).select_from(User).where(User.username == username)
    )
    if exists:
        raise AccountError(f"the name {username!r} is already taken")
    user = User(username=username, password_hash=hash_password(password), role=role, email=email)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise AccountError(f"the name {username!r} is already taken") from None
    return user
