"""Partnerships (docs/architecture.md#partnerships): instance A's actor follows instance
B's actor; B accepts by policy (`federation.partnerships`) or when an admin agrees. A
partner may fetch full audio with a GET signed by its instance actor; anybody else gets
the preview. Each direction is tracked on its own (see models.federation.Partnership)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import activity
from models.federation import (
    THEY_FOLLOW_STATES,
    WE_FOLLOW_STATES,
    Partnership,
    PartnerState,
    RemoteActor,
)
from server.runtime.config import PartnershipPolicy
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.registry import PARTNERSHIP, Ignored, Incoming, Registry
from server.services.activitypub.remote import ResolveError, get_actor


class PartnershipError(Exception):
    """The partnership cannot be asked for or changed; the message says why."""


def instance_actor_url(fed: Federation, target: str) -> str:
    """A host (music.example, music.example:8443) or an actor URL → the actor URL."""
    target = target.strip().rstrip("/")
    if "://" in target:  # a URL: get_actor holds it to the one URL rule
        return target if target.count("/") > 2 else f"{target}/actor"
    if not target or "/" in target or "@" in target:
        raise PartnershipError(f"{target!r} is neither a host name nor an instance actor URL")
    scheme = "http" if fed.settings.allow_private_addresses else "https"
    return f"{scheme}://{target}/actor"


async def _row_for(session: AsyncSession, actor: RemoteActor) -> Partnership:
    row = await session.scalar(select(Partnership).where(Partnership.actor_id == actor.id))
    if row is None:
        row = Partnership(actor_id=actor.id)
        session.add(row)
        await session.flush()
    return row


async def request_partnership(fed: Federation, target: str) -> Partnership:
    """Our instance actor follows theirs (the request; they answer Accept or Reject)."""
    try:
        actor = await get_actor(fed, instance_actor_url(fed, target), refresh=True)
    except ResolveError as error:
        raise PartnershipError(str(error)) from None
    if actor.type not in ("Application", "Service"):
        raise PartnershipError(f"{actor.uri} is a {actor.type}, not an instance actor")
    async with fed.sessionmaker() as session:
        row = await _row_for(session, actor)
        if row.we_follow is not PartnerState.ACCEPTED:
            row.our_follow_uri = f"{fed.instance_actor}/follows/{uuid.uuid4().hex}"
            row.we_follow = WE_FOLLOW_STATES.check(row.we_follow, PartnerState.REQUESTED)
            document = activity(
                row.our_follow_uri, "Follow", fed.instance_actor, actor.uri, to=[actor.uri]
            )
            sent, _ = await record_activity(session, document, None)
            await deliver(session, sent, [actor.inbox])
        await session.commit()
        return row


async def on_follow(incoming: Incoming) -> str:
    """Their instance actor asks to be our partner (it follows ours)."""
    fed, follow_uri = incoming.fed, incoming.activity.id
    follower = await incoming.sender()
    if follower.type not in ("Application", "Service"):
        raise Ignored("only an instance actor can follow the instance actor")
    async with fed.sessionmaker() as session:
        row = await _row_for(session, follower)
        row.their_follow_uri = follow_uri
        if row.they_follow is PartnerState.ACCEPTED or (
            fed.settings.partnerships is PartnershipPolicy.AUTO
        ):
            row.they_follow = THEY_FOLLOW_STATES.check(row.they_follow, PartnerState.ACCEPTED)
            await _answer(session, fed, follower, follow_uri, "Accept")
            outcome = "accepted"
        else:
            row.they_follow = THEY_FOLLOW_STATES.check(row.they_follow, PartnerState.PENDING)
            outcome = "waiting for an admin"
        await session.commit()
    return f"partnership with {follower.uri}: {outcome}"


async def _answer(
    session: AsyncSession, fed: Federation, follower: RemoteActor, follow_uri: str, kind: str
) -> None:
    digest = hashlib.sha256(follow_uri.encode()).hexdigest()[:16]
    uri = f"{fed.instance_actor}/answers/{kind.lower()}/{digest}"
    inner = {
        "id": follow_uri,
        "type": "Follow",
        "actor": follower.uri,
        "object": fed.instance_actor,
    }
    document = activity(uri, kind, fed.instance_actor, inner, to=[follower.uri])
    sent, _ = await record_activity(session, document, None)
    await deliver(session, sent, [follower.inbox])


async def on_answer(incoming: Incoming) -> str:
    """Their Accept or Reject of our request."""
    fed, act = incoming.fed, incoming.activity
    if not act.object_id:  # never NULL = NULL: rows of partners who asked us have none
        raise Ignored("the answer names no request")
    async with fed.sessionmaker() as session:
        row = await session.scalar(
            select(Partnership)
            .join(RemoteActor, RemoteActor.id == Partnership.actor_id)
            .where(Partnership.our_follow_uri == act.object_id, RemoteActor.uri == act.actor)
        )
        if row is None:
            raise Ignored("no partnership request of ours by that id to that instance")
        answer = PartnerState.ACCEPTED if act.type == "Accept" else PartnerState.REFUSED
        row.we_follow = WE_FOLLOW_STATES.check(row.we_follow, answer)
        await session.commit()
    return f"{act.type} of our partnership request"


async def on_undo(incoming: Incoming) -> str:
    """Their instance actor stops following ours."""
    fed, act = incoming.fed, incoming.activity
    follow_uri = act.object_id
    async with fed.sessionmaker() as session:
        row = await session.scalar(
            select(Partnership)
            .join(RemoteActor, RemoteActor.id == Partnership.actor_id)
            .where(RemoteActor.uri == act.actor)
        )
        if row is None or (follow_uri and row.their_follow_uri not in (None, follow_uri)):
            raise Ignored("no partnership with that instance")
        row.they_follow = THEY_FOLLOW_STATES.check(row.they_follow, PartnerState.NONE)
        row.their_follow_uri = None
        await session.commit()
    return "partnership ended by the other instance"


def register(registry: Registry) -> None:
    """The instance actor's side of the inbox: a Follow between instance actors is a
    partnership (registry.py derives the key)."""
    registry.register("Follow", PARTNERSHIP, on_follow)
    for answer in ("Accept", "Reject"):
        registry.register(answer, PARTNERSHIP, on_answer)
    registry.register("Undo", PARTNERSHIP, on_undo)


async def decide(fed: Federation, partnership_id: int, accept: bool) -> Partnership:
    """An admin accepts or refuses an instance that asked to be a partner."""
    async with fed.sessionmaker() as session:
        row = await session.get(Partnership, partnership_id)
        if row is None or row.their_follow_uri is None:
            raise PartnershipError(f"no instance asked for partnership {partnership_id}")
        follower = await session.get(RemoteActor, row.actor_id)
        assert follower is not None
        row.they_follow = THEY_FOLLOW_STATES.check(
            row.they_follow, PartnerState.ACCEPTED if accept else PartnerState.REFUSED
        )
        await _answer(
            session, fed, follower, row.their_follow_uri, "Accept" if accept else "Reject"
        )
        await session.commit()
        return row


async def is_partner(session: AsyncSession, actor_uri: str) -> bool:
    """May this instance actor fetch our full audio?"""
    state = await session.scalar(
        select(Partnership.they_follow)
        .join(RemoteActor, RemoteActor.id == Partnership.actor_id)
        .where(RemoteActor.uri == actor_uri)
    )
    return state is PartnerState.ACCEPTED


@dataclass(frozen=True)
class PartnerRow:
    id: int
    actor: str
    they_follow: str
    we_follow: str


async def list_partnerships(session: AsyncSession) -> list[PartnerRow]:
    rows = await session.execute(
        select(Partnership, RemoteActor.uri)
        .join(RemoteActor, RemoteActor.id == Partnership.actor_id)
        .order_by(Partnership.id)
    )
    return [
        PartnerRow(row.id, uri, row.they_follow.value, row.we_follow.value) for row, uri in rows
    ]
