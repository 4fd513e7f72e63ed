"""What accounts need besides the user row: browser sessions, invitations, rate-limit
counters, retired names, and the audit log of admin actions."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, utcnow


def secret_digest(value: str) -> str:
    """SHA-256 of a random secret (session, invitation): enough for 256-bit randomness."""
    return hashlib.sha256(value.encode()).hexdigest()


def keyed_digest(key: str, value: str) -> str:
    """HMAC-SHA-256 of a guessable value (a name) under the instance secret."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its digest is here."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    # the role the invited account gets: listener, or artist for an artist invitation
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RateCounter(Base):
    """Attempts per key (``login:addr:…``, ``login:user:…``) in a fixed window."""

    __tablename__ = "rate_counters"
    __table_args__ = (UniqueConstraint("key", "window_start"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)


class RetiredName(Base):
    """A deleted account's name, kept only as a keyed hash, so that nobody can take the
    name over (other servers still know it) while the name itself is gone."""

    __tablename__ = "retired_names"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """An admin's action on an account. Targets are ids, never names or addresses, so
    the log holds no personal data once the account is gone."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_user_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(BigIntId, default=None)
    action: Mapped[str] = mapped_column(String(64))
    target_user_id: Mapped[int | None] = mapped_column(BigIntId, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


__all__ = [
    "AuditEntry",
    "Invitation",
    "RateCounter",
    "RetiredName",
    "WebSession",
    "keyed_digest",
    "secret_digest",
]


def _window_start(window: timedelta, now: datetime) -> datetime:
    seconds = int(window.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=UTC)


async def attempts_so_far(
    session: AsyncSession, key: str, window: timedelta, now: datetime | None = None
) -> int:
    """The attempts counted for ``key`` in the current fixed window (counting none)."""
    start = _window_start(window, now or utcnow())
    count = await session.scalar(
        select(RateCounter.count).where(RateCounter.key == key, RateCounter.window_start == start)
    )
    return int(count or 0)


async def count_attempt(
    session: AsyncSession, key: str, window: timedelta, now: datetime | None = None
) -> int:
    """Count one attempt for ``key`` in the current fixed window; return the count so far
    (this one included). Commits, so that a refused request is still counted."""
    start = _window_start(window, now or utcnow())
    for _ in range(3):
        counter = await session.scalar(
            select(RateCounter).where(RateCounter.key == key, RateCounter.window_start == start)
        )
        if counter is None:
            try:
                async with session.begin_nested():
                    session.add(RateCounter(key=key, window_start=start, count=1))
            except IntegrityError:
                continue  # another request made it first; count on theirs
            await session.commit()
            return 1
        count = await session.scalar(
            update(RateCounter)
            .where(RateCounter.id == counter.id)
            .values(count=RateCounter.count + 1)
            .returning(RateCounter.count)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return int(count or 0)
    raise RuntimeError("could not count the attempt")


async def purge_rate_counters(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(RateCounter).where(RateCounter.window_start < before))
    await session.commit()
