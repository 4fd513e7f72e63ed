"""The co-op hub (docs/architecture.md#a-royalty-period) and the members' side of its settlements.

A hub (``federation.hub_role``) receives, in copy, every statement its members send each
other and every answer, verifies each one itself (proofs by the right instance, the
statement's own arithmetic, the answer by the statement's payee), and appends it to its
log. For a period it nets the accepted statements into one signed ``Settlement`` and
sends it to the members concerned; a member checks the hub's proof and books its
transfers (``federation.hub`` names the hub it trusts).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from federation.objects import activity
from federation.parse import InvalidObject
from federation.proofs import ProofError, verify_object
from federation.royalties import (
    Period,
    Statement,
    parse_settlement,
    parse_statement,
    settle,
    settlement_document,
)
from models import ledger
from models.federation import RemoteActor
from models.ledger import AccountKind
from models.remote_plays import HubEntryKind, HubLogEntry, SettlementRecord
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.partners import is_partner
from server.services.activitypub.registry import ANY, HUB_COPY, Ignored, Incoming, Registry
from server.services.activitypub.remote import ResolveError, get_actor
from server.services.royalties.signing import StatementError, sign_document, signer_key


class HubError(Exception):
    """Not something the hub or a member takes; the message says why."""


def _method(document: dict[str, Any]) -> str:
    proof = document.get("proof")
    method = proof.get("verificationMethod") if isinstance(proof, dict) else None
    if not isinstance(method, str):
        raise HubError("the document carries no integrity proof")
    return method


async def _verified(fed: Federation, document: dict[str, Any], signer: str) -> None:
    key = await signer_key(fed, _method(document), signer)
    verify_object(document, lambda _method: key, expected_controller=signer)


async def _append(entry: HubLogEntry, fed: Federation) -> bool:
    async with fed.sessionmaker() as session:
        try:
            async with session.begin_nested():
                session.add(entry)
        except IntegrityError:
            return False  # logged already (append-only: never replaced)
        await session.commit()
    return True


async def log_statement(fed: Federation, actor_uri: str, document: dict[str, Any]) -> str:
    """A member's statement, copied to the hub: checked here without trusting anyone."""
    async with fed.sessionmaker() as session:
        if not await is_partner(session, actor_uri):
            raise HubError("statements are logged for member instances only")
    verified, reason = True, None
    try:
        statement = parse_statement(document)
        if statement.payer != actor_uri:
            raise HubError("the statement was sent by somebody else than its payer")
        await _verified(fed, document, statement.payer)
        if statement.artist_share_bp != fed.artist_share_bp:
            raise HubError(
                f"the artist share is {statement.artist_share_bp / 100:g} %, not the "
                f"co-op's {fed.artist_share_bp / 100:g} %"
            )
        await _check_chain(fed, statement)
    except (InvalidObject, HubError, StatementError, ProofError) as error:
        verified, reason = False, str(error)
    uri = str(document.get("id"))
    added = await _append(
        HubLogEntry(
            uri=uri, kind=HubEntryKind.STATEMENT, statement_uri=uri, document=document,
            verified=verified, reason=reason,
        ),
        fed,
    )  # fmt: skip
    outcome = "verified" if verified else f"refused ({reason})"
    return f"statement {uri} logged: {outcome}" if added else "statement already logged"


async def _check_chain(fed: Federation, statement: Statement) -> None:
    """The statement continues its pair's chain as logged here: its previous statement is
    a verified one of the same payer and payee and it starts where that one ended; or it
    is the first, and no statement of the pair has been accepted yet."""
    async with fed.sessionmaker() as session:
        logged = list(
            await session.scalars(select(HubLogEntry).where(HubLogEntry.verified.is_(True)))
        )
    statements = {
        entry.uri: entry.document for entry in logged if entry.kind is HubEntryKind.STATEMENT
    }
    if statement.previous is None:
        accepted = {e.statement_uri for e in logged if e.kind is HubEntryKind.ACCEPT}
        if any(
            uri in accepted
            and doc.get("payer") == statement.payer
            and doc.get("payee") == statement.payee
            for uri, doc in statements.items()
        ):
            raise HubError("the statement starts a new chain where one was accepted already")
        return
    previous = statements.get(statement.previous)
    if previous is None:
        raise HubError("the statement's previous statement is not in the hub's log")
    before = parse_statement(previous)
    if (before.payer, before.payee) != (statement.payer, statement.payee):
        raise HubError("the statement's previous statement is of another pair")
    if statement.period_start != before.period_end:
        raise HubError("the statement does not start where its previous one ended")


async def log_answer(fed: Federation, actor_uri: str, document: dict[str, Any]) -> str | None:
    """A payee's signed Accept or Reject of a statement; None when it is not one.

    It may arrive before the copy of the statement itself (deliveries race, links go
    down), so it is logged on its own, with its proof checked against its sender; that
    the sender is the statement's payee is checked when settling."""
    statement_uri = document.get("object")
    if not isinstance(statement_uri, str) or "proof" not in document:
        return None
    async with fed.sessionmaker() as session:
        if not await is_partner(session, actor_uri):
            return None
    verified, reason = True, None
    try:
        await _verified(fed, document, actor_uri)
    except (HubError, StatementError, ProofError) as error:
        verified, reason = False, str(error)
    kind = HubEntryKind.ACCEPT if document.get("type") == "Accept" else HubEntryKind.REJECT
    added = await _append(
        HubLogEntry(
            uri=str(document.get("id")), kind=kind, statement_uri=statement_uri,
            document=document, verified=verified, reason=reason,
        ),
        fed,
    )  # fmt: skip
    return f"{kind.value} of {statement_uri} logged" if added else "answer already logged"


async def settle_period(fed: Federation, until: datetime) -> dict[str, Any] | None:
    """Net every verified, accepted statement that ended by ``until`` and is in no earlier
    settlement; sign the Settlement, log it and send it to the members concerned."""
    async with fed.sessionmaker() as session:
        entries = list(
            await session.scalars(select(HubLogEntry).where(HubLogEntry.verified.is_(True)))
        )
    settled = {
        uri
        for entry in entries
        if entry.kind is HubEntryKind.SETTLEMENT
        for uri in entry.document.get("statements", {}).get("orderedItems", [])
    }
    # accepted = an Accept signed by the statement's own payee (checked here, because
    # the answer may have been logged before the statement arrived)
    accepts = {
        (e.statement_uri, e.document.get("actor")) for e in entries if e.kind is HubEntryKind.ACCEPT
    }
    statements = [
        statement
        for statement in (
            parse_statement(e.document) for e in entries if e.kind is HubEntryKind.STATEMENT
        )
        if (statement.id, statement.payee) in accepts
        and statement.id not in settled
        and statement.period_end <= until
    ]
    if not statements:
        return None
    period = Period(min(s.period_start for s in statements), until)
    uri = f"{fed.base_url}/settlements/{uuid.uuid4().hex}"
    document = sign_document(
        fed, settlement_document(settle(period, statements), fed.instance_actor, uri)
    )
    await _append(
        HubLogEntry(uri=uri, kind=HubEntryKind.SETTLEMENT, document=document, verified=True),
        fed,
    )
    members = sorted({s.payer for s in statements} | {s.payee for s in statements})
    inboxes = []
    for member in members:
        try:
            actor = await get_actor(fed, member)
        except ResolveError:
            continue  # it gets the settlement from the log when asked
        inboxes.append(actor.shared_inbox or actor.inbox)
    async with fed.sessionmaker() as session:
        create = activity(f"{uri}/create", "Create", fed.instance_actor, document, to=members)
        row, _ = await record_activity(session, create, None)
        await deliver(session, row, inboxes)
        await session.commit()
    return document


async def book_settlement(fed: Federation, actor_uri: str, document: dict[str, Any]) -> str:
    """Our hub's settlement: verify its proof and book our transfers once."""
    hub = fed.settings.hub
    if not hub or actor_uri != hub:
        raise HubError("settlements are taken from this instance's hub only")
    try:
        published = parse_settlement(document)
        if published.hub != hub:
            raise HubError("the settlement is attributed to another hub")
        await _verified(fed, document, hub)
    except (InvalidObject, StatementError, ProofError) as error:
        raise HubError(f"the settlement does not hold: {error}") from None
    me = fed.instance_actor
    settlement = published.settlement
    async with fed.sessionmaker() as session:
        try:
            async with session.begin_nested():
                session.add(
                    SettlementRecord(
                        uri=published.id, period_start=settlement.period_start,
                        period_end=settlement.period_end, net=settlement.net_of(me),
                        document=document,
                    )
                )  # fmt: skip
        except IntegrityError:
            return "settlement already booked"
        pool = await ledger.account(session, "settlements", AccountKind.SETTLEMENTS)
        for transfer in settlement.transfers:
            if me not in (transfer.payer, transfer.payee):
                continue
            other_uri = transfer.payee if transfer.payer == me else transfer.payer
            other = await session.scalar(select(RemoteActor).where(RemoteActor.uri == other_uri))
            if other is None:
                raise HubError(f"the settlement names {other_uri}, unknown here")
            peer = await ledger.account(
                session, ledger.peer_key(other.id), AccountKind.PEER, other.id
            )
            tokens = transfer.tokens if transfer.payer == me else -transfer.tokens
            await ledger.post(
                session,
                "settlement",
                f"settlement:{published.id}:{other.id}",
                [(peer, -tokens), (pool, tokens)],
                {"settlement": published.id, "with": other_uri},
            )
        await session.commit()
    return f"settlement {published.id} booked: net {settlement.net_of(me)} tokens"


async def on_statement_copy(incoming: Incoming) -> str:
    """On the hub: a member's statement to another member, logged."""
    try:
        return await log_statement(incoming.fed, incoming.activity.actor, incoming.embedded())
    except (StatementError, HubError) as error:
        raise Ignored(f"statement refused: {error}") from None


async def on_answer_copy(incoming: Incoming) -> str:
    """On the hub: a member's signed answer to another member's statement, logged."""
    act = incoming.activity
    logged = await log_answer(incoming.fed, act.actor, act.raw)
    if logged is None:
        raise Ignored("an answer to nothing of ours, and not from a member instance")
    return logged


async def on_settlement(incoming: Incoming) -> str:
    """On a member: ``Create`` of a settlement by our hub, booked."""
    try:
        return await book_settlement(incoming.fed, incoming.activity.actor, incoming.embedded())
    except HubError as error:
        raise Ignored(f"settlement refused: {error}") from None


async def on_bare_settlement(incoming: Incoming) -> str:
    """A settlement sent as an activity of its own, not in a ``Create``: kept in the
    inbox, as from the start, and nothing else done with it."""
    return f"{incoming.activity.type} stored for the royalty reconciliation"


def register(registry: Registry) -> None:
    registry.register("Create", HUB_COPY, on_statement_copy)
    for answer in ("Accept", "Reject"):
        registry.register(answer, HUB_COPY, on_answer_copy)
    registry.register("Create", "Settlement", on_settlement)
    registry.register("Settlement", ANY, on_bare_settlement)
