"""The methods about the server itself and the caller: ``ping``, ``getLicense``,
``getOpenSubsonicExtensions``, ``getUser``."""

from __future__ import annotations

from datetime import UTC, datetime

from models.users import Role
from server.services.subsonic.users import visible_user
from server.web.auth import CREATORS
from server.web.subsonic.call import Call, Method, Methods
from subsonic.envelope import Node
from subsonic.users import user_node

# OpenSubsonic's extensions this server implements, each with the versions it follows
EXTENSIONS: dict[str, list[int]] = {
    "apiKeyAuthentication": [1],
    "formPost": [1],
    "transcodeOffset": [1],
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


async def get_user(call: Call) -> Node:
    viewer = call.listener
    async with call.resources.read_sessionmaker() as session:
        user = await visible_user(session, viewer, call.params.get("username"))
    reply = Node()
    reply.one(
        "user",
        user_node(
            user.username, user.email, admin=user.role is Role.ADMIN, uploads=user.role in CREATORS
        ),
    )
    return reply


METHODS: Methods = {
    "ping": Method(ping),
    "getLicense": Method(get_license),
    "getOpenSubsonicExtensions": Method(get_open_subsonic_extensions, public=True),
    "getUser": Method(get_user),
}
