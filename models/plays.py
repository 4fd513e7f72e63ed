"""Listening: play sessions, plays, and what each listener owns."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, UTCDateTime, str_enum, utcnow


class PlayOutcome(StrEnum):
    CHARGED = "charged"  # a paid play, tokens moved
    FREE = "free"  # a free track, the listener's own track, or an owned one


class ListenerTrack(Base):
    """How many paid plays a listener has had of a track, and whether they own it."""

    __tablename__ = "listener_tracks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    paid_plays: Mapped[int] = mapped_column(Integer, default=0)
    owned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # "plays" (the ninth paid play) or "bought"
    owned_via: Mapped[str | None] = mapped_column(String(16), default=None)


class PlaySession(Base):
    """Opened when streaming starts; claimed once enough of the track has been heard."""

    __tablename__ = "play_sessions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    play_id: Mapped[int | None] = mapped_column(
        ForeignKey("plays.id", ondelete="SET NULL"), default=None
    )


class Play(Base):
    __tablename__ = "plays"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[PlayOutcome] = mapped_column(str_enum(PlayOutcome, 16))
    paid_number: Mapped[int | None] = mapped_column(Integer, default=None)  # 1..9
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), default=None
    )
