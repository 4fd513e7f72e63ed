"""``/rest/<method>`` and ``/rest/<method>.view``, GET or a form POST: credentials, the
method's handler, and the envelope in the format asked for. Every failure is a Subsonic
``<error>`` in that format, never a page: unexpected ones are logged with the request id,
like any other 500."""

from __future__ import annotations

import functools
import logging
from importlib.metadata import PackageNotFoundError, version

from quart import Blueprint, Response, current_app, g, request
from quart.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from server.services.errors import Refused
from server.web.current import resources_of
from server.web.subsonic import browse, library, playing, system
from server.web.subsonic.auth import authenticate
from server.web.subsonic.call import Call, Methods
from subsonic.envelope import Format, Node, check_callback, envelope, parse_format, render
from subsonic.errors import Code, SubsonicError
from subsonic.params import Params

log = logging.getLogger("playfair.subsonic")

subsonic = Blueprint("subsonic", __name__)

# Refused statuses as Subsonic codes (anything else is a generic failure, code 0)
REFUSED_CODES = {401: Code.WRONG_CREDENTIALS, 403: Code.NOT_AUTHORIZED, 404: Code.NOT_FOUND}


@functools.cache
def methods() -> Methods:
    """Every method, by name (each area declares its own)."""
    table: Methods = {}
    for area in (system, browse, library, playing):
        for name, method in area.METHODS.items():
            if name in table:
                raise RuntimeError(f"the Subsonic method {name} is declared twice")
            table[name] = method
    return table


@functools.cache
def server_version() -> str:
    try:
        return version("playfair")
    except PackageNotFoundError:
        return "0"


async def _params() -> Params:
    values: MultiDict[str, str] = MultiDict(request.args)
    if request.method == "POST":
        # OpenSubsonic's formPost: the same parameters as a form body
        form = await request.form
        for key in form:
            for value in form.getlist(key):
                values.add(key, value)
    return Params({key: values.getlist(key) for key in values})


def _answer(root: Node, format: Format, callback: str | None, status: int = 200) -> Response:
    body, media_type = render(root, format, callback)
    response = Response(body, status, content_type=f"{media_type}; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


@subsonic.route("/rest/<name>", methods=["GET", "POST"])
async def call(name: str) -> ResponseReturnValue:
    name = name.removesuffix(".view")
    format, callback = Format.XML, None
    try:
        params = await _params()
        format = parse_format(params.get("f"))
        if format is Format.JSONP:
            callback = check_callback(params.get("callback"))
    except SubsonicError as error:
        return _answer(envelope(server_version(), error=error), Format.XML, None)
    try:
        method = methods().get(name)
        if method is None:
            raise SubsonicError(Code.NOT_FOUND, f"there is no method {name!r}")
        resources = resources_of(current_app)
        viewer = None if method.public else await authenticate(params, resources)
        current = Call(params, viewer, resources, params.get("c") or "")
        if not method.public:
            current.need(method.scope)
        result = await method.handler(current)
    except SubsonicError as error:
        return _answer(envelope(server_version(), error=error), format, callback)
    except Refused as refused:
        mapped = SubsonicError(REFUSED_CODES.get(refused.status, Code.GENERIC), str(refused))
        return _answer(envelope(server_version(), error=mapped), format, callback)
    except Exception as unexpected:
        request_id = g.get("request_id", "")
        log.error(
            "unhandled error in Subsonic method %s (request %s)",
            name,
            request_id,
            exc_info=unexpected,
            extra={"fields": {"request_id": request_id}},
        )
        failure = SubsonicError(
            Code.GENERIC, f"something went wrong on our side; logged as request {request_id}"
        )
        return _answer(envelope(server_version(), error=failure), format, callback, 500)
    if isinstance(result, Response):
        return result
    return _answer(envelope(server_version(), result), format, callback)
