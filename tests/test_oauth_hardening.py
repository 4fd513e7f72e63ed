"""OAuth as an attacker tries it, on both databases, driven by authlib's client against
the real app: a rotated refresh token used again revokes its whole family, redirect URIs
are https / loopback http / an app's own scheme only, and ``admin`` reaches admins only."""

from __future__ import annotations

import asyncio
import re

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models.oauth import OAuthClient, RefreshToken
from models.tokens import AccessToken
from server.services.oauth_clients import ClientError, register_client
from server.web.current import resources_of
from tests.test_account_pages import csrf, log_in
from tests.test_oauth import REDIRECT, authorize, authorize_query, new_client, oauth_client


async def consent_as_lina(app: Quart, url: str) -> str:
    """lina (made by an earlier consent) allows an app in a browser of her own."""
    browser = app.test_client()
    assert (await log_in(browser, "lina")).status_code == 303
    page = await browser.get("/" + url.split("://", 1)[1].split("/", 1)[1])
    consent = (await page.get_data(as_text=True)).split("<h1>", 1)[1]
    action = re.search(r'<form method="post" action="([^"]+)"', consent)
    assert action
    token = await csrf(browser, "/settings")
    answer = await browser.post(action.group(1).replace("&amp;", "&"),
                                form={"csrf_token": token, "decision": "allow"})  # fmt: skip
    assert answer.status_code == 302
    return str(answer.headers["Location"])


async def test_reuse_of_a_rotated_refresh_token_revokes_the_family(app: Quart) -> None:
    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        first = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        token_url = f"{oauth.base_url}/oauth/token"
        second = await oauth.refresh_token(token_url)
        third = await oauth.refresh_token(token_url)  # the app goes on rotating
        assert (await oauth.get("/api/v1/me")).status_code == 200

        # someone who copied the first refresh token uses it: refused, and everything
        # that came from this authorization stops working, the app's current tokens too
        with pytest.raises(OAuthError, match="invalid_grant"):
            await oauth.refresh_token(token_url, refresh_token=first["refresh_token"])
        assert (await oauth.get("/api/v1/me")).status_code == 401
        with pytest.raises(OAuthError, match="invalid_grant"):
            await oauth.refresh_token(token_url, refresh_token=third["refresh_token"])
        for token in (first, second, third):
            oauth.token = token
            assert (await oauth.get("/api/v1/me")).status_code == 401
    async with resources_of(app).sessionmaker() as session:
        refresh = (await session.scalars(select(RefreshToken))).all()
        access = (await session.scalars(select(AccessToken))).all()
    assert len(refresh) == len(access) == 3
    assert len({row.family for row in refresh}) == 1
    assert all(row.revoked_at is not None for row in [*refresh, *access])


async def test_other_authorizations_are_not_touched(app: Quart) -> None:
    """Negative: a reuse revokes its own family only; another grant of the same user and
    app goes on working."""
    client_id, _ = await new_client(app)
    async with oauth_client(app, client_id) as victim, oauth_client(app, client_id) as other:
        verifier = generate_token(48)
        location, _state = await authorize(app, victim, verifier)
        first = await victim.fetch_token(authorization_response=location, code_verifier=verifier)
        await victim.refresh_token(f"{victim.base_url}/oauth/token")
        # a second authorization by the same person ("lina" exists now: consent again)
        base = resources_of(app).settings.instance.base_url
        url, _ = other.create_authorization_url(f"{base}/oauth/authorize", code_verifier=verifier)
        location2 = await consent_as_lina(app, url)
        await other.fetch_token(authorization_response=location2, code_verifier=verifier)
        with pytest.raises(OAuthError, match="invalid_grant"):
            await victim.refresh_token(f"{victim.base_url}/oauth/token", first["refresh_token"])
        assert (await victim.get("/api/v1/me")).status_code == 401
        assert (await other.get("/api/v1/me")).status_code == 200
        assert (await other.refresh_token(f"{other.base_url}/oauth/token"))["access_token"]


async def test_two_refreshes_at_once_leave_one_family_member_at_most(app: Quart) -> None:
    """The same refresh token sent twice at once (a copy racing the app): at most one
    answer carries tokens, and those are revoked too, since the other was a reuse."""
    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        first = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        client = app.test_client()
        form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                "client_id": client_id}  # fmt: skip
        answers = await asyncio.gather(*(client.post("/oauth/token", form=form) for _ in range(4)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses.count(200) <= 1 and statuses.count(400) >= 3, statuses
        for answer in answers:
            assert answer.status_code != 500
            if answer.status_code == 200:
                oauth.token = await answer.get_json()
                assert (await oauth.get("/api/v1/me")).status_code == 401
    async with resources_of(app).sessionmaker() as session:
        live = await session.scalars(select(RefreshToken).where(RefreshToken.revoked_at.is_(None)))
        assert live.all() == []


async def test_revoking_a_refresh_token_revokes_its_access_tokens(app: Quart) -> None:
    """RFC 7009 §2.1: the access tokens of the same grant go with it."""
    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        first = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        await oauth.refresh_token(f"{oauth.base_url}/oauth/token")
        assert (await oauth.get("/api/v1/me")).status_code == 200
        revoked = await oauth.post(
            f"{oauth.base_url}/oauth/revoke",
            data={"token": first["refresh_token"], "token_type_hint": "refresh_token",
                  "client_id": client_id},
        )  # fmt: skip
        assert revoked.status_code == 200
        assert (await oauth.get("/api/v1/me")).status_code == 401


HOSTILE_REDIRECTS = [
    "vbscript:msgbox(1)", "blob:https://app.example/1", "javascript:alert(1)",
    "JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd",
    "about:blank", "filesystem:https://app.example/x", "http://evil.example/cb",
    "ws://127.0.0.1/cb", "myapp:/cb", "https://user:pw@app.example/cb", "https:///cb",
    "https://app.example/cb#frag", "https://app.example/c b", "com.example.app:/cb\n",
]  # fmt: skip
GOOD_REDIRECTS = ["https://app.example/cb", "http://127.0.0.1:7/cb", "http://[::1]:7/cb",
                  "http://localhost/cb", "com.example.app:/oauth2redirect"]  # fmt: skip


async def test_registration_allows_only_safe_redirect_schemes(client: Client) -> None:
    addresses = (f"10.0.0.{number}" for number in range(1, 250))

    async def register(uris: list[str], name: str = "x") -> object:
        # one address each, or the limit on registrations per address would answer
        return await client.post(
            "/oauth/register", json={"client_name": name, "redirect_uris": uris},
            scope_base={"client": (next(addresses), 50000)},
        )  # fmt: skip

    for uri in HOSTILE_REDIRECTS:
        for uris in ([uri], [REDIRECT, uri]):
            response = await register(uris)
            assert response.status_code == 400, uri  # type: ignore[attr-defined]
            assert (await response.get_json())["error"] == "invalid_redirect_uri", uri  # type: ignore[attr-defined]
    for uri in GOOD_REDIRECTS:
        response = await register([uri], "ok")
        assert response.status_code == 201, uri  # type: ignore[attr-defined]
    async with resources_of(client.app).sessionmaker() as session:  # type: ignore[attr-defined]
        names = (await session.scalars(select(OAuthClient.name))).all()
    assert names == ["ok"] * len(GOOD_REDIRECTS)


async def test_admin_registered_clients_follow_the_same_rule(app: Quart) -> None:
    """``playfair oauth add-client`` calls register_client, which checks every URI."""
    async with resources_of(app).sessionmaker() as session:
        for uri in HOSTILE_REDIRECTS:
            with pytest.raises(ClientError):
                await register_client(session, "x", [uri], "read", public=True)
        made, _secret = await register_client(session, "ok", GOOD_REDIRECTS, "read", public=True)
    assert made.redirect_uris == GOOD_REDIRECTS


async def test_a_stored_hostile_redirect_uri_is_never_used(app: Quart, client: Client) -> None:
    """An app registered before the rule keeps its row, but its javascript: URI is
    neither accepted nor chosen as the default."""
    async with resources_of(app).sessionmaker() as session:
        old = OAuthClient(client_id="old-app", name="Old", redirect_uris=["javascript:alert(1)"],
                          scopes="read", auth_method="none")  # fmt: skip
        session.add(old)
        await session.commit()
    query = {"response_type": "code", "client_id": "old-app", "code_challenge": "x" * 43,
             "code_challenge_method": "S256"}  # fmt: skip
    named = await authorize_query(app, client, **query, redirect_uri="javascript:alert(1)")
    default = await client.get("/oauth/authorize", query_string=query)  # signed in by now
    for response in (named, default):
        assert response.status_code == 400
        assert "Location" not in response.headers


async def test_admin_scope_is_granted_to_admins_only(app: Quart) -> None:
    async with resources_of(app).sessionmaker() as session:
        registered, _ = await register_client(
            session, "Console", [REDIRECT], "read admin", public=True
        )
    verifier = generate_token(48)
    async with oauth_client(app, registered.client_id) as oauth:
        oauth.scope = "read admin"
        location, _state = await authorize(app, oauth, verifier)  # lina, a listener
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        assert token["scope"] == "read"
        assert (await oauth.get("/api/v1/admin/members")).status_code == 403
        # nor can a refresh widen it
        with pytest.raises(OAuthError, match="invalid_scope"):
            await oauth.refresh_token(f"{oauth.base_url}/oauth/token")
        oauth.scope = "read"
        refreshed = await oauth.refresh_token(f"{oauth.base_url}/oauth/token")
        assert refreshed["scope"] == "read"
    async with resources_of(app).sessionmaker() as session:
        scopes = (await session.scalars(select(AccessToken.scopes))).all()
    assert scopes == ["read", "read"]
