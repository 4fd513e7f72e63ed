"""Aliases and moves, as Mastodon has them (docs/architecture.md#actor-profiles).

An alias is a remote account allowed to move here: its id goes into this actor's
``alsoKnownAs``, which the remote server checks before it moves the account. A move goes
the other way: this actor names its new account in ``movedTo`` and sends its followers a
``Move``, but only once the target lists this actor in its own ``alsoKnownAs`` (fetched
then, not from the cache), as Mastodon's receiving side checks too.

The receiving side, a ``Move`` or ``Block`` from another server, is
``server.services.activitypub.moves``.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from federation.fetch import FetchError
from federation.moves import also_known_as
from federation.objects import actor_id, move_actor
from models.base import utcnow
from models.profiles import MAX_ALIASES, ActorProfile
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, follower_inboxes, record_activity
from server.services.activitypub.handlers import local_target
from server.services.activitypub.registry import Ignored
from server.services.activitypub.remote import ResolveError, get_actor, resolve
from server.services.errors import Refused
from server.services.profiles import Owned, profile_row, queue_update

log = logging.getLogger("playfair.profiles")


async def add_alias(fed: Federation, owner: Owned, account: str) -> str:
    """Let the remote account (``@name@host`` or its URL) move to this actor: its id goes
    into our ``alsoKnownAs``. Returns the id."""
    elsewhere = Refused("an alias is an account on another server", 422)
    if local_target(fed, account.strip()) is not None:
        raise elsewhere
    try:
        remote = await resolve(fed, account)
    except ResolveError as error:
        raise Refused(f"{account!r} cannot be found: {error}", 422) from None
    if local_target(fed, remote.uri) is not None:
        raise elsewhere
    async with fed.sessionmaker() as session:
        row = await profile_row(session, owner)
        if remote.uri not in row.also_known_as:
            if len(row.also_known_as) >= MAX_ALIASES:
                raise Refused(f"an actor has at most {MAX_ALIASES} aliases", 422)
            row.also_known_as = [*row.also_known_as, remote.uri]
        row.updated_at = utcnow()
        await queue_update(session, owner.actor)
        await session.commit()
    return remote.uri


async def remove_alias(session: AsyncSession, owner: Owned, uri: str) -> None:
    row = await profile_row(session, owner)
    row.also_known_as = [alias for alias in row.also_known_as if alias != uri]
    row.updated_at = utcnow()
    await session.flush()
    await queue_update(session, owner.actor)


async def move_to(fed: Federation, owner: Owned, account: str) -> tuple[str, int]:
    """Move the actor to a remote account: checked to list this actor in its
    ``alsoKnownAs`` (fetched now, not from the cache), then ``movedTo`` is set and a Move
    queued to every follower's inbox. Returns the target's id and how many deliveries."""
    if owner.kind is None:
        raise Refused("the instance actor does not move", 422)
    ours = actor_id(fed.base_url, owner.kind, owner.actor)
    try:
        target = await resolve(fed, account)
        _final, document = await fed.fetcher.get_json(target.uri, sign=fed.instance_signer())
    except (ResolveError, FetchError) as error:
        raise Refused(f"{account!r} cannot be found: {error}", 422) from None
    if target.uri == ours:
        raise Refused("an actor cannot move to itself", 422)
    if ours not in also_known_as(document):
        raise Refused(
            f"{target.uri} does not list {ours} among its aliases (alsoKnownAs): "
            "add this account as an alias there first",
            422,
        )
    now = utcnow()
    async with fed.sessionmaker() as session:
        row = await profile_row(session, owner)
        row.moved_to, row.updated_at = target.uri, now
        move = move_actor(fed.base_url, owner.kind, owner.actor, target.uri, now)
        activity, _created = await record_activity(session, move, owner.actor)
        count = await deliver(session, activity, await follower_inboxes(session, [owner.actor]))
        await session.commit()
    log.info("%s moved to %s: %s deliveries queued", owner.actor, target.uri, count)
    return target.uri, count


async def _target_aliases(fed: Federation, target: str) -> tuple[str, ...]:
    """What the target of a move lists in ``alsoKnownAs``: a local artist's or label's
    from its profile, a remote actor's from its document fetched now."""
    local = local_target(fed, target)
    if local is not None:
        if local[0] not in ("artists", "labels"):
            raise Ignored("the target is not an artist or a label here")
        async with fed.read_sessionmaker() as session:
            row = await session.get(ActorProfile, local[1].lower())
        return tuple(row.also_known_as) if row is not None else ()
    try:
        remote = await get_actor(fed, target, refresh=True)
        _final, document = await fed.fetcher.get_json(remote.uri, sign=fed.instance_signer())
    except (ResolveError, FetchError) as error:
        raise Ignored(f"the target cannot be fetched: {error}") from None
    return also_known_as(document)
