"""Followers' servers told of a changed profile: the ``profiles.update`` job sends an
``Update`` of the actor, with its document as it is now, to every follower's inbox
(docs/architecture.md#actor-profiles)."""

from __future__ import annotations

import logging

from federation.objects import update_actor
from models.base import utcnow
from models.handles import Handle
from server.runtime.worker import JobContext
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import deliver, follower_inboxes, record_activity
from server.services.activitypub.local import KIND_PATHS, load_local_actor

log = logging.getLogger("playfair.profiles")


async def run_profile_update(context: JobContext, payload: dict[str, object]) -> None:
    fed = federation_of(context.resources)
    name = str(payload["actor"])
    async with fed.sessionmaker() as session:
        handle = await session.get(Handle, name)
        if handle is None:
            return  # gone since
        path = KIND_PATHS[handle.kind]
        actor = await load_local_actor(session, fed.base_url, path, name, fed.secret)
        if actor is None:
            return
        document = update_actor(fed.base_url, actor.info, utcnow())
        row, _created = await record_activity(session, document, name, public=True)
        count = await deliver(session, row, await follower_inboxes(session, [name]))
        await session.commit()
    log.info("profile of %s updated: %s deliveries queued", name, count)
