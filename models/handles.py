"""One namespace of names for users, artists and labels (`acct:name@host` is unambiguous).

Every user, artist and label registers its name here in the same transaction that makes
it; the primary key makes a collision fail however the requests interleave.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, str_enum
from models.names import InvalidName, normalise_name


class HandleKind(StrEnum):
    USER = "user"
    ARTIST = "artist"
    LABEL = "label"


class Handle(Base):
    __tablename__ = "handles"

    name: Mapped[str] = mapped_column(String(30), primary_key=True)
    kind: Mapped[HandleKind] = mapped_column(str_enum(HandleKind, 16))


class NameTaken(InvalidName):
    """The name is used by another user, artist or label."""


async def claim_handle(session: AsyncSession, name: str, kind: HandleKind) -> str:
    """Register a name (flushing, inside the caller's transaction); return its canonical form."""
    canonical = normalise_name(name)
    if await session.scalar(select(Handle.name).where(Handle.name == canonical)):
        raise NameTaken(f"the name {canonical!r} is already taken")
    try:
        async with session.begin_nested():
            session.add(Handle(name=canonical, kind=kind))
    except IntegrityError:
        raise NameTaken(f"the name {canonical!r} is already taken") from None
    return canonical
