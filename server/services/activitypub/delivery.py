"""Outgoing activities: recorded once, fanned out to one delivery per inbox (shared
inboxes de-duplicated), each delivery driven by the worker through the state machine
``pending → delivering → delivered | failed | abandoned``.

The ``deliveries`` table is the state; a job per attempt is only its timer. An attempt
claims its row with a lease (``leased_until``, twice the request's deadline, so that once
it has passed the attempt is surely over) and the attempt number, which fences the
result: a holder that comes back after its row was taken over records nothing. A row
left ``delivering`` by a process that died is taken over when its lease has run out: by
its own job when the worker re-claims it, by the periodic recovery, or by a replay.
Delivery is therefore at least once; receivers de-duplicate by activity id (ours does:
the inbox stores each id once). A replay by an admin puts failed and stuck deliveries
back to pending with a fresh job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.delivery import Attempt, RetryRules, Verdict, decide
from federation.fetch import AddressRefused, FetchError
from federation.signatures import sign_request
from models import jobs
from models.base import utcnow
from models.federation import (
    DELIVERY_STATES,
    Delivery,
    DeliveryState,
    Follow,
    FollowState,
    OutboundActivity,
    RemoteActor,
    stuck_deliveries,
)
from server.runtime.config import FederationSettings
from server.runtime.worker import JobContext
from server.services.activitypub.context import Federation, federation_of
from server.services.activitypub.local import signing_key
from server.services.activitypub.remote import domain_of

log = logging.getLogger(__name__)
DELIVER_JOB = "federation.deliver"
RECOVER_JOB = "federation.recover_deliveries"
# A pending delivery this late has lost its timer (its job failed for good, or was lost).
OVERDUE = timedelta(minutes=10)
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


async def _schedule(session: AsyncSession, row: Delivery, when: datetime) -> bool:
    """The timer of the row's next attempt (one job per attempt number); True if it had
    to be made or re-armed."""
    return await jobs.ensure(
        session,
        DELIVER_JOB,
        {"delivery": row.id},
        run_after=when,
        unique_key=f"deliver:{row.id}:{row.attempts}",
        max_attempts=3,
    )


def delivery_lease(settings: FederationSettings) -> timedelta:
    """How long an attempt holds its row: the request's deadline twice over (signing
    and recording the answer are quick), so a lease run out means the attempt is over."""
    return settings.delivery_timeout * 2


async def _requeue(session: AsyncSession, rows: Iterable[Delivery], now: datetime) -> int:
    """Back to pending with a timer due now; a row that changed meanwhile (taken over
    by an attempt) is left alone."""
    count = 0
    for row in rows:
        if row.state is DeliveryState.DELIVERING:
            unchanged = stuck_deliveries(now)
        else:
            unchanged = Delivery.state == row.state
        moved = await session.execute(
            update(Delivery)
            .where(Delivery.id == row.id, Delivery.attempts == row.attempts, unchanged)
            .values(
                state=DELIVERY_STATES.check(row.state, DeliveryState.PENDING),
                next_attempt_at=now,
                leased_until=None,
                keys_refreshed=False,
                finished_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            await _schedule(session, row, now)
            count += 1
    return count


async def replay(
    session: AsyncSession, delivery_ids: Iterable[int] | None = None, now: datetime | None = None
) -> int:
    """Put failed and stuck deliveries (or the given failed, abandoned or stuck ones)
    back in the queue."""
    now = now or utcnow()
    query = select(Delivery)
    if delivery_ids is None:
        query = query.where(or_(Delivery.state == DeliveryState.FAILED, stuck_deliveries(now)))
    else:
        query = query.where(
            Delivery.id.in_(list(delivery_ids)),
            or_(
                Delivery.state.in_([DeliveryState.FAILED, DeliveryState.ABANDONED]),
                stuck_deliveries(now),
            ),
        )
    count = await _requeue(session, (await session.scalars(query)).all(), now)
    await session.commit()
    return count


async def recover(session: AsyncSession, now: datetime | None = None, limit: int = 1000) -> int:
    """What a crash can leave behind, put right: deliveries stuck ``delivering`` after
    their lease go back to pending, and pending ones long overdue get their timer back
    (their job had failed for good or was lost). Returns how many were re-armed."""
    now = now or utcnow()
    stuck = await session.scalars(select(Delivery).where(stuck_deliveries(now)).limit(limit))
    count = await _requeue(session, stuck.all(), now)
    overdue = (
        await session.scalars(
            select(Delivery)
            .where(
                Delivery.state == DeliveryState.PENDING,
                Delivery.next_attempt_at < now - OVERDUE,
            )
            .limit(limit)
        )
    ).all()
    for row in overdue:
        count += await _schedule(session, row, now)
    await session.commit()
    return count


async def run_recovery(context: JobContext, payload: dict[str, object]) -> None:
    async with context.sessionmaker() as session:
        count = await recover(session)
    if count:
        log.warning("%s deliveries left behind by a stopped worker were queued again", count)


async def run_delivery(context: JobContext, payload: dict[str, object]) -> None:
    fed = federation_of(context.resources)
    delivery_id = payload.get("delivery")
    if not isinstance(delivery_id, int):
        raise jobs.PermanentJobError("the delivery job has no delivery id")
    await attempt_delivery(fed, delivery_id)


async def attempt_delivery(
    fed: Federation, delivery_id: int, now: datetime | None = None
) -> Verdict | None:
    """One attempt; returns the verdict, or None when there was nothing to do (done
    already, or just claimed by another attempt). A row in flight elsewhere postpones
    the job until that attempt's lease runs out."""
    now = now or utcnow()
    async with fed.sessionmaker() as session:
        row = await session.get(Delivery, delivery_id)
        if row is None or row.state not in (DeliveryState.PENDING, DeliveryState.DELIVERING):
            return None  # done already, or replayed and picked up by another job
        held_until = row.leased_until if row.state is DeliveryState.DELIVERING else None
        if held_until is not None and held_until >= now:
            raise jobs.Postponed(
                held_until, f"delivery {delivery_id} is in flight in another attempt"
            )
        activity = await session.get(OutboundActivity, row.activity_id)
        assert activity is not None
        if activity.actor_name is None:
            key_id, private = fed.instance_key_id, fed.keys.rsa
        else:
            key = await signing_key(
                session, fed.base_url, activity.actor_name, fed.secret, fed.key_cache
            )
            key_id, private = key.key_id, key.private
        claimable = (Delivery.state == DeliveryState.PENDING) | stuck_deliveries(now)
        claimed = await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.attempts == row.attempts, claimable)
            .values(
                state=DELIVERY_STATES.check_all(
                    [DeliveryState.PENDING, DeliveryState.DELIVERING], DeliveryState.DELIVERING
                ),
                attempts=row.attempts + 1,
                leased_until=now + delivery_lease(fed.settings),
            )
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            await session.rollback()
            return None  # another attempt claimed it first: it carries it on
        if row.state is DeliveryState.DELIVERING:
            log.warning("delivery %s: taking over attempt %s", delivery_id, row.attempts)
        await session.commit()
        inbox, attempts, refreshed = row.inbox, row.attempts + 1, row.keys_refreshed
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
        row = await session.get(Delivery, delivery_id, with_for_update=True)
        if row is None or row.state is not DeliveryState.DELIVERING or row.attempts != attempts:
            log.warning(
                "delivery %s: attempt %s was taken over meanwhile; its result is dropped",
                delivery_id,
                attempts,
            )
            return None
        row.leased_until = None
        row.last_status = result.status
        row.last_error = None if decision.verdict is Verdict.DELIVERED else decision.reason
        row.keys_refreshed = decision.keys_refreshed
        if decision.verdict is Verdict.RETRY:
            assert decision.delay is not None
            row.state = DELIVERY_STATES.check(row.state, DeliveryState.PENDING)
            row.next_attempt_at = now + decision.delay
            await _schedule(session, row, row.next_attempt_at)
        else:
            finished = {
                Verdict.DELIVERED: DeliveryState.DELIVERED,
                Verdict.FAILED: DeliveryState.FAILED,
            }.get(decision.verdict, DeliveryState.ABANDONED)
            row.state = DELIVERY_STATES.check(row.state, finished)
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
