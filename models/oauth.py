"""OAuth 2 clients, authorization codes and refresh tokens (access tokens are the rows of
``access_tokens``, with the client that obtained them). Secrets are stored as SHA-256
digests only. The methods are those authlib asks of its client and token models."""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.accounts import secret_digest
from models.base import Base, BigIntId, JSONDocument, UTCDateTime, utcnow

# What a client may ask for: the API scopes plus OpenID Connect's.
OIDC_SCOPES = ("openid", "profile", "email")


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# RFC 8252 §7.1: a native app's private-use scheme is a domain it controls, reversed
# (com.example.app). Requiring the dot leaves out every scheme a browser would run or
# read for itself: javascript:, vbscript:, data:, blob:, file:, about:, filesystem: …
PRIVATE_USE_SCHEME = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+$")


def scope_set(text: str | None) -> set[str]:
    return set((text or "").split())


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI, or None: https anywhere, http only on
    loopback (RFC 8252 §7.3), or a native app's reverse-domain scheme (RFC 8252 §7.1)."""
    if len(uri) > 2000 or any(ch.isspace() or not ch.isprintable() for ch in uri):
        return f"redirect URI {uri[:100]!r} is too long or has spaces or control characters"
    parts = urlsplit(uri)
    if "#" in uri:
        return f"redirect URI {uri!r} must not have a fragment"
    scheme = parts.scheme.lower()
    if scheme in ("https", "http"):
        if parts.username is not None or parts.password is not None:
            return f"redirect URI {uri!r} must not hold a user name or password"
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            return f"redirect URI {uri!r} has a bad port"
        if scheme == "https" and parts.hostname:
            return None
        if scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
            return None
    elif PRIVATE_USE_SCHEME.match(scheme):
        return None
    return (
        f"redirect URI {uri!r} must be https, http on loopback, or an app's own "
        "reverse-domain scheme such as com.example.app:/callback"
    )


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    scopes: Mapped[str] = mapped_column(String(300))
    # "none" (a public client: PKCE with S256 required), "client_secret_basic" or
    # "client_secret_post"
    auth_method: Mapped[str] = mapped_column(String(32))
    # The instance's own services may introspect tokens; registered apps may not.
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_dynamically: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        allowed = [uri for uri in self.redirect_uris if redirect_uri_problem(uri) is None]
        return allowed[0] if allowed else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = scope_set(self.scopes)
        return " ".join(word for word in scope.split() if word in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # checked again here for apps registered before the scheme rule existed
        return redirect_uri in self.redirect_uris and redirect_uri_problem(redirect_uri) is None

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_digest is None:
            return False
        return hmac.compare_digest(self.secret_digest, secret_digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"


class AuthorizationCode(Base):
    __tablename__ = "oauth_codes"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(300))
    nonce: Mapped[str | None] = mapped_column(String(255), default=None)
    code_challenge: Mapped[str | None] = mapped_column(String(128), default=None)
    code_challenge_method: Mapped[str | None] = mapped_column(String(16), default=None)
    auth_time: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    # authlib's AuthorizationCodeMixin (and OpenID Connect's)
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


def code_family(code: AuthorizationCode) -> str:
    """The token family of what an authorization code gave."""
    return f"code:{code.id}"


class RefreshToken(Base):
    __tablename__ = "oauth_refresh_tokens"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(300))
    # Every token that descends from one authorization (its code, then each rotation)
    # shares a family; presenting a rotated token again revokes the whole family.
    family: Mapped[str] = mapped_column(String(64), index=True)
    access_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_tokens.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None
