"""Scopes mean what they say, for every route of the app (its url_map, so that a new
route is audited without anybody remembering to), on both databases.

* A token of one scope is refused (403 insufficient_scope) on every route that needs
  another; the right scope passes the check (the positive control).
* ``admin`` is a wildcard only for an admin account; an artist's ``admin`` token (which
  nothing hands out any more, but a database could hold) gives nothing, and an admin's
  ``read`` token does no admin work.
* ``read`` routes are reads (GET); a ``read`` token makes this server contact no other:
  every request carries addresses of a real local server that counts connections, and
  the ``write`` control shows that counting works.
* Routes without a scope take no bearer token as authority: the pages want a browser
  session (with CSRF), inboxes a signature, the OAuth endpoints client credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from werkzeug.routing import AnyConverter, IntegerConverter, PathConverter, Rule

from models.tokens import AccessToken, Scope, new_token, token_digest
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.web.app import create_app
from server.web.current import resources_of
from tests.conftest import make_settings

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Unscoped routes that do not answer to a bearer token by design, and why.
PUBLIC_WRITES = {
    "accounts.login": "the log-in form (password, CSRF)",
    "accounts.signup": "the sign-up form (CSRF)",
    "oauth.token": "OAuth: client credentials",
    "oauth.revoke": "OAuth: client credentials",
    "oauth.introspect": "OAuth: client credentials",
    "oauth.register": "OAuth: dynamic registration, open to any app (RFC 7591)",
    "oauth.userinfo": "OpenID Connect: reads the token's own claims",
    "activitypub.shared_inbox": "HTTP signatures",
    "activitypub.actor_inbox": "HTTP signatures",
    "activitypub.instance_inbox": "HTTP signatures",
    "payments_hooks.stripe_webhook": "Stripe's signature",
    "listener.remote_follow": "a visitor's form: sends them to their own server",
    "subsonic.call": "Subsonic: credentials in the parameters, never a bearer token",
}


@dataclass
class Honeypot:
    """A real TCP server on loopback that counts who connects (and then hangs up)."""

    port: int = 0
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def honeypot() -> AsyncIterator[Honeypot]:
    pot = Honeypot()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pot.connections += 1
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    pot.port = server.sockets[0].getsockname()[1]
    async with server:
        yield pot


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[Quart]:
    settings = make_settings(tmp_path, database_url, federation={"allow_private_addresses": True})
    application = create_app(settings)
    async with application.test_app() as test_app:
        yield test_app.app  # type: ignore[attr-defined]


async def tokens_for(app: Quart) -> dict[tuple[str, Scope], str]:
    """One token per (account, single scope): an artist who owns "aurora" (an
    ``admin`` token too, as if an old command line had made it), and an admin."""
    made = {}
    async with resources_of(app).sessionmaker() as session:
        for name, role in (("lina", Role.ARTIST), ("boss", Role.ADMIN)):
            user = await create_user(session, name, "a long password here", role)
            if role is Role.ARTIST:
                await create_artist(session, "aurora", user)
            for scope in Scope:
                secret = new_token()
                session.add(
                    AccessToken(user_id=user.id, digest=token_digest(secret), scopes=scope.value)
                )
                made[(name, scope)] = secret
        await session.commit()
    return made


def placeholder(converter: object) -> object:
    if isinstance(converter, IntegerConverter):
        return 1
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    if isinstance(converter, PathConverter):
        return "style.css"
    return "aurora"


def routes(app: Quart) -> Iterator[tuple[Rule, str, str, Scope | None]]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        values = {name: placeholder(conv) for name, conv in rule._converters.items()}
        _domain, path = rule.build(values)  # type: ignore[misc]
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method, path, getattr(view, "required_scope", None)


async def call(app: Quart, method: str, path: str, token: str, pot: Honeypot) -> Any:
    """The request, with every field a route might fetch from pointing at the honeypot."""
    target = f"{pot.url}/objects/1"
    handle = f"@someone@127.0.0.1:{pot.port}"
    return await app.test_client().open(
        path, method=method, headers={"Authorization": f"Bearer {token}"},
        query_string={"q": target, "uri": target, "account": handle},
        json=None if method == "GET" else {"uri": target, "account": handle, "q": target,
                                           "handle": handle, "object": target},
    )  # fmt: skip


def refused_for_scope(response: Any) -> bool:
    return response.status_code == 403 and "insufficient_scope" in response.headers.get(
        "WWW-Authenticate", ""
    )


async def test_every_scoped_route_refuses_every_other_scope(app: Quart, honeypot: Honeypot) -> None:
    tokens = await tokens_for(app)
    scoped = [route for route in routes(app) if route[3] is not None]
    assert len(scoped) > 40, "the audit found the API's routes"
    leaks = []
    for rule, method, path, required in scoped:
        assert required is not None
        if required is Scope.READ:
            assert method == "GET", f"{method} {rule.rule} changes something: not read"
        for (name, scope), token in tokens.items():
            admin = name == "boss" and scope is Scope.ADMIN  # the one wildcard
            allowed = admin or (scope is required and scope is not Scope.ADMIN)
            response = await call(app, method, path, token, honeypot)
            assert response.status_code < 500, (method, rule.rule, name, scope)
            if allowed == refused_for_scope(response):
                leaks.append((method, rule.rule, name, scope.value, response.status_code))
    assert leaks == []


async def test_read_tokens_never_make_this_server_fetch(app: Quart, honeypot: Honeypot) -> None:
    tokens = await tokens_for(app)
    for name in ("lina", "boss"):
        for _rule, method, path, _required in routes(app):
            if _rule.endpoint in PUBLIC_WRITES:
                continue
            response = await call(app, method, path, tokens[(name, Scope.READ)], honeypot)
            assert response.status_code < 500, (method, path)
    assert honeypot.connections == 0
    # the control: the same look-up with a write token does reach the other server
    await call(app, "GET", "/api/v1/resolve", tokens[("lina", Scope.WRITE)], honeypot)
    assert honeypot.connections > 0


async def test_unscoped_routes_do_not_take_a_token_as_authority(
    app: Quart, honeypot: Honeypot
) -> None:
    tokens = await tokens_for(app)
    checked = 0
    for rule, method, path, required in routes(app):
        if required is not None or method not in UNSAFE or rule.endpoint in PUBLIC_WRITES:
            continue
        assert not path.startswith("/api/"), f"{method} {rule.rule} needs a scope"
        for name in ("lina", "boss"):
            response = await call(app, method, path, tokens[(name, Scope.ADMIN)], honeypot)
            checked += 1
            location = response.headers.get("Location", "")
            # a page: to the log-in page (no session) or refused; never done
            assert response.status_code in (303, 302, 401, 403), (method, path, name)
            if response.status_code in (302, 303):
                assert location.startswith("/login"), (method, path, location)
    assert checked > 30
    assert honeypot.connections == 0
