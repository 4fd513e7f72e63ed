"""Inbox routes: which handler takes an activity, keyed by (activity type, object type).

Each area registers its own handlers (``register(registry)`` in its module); one place
assembles the registry (``server.services.inbox_routes``) and the dispatcher
(``inbox.handle``) is handed it, so the dispatcher knows no area. The key and how it is
derived from what we receive are set out in docs/decisions.md ("one registry of inbox
handlers"); in short:

* the object type is the embedded object's ``type`` (``Create`` of a ``Note``);
* an ``Accept`` or ``Reject`` is keyed by what it answers: what we sent under the
  answered id (``sent_type``: our activity's type, or ``RoyaltyStatement`` for one of
  our statements), else the embedded object's type;
* a ``Follow`` between instance actors, in any position (followed, undone, answered), is
  a ``Partnership``;
* on a hub, a statement between two other members, or a signed answer to an id we never
  sent, is a ``HubCopy``;
* anything else (an object given by id only) has no object type: only a route
  registered for ``ANY`` object takes it. A handler for the exact pair comes first.

Registering a second handler for a key is refused: each activity has one handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.parse import ParsedActivity, id_of
from models.federation import OutboundActivity, RemoteActor
from models.remote_plays import RoyaltyStatementRecord, StatementDirection
from server.services.activitypub.context import Federation
from server.services.activitypub.remote import ResolveError, get_actor

ANY = "*"  # a route for every object type that has no route of its own
PARTNERSHIP = "Partnership"  # a Follow between our instance actor and another instance's
HUB_COPY = "HubCopy"  # on a hub: members' statements and answers, copied to be logged
OUR_NAMES = frozenset({ANY, PARTNERSHIP, HUB_COPY})  # never taken from what we receive
ANSWERS = frozenset({"Accept", "Reject"})


class Ignored(Exception):
    """Nothing here is concerned; the message says why."""


class DuplicateRoute(ValueError):
    """A second handler for a key that has one."""


@dataclass(frozen=True)
class InboxRoute:
    activity_type: str
    object_type: str  # "" when the object is given by id only and we know nothing of it

    def __str__(self) -> str:
        if self.object_type == ANY:
            return f"{self.activity_type} of anything"
        if not self.object_type:
            return f"{self.activity_type} of an object given by id only"
        return f"{self.activity_type} of {self.object_type}"


@dataclass(frozen=True)
class Incoming:
    fed: Federation
    item_id: int
    activity: ParsedActivity
    recipient: str | None

    def embedded(self) -> dict[str, Any]:
        """The activity's object, when it is embedded (not just its id)."""
        if self.activity.object is None:
            raise Ignored("the object is not embedded")
        return self.activity.object

    async def sender(self) -> RemoteActor:
        """The actor who sent the activity (fetched when not known yet)."""
        try:
            return await get_actor(self.fed, self.activity.actor)
        except ResolveError as error:
            raise Ignored(f"the actor cannot be fetched: {error}") from None


Handler = Callable[[Incoming], Awaitable[str]]


class Registry:
    def __init__(self) -> None:
        self._routes: dict[InboxRoute, Handler] = {}

    def register(self, activity_type: str, object_type: str, handler: Handler) -> None:
        route = InboxRoute(activity_type, object_type)
        if not activity_type or not object_type:
            raise ValueError(f"a route needs an activity type and an object type: {route}")
        if route in self._routes:
            taken = self._routes[route]
            raise DuplicateRoute(f"{route} is handled by {taken.__module__}.{taken.__qualname__}")
        self._routes[route] = handler

    @property
    def routes(self) -> Mapping[InboxRoute, Handler]:
        return MappingProxyType(self._routes)

    def handles(self, activity_type: str) -> bool:
        """Is any route registered for this activity type?"""
        return any(route.activity_type == activity_type for route in self._routes)

    def handler_for(self, route: InboxRoute) -> Handler | None:
        """The handler of the exact key, else of the activity type's ``ANY`` route."""
        exact = self._routes.get(route)
        return exact or self._routes.get(InboxRoute(route.activity_type, ANY))


def route_of(
    activity: ParsedActivity, *, instance_actor: str, hub_role: bool, sent: str | None
) -> InboxRoute:
    """The key of a received activity (pure). ``sent`` is ``sent_type`` of the id an
    Accept or Reject answers (None for other activities, or when we sent nothing
    under that id)."""
    kind, obj = activity.type, activity.object
    embedded = str(obj.get("type", "")) if obj is not None else ""
    if embedded in OUR_NAMES:  # a sender cannot pick our routes by naming them
        embedded = ""
    if kind == "Follow":
        followed = (activity.object_id or "").split("#", 1)[0]
        return InboxRoute(kind, PARTNERSHIP if followed == instance_actor else embedded)
    if kind == "Undo" and obj is not None:
        of_instance = embedded == "Follow" and id_of(obj.get("object")) == instance_actor
        return InboxRoute(kind, PARTNERSHIP if of_instance else embedded)
    if kind in ANSWERS:
        if sent is not None:
            return InboxRoute(kind, sent)
        if hub_role and obj is None and activity.object_id and "proof" in activity.raw:
            return InboxRoute(kind, HUB_COPY)  # a member's answer to another member
        return InboxRoute(kind, embedded)
    statement_copy = (
        kind == "Create"
        and hub_role
        and embedded == "RoyaltyStatement"
        and obj is not None
        and obj.get("payee") != instance_actor
    )
    if statement_copy:  # a statement between two other members
        return InboxRoute(kind, HUB_COPY)
    return InboxRoute(kind, embedded)


async def sent_type(session: AsyncSession, uri: str) -> str | None:
    """What we sent under this id: the type of our activity (``Partnership`` for the
    instance actor's Follow), ``RoyaltyStatement`` for one of our statements, or None."""
    sent = (
        await session.execute(
            select(OutboundActivity.type, OutboundActivity.actor_name).where(
                OutboundActivity.uri == uri
            )
        )
    ).first()
    if sent is not None:
        type_, actor_name = sent
        return PARTNERSHIP if type_ == "Follow" and actor_name is None else str(type_)
    statement = await session.scalar(
        select(RoyaltyStatementRecord.id).where(
            RoyaltyStatementRecord.uri == uri,
            RoyaltyStatementRecord.direction == StatementDirection.OUTGOING,
        )
    )
    return "RoyaltyStatement" if statement is not None else None


async def route_for(fed: Federation, activity: ParsedActivity) -> InboxRoute:
    """``route_of`` with what we sent looked up for an Accept or Reject."""
    sent = None
    if activity.type in ANSWERS and activity.object_id:
        async with fed.read_sessionmaker() as session:
            sent = await sent_type(session, activity.object_id)
    return route_of(
        activity,
        instance_actor=fed.instance_actor,
        hub_role=fed.settings.hub_role,
        sent=sent,
    )
