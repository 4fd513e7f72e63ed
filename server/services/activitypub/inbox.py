"""The inbox (docs/architecture.md#federation): cap the body, parse, check the domain policy,
verify the signature, store once by activity id, answer 202. The worker does the rest
(handlers.py). Each refusal says why and stores nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from federation import safejson
from federation.parse import InvalidObject, ParsedActivity, parse_activity
from federation.signatures import IncomingRequest, PublicKey, SignatureError, verify_request
from models import jobs
from models.federation import InboxItem, RemoteActor
from server.services.activitypub.context import Federation
from server.services.activitypub.policy import actor_blocked, domain_refusal
from server.services.activitypub.remote import domain_of, lookup_key

INBOX_JOB = "federation.inbox"


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
    domain = domain_of(activity.actor)
    async with fed.sessionmaker() as session:
        refusal = await domain_refusal(session, domain, fed.settings.mode)
        if refusal is None and await actor_blocked(session, activity.actor):
            refusal = "the actor is blocked here"
        known_actor = await session.scalar(
            select(RemoteActor.id).where(RemoteActor.uri == activity.actor)
        )
    if refusal:
        return InboxAnswer(403, refusal)
    if activity.type == "Delete" and activity.object_id == activity.actor and not known_actor:
        # A deleted account telling everybody; we never knew it and its key is gone.
        return InboxAnswer(202, "nothing here concerns that actor")

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        return await lookup_key(fed, key_id, refresh)

    scheme = fed.base_url.split("://", 1)[0]
    incoming = IncomingRequest(method, path, headers, body, scheme=scheme)
    try:
        await verify_request(incoming, lookup, actor=activity.actor)
    except SignatureError as error:
        return InboxAnswer(401, f"signature refused: {error}")
    return await store(fed, recipient, activity)


async def store(fed: Federation, recipient: str | None, activity: ParsedActivity) -> InboxAnswer:
    async with fed.sessionmaker() as session:
        item = InboxItem(
            activity_uri=activity.id,
            type=activity.type[:64],
            actor_uri=activity.actor,
            recipient=recipient,
            payload=activity.raw,
        )
        try:  # the unique id decides: no look-up first
            async with session.begin_nested():
                session.add(item)
        except IntegrityError:  # received before, through this or another inbox
            return InboxAnswer(202, "already received")
        await jobs.enqueue(session, INBOX_JOB, {"item": item.id}, max_attempts=5)
        await session.commit()
        return InboxAnswer(202, "accepted", item.id)
