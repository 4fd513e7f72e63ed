"""GETs of the activities we sent, by their ids (who may read which:
``server.services.activitypub.sent``). The ids live under the sending actor
(``/users/{name}/follows/…``, ``/artists/{name}/answers/…``, ``/actor/…``) and under the
release's Note (``/releases/{id}/note/update/…``); routes with a fixed path there win
over these."""

from __future__ import annotations

from quart import Blueprint, current_app, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import MethodNotAllowed, NotFound

from server.services.activitypub.sent import sent_document
from server.web.activitypub import activity_response
from server.web.current import resources_of
from server.web.signed import signed_by

sent = Blueprint("sent", __name__)


async def _sent(**_path: object) -> ResponseReturnValue:
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
        others = _other_methods()
        if others:  # an inbox, a form's target: not ours to serve, and not a 404 either
            raise MethodNotAllowed(valid_methods=others)
        raise NotFound("nothing we sent has that id, or not for you")
    return activity_response(document)


def _other_methods() -> list[str]:
    """The methods other routes take on this path (a POST-only inbox under an actor)."""
    adapter = current_app.url_map.bind(request.host)
    methods = set(adapter.allowed_methods(request.path)) - {"GET", "HEAD", "OPTIONS"}
    return sorted(methods)


RULES = {
    "by_actor": "/<any(artists, labels, users):kind>/<name>/<path:rest>",
    "by_instance": "/actor/<path:rest>",
    "by_release": "/releases/<int:release_id>/note/<path:rest>",
    "by_statement": "/statements/<statement_id>/<path:rest>",
    "by_settlement": "/settlements/<settlement_id>/<path:rest>",
}
for endpoint, rule in RULES.items():
    sent.add_url_rule(rule, endpoint, _sent, methods=["GET"])
