"""Outgoing activities: recorded once, fanned out to one delivery per inbox (shared
inboxes de-duplicated), each delivery driven by the worker through the state machine
``pending → delivering → delivered | failed | abandoned`` (DESIGN.md §5).

The ``deliveries`` table is the state; a job per attempt is only its timer. A replay by
an admin puts a failed delivery back to pending with a fresh job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.delivery import Attempt, RetryRules, Verdict, decide
from federation.fetch import AddressRefused, FetchError
from federation.signatures import sign_request
from models import jobs
from models.base import utcnow
from models.federation import (
    Delivery,
    DeliveryState,
    Follow,
    FollowState,
    OutboundActivity,
    RemoteActor,
)
from server.activitypub.context import Federation, federation_of
from server.activitypub.local import signing_key
from server.activitypub.remote import domain_of
from server.worker import JobContext

log = logging.getLogger(__name__)
DELIVER_JOB = "federation.deliver"
CHUNK = 1000
ACTIVITY_CONTENT_TYPE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


async def record_activity(
    session: AsyncSession,
    document: dict[str, Any],
    actor_name: str | None,
    *,
    release_id: int | None = None,
    public: bool = False,
) -> tuple[OutboundActivity, bool]:
    """Store an activity we send (flushing). Returns (row, created); an id already sent
    returns the earlier row, so sending the same thing twice delivers it once."""
    existing = await session.scalar(
        select(OutboundActivity).where(OutboundActivity.uri == document["id"])
    )
    if existing is not None:
        return existing, False
    row = OutboundActivity(
        uri=document["id"],
        actor_name=actor_name,
        type=document["type"],
        release_id=release_id,
        public=public,
        document=document,
    )
    session.add(row)
    await session.flush()
    return row, True


async def follower_inboxes(session: AsyncSession, local_names: Iterable[str]) -> list[str]:
    """The inboxes that reach every remote follower of these local actors, each shared
    inbox once."""
    rows = await session.execute(
        select(RemoteActor.shared_inbox, RemoteActor.inbox)
        .join(Follow, Follow.follower_actor_id == RemoteActor.id)
        .where(
            Follow.followed_name.in_(list(local_names)),
            Follow.state == FollowState.ACCEPTED,
            RemoteActor.gone_at.is_(None),
        )
    )
    return sorted({shared or inbox for shared, inbox in rows})


async def deliver(session: AsyncSession, activity: OutboundActivity, inboxes: Iterable[str]) -> int:
    """Queue one delivery per new inbox, in the caller's transaction; returns how many."""
    wanted = set(inboxes)
    known: set[str] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), CHUNK):  # bound parameters are limited per query
        known.update(
            await session.scalars(
                select(Delivery.inbox).where(
                    Delivery.activity_id == activity.id,
                    Delivery.inbox.in_(ordered[start : start + CHUNK]),
                )
            )
        )
    rows = [
        Delivery(activity_id=activity.id, inbox=inbox, domain=domain_of(inbox))
        for inbox in sorted(wanted - known)
    ]
    session.add_all(rows)
    await session.flush()
    for row in rows:
        await _schedule(session, row, row.next_attempt_at)
    return len(rows)


async def _schedule(session: AsyncSession, row: Delivery, when: datetime) -> None:
    await jobs.enqueue(
        session,
        DELIVER_JOB,
        {"delivery": row.id},
        run_after=when,
        unique_key=f"deliver:{row.id}:{row.attempts}",
        max_attempts=3,
    )


async def replay(session: AsyncSession, delivery_ids: Iterable[int] | None = None) -> int:
    """Put failed (or the given failed/abandoned) deliveries back in the queue."""
    query = select(Delivery)
    if delivery_ids is None:
        query = query.where(Delivery.state == DeliveryState.FAILED)
    else:
        query = query.where(
            Delivery.id.in_(list(delivery_ids)),
            Delivery.state.in_([DeliveryState.FAILED, DeliveryState.ABANDONED]),
        )
    rows = (await session.scalars(query)).all()
    now = utcnow()
    for row in rows:
        row.state = DeliveryState.PENDING
        row.next_attempt_at = now
        row.keys_refreshed = False
        row.finished_at = None
        await _schedule(session, row, now)
    await session.commit()
    return len(rows)


async def run_delivery(context: JobContext, payload: dict[str, object]) -> None:
    fed = federation_of(context.resources)
    delivery_id = payload.get("delivery")
    if not isinstance(delivery_id, int):
        raise jobs.PermanentJobError("the delivery job has no delivery id")
    await attempt_delivery(fed, delivery_id)


async def attempt_delivery(fed: Federation, delivery_id: int) -> Verdict | None:
    """One attempt; returns the verdict, or None when there was nothing to do."""
    async with fed.sessionmaker() as session:
        row = await session.get(Delivery, delivery_id)
        if row is None or row.state is not DeliveryState.PENDING:
            return None  # done already, or replayed and picked up by another job
        activity = await session.get(OutboundActivity, row.activity_id)
        assert activity is not None
        if activity.actor_name is None:
            key_id, private = fed.instance_key_id, fed.keys.rsa
        else:
            key = await signing_key(
                session, fed.base_url, activity.actor_name, fed.secret, fed.key_cache
            )
            key_id, private = key.key_id, key.private
        row.state = DeliveryState.DELIVERING
        row.attempts += 1
        await session.commit()
        inbox, attempts, refreshed = row.inbox, row.attempts, row.keys_refreshed
        activity_type = activity.type
        created = row.created_at
        body = json.dumps(activity.document, separators=(",", ":")).encode()

    def sign(method: str, url: str, content: bytes | None) -> dict[str, str]:
        return sign_request(method, url, content, key_id, private)

    try:
        response = await fed.fetcher.request(
            "POST",
            inbox,
            headers={"Content-Type": ACTIVITY_CONTENT_TYPE, "Accept": "application/json"},
            content=body,
            sign=sign,
            deadline_seconds=fed.settings.delivery_timeout.total_seconds(),
        )
        result = Attempt(response.status, retry_after=response.headers.get("Retry-After"))
    except AddressRefused as error:
        result = Attempt(None, str(error), refused=True)
    except FetchError as error:
        result = Attempt(None, str(error))
    now = utcnow()
    rules = RetryRules(
        fed.settings.delivery_retry_base,
        fed.settings.delivery_retry_max,
        fed.settings.delivery_give_up_after,
    )
    decision = decide(
        result,
        attempts=attempts,
        first_created=created,
        keys_refreshed=refreshed,
        now=now,
        rules=rules,
    )
    async with fed.sessionmaker() as session:
        row = await session.get(Delivery, delivery_id)
        assert row is not None
        row.last_status = result.status
        row.last_error = None if decision.verdict is Verdict.DELIVERED else decision.reason
        row.keys_refreshed = decision.keys_refreshed
        if decision.verdict is Verdict.RETRY:
            assert decision.delay is not None
            row.state = DeliveryState.PENDING
            row.next_attempt_at = now + decision.delay
            await _schedule(session, row, row.next_attempt_at)
        else:
            row.state = {
                Verdict.DELIVERED: DeliveryState.DELIVERED,
                Verdict.FAILED: DeliveryState.FAILED,
            }.get(decision.verdict, DeliveryState.ABANDONED)
            row.finished_at = now
        if decision.verdict is Verdict.GONE:
            await session.execute(
                update(RemoteActor)
                .where(or_(RemoteActor.inbox == inbox, RemoteActor.shared_inbox == inbox))
                .values(gone_at=now)
            )
        await session.commit()
    log.info(
        "delivery %s of %s to %s: %s (%s)",
        delivery_id,
        activity_type,
        inbox,
        decision.verdict.value,
        decision.reason,
    )
    return decision.verdict
