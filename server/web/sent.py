"""GETs of the activities we sent, by their ids (who may read which:
``server.services.activitypub.sent``). The ids live under the sending actor
(``/users/{name}/follows/…``, ``/artists/{name}/answers/…``, ``/actor/…``), under the
release's Note (``/releases/{id}/note/update/…``) and under statements and settlements.

They are looked up only where no route matched (a hook that runs before the routing
error is raised): any fixed route under an actor — a feed, a picture — wins whatever
converter it uses and whenever it is registered, and a POST-only path such as an inbox
keeps werkzeug's own 405 with ``Allow``."""

from __future__ import annotations

import re

from quart import Blueprint, current_app, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from server.services.activitypub.sent import sent_document
from server.web.activitypub import activity_response
from server.web.current import resources_of
from server.web.signed import signed_by

sent = Blueprint("sent", __name__)


# where the ids of what we send are minted; anything else that matched no route is a 404
SENT_PATHS = re.compile(
    r"/(?:(?:artists|labels|users)/[^/]+|actor|releases/\d+/note|statements/[^/]+"
    r"|settlements/[^/]+)/.+"
)


@sent.before_app_request
async def _sent() -> ResponseReturnValue | None:
    if not (
        isinstance(request.routing_exception, NotFound)
        and request.method in ("GET", "HEAD")
        and SENT_PATHS.fullmatch(request.path)
    ):
        return None  # routed (or refused) as usual
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    uri = base + request.path
    async with resources.read_sessionmaker() as session:
        found = await sent_document(session, base, uri)
    document = None
    if found is not None:
        # a signature is verified (its key perhaps fetched) only for a private one
        document = found.for_requester(None if found.public else await signed_by())
    if document is None:
        raise NotFound("nothing we sent has that id, or not for you")
    assert found is not None  # a document is only ever made from what was found
    response = activity_response(document)
    if not found.public:  # shown to one signer: no shared cache may keep it
        response.headers["Cache-Control"] = "private, no-store"
    return response
