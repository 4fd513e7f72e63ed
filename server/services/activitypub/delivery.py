"""Outgoing activities: recorded once, fanned out to one delivery per inbox (shared
inboxes de-duplicated), each delivery driven by the worker through the state machine
``pending → delivering → delivered | failed | abandoned``.

The ``deliveries`` table is the state; a job is only a timer: one per batch of 64 for the
first attempts of a fan-out, one per row for each retry. A batch goes out in waves of
``federation.delivery_concurrency`` POSTs at once; one transaction records a wave's
results and claims the next, so the database sees a few statements per wave rather than
several per delivery. An attempt
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

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.delivery import Attempt, Decision, RetryRules, Verdict, decide
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
# A fan-out's first attempts go out this many inboxes to a job: one claim, one load of
# the activity and its key, one transaction for the results, per batch.
BATCH = 64
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
    for start in range(0, len(rows), BATCH):  # first attempts: one job per batch
        batch = [row.id for row in rows[start : start + BATCH]]
        await jobs.enqueue(session, DELIVER_JOB, {"deliveries": batch}, max_attempts=3)
    return len(rows)


async def _schedule(session: AsyncSession, row: Delivery, when: datetime) -> bool:
    return await _arm(session, row.id, row.attempts, when)


async def _arm(session: AsyncSession, delivery_id: int, attempts: int, when: datetime) -> bool:
    """The timer of a delivery's next attempt (one job per attempt number); True if it
    had to be made or re-armed."""
    return await jobs.ensure(
        session,
        DELIVER_JOB,
        {"delivery": delivery_id},
        run_after=when,
        unique_key=f"deliver:{delivery_id}:{attempts}",
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
    """A delivery job: the first attempts of a batch (``deliveries``, from a fan-out) or
    the next attempt of one delivery (``delivery``, a retry's timer)."""
    fed = federation_of(context.resources)
    batch = payload.get("deliveries")
    if isinstance(batch, list) and batch and all(isinstance(item, int) for item in batch):
        await attempt_deliveries(fed, batch)
        return
    delivery_id = payload.get("delivery")
    if not isinstance(delivery_id, int):
        raise jobs.PermanentJobError("the delivery job has no delivery id")
    await attempt_delivery(fed, delivery_id)


@dataclass(frozen=True)
class _Claimed:
    """A delivery row as its claim left it (``attempts`` counts this attempt)."""

    id: int
    activity_id: int
    inbox: str
    attempts: int
    keys_refreshed: bool
    created_at: datetime
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class _Outbound:
    """An activity ready to send: its body, encoded once per batch, and its signer."""

    type: str
    body: bytes
    key_id: str
    private: rsa.RSAPrivateKey


@dataclass(frozen=True)
class _Outcome:
    row: _Claimed
    result: Attempt
    decision: Decision


async def attempt_delivery(
    fed: Federation, delivery_id: int, now: datetime | None = None
) -> Verdict | None:
    """One attempt of one delivery; returns the verdict, or None when there was nothing
    to do (done already, or just claimed by another attempt). A row in flight elsewhere
    postpones the job until that attempt's lease runs out."""
    now = now or utcnow()
    verdicts = await attempt_deliveries(fed, [delivery_id], now, arm_held=False)
    if delivery_id in verdicts:
        return verdicts[delivery_id]
    async with fed.read_sessionmaker() as session:
        row = await session.get(Delivery, delivery_id)
    if row is not None and row.state is DeliveryState.DELIVERING and not row.stuck(now):
        assert row.leased_until is not None
        raise jobs.Postponed(
            row.leased_until, f"delivery {delivery_id} is in flight in another attempt"
        )
    return None


async def attempt_deliveries(
    fed: Federation,
    delivery_ids: Sequence[int],
    now: datetime | None = None,
    *,
    arm_held: bool = True,
) -> dict[int, Verdict]:
    """One attempt of each of these deliveries that is still to make, in waves of
    ``delivery_concurrency``: a wave is claimed (with the usual lease) in the transaction
    that records the results of the wave before it, then sent all at once. Returns the
    verdict of each delivery attempted here. One done already is left alone; one in
    flight in another attempt gets a timer of its own at the end of that lease (with
    ``arm_held``), for when that attempt is surely over."""
    ids = sorted(set(delivery_ids))
    size = fed.settings.delivery_concurrency
    waves = [ids[start : start + size] for start in range(0, len(ids), size)]
    outbound: dict[int, _Outbound] = {}
    verdicts: dict[int, Verdict] = {}
    outcomes: list[_Outcome] = []
    for wave in [*waves, []]:  # the empty last wave records the results of the last one
        async with fed.sessionmaker() as session:
            recorded = await _record(session, outcomes, utcnow())
            claimed = await _claim(session, fed, wave, now or utcnow(), arm_held=arm_held)
            for activity_id in sorted({row.activity_id for row in claimed} - outbound.keys()):
                outbound[activity_id] = await _outbound(session, fed, activity_id)
            await session.commit()
        for outcome in outcomes:
            _log_outcome(outcome, outbound, recorded)
            if outcome.row.id in recorded:
                verdicts[outcome.row.id] = outcome.decision.verdict
        outcomes = list(
            await asyncio.gather(*(_send(fed, outbound[row.activity_id], row) for row in claimed))
        )
    return verdicts


async def _claim(
    session: AsyncSession, fed: Federation, ids: Sequence[int], now: datetime, *, arm_held: bool
) -> list[_Claimed]:
    """Take the rows among ``ids`` that are pending or stuck for this attempt."""
    if not ids:
        return []
    claimed = [
        _Claimed(**row._mapping)
        for row in await session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(ids),
                (Delivery.state == DeliveryState.PENDING) | stuck_deliveries(now),
            )
            .values(
                state=DELIVERY_STATES.check_all(
                    [DeliveryState.PENDING, DeliveryState.DELIVERING], DeliveryState.DELIVERING
                ),
                attempts=Delivery.attempts + 1,
                leased_until=now + delivery_lease(fed.settings),
            )
            .returning(
                Delivery.id,
                Delivery.activity_id,
                Delivery.inbox,
                Delivery.attempts,
                Delivery.keys_refreshed,
                Delivery.created_at,
                # not changed by the claim: what the attempt before this one recorded
                Delivery.last_status,
                Delivery.last_error,
            )
            .execution_options(synchronize_session=False)
        )
    ]
    for row in claimed:
        if row.attempts > 1 and row.last_status is None and row.last_error is None:
            log.warning("delivery %s: taking over attempt %s", row.id, row.attempts - 1)
    if arm_held and len(claimed) < len(ids):
        held = await session.execute(
            select(Delivery.id, Delivery.attempts, Delivery.leased_until).where(
                Delivery.id.in_(sorted(set(ids) - {row.id for row in claimed})),
                Delivery.state == DeliveryState.DELIVERING,
            )
        )
        for delivery_id, attempts, until in held:
            await _arm(session, delivery_id, attempts, until or now)
    return claimed


async def _send(fed: Federation, activity: _Outbound, row: _Claimed) -> _Outcome:
    result = await _post(fed, activity, row.inbox)
    rules = RetryRules(
        fed.settings.delivery_retry_base,
        fed.settings.delivery_retry_max,
        fed.settings.delivery_give_up_after,
    )
    decision = decide(
        result,
        attempts=row.attempts,
        first_created=row.created_at,
        keys_refreshed=row.keys_refreshed,
        now=utcnow(),
        rules=rules,
    )
    return _Outcome(row, result, decision)


def _log_outcome(outcome: _Outcome, outbound: dict[int, _Outbound], recorded: set[int]) -> None:
    row = outcome.row
    if row.id not in recorded:
        log.warning(
            "delivery %s: attempt %s was taken over meanwhile; its result is dropped",
            row.id,
            row.attempts,
        )
        return
    log.info(
        "delivery %s of %s to %s: %s (%s)",
        row.id,
        outbound[row.activity_id].type,
        row.inbox,
        outcome.decision.verdict.value,
        outcome.decision.reason,
    )


async def _outbound(session: AsyncSession, fed: Federation, activity_id: int) -> _Outbound:
    activity = await session.get_one(OutboundActivity, activity_id)
    if activity.actor_name is None:
        key_id, private = fed.instance_key_id, fed.keys.rsa
    else:
        key = await signing_key(
            session, fed.base_url, activity.actor_name, fed.secret, fed.key_cache
        )
        key_id, private = key.key_id, key.private
    body = json.dumps(activity.document, separators=(",", ":")).encode()
    return _Outbound(activity.type, body, key_id, private)


async def _post(fed: Federation, activity: _Outbound, inbox: str) -> Attempt:
    def sign(method: str, url: str, content: bytes | None) -> dict[str, str]:
        return sign_request(method, url, content, activity.key_id, activity.private)

    try:
        response = await fed.fetcher.request(
            "POST",
            inbox,
            headers={"Content-Type": ACTIVITY_CONTENT_TYPE, "Accept": "application/json"},
            content=activity.body,
            sign=sign,
            deadline_seconds=fed.settings.delivery_timeout.total_seconds(),
        )
    except AddressRefused as error:
        return Attempt(None, str(error), refused=True)
    except FetchError as error:
        return Attempt(None, str(error))
    return Attempt(response.status, retry_after=response.headers.get("Retry-After"))


FINISHED = {Verdict.DELIVERED: DeliveryState.DELIVERED, Verdict.FAILED: DeliveryState.FAILED}


async def _record(session: AsyncSession, outcomes: Sequence[_Outcome], now: datetime) -> set[int]:
    """The attempts' results (the caller commits): one statement per set of rows that
    take the same values (a wave delivered is one), each row only if this attempt still
    holds it (its state and attempt number unchanged). Returns the rows recorded."""
    groups: dict[tuple[Any, ...], list[_Outcome]] = {}
    for outcome in outcomes:
        decision = outcome.decision
        if decision.verdict is Verdict.RETRY:
            assert decision.delay is not None
            state, timing = DeliveryState.PENDING, ("next_attempt_at", now + decision.delay)
        else:
            state = FINISHED.get(decision.verdict, DeliveryState.ABANDONED)
            timing = ("finished_at", now)
        error = None if decision.verdict is Verdict.DELIVERED else decision.reason
        values = (state, outcome.result.status, error, decision.keys_refreshed, timing)
        groups.setdefault(values, []).append(outcome)
    recorded: set[int] = set()
    for (state, status, error, keys_refreshed, (when, at)), members in groups.items():
        held = [(outcome.row.id, outcome.row.attempts) for outcome in members]
        moved = await session.scalars(
            update(Delivery)
            .where(
                tuple_(Delivery.id, Delivery.attempts).in_(held),
                Delivery.state == DeliveryState.DELIVERING,
            )
            .values(
                {
                    "state": DELIVERY_STATES.check(DeliveryState.DELIVERING, state),
                    "leased_until": None,
                    "last_status": status,
                    "last_error": error,
                    "keys_refreshed": keys_refreshed,
                    when: at,
                }
            )
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        done = set(moved)  # a row taken over meanwhile: that attempt records its own
        recorded |= done
        for outcome in members:
            row = outcome.row
            if row.id not in done:
                continue
            if outcome.decision.verdict is Verdict.RETRY:
                await _arm(session, row.id, row.attempts, at)
            elif outcome.decision.verdict is Verdict.GONE:
                await session.execute(
                    update(RemoteActor)
                    .where(
                        or_(RemoteActor.inbox == row.inbox, RemoteActor.shared_inbox == row.inbox)
                    )
                    .values(gone_at=now)
                )
    return recorded
