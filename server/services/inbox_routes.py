"""The inbox's route table, assembled in one place: each area registers its own handlers
(``register(registry)`` in its module) and this module is the only one that knows them
all. The dispatcher (activitypub/inbox.py) is handed the registry and imports none of
them (a contract in pyproject.toml keeps it so). See docs/decisions.md, "one registry
of inbox handlers"."""

from __future__ import annotations

from functools import cache

from models import jobs
from models.federation import InboxState
from server.runtime.worker import JobContext
from server.services.activitypub import handlers, moves, partners
from server.services.activitypub.context import Federation, federation_of
from server.services.activitypub.inbox import handle
from server.services.activitypub.registry import Registry
from server.services.royalties import hub, listens, statements

AREAS = (handlers, moves, partners, listens, statements, hub)


@cache
def inbox_registry() -> Registry:
    """Every area's routes (built once, on first use); a key taken twice fails here."""
    registry = Registry()
    for area in AREAS:
        area.register(registry)
    return registry


async def handle_item(fed: Federation, item_id: int) -> InboxState:
    return await handle(fed, inbox_registry(), item_id)


async def run_inbox_item(context: JobContext, payload: dict[str, object]) -> None:
    item_id = payload.get("item")
    if not isinstance(item_id, int):
        raise jobs.PermanentJobError("the inbox job has no item id")
    await handle_item(federation_of(context.resources), item_id)
