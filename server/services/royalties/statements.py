"""Signed royalty statements between partner instances (docs/architecture.md#a-royalty-period).

The payer (this instance, for its listeners' plays of a partner's tracks) states, per
payee and period, the paid Listens it sent, chained to its previous statement to that
payee and signed with its instance's Ed25519 key (FEP-8b32). The payee verifies the
proof, fetches any Listen it has not received yet by id, reconciles, and answers a signed
Accept or Reject with the disputed lines. Both sides keep what was signed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from federation.fetch import FetchError
from federation.objects import activity
from federation.parse import InvalidObject, parse_activity
from federation.proofs import ProofError, verify_object
from federation.royalties import (
    InvalidStatement,
    ListenRecord,
    Period,
    Statement,
    answer_document,
    build_statement,
    parse_statement,
    reconcile,
    statement_document,
)
from models.base import utcnow
from models.catalogue import Track
from models.federation import RemoteActor
from models.remote_plays import (
    STATEMENT_STATES,
    ReceivedListen,
    RemotePlay,
    RemoteTrack,
    RoyaltyStatementRecord,
    StatementDirection,
    StatementState,
)
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.registry import ANY, Ignored, Incoming, Registry
from server.services.activitypub.remote import ResolveError, get_actor
from server.services.royalties.listens import ListenRefused, record_listen
from server.services.royalties.signing import StatementError, sign_document, signer_key

log = logging.getLogger(__name__)


async def _last(
    fed: Federation, direction: StatementDirection, counterpart_id: int, accepted_only: bool
) -> RoyaltyStatementRecord | None:
    async with fed.sessionmaker() as session:
        query = select(RoyaltyStatementRecord).where(
            RoyaltyStatementRecord.direction == direction,
            RoyaltyStatementRecord.counterpart_id == counterpart_id,
        )
        if accepted_only:
            query = query.where(RoyaltyStatementRecord.state == StatementState.ACCEPTED)
        return await session.scalar(query.order_by(RoyaltyStatementRecord.id.desc()).limit(1))


async def send_statements(fed: Federation, until: datetime | None = None) -> list[str]:
    """State every payee's paid Listens since our last statement to it, up to ``until``
    (now by default); returns the statements' ids. Nothing to state, nothing sent."""
    until = until or utcnow()
    async with fed.sessionmaker() as session:
        payee_ids = list(
            await session.scalars(
                select(RemotePlay.payee_id).where(RemotePlay.tokens > 0).distinct()
            )
        )
    sent = []
    for payee_id in payee_ids:
        uri = await _state_one(fed, payee_id, until)
        if uri:
            sent.append(uri)
    return sent


async def hub_inboxes(fed: Federation) -> tuple[list[str], list[str]]:
    """The hub in copy (``federation.hub``): its actor for ``cc`` and its inbox, or
    nothing when there is no hub or it cannot be reached (logged, not fatal)."""
    if not fed.settings.hub:
        return [], []
    try:
        hub = await get_actor(fed, fed.settings.hub)
    except ResolveError as error:
        log.warning("the hub %s cannot be reached: %s", fed.settings.hub, error)
        return [], []
    return [hub.uri], [hub.shared_inbox or hub.inbox]


async def _state_one(fed: Federation, payee_id: int, until: datetime) -> str | None:
    last = await _last(fed, StatementDirection.OUTGOING, payee_id, accepted_only=False)
    if last is not None and last.state is StatementState.SENT:
        return None  # the last one is not answered yet: the next one waits for it
    accepted = await _last(fed, StatementDirection.OUTGOING, payee_id, accepted_only=True)
    # after a rejection the next statement restates from the last accepted one (they
    # are cumulative by their Listen ids, so nothing is lost or counted twice)
    previous = parse_statement(accepted.document) if accepted else None
    cc, hub_inbox = await hub_inboxes(fed)
    async with fed.sessionmaker() as session:
        payee = await session.get(RemoteActor, payee_id)
        assert payee is not None
        query = (
            select(RemotePlay, RemoteTrack.uri)
            .join(RemoteTrack, RemoteTrack.id == RemotePlay.remote_track_id)
            .where(RemotePlay.payee_id == payee_id, RemotePlay.tokens > 0, RemotePlay.at < until)
        )
        if previous is not None:
            query = query.where(RemotePlay.at >= previous.period_end)
        plays = (await session.execute(query)).all()
        if not plays:
            return None
        start = previous.period_end if previous else min(play.at for play, _ in plays)
        listens = [
            ListenRecord(
                play.listen_uri,
                fed.instance_actor,
                track_uri,
                play.listener,
                play.paid_number,
                play.tokens,
                play.owned,
                play.at,
            )
            for play, track_uri in plays
        ]
        uri = f"{fed.base_url}/statements/{uuid.uuid4().hex}"
        statement = build_statement(
            uri, fed.instance_actor, payee.uri, Period(start, until), listens, previous,
            fed.artist_share_bp,
        )  # fmt: skip
        signed = sign_document(fed, statement_document(statement))
        try:
            async with session.begin_nested():
                session.add(
                    RoyaltyStatementRecord(
                        uri=uri, direction=StatementDirection.OUTGOING,
                        counterpart_id=payee.id, period_start=statement.period_start,
                        period_end=statement.period_end,
                        total_charged=statement.total_charged,
                        total_owed=statement.total_owed, document=signed,
                        state=STATEMENT_STATES.start(StatementState.SENT),
                    )
                )  # fmt: skip
        except IntegrityError:
            # another run (one taken over after a crash, or the command line beside the
            # worker) stated this payee a moment ago: one unanswered statement at a time
            log.info("a statement to %s is already waiting for its answer", payee.uri)
            return None
        create = activity(
            f"{uri}/create", "Create", fed.instance_actor, signed, to=[payee.uri], cc=cc
        )
        row, _ = await record_activity(session, create, None)
        await deliver(session, row, [payee.shared_inbox or payee.inbox, *hub_inbox])
        await session.commit()
    return uri


async def take_statement(fed: Federation, actor_uri: str, document: dict[str, Any]) -> str:
    """A partner's statement to us: verify, fetch missing Listens, reconcile, answer."""
    try:
        statement = parse_statement(document)
    except InvalidStatement as error:
        raise StatementError(f"not a valid statement: {error}") from None
    if statement.payer != actor_uri or statement.payee != fed.instance_actor:
        raise StatementError("the statement is not from its sender to this instance")
    proof = document.get("proof")
    method = proof.get("verificationMethod") if isinstance(proof, dict) else None
    if not isinstance(method, str):
        raise StatementError("the statement carries no integrity proof")
    key = await signer_key(fed, method, statement.payer)
    try:
        verify_object(document, lambda _method: key, expected_controller=statement.payer)
    except ProofError as error:
        raise StatementError(f"the statement's proof does not hold: {error}") from None
    payer = await get_actor(fed, statement.payer)
    last = await _last(fed, StatementDirection.INCOMING, payer.id, accepted_only=True)
    last_accepted = parse_statement(last.document) if last else None
    known, hosted = await _payee_view(fed, payer, statement)
    result = reconcile(statement, known, hosted, fed.artist_share_bp, last_accepted)
    if result.missing:
        await _fetch_missing(fed, result.missing)
        known, hosted = await _payee_view(fed, payer, statement)
        result = reconcile(statement, known, hosted, fed.artist_share_bp, last_accepted)
        if result.missing:  # the payer could not supply them: disputed, with the reason
            result = reconcile(
                statement, known, hosted, fed.artist_share_bp, last_accepted,
                unavailable=frozenset(result.missing),
            )  # fmt: skip
    verdict = result.answer or "Reject"
    disputed = result.disputed
    reason = "; ".join(line.text for line in disputed) or None
    answer_uri = f"{fed.instance_actor}/statement-answers/{uuid.uuid4().hex}"
    cc, hub_inbox = await hub_inboxes(fed)
    answer = sign_document(
        fed,
        answer_document(
            verdict, statement.id, fed.instance_actor, disputed, id=answer_uri,
            to=[payer.uri], cc=cc,
        ),
    )  # fmt: skip
    async with fed.sessionmaker() as session:
        if await session.scalar(
            select(RoyaltyStatementRecord.id).where(RoyaltyStatementRecord.uri == statement.id)
        ):
            return "statement already answered"
        session.add(
            RoyaltyStatementRecord(
                uri=statement.id, direction=StatementDirection.INCOMING, counterpart_id=payer.id,
                period_start=statement.period_start, period_end=statement.period_end,
                total_charged=statement.total_charged, total_owed=statement.total_owed,
                document=document, reason=reason, answered_at=utcnow(),
                state=STATEMENT_STATES.start(
                    StatementState.ACCEPTED if verdict == "Accept" else StatementState.REJECTED
                ),
            )
        )  # fmt: skip
        row, _ = await record_activity(session, answer, None)
        await deliver(session, row, [payer.shared_inbox or payer.inbox, *hub_inbox])
        await session.commit()
    return f"statement {statement.id}: {verdict.lower()}ed" + (f" ({reason})" if reason else "")


async def _payee_view(
    fed: Federation, payer: RemoteActor, statement: Statement
) -> tuple[dict[str, ListenRecord], set[str]]:
    async with fed.sessionmaker() as session:
        rows = (
            await session.execute(
                select(ReceivedListen, Track.id)
                .join(Track, Track.id == ReceivedListen.track_id)
                .where(ReceivedListen.payer_id == payer.id)
            )
        ).all()
        hosted = {
            f"{fed.base_url}/tracks/{track_id}"
            for track_id in await session.scalars(select(Track.id))
        }
    known = {
        row.uri: ListenRecord(
            row.uri,
            payer.uri,
            f"{fed.base_url}/tracks/{track_id}",
            row.listener,
            row.paid_number,
            row.tokens,
            row.owned,
            row.at,
        )
        for row, track_id in rows
    }
    return known, hosted


async def _fetch_missing(fed: Federation, ids: tuple[str, ...]) -> None:
    """Listens the statement lists that never arrived (a brown-out): fetched by id from
    the payer with a signed GET and recorded like delivered ones."""
    for listen_id in ids[:10_000]:
        try:
            _final, document = await fed.fetcher.get_json(listen_id, sign=fed.instance_signer())
            await record_listen(fed, parse_activity(document), fed.artist_share_bp)
        except (FetchError, InvalidObject, ListenRefused):
            continue  # still missing: the statement is rejected with the reason


async def take_answer(fed: Federation, actor_uri: str, statement_id: str, kind: str) -> bool:
    """The payee's Accept or Reject of one of our statements; False if not ours, or
    not from its payee."""
    async with fed.sessionmaker() as session:
        row = await session.scalar(
            select(RoyaltyStatementRecord)
            .join(RemoteActor, RemoteActor.id == RoyaltyStatementRecord.counterpart_id)
            .where(
                RoyaltyStatementRecord.uri == statement_id,
                RoyaltyStatementRecord.direction == StatementDirection.OUTGOING,
                RemoteActor.uri == actor_uri,
            )
        )
        if row is None:
            return False
        row.state = STATEMENT_STATES.check(
            row.state, StatementState.ACCEPTED if kind == "Accept" else StatementState.REJECTED
        )
        row.answered_at = utcnow()
        await session.commit()
    return True


async def on_statement(incoming: Incoming) -> str:
    """``Create`` of a statement to us (on a hub, copies between others: hub.py)."""
    try:
        return await take_statement(incoming.fed, incoming.activity.actor, incoming.embedded())
    except StatementError as error:
        raise Ignored(f"statement refused: {error}") from None


async def on_answer(incoming: Incoming) -> str:
    """The payee's ``Accept`` or ``Reject`` of one of our statements."""
    act = incoming.activity
    if not act.object_id:
        raise Ignored("the answer names no statement")
    if not await take_answer(incoming.fed, act.actor, act.object_id, act.type):
        raise Ignored("no statement of ours by that id to that actor")
    return f"{act.type} of our royalty statement {act.object_id}"


async def on_bare_statement(incoming: Incoming) -> str:
    """A statement sent as an activity of its own, not in a ``Create``: kept in the
    inbox, as from the start, and nothing else done with it."""
    return f"{incoming.activity.type} stored for the royalty reconciliation"


def register(registry: Registry) -> None:
    registry.register("Create", "RoyaltyStatement", on_statement)
    for answer in ("Accept", "Reject"):
        registry.register(answer, "RoyaltyStatement", on_answer)
    registry.register("RoyaltyStatement", ANY, on_bare_statement)
