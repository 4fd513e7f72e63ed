"""The OAuth 2 authorization server, built on authlib's grants.

authlib's server calls its hooks (find a client, save a code, save a token …)
synchronously. Each endpoint here therefore runs the authlib call inside
``AsyncSession.run_sync``: the hooks get a synchronous SQLAlchemy session bound to the
request's async connection (through a context variable), and the whole exchange commits
as one transaction.

Authorization code with PKCE (S256 only, required for public clients), refresh tokens
with rotation (the old one is revoked when a new one is issued), revocation (RFC 7009),
introspection for the instance's own services (RFC 7662), and OpenID Connect ID tokens.

Every token of one authorization is one family (``RefreshToken.family``). A refresh
token that was rotated (or revoked) and is presented again was copied by someone: the
whole family, refresh and access tokens, is revoked at once (RFC 6819 §5.2.2.3, OAuth
2.0 Security BCP §4.14.2); so is it when an authorization code is used twice, or when
a client revokes one of its refresh tokens (RFC 7009 §2.1). The ``admin`` scope is
granted to admins only, whatever the app asked for.
"""

from __future__ import annotations

import base64
import contextvars
import json
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import RSAKey
from quart import Response, current_app, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.accounts import secret_digest
from models.base import utcnow
from models.oauth import AuthorizationCode, OAuthClient, RefreshToken, code_family
from models.tokens import AccessToken, Scope, new_token, token_digest
from models.users import AccountStatus, Role, User
from server.web.current import resources_of

ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
CODE_LIFETIME = timedelta(minutes=5)
T = TypeVar("T")

_db: contextvars.ContextVar[Session] = contextvars.ContextVar("oauth_db")


def db() -> Session:
    return _db.get()


class S256Only(CodeChallenge):
    """PKCE with S256 only ("plain" would give the verifier away); required for public
    clients, optional for confidential ones."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(
        self, authorization_code: AuthorizationCode
    ) -> str | None:
        return authorization_code.code_challenge_method


CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
REFRESH_HINT = "refresh_token"


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = CLIENT_AUTH_METHODS

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        client: OAuthClient = self.request.client
        if client.is_public and not self.request.payload.data.get("code_challenge"):
            from authlib.oauth2.rfc6749.errors import InvalidRequestError

            raise InvalidRequestError(
                "public clients must use PKCE (code_challenge with method S256)",
                redirect_uri=redirect_uri,
            )
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        db().add(
            AuthorizationCode(
                digest=secret_digest(code),
                client_id=request.client.client_id,
                user_id=request.user.id,
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.payload.scope or "",
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method")
                or ("S256" if data.get("code_challenge") else None),
                auth_time=int(time.time()),
                expires_at=utcnow() + CODE_LIFETIME,
            )
        )
        db().flush()

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthorizationCode | None:
        found = db().scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.digest == secret_digest(code),
                AuthorizationCode.client_id == client.client_id,
            )
        )
        if found is None:
            return None
        if found.used_at is not None:
            # A code used twice is a stolen code: the tokens it gave are revoked too
            # (RFC 6749 §4.1.2).
            _revoke_tokens_of_code(found)
            return None
        if found.expires_at <= utcnow():
            return None
        return found

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        authorization_code.used_at = utcnow()
        db().flush()

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return _active_user(authorization_code.user_id)


def _revoke_tokens_of_code(code: AuthorizationCode) -> None:
    revoke_family(code_family(code))


def revoke_family(family: str) -> None:
    """Revoke every refresh token of ``family`` and the access tokens they came with."""
    now = utcnow()
    db().execute(
        update(AccessToken)
        .where(
            AccessToken.id.in_(
                select(RefreshToken.access_token_id).where(RefreshToken.family == family)
            ),
            AccessToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    db().execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def granted_scopes(user: User, scope: str) -> list[str]:
    """The words of ``scope`` this user may be granted: ``admin`` only for admins."""
    return [word for word in scope.split() if word != Scope.ADMIN.value or user.role is Role.ADMIN]


def _active_user(user_id: int) -> User | None:
    user = db().get(User, user_id)
    return user if user is not None and user.status is AccountStatus.ACTIVE else None


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        found = db().scalar(
            select(RefreshToken).where(RefreshToken.digest == secret_digest(refresh_token))
        )
        if found is None or found.is_expired():
            return None
        if found.is_revoked():
            revoke_family(found.family)  # a spent token again: someone has a copy
            return None
        return found

    def authenticate_user(self, refresh_token: RefreshToken) -> User | None:
        return _active_user(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        # Guarded: of two requests that rotate the same token at once, one wins; the
        # other is a reuse (and revokes the family, the winner's new tokens included).
        spent = db().execute(
            update(RefreshToken)
            .where(RefreshToken.id == refresh_token.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            revoke_family(refresh_token.family)
            raise InvalidGrantError("the refresh token has been used already")


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        access = db().scalar(
            select(AccessToken).where(AccessToken.digest == token_digest(token_string))
        )
        hinted_refresh = token_type_hint == REFRESH_HINT
        if access is not None and not hinted_refresh:
            return access
        refresh = db().scalar(
            select(RefreshToken).where(RefreshToken.digest == secret_digest(token_string))
        )
        return refresh or access

    def revoke_token(self, token: Any, request: OAuth2Request) -> None:
        if isinstance(token, RefreshToken):
            revoke_family(token.family)
        else:
            token.revoked_at = utcnow()
        db().flush()


def signing_key() -> RSAKey:
    """The instance's RSA key as a JWK (the same key signs HTTP requests)."""
    keys = resources_of(current_app).keys
    pem = keys.rsa.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return RSAKey.import_key(pem, {"kid": keys.rsa_name, "use": "sig", "alg": "RS256"})


def user_claims(user: User, scope: str) -> dict[str, Any]:
    """What OpenID Connect tells about a user: only what the scope allows."""
    words = scope.split()
    claims: dict[str, Any] = {"sub": str(user.id)}
    if "profile" in words:
        base = resources_of(current_app).settings.instance.base_url
        claims["preferred_username"] = user.username
        claims["profile"] = f"{base}/users/{user.username}"
    if "email" in words and user.email:
        claims["email"] = user.email
    return claims


class OpenIDConnect(OpenIDCode):
    """ID tokens for the code flow (RS256, signed with the instance key)."""

    def resolve_client_private_key(self, client: OAuthClient) -> RSAKey:
        return signing_key()

    def get_client_algorithm(self, client: OAuthClient) -> str:
        return "RS256"

    def get_encode_header(self, client: OAuthClient) -> dict[str, str]:
        return {"alg": "RS256", "kid": resources_of(current_app).keys.rsa_name}

    def get_client_claims(self, client: OAuthClient) -> dict[str, Any]:
        return {
            "iss": resources_of(current_app).settings.instance.base_url,
            "aud": [client.client_id],
            "exp": int(time.time()) + int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        }

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        found = db().scalar(
            select(AuthorizationCode.id).where(
                AuthorizationCode.nonce == nonce,
                AuthorizationCode.client_id == request.payload.client_id,
            )
        )
        return found is not None

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user, scope))


class Introspection(IntrospectionEndpoint):
    """RFC 7662, for the instance's own services (trusted clients) only."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return Revocation.query_token(self, token_string, token_type_hint)

    def check_permission(self, token: Any, client: OAuthClient, request: OAuth2Request) -> bool:
        return client.trusted

    def introspect_token(self, token: Any) -> dict[str, Any]:
        user = db().get(User, token.user_id)
        base = resources_of(current_app).settings.instance.base_url
        scope = token.get_scope()
        expires = token.expires_at
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "refresh_token" if isinstance(token, RefreshToken) else "Bearer",
            "username": user.username if user else None,
            "scope": scope,
            "sub": str(token.user_id),
            "iss": base,
            "exp": int(expires.timestamp()) if expires else None,
            "iat": int(token.created_at.timestamp()),
        }


class PlayfairAuthorizationServer(AuthorizationServer):
    def __init__(self) -> None:
        super().__init__(scopes_supported=["read", "write", "play", "upload", "admin",
                                           "openid", "profile", "email"])  # fmt: skip
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda *args, **kwargs: new_token(),
                refresh_token_generator=lambda *args, **kwargs: "pfr_" + secrets.token_urlsafe(32),
                expires_generator=lambda client, grant_type: int(
                    ACCESS_TOKEN_LIFETIME.total_seconds()
                ),
            ),
        )
        self.register_grant(CodeGrant, [S256Only(required=True), OpenIDConnect()])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def query_client(self, client_id: str) -> OAuthClient | None:
        return db().scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        now = utcnow()
        user = request.user
        token["scope"] = " ".join(granted_scopes(user, token.get("scope", "")))
        if request.refresh_token is not None:
            family = request.refresh_token.family
        elif request.authorization_code is not None:
            family = code_family(request.authorization_code)
        else:
            family = secrets.token_hex(16)
        access = AccessToken(
            user_id=user.id,
            digest=token_digest(token["access_token"]),
            name=f"OAuth: {request.client.name}"[:100],
            scopes=token.get("scope", ""),
            client_id=request.client.client_id,
            created_at=now,
            expires_at=now + timedelta(seconds=int(token["expires_in"])),
        )
        db().add(access)
        db().flush()
        if token.get("refresh_token"):
            db().add(
                RefreshToken(
                    digest=secret_digest(token["refresh_token"]),
                    client_id=request.client.client_id,
                    user_id=user.id,
                    scope=token.get("scope", ""),
                    family=family,
                    access_token_id=access.id,
                    expires_at=now + REFRESH_TOKEN_LIFETIME,
                )
            )
            db().flush()

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # already built from the Quart request by oauth_request()

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class QuartOAuth2Request(OAuth2Request):
    """authlib's request over values read from a Quart request beforehand (authlib's
    hooks are synchronous and cannot await the body)."""

    def __init__(self, method: str, uri: str, headers: dict[str, str],
                 args: dict[str, str], form: dict[str, str]) -> None:  # fmt: skip
        super().__init__(method, uri, headers=headers)
        self._args = args
        self._form = form
        self.payload = BasicOAuth2Payload({**args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class UnreadableParameters(Exception):
    """A parameter with characters that OAuth does not allow (RFC 6749 appendix A: every
    parameter is printable ASCII); authlib fails with a 500 while describing some."""


def _printable(values: dict[str, str]) -> bool:
    return all(text.isascii() and text.isprintable() for pair in values.items() for text in pair)


async def oauth_request(extra: dict[str, str] | None = None) -> OAuth2Request:
    """The current Quart request as authlib's request object (query and form merged)."""
    args: dict[str, str] = dict(request.args.items())
    form: dict[str, str] = {}
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        form = dict((await request.form).items())
    if not _printable(args) or not _printable(form):
        raise UnreadableParameters("OAuth parameters are printable ASCII (RFC 6749 appendix A)")
    form.update(extra or {})
    base = resources_of(current_app).settings.instance.base_url
    uri = f"{base}{request.path}" + (f"?{urlencode(args)}" if args else "")
    headers = dict(request.headers)
    if not _readable_basic(headers.get("Authorization", "")):
        del headers["Authorization"]  # unreadable credentials are no credentials: invalid_client
    return QuartOAuth2Request(request.method, uri, headers, args, form)


def _readable_basic(value: str) -> bool:
    """Whether authlib can read this header: anything but Basic, or Basic with base64 of
    UTF-8 text (authlib's decoder fails with a 500 on anything else)."""
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return False
    return bool(credentials.strip())


async def run_in_session(work: Callable[[], T]) -> T:
    """Run an authlib call with its hooks' database session; commit what it did."""
    async with resources_of(current_app).sessionmaker() as session:

        def call(sync_session: Session) -> T:
            token = _db.set(sync_session)
            try:
                return work()
            finally:
                _db.reset(token)

        result = await session.run_sync(call)
        await session.commit()
        return result


def to_response(result: tuple[int, Any, Any]) -> Response:
    status, body, headers = result
    if isinstance(body, dict):
        body = json.dumps(body)
    response = Response(body or "", status)
    for name, value in headers or []:
        response.headers[name] = value
    return response
