"""Accounts: who can sign in, and with which role."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, UTCDateTime, str_enum, utcnow


class Role(StrEnum):
    LISTENER = "listener"
    ARTIST = "artist"
    LABEL = "label"
    ADMIN = "admin"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # waiting for an admin's approval
    DISABLED = "disabled"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # Canonical form from models.names.normalise_name; unique across the instance.
    username: Mapped[str] = mapped_column(String(30), ForeignKey("handles.name"), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, 16), default=Role.LISTENER)
    # Optional by design (docs/architecture.md#privacy).
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    status: Mapped[AccountStatus] = mapped_column(
        str_enum(AccountStatus, 16), default=AccountStatus.ACTIVE, server_default="active"
    )
    # An artist (or label) account asked for while artist sign-up needs approval.
    wants_role: Mapped[Role | None] = mapped_column(str_enum(Role, 16), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
