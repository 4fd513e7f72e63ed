"""Plays of tracks hosted by partner instances (docs/architecture.md#a-play-of-a-partners-track).

On the listener's instance (the payer): the remote tracks it knows, each listener's
count of paid plays of them (stream-to-own works exactly as for local tracks), play
sessions, the plays themselves (each one a Listen sent to the payee), and the audio
cache. On the artist's instance (the payee): the Listens received, once each by id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, str_enum, utcnow
from models.federation import URI
from models.states import StateMachine


class RemoteTrack(Base):
    __tablename__ = "remote_tracks"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    # The payee: the instance actor of the server hosting the track.
    payee_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="CASCADE"), index=True
    )
    artist_uri: Mapped[str] = mapped_column(URI)
    title: Mapped[str] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    position: Mapped[int] = mapped_column(Integer, default=1)
    release_uri: Mapped[str] = mapped_column(URI, index=True)
    release_title: Mapped[str] = mapped_column(String(500), default="")
    stream_url: Mapped[str] = mapped_column(URI)
    preview_url: Mapped[str | None] = mapped_column(URI, default=None)
    free: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The cached full audio (checked against the payee's Repr-Digest when fetched).
    cache_key: Mapped[str | None] = mapped_column(String(255), default=None)
    cache_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    cache_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    cache_type: Mapped[str | None] = mapped_column(String(100), default=None)
    # Which byte of the cached file holds which moment (models.stream_gate).
    cache_timeline: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)
    cached_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)


class RemoteListenerTrack(Base):
    """A listener's paid plays of a remote track, and whether they own it (kept here:
    the listener's identity never leaves this instance)."""

    __tablename__ = "remote_listener_tracks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    remote_track_id: Mapped[int] = mapped_column(
        ForeignKey("remote_tracks.id", ondelete="CASCADE"), primary_key=True
    )
    paid_plays: Mapped[int] = mapped_column(Integer, default=0)
    owned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RemotePlaySession(Base):
    __tablename__ = "remote_play_sessions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    remote_track_id: Mapped[int] = mapped_column(ForeignKey("remote_tracks.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    play_id: Mapped[int | None] = mapped_column(
        ForeignKey("remote_plays.id", ondelete="SET NULL"), default=None
    )


class RemotePlay(Base):
    """A claimed play of a remote track: what the listener paid and the Listen sent."""

    __tablename__ = "remote_plays"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    listen_uri: Mapped[str] = mapped_column(URI, unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    remote_track_id: Mapped[int] = mapped_column(
        ForeignKey("remote_tracks.id", ondelete="RESTRICT"), index=True
    )
    payee_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="RESTRICT"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    paid_number: Mapped[int | None] = mapped_column(Integer, default=None)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    owned: Mapped[bool] = mapped_column(Boolean, default=False)
    listener: Mapped[str] = mapped_column(String(128))  # the pseudonym the payee sees


class ReceivedListen(Base):
    """A Listen from a partner (the payer) about one of our tracks, recorded once."""

    __tablename__ = "received_listens"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    payer_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="RESTRICT"), index=True
    )
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="RESTRICT"), index=True)
    listener: Mapped[str] = mapped_column(String(128))
    paid_number: Mapped[int | None] = mapped_column(Integer, default=None)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    owned: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatementDirection(StrEnum):
    OUTGOING = "outgoing"  # we are the payer
    INCOMING = "incoming"  # we are the payee


class StatementState(StrEnum):
    SENT = "sent"  # outgoing, no answer yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"


STATEMENT_STATES: StateMachine[StatementState] = StateMachine(
    "RoyaltyStatementRecord.state",
    # Ours start sent; a payer's to us is recorded once answered (its missing Listens
    # are fetched before the answer, so it never waits in a state of its own).
    initial=[StatementState.SENT, StatementState.ACCEPTED, StatementState.REJECTED],
    transitions={
        StatementState.SENT: [StatementState.ACCEPTED, StatementState.REJECTED],
        # A later answer from the payee replaces the earlier one.
        StatementState.ACCEPTED: [StatementState.ACCEPTED, StatementState.REJECTED],
        StatementState.REJECTED: [StatementState.ACCEPTED, StatementState.REJECTED],
    },
    resting=[StatementState.ACCEPTED, StatementState.REJECTED],
)


class RoyaltyStatementRecord(Base):
    """A signed royalty statement (docs/architecture.md#a-royalty-period), ours to a payee or a
    payer's to us, exactly as signed, with what became of it."""

    __tablename__ = "royalty_statements"
    # At most one unanswered statement of ours per payee: the next one waits for the
    # answer, and a second run racing the first (a crashed run taken over, or the command
    # line beside the worker) cannot state the same Listens twice.
    __table_args__ = (
        Index(
            "ix_royalty_statements_one_unanswered",
            "counterpart_id",
            unique=True,
            sqlite_where=text("direction = 'outgoing' AND state = 'sent'"),
            postgresql_where=text("direction = 'outgoing' AND state = 'sent'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    direction: Mapped[StatementDirection] = mapped_column(str_enum(StatementDirection, 16))
    counterpart_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="RESTRICT"), index=True
    )
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    total_charged: Mapped[int] = mapped_column(BigInteger)
    total_owed: Mapped[int] = mapped_column(BigInteger)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    state: Mapped[StatementState] = mapped_column(str_enum(StatementState, 16))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class HubEntryKind(StrEnum):
    STATEMENT = "statement"
    ACCEPT = "accept"
    REJECT = "reject"
    SETTLEMENT = "settlement"


class HubLogEntry(Base):
    """The co-op hub's append-only log: every statement and answer its members copy to
    it, as signed and with what the hub's own checks found, and its settlements. Rows
    are only ever inserted."""

    __tablename__ = "hub_log"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    kind: Mapped[HubEntryKind] = mapped_column(str_enum(HubEntryKind, 16))
    statement_uri: Mapped[str | None] = mapped_column(URI, default=None, index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    verified: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettlementRecord(Base):
    """A settlement from our hub, verified and booked once."""

    __tablename__ = "settlements"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    net: Mapped[int] = mapped_column(BigInteger)  # what we receive (negative: pay)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
