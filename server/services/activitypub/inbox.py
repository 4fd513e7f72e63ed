"""The inbox. Receiving: cap the body, parse, check the domain policy, verify the
signature, store once by activity id, answer 202; each refusal says why and stores
nothing. Handling, in the worker: ``handle`` gives the stored activity to the one handler
its route has in the registry it is handed (registry.py), and records the outcome on the
item. This module knows no handler: server/services/inbox_routes.py assembles them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from federation import safejson
from federation.parse import InvalidObject, ParsedActivity, parse_activity
from federation.signatures import IncomingRequest, PublicKey, SignatureError, verify_request
from models import jobs
from models.base import insert_once, utcnow
from models.federation import INBOX_STATES, InboxItem, InboxState, RemoteActor
from server.services.activitypub.context import Federation
from server.services.activitypub.policy import refusal
from server.services.activitypub.registry import Ignored, Incoming, Registry, route_for
from server.services.activitypub.remote import cached_key, domain_of, lookup_key

INBOX_JOB = "federation.inbox"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboxAnswer:
    status: int
    message: str
    item_id: int | None = None


async def receive(
    fed: Federation,
    recipient: str | None,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
) -> InboxAnswer:
    if len(body) > fed.settings.max_inbox_bytes:
        return InboxAnswer(413, f"the activity is larger than {fed.settings.max_inbox_bytes} bytes")
    try:
        document = safejson.loads(body)
    except safejson.UnsafeJSON as error:
        return InboxAnswer(400, str(error))
    try:
        activity = parse_activity(document)
    except InvalidObject as error:
        return InboxAnswer(422, f"not an acceptable activity: {error}")
    async with fed.read_sessionmaker() as session:
        refused = await refusal(
            session, domain_of(activity.actor), activity.actor, fed.settings.mode
        )
        if refused:
            return InboxAnswer(403, refused)
        known = await session.scalar(select(RemoteActor).where(RemoteActor.uri == activity.actor))
    if activity.type == "Delete" and activity.object_id == activity.actor and known is None:
        # A deleted account telling everybody; we never knew it and its key is gone.
        return InboxAnswer(202, "nothing here concerns that actor")

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        """The actor's cached key, read above with the policy; else the usual look-up."""
        if not refresh and (key := cached_key(fed, known, key_id)) is not None:
            return key
        return await lookup_key(fed, key_id, refresh)

    scheme = fed.base_url.split("://", 1)[0]
    incoming = IncomingRequest(method, path, headers, body, scheme=scheme)
    try:
        await verify_request(incoming, lookup, actor=activity.actor)
    except SignatureError as error:
        return InboxAnswer(401, f"signature refused: {error}")
    return await store(fed, recipient, activity)


async def store(fed: Federation, recipient: str | None, activity: ParsedActivity) -> InboxAnswer:
    """One write transaction: the item (its unique id decides whether it is new, by the
    insert itself) and the job that will handle it."""
    async with fed.sessionmaker() as session:
        item_id = await session.scalar(
            insert_once(session)(InboxItem)
            .values(
                activity_uri=activity.id,
                type=activity.type[:64],
                actor_uri=activity.actor,
                recipient=recipient,
                payload=activity.raw,
            )
            .on_conflict_do_nothing(index_elements=[InboxItem.activity_uri])
            .returning(InboxItem.id)
        )
        if item_id is None:  # received before, through this or another inbox
            return InboxAnswer(202, "already received")
        await jobs.enqueue(session, INBOX_JOB, {"item": item_id}, max_attempts=5)
        await session.commit()
        return InboxAnswer(202, "accepted", item_id)


async def handle(fed: Federation, registry: Registry, item_id: int) -> InboxState:
    """Run the handler of a stored activity once: done, ignored (nothing here is
    concerned, or no route takes it; kept with the reason) or failed (unacceptable)."""
    async with fed.sessionmaker() as session:
        item = await session.get(InboxItem, item_id)
        if item is None or item.state is not InboxState.PENDING:
            return item.state if item else InboxState.IGNORED
        payload, recipient, actor_uri = item.payload, item.recipient, item.actor_uri
    kind = str(payload.get("type"))[:64]
    try:
        if not registry.handles(kind):
            raise Ignored(f"activities of type {kind} are not handled")
        activity = parse_activity(payload)
        route = await route_for(fed, activity)
        handler = registry.handler_for(route)
        if handler is None:
            raise Ignored(f"{route} is not handled")
        result, state = await handler(Incoming(fed, item_id, activity, recipient)), InboxState.DONE
    except Ignored as why:
        result, state = str(why), InboxState.IGNORED
    except InvalidObject as error:
        result, state = f"not acceptable: {error}", InboxState.FAILED
    async with fed.sessionmaker() as session:
        item = await session.get(InboxItem, item_id)
        assert item is not None
        # Another attempt may have finished it meanwhile: its result stands, this one raises.
        item.state = INBOX_STATES.check(item.state, state)
        item.result, item.processed_at = result[:2000], utcnow()
        await session.commit()
    log.info("inbox item %s (%s from %s): %s: %s", item_id, kind, actor_uri, state.value, result)
    return state
