"""The methods about the server itself: ``ping``, ``getLicense``,
``getOpenSubsonicExtensions``."""

from __future__ import annotations

from datetime import UTC, datetime

from server.web.subsonic.call import Call, Method, Methods
from subsonic.envelope import Node

# OpenSubsonic's extensions this server implements, each with the versions it follows
EXTENSIONS: dict[str, list[int]] = {
    "apiKeyAuthentication": [1],
    "formPost": [1],
}


async def ping(call: Call) -> Node:
    return Node()


async def get_license(call: Call) -> Node:
    # Subsonic's licence check: there is nothing to buy here, it is always valid
    reply = Node()
    reply.one(
        "license",
        Node({"valid": True, "email": "", "licenseExpires": datetime(9999, 12, 31, tzinfo=UTC)}),
    )
    return reply


async def get_open_subsonic_extensions(call: Call) -> Node:
    reply = Node()
    reply.many(
        "openSubsonicExtensions",
        (Node({"name": name}, children=[("versions", [Node(text=v) for v in versions])])
         for name, versions in EXTENSIONS.items()),
    )  # fmt: skip
    return reply


METHODS: Methods = {
    "ping": Method(ping),
    "getLicense": Method(get_license),
    "getOpenSubsonicExtensions": Method(get_open_subsonic_extensions, public=True),
}
