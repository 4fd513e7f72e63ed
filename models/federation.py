"""What federation keeps: actor keys, remote actors, follows, the inbox, outgoing activities
and their deliveries, interactions with our releases, remote posts for feeds, moderation.

Remote things are keyed by their ActivityPub ids (absolute URLs, up to 2048 characters);
an id seen twice is the same thing, which is what makes every inbox handler idempotent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, str_enum, utcnow
from models.states import StateMachine

URI = String(2048)


class ActorKey(Base):
    """The RSA key a local artist, label or listener signs its deliveries with."""

    __tablename__ = "actor_keys"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    actor_name: Mapped[str] = mapped_column(
        String(30), ForeignKey("handles.name", ondelete="CASCADE"), index=True
    )
    public_pem: Mapped[str] = mapped_column(Text)
    private_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RemoteActor(Base):
    """A cached copy of an actor on another server (refetched once it is older than the
    cache lifetime, or when its key stops verifying)."""

    __tablename__ = "remote_actors"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    type: Mapped[str] = mapped_column(String(32))
    preferred_username: Mapped[str | None] = mapped_column(String(500), default=None)
    name: Mapped[str] = mapped_column(String(500), default="")
    summary_html: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(URI, default=None)
    icon_url: Mapped[str | None] = mapped_column(URI, default=None)
    inbox: Mapped[str] = mapped_column(URI, index=True)  # a 410 finds its actors
    shared_inbox: Mapped[str | None] = mapped_column(URI, default=None, index=True)
    outbox: Mapped[str | None] = mapped_column(URI, default=None)
    followers: Mapped[str | None] = mapped_column(URI, default=None)
    key_id: Mapped[str | None] = mapped_column(URI, default=None, index=True)
    public_pem: Mapped[str | None] = mapped_column(Text, default=None)
    manually_approves: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class FollowState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


FOLLOW_STATES: StateMachine[FollowState] = StateMachine(
    "Follow.state",
    initial=[FollowState.PENDING, FollowState.ACCEPTED],  # accepted: a local artist
    transitions={
        # A repeated Follow is answered again; a repeated Accept or Reject is taken again.
        FollowState.PENDING: [FollowState.PENDING, FollowState.ACCEPTED, FollowState.REJECTED],
        FollowState.ACCEPTED: [FollowState.ACCEPTED, FollowState.REJECTED],
        FollowState.REJECTED: [FollowState.PENDING, FollowState.ACCEPTED, FollowState.REJECTED],
    },
    resting=[FollowState.ACCEPTED, FollowState.REJECTED],
)


class Follow(Base):
    """One follow. The follower and the followed are each either a local name (a handle)
    or a remote actor; ``activity_uri`` is the Follow's id, ours or theirs."""

    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("follower_name", "followed_actor_id", name="uq_follows_local_remote"),
        UniqueConstraint("follower_actor_id", "followed_name", name="uq_follows_remote_local"),
        UniqueConstraint("follower_name", "followed_name", name="uq_follows_local_local"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    activity_uri: Mapped[str] = mapped_column(URI, unique=True)
    follower_name: Mapped[str | None] = mapped_column(
        String(30), ForeignKey("handles.name", ondelete="CASCADE"), default=None, index=True
    )
    follower_actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="CASCADE"), default=None, index=True
    )
    followed_name: Mapped[str | None] = mapped_column(
        String(30), ForeignKey("handles.name", ondelete="CASCADE"), default=None, index=True
    )
    followed_actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="CASCADE"), default=None, index=True
    )
    state: Mapped[FollowState] = mapped_column(
        str_enum(FollowState, 16), default=FollowState.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class InboxState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    IGNORED = "ignored"  # a type we do not handle, or nothing of ours it concerns
    FAILED = "failed"


INBOX_STATES: StateMachine[InboxState] = StateMachine(
    "InboxItem.state",
    initial=[InboxState.PENDING],
    transitions={InboxState.PENDING: [InboxState.DONE, InboxState.IGNORED, InboxState.FAILED]},
    terminal=[InboxState.DONE, InboxState.IGNORED, InboxState.FAILED],
)


class InboxItem(Base):
    """An activity as it arrived, verified; stored once by id, handled by the worker."""

    __tablename__ = "inbox_items"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    activity_uri: Mapped[str] = mapped_column(URI, unique=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    actor_uri: Mapped[str] = mapped_column(URI, index=True)
    recipient: Mapped[str | None] = mapped_column(String(30), default=None)  # None: shared
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    state: Mapped[InboxState] = mapped_column(str_enum(InboxState, 16), default=InboxState.PENDING)
    result: Mapped[str | None] = mapped_column(Text, default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class OutboundActivity(Base):
    """An activity we send: its document exactly as delivered, kept for replays and so
    that its id can be dereferenced."""

    __tablename__ = "outbound_activities"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    actor_name: Mapped[str | None] = mapped_column(String(30), default=None)  # None: instance
    type: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL"), default=None, index=True
    )
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    DELIVERING = "delivering"  # an attempt is in flight until leased_until
    DELIVERED = "delivered"
    FAILED = "failed"  # out of retries; an admin may replay it
    ABANDONED = "abandoned"  # refused for good (4xx, the inbox is gone)


DELIVERY_STATES: StateMachine[DeliveryState] = StateMachine(
    "Delivery.state",
    initial=[DeliveryState.PENDING],
    transitions={
        DeliveryState.PENDING: [
            DeliveryState.DELIVERING,
            DeliveryState.ABANDONED,  # its domain was blocked
        ],
        DeliveryState.DELIVERING: [
            DeliveryState.DELIVERING,  # its lease ran out: another attempt takes it over
            DeliveryState.PENDING,  # a retry, or stuck and put back
            DeliveryState.DELIVERED,
            DeliveryState.FAILED,
            DeliveryState.ABANDONED,
        ],
        DeliveryState.FAILED: [DeliveryState.PENDING, DeliveryState.ABANDONED],  # replayed
        DeliveryState.ABANDONED: [DeliveryState.PENDING],  # replayed by an admin
    },
    terminal=[DeliveryState.DELIVERED],
    resting=[DeliveryState.FAILED, DeliveryState.ABANDONED],
)


class Delivery(Base):
    """One activity to one inbox (shared inboxes de-duplicated)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("activity_id", "inbox"),
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_activities.id", ondelete="CASCADE")
    )
    inbox: Mapped[str] = mapped_column(URI)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[DeliveryState] = mapped_column(
        str_enum(DeliveryState, 16), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # While ``delivering``: the attempt is taken over by whoever finds it after this time
    # (its holder died); the attempt number fences the holder's late result.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    keys_refreshed: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def stuck(self, now: datetime) -> bool:
        """Left ``delivering`` by an attempt whose lease ran out (its process stopped);
        no lease at all: left by a version without leases. (:func:`stuck_deliveries`
        says the same in SQL.)"""
        lease = self.leased_until
        return self.state is DeliveryState.DELIVERING and (lease is None or lease < now)


def stuck_deliveries(now: datetime) -> ColumnElement[bool]:
    """The rows for which :meth:`Delivery.stuck` is true."""
    return (Delivery.state == DeliveryState.DELIVERING) & (
        Delivery.leased_until.is_(None) | (Delivery.leased_until < now)
    )


class InteractionKind(StrEnum):
    REPLY = "reply"
    LIKE = "like"
    ANNOUNCE = "announce"


class Interaction(Base):
    """A reply, like or boost of one of our releases, from anywhere on the fediverse."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # The Like/Announce activity's id, or the reply Note's id.
    uri: Mapped[str] = mapped_column(URI, unique=True)
    kind: Mapped[InteractionKind] = mapped_column(str_enum(InteractionKind, 16))
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="CASCADE"), index=True
    )
    content_html: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(URI, default=None)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemotePost(Base):
    """A release (or any post) from a remote actor that somebody here follows."""

    __tablename__ = "remote_posts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URI, unique=True)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(500), default=None)
    content_html: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(URI, default=None)
    release_uri: Mapped[str | None] = mapped_column(URI, default=None)
    # [{"url", "media_type", "name", "kind"}]: the previews and the cover.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class DomainPolicyKind(StrEnum):
    BLOCK = "block"
    ALLOW = "allow"  # counts only in allow-list mode


class DomainPolicy(Base):
    __tablename__ = "domain_policies"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    policy: Mapped[DomainPolicyKind] = mapped_column(str_enum(DomainPolicyKind, 16))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActorBlock(Base):
    __tablename__ = "actor_blocks"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    actor_uri: Mapped[str] = mapped_column(URI, unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Base):
    """A `Flag` from another server: a report for the admins."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    activity_uri: Mapped[str] = mapped_column(URI, unique=True)
    reporter_uri: Mapped[str] = mapped_column(URI)
    objects: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    content: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PartnerState(StrEnum):
    NONE = "none"
    REQUESTED = "requested"  # a Follow is on its way, no answer yet
    PENDING = "pending"  # their Follow waits for an admin here
    ACCEPTED = "accepted"
    REFUSED = "refused"


# Each direction of a partnership has its own machine over the one enum: only their
# Follow waits for an admin (pending), only ours is requested. Repeats are declared:
# a repeated Follow, Accept or admin decision is taken again.
THEY_FOLLOW_STATES: StateMachine[PartnerState] = StateMachine(
    "Partnership.they_follow",
    initial=[PartnerState.NONE],
    transitions={
        PartnerState.NONE: [
            PartnerState.NONE,  # an Undo of nothing
            PartnerState.PENDING,
            PartnerState.ACCEPTED,
        ],
        PartnerState.PENDING: [
            PartnerState.NONE,
            PartnerState.PENDING,
            PartnerState.ACCEPTED,
            PartnerState.REFUSED,
        ],
        PartnerState.ACCEPTED: [PartnerState.NONE, PartnerState.ACCEPTED, PartnerState.REFUSED],
        PartnerState.REFUSED: [
            PartnerState.NONE,
            PartnerState.PENDING,
            PartnerState.ACCEPTED,
            PartnerState.REFUSED,
        ],
    },
    resting=[PartnerState.NONE, PartnerState.ACCEPTED, PartnerState.REFUSED],
)

WE_FOLLOW_STATES: StateMachine[PartnerState] = StateMachine(
    "Partnership.we_follow",
    initial=[PartnerState.NONE],
    transitions={
        PartnerState.NONE: [PartnerState.REQUESTED],
        PartnerState.REQUESTED: [
            PartnerState.REQUESTED,
            PartnerState.ACCEPTED,
            PartnerState.REFUSED,
        ],
        PartnerState.ACCEPTED: [PartnerState.ACCEPTED, PartnerState.REFUSED],
        PartnerState.REFUSED: [
            PartnerState.REQUESTED,
            PartnerState.ACCEPTED,
            PartnerState.REFUSED,
        ],
    },
    resting=[PartnerState.NONE, PartnerState.ACCEPTED, PartnerState.REFUSED],
)


class Partnership(Base):
    """Two instances whose instance actors follow each other
    (docs/architecture.md#partnerships). Each direction has its own state: ``they_follow``
    accepted lets them fetch our full audio with a signed GET; ``we_follow`` accepted lets
    us fetch theirs."""

    __tablename__ = "partnerships"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("remote_actors.id", ondelete="CASCADE"), unique=True
    )
    they_follow: Mapped[PartnerState] = mapped_column(
        str_enum(PartnerState, 16), default=PartnerState.NONE
    )
    we_follow: Mapped[PartnerState] = mapped_column(
        str_enum(PartnerState, 16), default=PartnerState.NONE
    )
    their_follow_uri: Mapped[str | None] = mapped_column(URI, default=None)
    our_follow_uri: Mapped[str | None] = mapped_column(URI, default=None, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
