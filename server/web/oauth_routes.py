"""OAuth 2 endpoints: the authorization (consent) page, token, revocation."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import OAuth2Error
from pydantic import BaseModel, Field, ValidationError
from quart import Blueprint, current_app, jsonify, render_template, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import BadRequest, Forbidden

from models.oauth import OAuthClient
from models.tokens import AccessToken, token_digest
from models.users import User
from server.services.oauth_clients import ClientError, register_client
from server.web.auth import BearerError, page_requires, page_user
from server.web.current import resources_of
from server.web.headers import allow_form_target
from server.web.oauth_server import (
    CLIENT_AUTH_METHODS,
    PlayfairAuthorizationServer,
    UnreadableParameters,
    db,
    granted_scopes,
    oauth_request,
    run_in_session,
    signing_key,
    to_response,
    user_claims,
)
from server.web.sessions import check_csrf
from server.web.throttle import limit_address

oauth = Blueprint("oauth", __name__, url_prefix="/oauth")
SCOPE_TEXT = {
    "read": "see your library, wallet and account",
    "write": "change your library, playlists and follows",
    "play": "play tracks and pay for plays from your wallet",
    "upload": "upload audio to your artist profiles",
    "admin": "administer this instance",
    "openid": "know who you are on this instance",
    "profile": "see your name",
    "email": "see your e-mail address",
}


@oauth.errorhandler(UnreadableParameters)
async def _unreadable(error: UnreadableParameters) -> ResponseReturnValue:
    return jsonify({"error": "invalid_request", "error_description": str(error)}), 400


def server() -> PlayfairAuthorizationServer:
    found: PlayfairAuthorizationServer = current_app.extensions["oauth_server"]
    return found


@oauth.route("/authorize", methods=["GET", "POST"])
@page_requires()
async def authorize() -> ResponseReturnValue:
    user = page_user()
    if request.method == "POST":
        await check_csrf()
    form = dict((await request.form).items()) if request.method == "POST" else {}
    req = await oauth_request()
    auth = server()

    def decide() -> tuple[str, object]:
        try:
            grant = auth.get_consent_grant(req, end_user=user)
        except OAuth2Error as error:
            return "error", auth.handle_error_response(req, error)
        if request.method == "GET":
            client = db().scalar(
                select(OAuthClient).where(OAuthClient.client_id == req.payload.client_id)
            )
            return "consent", (
                client.name if client else "",
                req.payload.scope or "",
                grant.redirect_uri,
            )
        allowed = form.get("decision") == "allow"
        return "done", auth.create_authorization_response(
            req, grant_user=user if allowed else None, grant=grant
        )

    kind, result = await run_in_session(decide)
    if kind == "consent":
        client_name, scope, redirect_uri = cast(tuple[str, str, str], result)
        # the answer to the consent form is a redirect to the app (see server.web.headers)
        allow_form_target(redirect_uri)
        return await render_template(
            "consent.html",
            instance=resources_of(current_app).settings.instance,
            client_name=client_name,
            scopes=[(word, SCOPE_TEXT.get(word, word)) for word in granted_scopes(user, scope)],
            action=url_for("oauth.authorize") + "?" + urlencode(request.args),
        )
    response = to_response(result)  # type: ignore[arg-type]
    if kind == "error" and "Location" not in response.headers:
        # the client or its redirect URI is unknown: never redirect there (RFC 6749 §4.1.2.1)
        response.headers["Content-Type"] = "application/json"
    return response


@oauth.post("/token")
async def token() -> ResponseReturnValue:
    req = await oauth_request()
    response = to_response(await run_in_session(lambda: server().create_token_response(req)))
    response.headers["Content-Type"] = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


async def _endpoint(name: str) -> ResponseReturnValue:
    """One of authlib's endpoints (revocation, introspection), answered as JSON."""
    req = await oauth_request()
    response = to_response(
        await run_in_session(lambda: server().create_endpoint_response(name, req))
    )
    response.headers["Content-Type"] = "application/json"
    return response


@oauth.post("/introspect")
async def introspect() -> ResponseReturnValue:
    return await _endpoint("introspection")


PUBLIC_AUTH_METHOD = "none"


class Registration(BaseModel):
    """RFC 7591 client metadata (the part playfair uses)."""

    client_name: str = Field(min_length=1, max_length=200)
    redirect_uris: list[str] = Field(min_length=1, max_length=10)
    scope: str = Field(default="read", max_length=300)
    token_endpoint_auth_method: str = Field(
        default="client_secret_basic", pattern="^(none|client_secret_basic)$"
    )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == PUBLIC_AUTH_METHOD


@oauth.post("/register")
async def register() -> ResponseReturnValue:
    """Dynamic client registration (RFC 7591): any app may register itself; it gets no
    admin scope and is never trusted. Errors follow RFC 7591 §3.2.2."""
    settings = resources_of(current_app).settings.accounts
    await limit_address("register", settings.app_registrations)
    try:
        data = Registration.model_validate(await request.get_json(force=True) or {})
    except BadRequest as exc:  # not JSON, or JSON beyond the limits of every body
        return _registration_error("invalid_client_metadata", str(exc.description))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return _registration_error("invalid_client_metadata", f"{field}: {first['msg']}")
    if "admin" in data.scope.split():
        return _registration_error(
            "invalid_client_metadata", "the admin scope cannot be registered"
        )
    async with resources_of(current_app).sessionmaker() as session:
        try:
            client, secret = await register_client(
                session, data.client_name, data.redirect_uris, data.scope,
                public=data.is_public, dynamic=True,
            )  # fmt: skip
        except ClientError as exc:
            kind = (
                "invalid_redirect_uri" if "redirect URI" in str(exc) else "invalid_client_metadata"
            )
            return _registration_error(kind, str(exc))
    body: dict[str, object] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "scope": client.scopes,
        "token_endpoint_auth_method": client.auth_method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    if secret:
        body.update(client_secret=secret, client_secret_expires_at=0)
    return jsonify(body), 201, {"Cache-Control": "no-store"}


def _registration_error(error: str, description: str) -> ResponseReturnValue:
    return jsonify({"error": error, "error_description": description}), 400


@oauth.post("/revoke")
async def revoke() -> ResponseReturnValue:
    return await _endpoint("revocation")


well_known_oauth = Blueprint("well_known_oauth", __name__)


def metadata() -> dict[str, object]:
    base = resources_of(current_app).settings.instance.base_url
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "registration_endpoint": f"{base}/oauth/register",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "jwks_uri": f"{base}/oauth/jwks",
        "scopes_supported": list(SCOPE_TEXT),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "preferred_username", "profile", "email"],
    }


@well_known_oauth.get("/.well-known/openid-configuration")
async def openid_configuration() -> ResponseReturnValue:
    return jsonify(metadata())


@well_known_oauth.get("/.well-known/oauth-authorization-server")
async def oauth_metadata() -> ResponseReturnValue:
    return jsonify(metadata())


@oauth.get("/jwks")
async def jwks() -> ResponseReturnValue:
    public = signing_key().as_dict(private=False)
    return jsonify({"keys": [public]})


@oauth.route("/userinfo", methods=["GET", "POST"])
async def userinfo() -> ResponseReturnValue:
    """The signed-in user's claims, as far as the token's scope allows (OpenID Connect
    Core §5.3); the token must carry the openid scope."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise BearerError("send the access token as a Bearer token", None)
    async with resources_of(current_app).sessionmaker() as session:
        row = (
            await session.execute(
                select(AccessToken, User)
                .join(User, User.id == AccessToken.user_id)
                .where(AccessToken.digest == token_digest(value.strip()))
            )
        ).first()
    if row is None or row[0].is_revoked() or row[0].is_expired():
        raise BearerError("the access token is not valid")
    access, user = row
    if "openid" not in access.scopes.split():
        raise InsufficientScopeOIDC()
    return jsonify(user_claims(user, access.scopes))


class InsufficientScopeOIDC(Forbidden):
    description = "the token was not issued with the openid scope"

    def get_headers(self, *args: object, **kwargs: object) -> list[tuple[str, str]]:
        headers = super().get_headers(*args, **kwargs)  # type: ignore[arg-type]
        headers.append(("WWW-Authenticate", 'Bearer error="insufficient_scope", scope="openid"'))
        return headers
