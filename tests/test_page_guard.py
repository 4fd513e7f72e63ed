"""One guard for the pages, with one contract, on every page of the app (its url_map, so
that a new page is audited without anybody remembering to):

* every route outside /api/ carries ``@page_requires`` or is public by the lists below,
  each entry with its reason;
* not signed in → 303 to the log-in page, with ``?next=`` back to the page (for a form,
  the page the form was on);
* signed in without the right → the 403 page;
* with the right → the view runs (the signed-in account is what ``page_user`` gives).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from quart import Quart

from models.users import Role
from server.services.account_rules import create_user
from server.web.app import create_app
from server.web.auth import Audience, page_user
from server.web.current import resources_of
from tests.conftest import make_settings
from tests.test_account_pages import PASSWORD, fresh_client, log_in
from tests.test_scopes import routes

# Pages anybody may see or forms anybody may send, and why.
PUBLIC_PAGES = {
    "web.home": "the front page",
    "web.healthz": "the health check (JSON)",
    "web.manifest": "the web app manifest",
    "web.offline": "the page the service worker shows offline",
    "web.service_worker": "the service worker's script",
    "accounts.login": "the log-in form",
    "accounts.signup": "the sign-up form",
    "accounts.logout": "signing out (CSRF); signed out already is fine",
    "listener.search_page": "searching the public catalogue",
    "listener.remote_follow": "a visitor's form: sends them to their own server",
    "listener.playlist_page": "a public playlist (its owner sees more)",
    "static": "scripts, styles and pictures",
    "embed.release_embed": "the embeddable player of a public release",
    "embed.track_embed": "the embeddable player of a public track",
    "embed.oembed": "oEmbed documents of public release and track pages",
    "tags.tag_page": "the public releases with a tag (and their Notes as a collection)",
}
# Blueprints that serve other programs, not people's pages, and why.
NOT_PAGES = {
    "activitypub": "ActivityPub documents and inboxes (signed); public HTML views of them",
    "fediverse": "WebFinger, NodeInfo, host-meta and the instance actor",
    "well_known_oauth": "OAuth and OpenID discovery documents",
    "oauth": "OAuth endpoints for apps (client credentials); the consent page is guarded",
    "media": "audio and covers, gated by their own play sessions",
    "profile_media": "actors' avatars and headers, as public as their actor documents",
    "remote_media": "partners' audio, gated by the remote play sessions",
    "payments_hooks": "the payment provider's signed webhook",
    "feeds": "RSS and Atom feeds of public releases, for feed readers and podcast apps",
    "robots": "robots.txt, for crawlers",
    "channel": "the Album and Create{Audio} documents Funkwhale reads of public releases",
    "subsonic": "the Subsonic API for apps: every call carries its own credentials",
}


def _blueprint(endpoint: str) -> str:
    return endpoint.rpartition(".")[0]


def guarded_routes(app: Quart) -> list[tuple[str, str, str, Audience]]:
    found = []
    for rule, method, path, _scope in routes(app):
        audience = getattr(app.view_functions[rule.endpoint], "page_audience", None)
        if audience is not None:
            found.append((rule.endpoint, method, path, audience))
    return found


def test_every_page_is_guarded_or_declared_public(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/unused.sqlite3"))
    unguarded = []
    seen_public, seen_blueprints = set(), set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            continue  # bearer tokens and scopes: tests/test_scopes.py
        if hasattr(app.view_functions[rule.endpoint], "page_audience"):
            continue
        if rule.endpoint in PUBLIC_PAGES:
            seen_public.add(rule.endpoint)
        elif _blueprint(rule.endpoint) in NOT_PAGES:
            seen_blueprints.add(_blueprint(rule.endpoint))
        else:
            unguarded.append(f"{rule.endpoint} ({rule.rule})")
    assert unguarded == [], "pages without @page_requires, and not declared public"
    assert seen_public == set(PUBLIC_PAGES), "declared public, but no such route (or guarded)"
    assert seen_blueprints == set(NOT_PAGES), "declared, but no such blueprint"
    assert len(guarded_routes(app)) > 30, "the audit found the guarded pages"


def _next_of(location: str) -> str | None:
    parts = urlsplit(location)
    assert parts.path == "/login", location
    return parse_qs(parts.query).get("next", [None])[0]


async def test_signed_out_visitors_are_sent_to_log_in_and_back(app: Quart) -> None:
    client = fresh_client(app)
    checked = 0
    for endpoint, method, path, _audience in guarded_routes(app):
        response = await client.open(path, method=method)
        assert response.status_code == 303, (method, path)
        back = _next_of(response.headers["Location"])
        # a page comes back to itself; a form to the page it was on (none here)
        assert back == (path if method == "GET" else None), (endpoint, method, back)
        checked += 1
    assert checked > 30
    # a form sent from a page of this site comes back to that page, query and all
    form = await fresh_client(app).post(
        "/follow", headers={"Referer": "http://127.0.0.1:8080/library?tab=follows"}
    )
    assert _next_of(form.headers["Location"]) == "/library?tab=follows"
    # …and never to another site
    away = await fresh_client(app).post(
        "/follow", headers={"Referer": "https://evil.example/library"}
    )
    assert _next_of(away.headers["Location"]) is None
    # a page's query string is kept
    asked = await fresh_client(app).get("/authorize_interaction?uri=https%3A%2F%2Fa.example%2Fx")
    assert (
        _next_of(asked.headers["Location"])
        == "/authorize_interaction?uri=https%3A%2F%2Fa.example%2Fx"
    )


async def _signed_in(app: Quart, name: str, role: Role) -> Any:
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, name, PASSWORD, role)
    client = fresh_client(app)
    assert (await log_in(client, name)).status_code == 303
    return client


async def test_accounts_without_the_right_get_the_403_page(app: Quart) -> None:
    listener = await _signed_in(app, "lina", Role.LISTENER)
    artist = await _signed_in(app, "mira", Role.ARTIST)
    refused = {Audience.ADMINS: 0, Audience.CREATORS: 0}
    async with app.app_context():
        reasons = {audience: audience.refusal() for audience in refused}
    for endpoint, method, path, audience in guarded_routes(app):
        for who, role in ((listener, Role.LISTENER), (artist, Role.ARTIST)):
            response = await who.open(path, method=method)
            if role in audience.roles:
                # let in: whatever the view answers, it is not the guard's refusal
                assert response.status_code != 303 or not response.headers["Location"].startswith(
                    "/login"
                ), (endpoint, role)
                continue
            assert response.status_code == 403, (endpoint, method, role)
            page = await response.get_data(as_text=True)
            assert response.content_type.startswith("text/html"), endpoint
            assert reasons[audience] in page.replace("&#39;", "'"), endpoint
            refused[audience] += 1
    assert refused[Audience.ADMINS] > 10 and refused[Audience.CREATORS] > 3


async def test_page_user_is_the_signed_in_account(app: Quart) -> None:
    admin = await _signed_in(app, "boss", Role.ADMIN)
    page = await (await admin.get("/admin/accounts")).get_data(as_text=True)
    assert "boss" in page
    async with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="page_requires"):
            page_user()
