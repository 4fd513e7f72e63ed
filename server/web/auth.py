"""Who is asking: a bearer token (RFC 6750) or a browser session, the API's scope checks
(:func:`require`) and the pages' one guard (:func:`page_requires`).

A browser session carries every scope of its account's role (``admin`` only for admins);
requests it makes that change something must carry the CSRF token.

Scopes mean what they say: ``read`` only reads (it never writes, and never makes this
server fetch from another), ``write`` changes the account's library, playlists, follows
and releases (and may make this server look things up elsewhere on its behalf), ``play``
starts, claims and buys plays, ``upload`` uploads audio, and ``admin`` administers the
instance. ``admin`` counts only for an admin account; there it stands for every scope.
For anybody else it gives nothing (such a token should not exist: the pages, the command
line and the OAuth server hand ``admin`` to admins only).

Every page that is not public carries ``@page_requires(Audience.…)``, with one contract:
a visitor who is not signed in is sent to the log-in page (303, with ``?next=`` back to
the page), a signed-in account without the right gets the 403 page. The view then reads
the account with :func:`page_user`. tests/test_page_guard.py walks the app's routes: each
page is guarded or on its declared list of public pages.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum
from typing import Any, ParamSpec, TypeVar

from quart import current_app, g, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select, update
from werkzeug.exceptions import Forbidden, Unauthorized

from models.base import utcnow
from models.tokens import AccessToken, Scope, token_digest
from models.users import AccountStatus, Role, User
from server.services.viewers import Viewer, session_scopes
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.redirects import local_target
from server.web.sessions import check_csrf, user_for_session

P = ParamSpec("P")
R = TypeVar("R")
REALM = 'Bearer realm="playfair"'


class BearerError(Unauthorized):
    """401 with the WWW-Authenticate challenge RFC 6750 §3 describes."""

    def __init__(self, description: str, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.challenge = REALM if error is None else (
            f'{REALM}, error="{error}", error_description="{description}"'
        )  # fmt: skip

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        headers = super().get_headers(*args, **kwargs)
        headers.append(("WWW-Authenticate", self.challenge))
        return headers


class InsufficientScope(Forbidden):
    def __init__(self, scope: Scope) -> None:
        super().__init__(f"this needs a token with the {scope.value!r} scope")
        self.scope = scope

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        headers = super().get_headers(*args, **kwargs)
        headers.append(
            ("WWW-Authenticate", f'{REALM}, error="insufficient_scope", scope="{self.scope.value}"')
        )
        return headers


async def current_viewer() -> Viewer | None:
    """The viewer of this request (cached on ``g``); raises 401 for a bad token."""
    if "viewer" in g:
        viewer: Viewer | None = g.viewer
        return viewer
    header = request.headers.get("Authorization")
    viewer = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BearerError("the Authorization header must be 'Bearer TOKEN'", "invalid_request")
        viewer = await _viewer_for_token(token.strip())
    else:
        user = await user_for_session()
        if user is not None:
            await check_csrf()
            viewer = Viewer(
                user.id, user.username, user.role, session_scopes(user.role), via_session=True
            )
    g.viewer = viewer
    return viewer


class TokenRefused(Exception):
    """An access token that opens nothing; the message says why."""


async def _viewer_for_token(token: str) -> Viewer:
    try:
        return await viewer_for_token(token)
    except TokenRefused as refused:
        raise BearerError(str(refused)) from None


async def viewer_for_token(token: str) -> Viewer:
    """The viewer an access token stands for (bearer tokens, Subsonic's ``apiKey``)."""
    resources = resources_of(current_app)
    now = utcnow()
    async with resources.read_sessionmaker() as session:
        row = (
            await session.execute(
                select(AccessToken, User)
                .join(User, User.id == AccessToken.user_id)
                .where(AccessToken.digest == token_digest(token))
            )
        ).first()
    if row is None:
        raise TokenRefused("the access token is not valid")
    access, user = row
    if user.status is not AccountStatus.ACTIVE:
        raise TokenRefused("the account is not active")
    if access.revoked_at is not None:
        raise TokenRefused("the access token has been revoked")
    if access.expires_at is not None and access.expires_at <= now:
        raise TokenRefused("the access token has expired")
    if access.last_used_at is None or now - access.last_used_at > timedelta(hours=1):
        async with resources.sessionmaker() as session:  # coarse: a write once an hour
            await session.execute(
                update(AccessToken).where(AccessToken.id == access.id).values(last_used_at=now)
            )
            await session.commit()
    return Viewer(user.id, user.username, user.role, access.scope_set)


def require(scope: Scope) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a route that needs a signed-in viewer whose token has ``scope``."""

    def decorate(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(view)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            viewer = await current_viewer()
            if viewer is None:
                raise BearerError("sign-in required: send an access token", None)
            if not viewer.has(scope):
                raise InsufficientScope(scope)
            return await view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]  # for the route audit
        return wrapper

    return decorate


def viewer_required() -> Viewer:
    viewer: Viewer | None = g.get("viewer")
    if viewer is None:
        raise BearerError("sign-in required: send an access token", None)
    return viewer


# The accounts that make releases: artists, labels, and admins (who manage any artist).
CREATORS = (Role.ARTIST, Role.LABEL, Role.ADMIN)


class Audience(Enum):
    """Who a page is for: the roles it admits."""

    SIGNED_IN = tuple(Role)
    CREATORS = CREATORS
    ADMINS = (Role.ADMIN,)

    @property
    def roles(self) -> tuple[Role, ...]:
        roles: tuple[Role, ...] = self.value
        return roles

    def refusal(self) -> str:
        if self is Audience.ADMINS:
            return _("This page is for the instance's admins.")
        return _("This page is for artist and label accounts.")


PageView = Callable[P, Awaitable[ResponseReturnValue]]


def _return_to() -> str | None:
    """Where the log-in sends the browser back to: this page for a GET, else the page the
    form was on (a form's URL may not answer a GET)."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    return local_target(request.referrer, resources_of(current_app).settings.instance.base_url)


def page_requires(
    audience: Audience = Audience.SIGNED_IN,
) -> Callable[[PageView[P]], PageView[P]]:
    """Decorate a page (or a form's route) for ``audience``; see the module for the
    contract."""

    def decorate(view: PageView[P]) -> PageView[P]:
        @functools.wraps(view)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            user = await user_for_session()
            if user is None:
                back = _return_to()
                login = url_for("accounts.login", next=back) if back else url_for("accounts.login")
                return redirect(login, 303)
            if user.role not in audience.roles:
                raise Forbidden(audience.refusal())
            g.page_user = user
            return await view(*args, **kwargs)

        wrapper.page_audience = audience  # type: ignore[attr-defined]  # for the route audit
        return wrapper

    return decorate


def page_user() -> User:
    """The signed-in account of a page that carries :func:`page_requires`."""
    user: User | None = g.get("page_user")
    if user is None:
        raise RuntimeError("page_user() is for views decorated with @page_requires")
    return user
