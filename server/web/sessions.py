"""Browser sessions and CSRF protection.

A signed-in browser holds ``pf_session``: 32 random bytes whose SHA-256 is a row in
``web_sessions`` (so signing out, or deleting the account, ends it at once). Every form
carries the value of the ``pf_csrf`` cookie in a hidden field; requests that change
something and are authenticated by the cookie must echo it (form field ``csrf_token`` or
header ``X-CSRF-Token``). Both cookies are HttpOnly and SameSite=Lax, and Secure when the
instance is served over https.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from quart import Response, current_app, g, request
from sqlalchemy import delete, select, update
from werkzeug.exceptions import Forbidden
from werkzeug.sansio.response import Response as BaseResponse

from models.accounts import WebSession, secret_digest
from models.base import utcnow
from models.users import AccountStatus, User
from server.web.current import resources_of

SESSION_COOKIE = "pf_session"
CSRF_COOKIE = "pf_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _secure() -> bool:
    return resources_of(current_app).settings.instance.base_url.startswith("https://")


async def start_session(user_id: int) -> str:
    resources = resources_of(current_app)
    token = secrets.token_urlsafe(32)
    lifetime = resources.settings.accounts.session_lifetime
    async with resources.sessionmaker() as session:
        session.add(
            WebSession(digest=secret_digest(token), user_id=user_id, expires_at=utcnow() + lifetime)
        )
        await session.commit()
    return token


def set_session_cookie(response: BaseResponse, token: str) -> None:
    lifetime = resources_of(current_app).settings.accounts.session_lifetime
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(lifetime.total_seconds()), httponly=True,
        secure=_secure(), samesite="Lax", path="/",
    )  # fmt: skip


def clear_session_cookie(response: BaseResponse) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, secure=_secure(), samesite="Lax"
    )


async def end_session() -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return
    async with resources_of(current_app).sessionmaker() as session:
        await session.execute(delete(WebSession).where(WebSession.digest == secret_digest(token)))
        await session.commit()


async def user_for_session() -> User | None:
    """The active user of this browser's session, or None (expired, unknown, disabled).

    Looked up once per request: the page context, the viewer and the views all ask."""
    if "session_user" in g:
        cached: User | None = g.session_user
        return cached
    g.session_user = user = await _lookup_session_user()
    return user


async def _lookup_session_user() -> User | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    now = utcnow()
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        row = (
            await session.execute(
                select(WebSession, User)
                .join(User, User.id == WebSession.user_id)
                .where(WebSession.digest == secret_digest(token))
            )
        ).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.expires_at <= now or user.status is not AccountStatus.ACTIVE:
        return None
    if now - web_session.last_seen_at > timedelta(hours=1):
        # coarse, so that a page view is a read: a write at most once an hour
        async with resources.sessionmaker() as session:
            await session.execute(
                update(WebSession).where(WebSession.id == web_session.id).values(last_seen_at=now)
            )
            await session.commit()
    return user


def csrf_token() -> str:
    """This browser's CSRF token (made on first use; the cookie is set after the request)."""
    token = request.cookies.get(CSRF_COOKIE) or g.get("new_csrf_token")
    if not token:
        token = secrets.token_urlsafe(24)
        g.new_csrf_token = token
    return token


def set_csrf_cookie(response: Response) -> None:
    token = g.get("new_csrf_token")
    if token:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, secure=_secure(), samesite="Lax", path="/"
        )


async def check_csrf() -> None:
    """Refuse (403) an unsafe request whose CSRF token does not match the cookie."""
    if request.method in SAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.mimetype == "application/x-www-form-urlencoded":
        given = (await request.form).get(CSRF_FIELD)
    # compared as bytes: compare_digest raises TypeError on text that is not ASCII
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Forbidden(
            "the form's security token is missing or out of date: reload the page and try again"
        )
