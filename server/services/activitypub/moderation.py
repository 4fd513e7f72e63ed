"""Admin actions: domain blocks and allows, actor blocks, delivery listing and replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.urls import is_remote_url
from models.base import utcnow
from models.federation import (
    DELIVERY_STATES,
    ActorBlock,
    Delivery,
    DeliveryState,
    DomainPolicy,
    DomainPolicyKind,
    Follow,
    OutboundActivity,
    RemoteActor,
)


class ModerationError(ValueError):
    pass


def normalise_domain(domain: str) -> str:
    value = domain.strip().lower().rstrip(".")
    if value.startswith(("http://", "https://")):
        value = value.split("://", 1)[1].split("/", 1)[0]
    value = value.split(":", 1)[0] if value.count(":") == 1 else value
    if not value or "/" in value or " " in value or ("." not in value and value != "localhost"):
        raise ModerationError(f"{domain!r} is not a domain name")
    return value


async def set_domain_policy(
    session: AsyncSession, domain: str, policy: DomainPolicyKind, reason: str = ""
) -> DomainPolicy:
    """Block (or allow) a domain. A block also ends follows with its actors and stops
    deliveries to it that have not gone out yet."""
    name = normalise_domain(domain)
    row = await session.scalar(select(DomainPolicy).where(DomainPolicy.domain == name))
    if row is None:
        row = DomainPolicy(domain=name, policy=policy, reason=reason)
        session.add(row)
    row.policy, row.reason = policy, reason
    if policy is DomainPolicyKind.BLOCK:
        actors = select(RemoteActor.id).where(
            or_(RemoteActor.domain == name, RemoteActor.domain.like(f"%.{name}"))
        )
        await session.execute(
            delete(Follow).where(
                or_(Follow.follower_actor_id.in_(actors), Follow.followed_actor_id.in_(actors))
            )
        )
        waiting = [DeliveryState.PENDING, DeliveryState.FAILED]
        await session.execute(
            update(Delivery)
            .where(
                or_(Delivery.domain == name, Delivery.domain.like(f"%.{name}")),
                Delivery.state.in_(waiting),
            )
            .values(
                state=DELIVERY_STATES.check_all(waiting, DeliveryState.ABANDONED),
                last_error="the domain is blocked",
            )
        )
    await session.commit()
    return row


async def remove_domain_policy(session: AsyncSession, domain: str) -> bool:
    result = await session.execute(
        delete(DomainPolicy).where(DomainPolicy.domain == normalise_domain(domain))
    )
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def block_actor(session: AsyncSession, actor_uri: str, reason: str = "") -> None:
    if not is_remote_url(actor_uri):
        raise ModerationError("an actor is blocked by its URL")
    if await session.scalar(select(ActorBlock.id).where(ActorBlock.actor_uri == actor_uri)):
        return
    session.add(ActorBlock(actor_uri=actor_uri, reason=reason))
    actor = select(RemoteActor.id).where(RemoteActor.uri == actor_uri)
    await session.execute(
        delete(Follow).where(
            or_(Follow.follower_actor_id.in_(actor), Follow.followed_actor_id.in_(actor))
        )
    )
    await session.commit()


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    activity: str
    type: str
    inbox: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    stuck: bool  # delivering, but the attempt's lease ran out: its worker stopped


async def list_deliveries(
    session: AsyncSession, state: DeliveryState | None = None, limit: int = 100
) -> list[DeliveryRow]:
    query = (
        select(Delivery, OutboundActivity.uri, OutboundActivity.type)
        .join(OutboundActivity, OutboundActivity.id == Delivery.activity_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if state is not None:
        query = query.where(Delivery.state == state)
    rows = (await session.execute(query)).all()
    now = utcnow()
    return [
        DeliveryRow(
            d.id, uri, kind, d.inbox, d.state.value, d.attempts, d.last_status, d.last_error,
            d.next_attempt_at, d.created_at, d.stuck(now),
        )
        for d, uri, kind in rows
    ]  # fmt: skip
