"""Remote accounts that move (``Move``) or block one of our actors (``Block``)
(docs/architecture.md#a-move-or-a-block-from-another-server).

A Move is believed only when both accounts, fetched afresh, confirm it
(``federation.moves.move_refusal``); then each listener here who followed the old
account follows the new one, and the old follow is undone. A Block drops the follows
between the blocker and our actor both ways and stops what was still queued for the
blocker's inbox from that actor; the blocker is not answered.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.moves import move_refusal
from models.base import utcnow
from models.federation import (
    DELIVERY_STATES,
    Delivery,
    DeliveryState,
    Follow,
    FollowState,
    OutboundActivity,
    RemoteActor,
)
from models.handles import Handle
from models.profiles import ActorProfile
from server.services.activitypub.follows import end_follow, follow, follow_actor, unfollow
from server.services.activitypub.handlers import local_target
from server.services.activitypub.local import PATH_KINDS
from server.services.activitypub.registry import ANY, Ignored, Incoming, Registry
from server.services.activitypub.remote import (
    ResolveError,
    fetch_actor_with_document,
    remote_url,
    store_actor,
)


async def on_move(incoming: Incoming) -> str:
    """The actor moved to ``target``: our listeners who followed it follow the target."""
    fed, act = incoming.fed, incoming.activity
    if act.object_id != act.actor:
        raise Ignored("a Move of somebody else than its actor")
    if not act.target:
        raise Ignored("the Move has no target")
    async with fed.read_sessionmaker() as session:
        followed = await session.scalar(
            select(Follow.id)
            .join(RemoteActor, RemoteActor.id == Follow.followed_actor_id)
            .where(RemoteActor.uri == act.actor, Follow.follower_name.is_not(None))
            .limit(1)
        )
    if followed is None:
        raise Ignored("nobody here follows the account that moved")
    if local_target(fed, act.target) is not None:
        return await _move_here(incoming, act.target)
    try:
        origin, origin_document = await fetch_actor_with_document(fed, remote_url(fed, act.actor))
        target, target_document = await fetch_actor_with_document(fed, remote_url(fed, act.target))
    except ResolveError as error:
        raise Ignored(f"the move cannot be checked: {error}") from None
    if origin.id != act.actor or target.id != act.target:
        raise Ignored("the accounts fetched are not the Move's actor and target")
    if refusal := move_refusal(origin.id, origin_document, target.id, target_document):
        raise Ignored(f"the move is not confirmed: {refusal}")
    async with fed.sessionmaker() as session:
        old = await store_actor(session, origin)
        new = await store_actor(session, target)
        rows = await _listeners_following(session, old.id)
        for row in rows:
            assert row.follower_name is not None
            await follow_actor(session, fed, row.follower_name, new)
            await end_follow(session, fed, row)
        await session.commit()
    return f"{len(rows)} follow(s) moved from {origin.id} to {target.id}"


async def _listeners_following(session: AsyncSession, actor_id: int) -> Sequence[Follow]:
    """The follows of the remote actor by listeners here (refused ones aside)."""
    return (
        await session.scalars(
            select(Follow)
            .where(
                Follow.followed_actor_id == actor_id,
                Follow.follower_name.is_not(None),
                Follow.state != FollowState.REJECTED,
            )
            .order_by(Follow.id)
        )
    ).all()


async def _move_here(incoming: Incoming, target: str) -> str:
    """A remote account moved to an artist or label here: believed when the origin, fetched
    afresh, names the target in ``movedTo`` and the target's profile lists the origin as
    an alias (``alsoKnownAs``, set by its owner); our listeners then follow it here."""
    fed, act = incoming.fed, incoming.activity
    local = local_target(fed, target)
    if local is None or local[0] not in ("artists", "labels"):
        raise Ignored("the Move's target here is not an artist or a label")
    try:
        origin, origin_document = await fetch_actor_with_document(fed, remote_url(fed, act.actor))
    except ResolveError as error:
        raise Ignored(f"the move cannot be checked: {error}") from None
    if origin.id != act.actor:
        raise Ignored("the account fetched is not the Move's actor")
    async with fed.read_sessionmaker() as session:
        profile = await session.get(ActorProfile, local[1].lower())
    aliases = {"alsoKnownAs": list(profile.also_known_as) if profile is not None else []}
    if refusal := move_refusal(origin.id, origin_document, target, aliases):
        raise Ignored(f"the move is not confirmed: {refusal}")
    async with fed.sessionmaker() as session:
        old = await store_actor(session, origin)
        rows = await _listeners_following(session, old.id)
        followers = [(row.id, row.follower_name) for row in rows]
        await session.commit()
    for follow_id, username in followers:
        assert username is not None
        await follow(fed, username, local[1])  # a local follow: the artist's rules apply
        await unfollow(fed, username, follow_id)
    return f"{len(followers)} follow(s) moved from {origin.id} to {target}"


async def on_block(incoming: Incoming) -> str:
    """The actor blocks one of ours: no follows either way, nothing more sent to it."""
    fed, act = incoming.fed, incoming.activity
    target = local_target(fed, act.object_id)
    kind = PATH_KINDS.get(target[0]) if target else None
    if target is None or kind is None:
        raise Ignored("the Block is not of an actor here")
    async with fed.sessionmaker() as session:
        blocker = await session.scalar(select(RemoteActor).where(RemoteActor.uri == act.actor))
        handle = await session.get(Handle, target[1])
        if handle is None or handle.kind is not kind:
            raise Ignored(f"{act.object_id} is not an actor here")
        if blocker is None:
            raise Ignored("a Block from an actor we do not know: nothing to drop")
        follows = (
            await session.scalars(
                select(Follow).where(
                    (
                        (Follow.follower_actor_id == blocker.id)
                        & (Follow.followed_name == handle.name)
                    )
                    | (
                        (Follow.follower_name == handle.name)
                        & (Follow.followed_actor_id == blocker.id)
                    )
                )
            )
        ).all()
        for follow in follows:
            await session.delete(follow)
        queued = (
            await session.scalars(
                select(Delivery)
                .join(OutboundActivity, OutboundActivity.id == Delivery.activity_id)
                .where(
                    OutboundActivity.actor_name == handle.name,
                    Delivery.inbox == blocker.inbox,
                    Delivery.state == DeliveryState.PENDING,
                )
            )
        ).all()
        for delivery in queued:
            delivery.state = DELIVERY_STATES.check(delivery.state, DeliveryState.ABANDONED)
            delivery.last_error = f"{blocker.uri} blocks {handle.name}"
            delivery.finished_at = utcnow()
        await session.commit()
    return (
        f"{blocker.uri} blocks {handle.name}: {len(follows)} follow(s) dropped, "
        f"{len(queued)} delivery(ies) stopped"
    )


def register(registry: Registry) -> None:
    registry.register("Move", ANY, on_move)
    registry.register("Block", ANY, on_block)
