"""Access tokens: personal ones for scripts now; the OAuth server issues the same kind.

Only a SHA-256 of each token is stored, so a copy of the database gives no working
tokens. Tokens are 32 random bytes, so a plain hash is enough (no salt or slow hash is
needed against guessing).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, UTCDateTime, utcnow

TOKEN_PREFIX = "pf_"  # noqa: S105 - a prefix that makes leaked tokens easy to spot


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    PLAY = "play"
    UPLOAD = "upload"
    ADMIN = "admin"


class InvalidScope(ValueError):
    pass


def parse_scopes(text: str) -> frozenset[Scope]:
    scopes = set()
    for word in text.replace(",", " ").split():
        try:
            scopes.add(Scope(word))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise InvalidScope(f"unknown scope {word!r}; known scopes: {known}") from None
    if not scopes:
        raise InvalidScope("at least one scope is needed")
    return frozenset(scopes)


def check_admin_scope(scopes: frozenset[Scope], *, is_admin: bool) -> None:
    """The admin scope is for admin accounts only."""
    if Scope.ADMIN in scopes and not is_admin:
        raise InvalidScope("only admin accounts can have the admin scope")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    scopes: Mapped[str] = mapped_column(String(300))  # space-separated scope names
    # The OAuth client that obtained the token; None for a personal access token.
    client_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def scope_set(self) -> frozenset[Scope]:
        """The API scopes (OpenID Connect's scopes are not API permissions)."""
        known = {scope.value for scope in Scope}
        return frozenset(Scope(word) for word in self.scopes.split() if word in known)

    # authlib's TokenMixin, for revocation and introspection
    def check_client(self, client: Any) -> bool:
        return self.client_id is not None and client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scopes

    def get_expires_in(self) -> int:
        if self.expires_at is None:
            return 0
        return max(int((self.expires_at - self.created_at).total_seconds()), 0)

    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None
