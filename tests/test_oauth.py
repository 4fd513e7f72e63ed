"""OAuth 2 on both databases, driven by a standard client library (authlib's httpx
client) against the real app: authorization code with PKCE, API calls with the token,
refresh with rotation, revocation, and the errors the RFCs prescribe."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.users import Role
from server.services.account_rules import create_user
from server.services.oauth_clients import register_client
from server.web.current import resources_of
from tests.test_account_pages import PASSWORD, csrf, log_in

REDIRECT = "http://127.0.0.1:9999/callback"


async def new_client(app: Quart, *, public: bool = True) -> tuple[str, str | None]:
    async with resources_of(app).sessionmaker() as session:
        client, secret = await register_client(
            session, "Test Player", [REDIRECT], "read play openid profile", public=public
        )
        return client.client_id, secret


def oauth_client(app: Quart, client_id: str, secret: str | None = None) -> AsyncOAuth2Client:
    base = resources_of(app).settings.instance.base_url
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        redirect_uri=REDIRECT,
        scope="read play",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url=base,
        token_endpoint=f"{base}/oauth/token",
    )


async def browser_consent(app: Quart, url: str, decision: str = "allow") -> str:
    """A signed-in person opens the authorization URL and answers; return the redirect."""
    browser = app.test_client()
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "lina", PASSWORD, Role.LISTENER)
    assert (await log_in(browser, "lina")).status_code == 303
    path = url.split("://", 1)[1].split("/", 1)[1]
    page = await browser.get("/" + path)
    assert page.status_code == 200, await page.get_data(as_text=True)
    text = await page.get_data(as_text=True)
    assert "<h1>Allow " in text
    action = re.search(r'action="([^"]+)"', text.split("<h1>", 1)[1])
    assert action
    token = await csrf(browser, "/settings")
    answer = await browser.post(action.group(1).replace("&amp;", "&"),
                                form={"csrf_token": token, "decision": decision})  # fmt: skip
    assert answer.status_code == 302, await answer.get_data(as_text=True)
    return answer.headers["Location"]


async def authorize(app: Quart, oauth: AsyncOAuth2Client, verifier: str) -> tuple[str, str]:
    base = resources_of(app).settings.instance.base_url
    url, state = oauth.create_authorization_url(f"{base}/oauth/authorize", code_verifier=verifier)
    return await browser_consent(app, url), state


async def test_pkce_flow_refresh_and_revoke(app: Quart) -> None:
    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        assert location.startswith(REDIRECT)
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        assert token["token_type"].lower() == "bearer"
        assert token["scope"] == "read play"
        assert token["refresh_token"]
        api = await oauth.get("/api/v1/releases")
        assert api.status_code == 200

        first_refresh = token["refresh_token"]
        refreshed = await oauth.refresh_token(f"{oauth.base_url}/oauth/token")
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] != first_refresh
        # rotation: the old refresh token is spent
        with pytest.raises(OAuthError, match="invalid_grant"):
            await oauth.refresh_token(f"{oauth.base_url}/oauth/token", refresh_token=first_refresh)

        revoked = await oauth.post(
            f"{oauth.base_url}/oauth/revoke",
            data={"token": refreshed["access_token"], "client_id": client_id},
        )
        assert revoked.status_code == 200
        after = await oauth.get("/api/v1/releases")
        assert after.status_code == 401


async def test_confidential_client_with_secret(app: Quart) -> None:
    client_id, secret = await new_client(app, public=False)
    verifier = generate_token(48)
    async with oauth_client(app, client_id, secret) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        assert token["access_token"].startswith("pf_")
    async with oauth_client(app, client_id, "wrong secret") as wrong:
        with pytest.raises(OAuthError, match="invalid_client"):
            await wrong.fetch_token(authorization_response=location, code_verifier=verifier)


async def test_codes_are_single_use_and_need_the_right_verifier(app: Quart) -> None:
    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        with pytest.raises(OAuthError, match="invalid_grant"):
            await oauth.fetch_token(
                authorization_response=location, code_verifier=generate_token(48)
            )
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        assert token["access_token"]
    async with oauth_client(app, client_id) as again:
        with pytest.raises(OAuthError, match="invalid_grant"):
            await again.fetch_token(authorization_response=location, code_verifier=verifier)
        # reusing the code revoked what it had given
        again.token = token
        assert (await again.get("/api/v1/releases")).status_code == 401


async def test_denied_consent_returns_access_denied(app: Quart) -> None:
    client_id, _ = await new_client(app)
    async with oauth_client(app, client_id) as oauth:
        base = resources_of(app).settings.instance.base_url
        url, _ = oauth.create_authorization_url(
            f"{base}/oauth/authorize", code_verifier=generate_token(48)
        )
        location = await browser_consent(app, url, decision="deny")
    assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]


async def authorize_query(app: Quart, client: Client, **params: str) -> Any:
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "sol", PASSWORD, Role.LISTENER)
    assert (await log_in(client, "sol")).status_code == 303
    return await client.get("/oauth/authorize", query_string=params)


async def test_unregistered_redirect_uri_is_never_followed(app: Quart, client: Client) -> None:
    client_id, _ = await new_client(app)
    response = await authorize_query(
        app, client, response_type="code", client_id=client_id,
        redirect_uri="https://evil.example/steal", code_challenge="x" * 43,
        code_challenge_method="S256",
    )  # fmt: skip
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert (
        "redirect uri https://evil.example/steal is not supported"
        in (await response.get_data(as_text=True)).lower()
    )


async def test_public_clients_must_use_pkce_s256(app: Quart, client: Client) -> None:
    client_id, _ = await new_client(app)
    without = await authorize_query(app, client, response_type="code", client_id=client_id,
                                    redirect_uri=REDIRECT)  # fmt: skip
    assert without.status_code == 302
    assert "error=invalid_request" in without.headers["Location"]
    plain = await client.get("/oauth/authorize", query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "code_challenge": "x" * 43, "code_challenge_method": "plain"})  # fmt: skip
    assert "error=invalid_request" in plain.headers["Location"]


async def test_unknown_client_and_signed_out_visitor(app: Quart, client: Client) -> None:
    signed_out = await client.get("/oauth/authorize", query_string={"client_id": "x"})
    assert signed_out.status_code == 303
    assert "/login?next=" in signed_out.headers["Location"]
    unknown = await authorize_query(app, client, response_type="code", client_id="nope",
                                    redirect_uri=REDIRECT)  # fmt: skip
    assert unknown.status_code == 400
    assert "Location" not in unknown.headers
    token = await client.post("/oauth/token", form={"grant_type": "authorization_code",
                                                    "code": "x", "client_id": "nope"})  # fmt: skip
    assert token.status_code in (400, 401)
    assert (await token.get_json())["error"] == "invalid_client"
    bad_grant = await client.post("/oauth/token", form={"grant_type": "password"})
    assert (await bad_grant.get_json())["error"] == "unsupported_grant_type"


async def test_openid_connect(app: Quart, client: Client) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    base = resources_of(app).settings.instance.base_url
    discovery = await (await client.get("/.well-known/openid-configuration")).get_json()
    assert discovery["issuer"] == base
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["jwks_uri"] == f"{base}/oauth/jwks"
    jwks = await (await client.get("/oauth/jwks")).get_json()
    assert "d" not in jwks["keys"][0], "only the public half is published"

    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        oauth.scope = "openid profile read"
        url, _state = oauth.create_authorization_url(
            f"{base}/oauth/authorize", code_verifier=verifier, nonce="n-0S6_WzA2Mj"
        )
        location = await browser_consent(app, url)
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        claims = jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims
        assert claims["iss"] == base
        assert client_id in claims["aud"]
        assert claims["nonce"] == "n-0S6_WzA2Mj"
        assert claims["preferred_username"] == "lina"
        assert "email" not in claims
        info = await oauth.get(f"{base}/oauth/userinfo")
        assert info.status_code == 200
        assert (await info.aread()) and info.json()["sub"] == claims["sub"]
        assert "email" not in info.json()

        oauth.scope = "read"
        verifier = generate_token(48)
        url, _state = oauth.create_authorization_url(f"{base}/oauth/authorize",
                                                     code_verifier=verifier)  # fmt: skip
        browser = app.test_client()
        assert (await log_in(browser, "lina")).status_code == 303
        page = await browser.get("/" + url.split("://", 1)[1].split("/", 1)[1])
        action = re.search(
            r'action="([^"]+)"', (await page.get_data(as_text=True)).split("<h1>")[1]
        )
        assert action
        answer = await browser.post(action.group(1).replace("&amp;", "&"), form={
            "csrf_token": await csrf(browser, "/settings"), "decision": "allow"})  # fmt: skip
        plain = await oauth.fetch_token(authorization_response=answer.headers["Location"],
                                        code_verifier=verifier)  # fmt: skip
        assert "id_token" not in plain
        no_openid = await oauth.get(f"{base}/oauth/userinfo")
        assert no_openid.status_code == 403
        assert 'scope="openid"' in no_openid.headers["WWW-Authenticate"]
    assert (await client.get("/oauth/userinfo")).status_code == 401


async def test_dynamic_registration(app: Quart, client: Client) -> None:
    public = await client.post("/oauth/register", json={
        "client_name": "Pocket Player", "redirect_uris": [REDIRECT], "scope": "read play",
        "token_endpoint_auth_method": "none"})  # fmt: skip
    assert public.status_code == 201
    registered = await public.get_json()
    assert registered["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in registered
    radio = {"client_name": "Radio", "redirect_uris": ["https://radio.example/cb"]}
    confidential = await (await client.post("/oauth/register", json=radio)).get_json()
    assert confidential["client_secret"]

    for body, error in [
        ({"client_name": "x", "redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"client_name": "x", "redirect_uris": [REDIRECT], "scope": "read admin"},
         "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT]}, "invalid_client_metadata"),
        ({"client_name": "x", "redirect_uris": [REDIRECT], "scope": "read fly"},
         "invalid_client_metadata"),
    ]:  # fmt: skip
        response = await client.post("/oauth/register", json=body)
        assert response.status_code == 400, body
        assert (await response.get_json())["error"] == error

    verifier = generate_token(48)
    async with oauth_client(app, registered["client_id"]) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
        assert token["scope"] == "read play"


async def test_introspection_is_for_trusted_services(app: Quart, client: Client) -> None:
    import base64

    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        token = await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
    async with resources_of(app).sessionmaker() as session:
        service, service_secret = await register_client(
            session, "Stats service", ["https://stats.example/cb"], "read", public=False,
            trusted=True,
        )  # fmt: skip
        outsider, outsider_secret = await register_client(
            session, "Some app", ["https://app.example/cb"], "read", public=False
        )

    def basic(client_id: str, secret: str | None) -> dict[str, str]:
        raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    answer = await client.post("/oauth/introspect", form={"token": token["access_token"]},
                               headers=basic(service.client_id, service_secret))  # fmt: skip
    assert answer.status_code == 200
    payload = await answer.get_json()
    assert payload["active"] is True
    assert payload["username"] == "lina"
    assert payload["scope"] == "read play"
    unknown = await client.post("/oauth/introspect", form={"token": "pf_not_a_token"},
                                headers=basic(service.client_id, service_secret))  # fmt: skip
    assert (await unknown.get_json()) == {"active": False}
    refused = await client.post("/oauth/introspect", form={"token": token["access_token"]},
                                headers=basic(outsider.client_id, outsider_secret))  # fmt: skip
    # an app that is not one of the instance's services learns nothing about the token
    assert (await refused.get_json()).get("active") is not True
    assert "username" not in await refused.get_data(as_text=True)


async def test_an_expired_code_is_refused(app: Quart) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from models.base import utcnow
    from models.oauth import AuthorizationCode

    client_id, _ = await new_client(app)
    verifier = generate_token(48)
    async with oauth_client(app, client_id) as oauth:
        location, _state = await authorize(app, oauth, verifier)
        async with resources_of(app).sessionmaker() as session:
            await session.execute(
                update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
        with pytest.raises(OAuthError, match="invalid_grant"):
            await oauth.fetch_token(authorization_response=location, code_verifier=verifier)
