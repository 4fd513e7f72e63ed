"""Registering OAuth clients (apps): by an admin on the command line, and later by apps
themselves (dynamic registration)."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import secret_digest
from models.oauth import OIDC_SCOPES, OAuthClient, redirect_uri_problem
from models.tokens import Scope


class ClientError(ValueError):
    pass


def check_redirect_uri(uri: str) -> str:
    problem = redirect_uri_problem(uri)
    if problem is not None:
        raise ClientError(problem)
    return uri


def check_scopes(text: str) -> str:
    known = {scope.value for scope in Scope} | set(OIDC_SCOPES)
    words = text.split()
    unknown = [word for word in words if word not in known]
    if unknown or not words:
        raise ClientError(f"unknown scopes {unknown}; known: {' '.join(sorted(known))}")
    return " ".join(words)


async def register_client(
    session: AsyncSession, name: str, redirect_uris: list[str], scopes: str, *,
    public: bool, trusted: bool = False, dynamic: bool = False,
) -> tuple[OAuthClient, str | None]:  # fmt: skip
    """Make a client; return it with its secret (shown once; None for a public client)."""
    if not redirect_uris:
        raise ClientError("an app needs at least one redirect URI")
    uris = [check_redirect_uri(uri) for uri in redirect_uris]
    secret = None if public else secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id=secrets.token_urlsafe(16),
        secret_digest=secret_digest(secret) if secret else None,
        name=name.strip()[:200] or "unnamed app",
        redirect_uris=uris,
        scopes=check_scopes(scopes),
        auth_method="none" if public else "client_secret_basic",
        trusted=trusted,
        registered_dynamically=dynamic,
    )
    session.add(client)
    await session.commit()
    return client, secret
