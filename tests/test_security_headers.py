"""The security headers, on every kind of response, and templates and scripts that can
live under the strict Content-Security-Policy (nothing inline)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.users import Role
from server.services.account_rules import create_user
from server.services.oauth_clients import register_client
from server.web.app import create_app
from server.web.charts import bar_chart
from server.web.current import resources_of
from server.web.headers import form_source
from tests.conftest import make_settings
from tests.test_account_pages import PASSWORD, log_in

ROOT = Path(__file__).resolve().parent.parent
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def directives(response: object) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]  # type: ignore[attr-defined]
    found = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found


def assert_hardened(response: object, *, https: bool = False) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in ALWAYS.items():
        assert headers.get(name) == value, (name, headers)
    policy = directives(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"][0] == "'self'"
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
    if https:
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        assert int(headers["Strict-Transport-Security"].split("=")[1]) >= 180 * 24 * 3600
    else:
        assert "Strict-Transport-Security" not in headers


def boom_app(settings_path: Path, database_url: str, **sections: dict[str, object]) -> Quart:
    app = create_app(make_settings(settings_path, database_url, **sections))

    @app.get("/test-only/boom")
    async def boom() -> str:
        raise RuntimeError("a bug, on purpose")

    return app


PATHS = [
    "/",  # a page
    "/api/v1/releases",  # JSON
    "/no-such-page",  # 404 page
    "/api/v1/no-such-thing",  # 404 JSON
    "/releases/12345/cover",  # media 404
    "/static/style.css",  # a static file
    "/sw.js",
    "/settings",  # a redirect to the log-in page
    "/login",  # the form
    "/.well-known/openid-configuration",
    "/test-only/boom",  # a 500
]


@pytest.mark.parametrize("https", [False, True])
async def test_every_response_carries_the_headers(
    tmp_path: Path, database_url: str, https: bool
) -> None:
    base = "https://music.example" if https else "http://127.0.0.1:8080"
    app = boom_app(tmp_path, database_url, instance={"base_url": base})
    async with app.test_app() as test_app:
        client = test_app.test_client()
        statuses = {}
        for path in PATHS:
            response = await client.get(path)
            statuses[path] = response.status_code
            assert_hardened(response, https=https)
        token = await client.post("/oauth/token", form={"grant_type": "password"})
        assert_hardened(token, https=https)
        wrong_method = await client.delete("/")
        assert_hardened(wrong_method, https=https)
    assert statuses["/test-only/boom"] == 500
    assert statuses["/no-such-page"] == statuses["/api/v1/no-such-thing"] == 404
    assert statuses["/static/style.css"] == statuses["/"] == 200
    assert statuses["/settings"] == 303
    assert wrong_method.status_code == 405


async def test_remote_audio_and_lab_networks(tmp_path: Path, database_url: str) -> None:
    """Previews of remote posts play from their servers: https only, plus plain http on
    lab networks (where peers are plain http)."""
    plain = create_app(make_settings(tmp_path / "a", database_url))
    async with plain.test_app() as test_app:
        media = directives(await test_app.test_client().get("/"))["media-src"]
    assert media == ["'self'", "https:"]
    lab = create_app(
        make_settings(tmp_path / "b", database_url, federation={"allow_private_addresses": True})
    )
    async with lab.test_app() as test_app:
        media = directives(await test_app.test_client().get("/"))["media-src"]
    assert media == ["'self'", "https:", "http:"]


async def test_only_the_consent_page_lets_its_form_lead_to_the_app(
    app: Quart, client: Client
) -> None:
    """The consent answer is a redirect to the app, which browsers check against
    form-action: that page names the app's redirect URI; no other page does."""
    redirect = "http://127.0.0.1:9999/callback"
    async with resources_of(app).sessionmaker() as session:
        registered, _secret = await register_client(
            session, "Player", [redirect, "com.example.player:/cb"], "read", public=True
        )
        await create_user(session, "lina", PASSWORD, Role.LISTENER)
    assert (await log_in(client, "lina")).status_code == 303
    query = {"response_type": "code", "client_id": registered.client_id,
             "code_challenge": "x" * 43, "code_challenge_method": "S256"}  # fmt: skip
    consent = await client.get("/oauth/authorize", query_string={**query, "redirect_uri": redirect})
    assert consent.status_code == 200
    assert directives(consent)["form-action"] == ["'self'", "http://127.0.0.1:9999"]
    native = await client.get(
        "/oauth/authorize", query_string={**query, "redirect_uri": "com.example.player:/cb"}
    )
    assert directives(native)["form-action"] == ["'self'", "com.example.player:"]
    for path in ("/", "/settings", "/library"):
        assert directives(await client.get(path))["form-action"] == ["'self'"], path
    # an unknown redirect URI gets an error page, and no form-action for it
    refused = await client.get(
        "/oauth/authorize", query_string={**query, "redirect_uri": "https://evil.example/cb"}
    )
    assert refused.status_code == 400
    assert directives(refused)["form-action"] == ["'self'"]


@pytest.mark.parametrize(
    ("uri", "source"),
    [("https://app.example/cb?x=1", "https://app.example"),
     ("https://app.example:8443/cb", "https://app.example:8443"),
     ("http://127.0.0.1:9999/callback", "http://127.0.0.1:9999"),
     ("http://[::1]:9999/callback", "http:"),  # CSP host sources cannot write IPv6
     ("com.example.app:/cb", "com.example.app:"),
     ("https://app.example;script-src *", None),
     ("https://app.example, https://evil.example", None),
     ("/relative", None), ("", None)],
)  # fmt: skip
def test_form_source(uri: str, source: str | None) -> None:
    assert form_source(uri) == source


# Anything a browser would run or style from the markup itself, which the policy refuses.
INLINE = [
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on…= event handler"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"<style", re.I), "a <style> block"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_templates_have_nothing_inline() -> None:
    templates = sorted((ROOT / "server" / "web" / "templates").glob("*.html"))
    assert len(templates) > 20
    problems = [
        f"{path.name}: {what}"
        for path in templates
        for pattern, what in INLINE
        if pattern.search(path.read_text())
    ]
    assert problems == []


def test_the_dashboard_charts_have_nothing_inline() -> None:
    chart = bar_chart("Plays", [("2026-11-30", 3), ("2026-12-01", 5)], "plays")
    assert "<svg" in chart
    assert [what for pattern, what in INLINE if pattern.search(chart)] == []


def test_scripts_add_no_inline_code_or_style() -> None:
    """What the scripts do to the page the policy allows: no eval, no inline handlers or
    style attributes set from script (CSSOM properties are fine)."""
    forbidden = re.compile(
        r"\beval\(|new Function\(|setAttribute\(\s*[\"'](style|on[a-z]+)[\"']|\.innerHTML\s*=|"
        r"insertAdjacentHTML|document\.write|setTimeout\(\s*[\"']|\.on[a-z]+\s*=\s*[\"']"
    )
    scripts = sorted((ROOT / "server" / "web" / "static").glob("*.js"))
    assert len(scripts) >= 3
    assert [path.name for path in scripts if forbidden.search(path.read_text())] == []
