"""The account pages: sign-up, log-in and out, settings (password, personal access
tokens, app passwords for Subsonic apps, export, deletion). Plain forms that work
without JavaScript, CSRF-protected."""

from __future__ import annotations

import json

from quart import Blueprint, Response, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select, update

from models.base import utcnow
from models.handles import NameTaken
from models.names import InvalidName
from models.tokens import (
    AccessToken,
    InvalidScope,
    check_admin_scope,
    new_token,
    parse_scopes,
    token_digest,
)
from models.users import AccountStatus, Role, User
from server.services import app_passwords
from server.services.account_closing import BalanceChoice
from server.services.account_closing import preview as closing_preview
from server.services.account_rules import AccountError
from server.services.accounts import (
    change_password,
    check_login,
    delete_account,
    export_account,
    sign_up,
)
from server.services.errors import Refused
from server.web.auth import page_requires, page_user
from server.web.current import resources_of
from server.web.pages.common import render
from server.web.redirects import local_target
from server.web.sessions import (
    check_csrf,
    clear_session_cookie,
    end_session,
    set_session_cookie,
    start_session,
)
from server.web.throttle import limit_address, limit_login, limit_password_check, remember_device

accounts = Blueprint("accounts", __name__)


async def _page(template: str, status: int = 200, **context: object) -> ResponseReturnValue:
    return await render(template, **context), status


@accounts.route("/signup", methods=["GET", "POST"])
async def signup() -> ResponseReturnValue:
    settings = resources_of(current_app).settings.accounts
    if request.method == "GET":
        return await _page("signup.html", settings=settings, form={})
    await check_csrf()
    form = await request.form
    await limit_address("signup", settings.signup_attempts)
    if form.get("password", "") != form.get("password_again", ""):
        return await _page(
            "signup.html", 422, settings=settings, form=form, error="the two passwords differ"
        )
    resources = resources_of(current_app)
    try:
        async with resources.sessionmaker() as session:
            result = await sign_up(
                session,
                settings,
                name=form.get("username", ""),
                password=form.get("password", ""),
                email=form.get("email") or None,
                as_artist=form.get("account_type") == "artist",
                invitation=form.get("invitation") or None,
                name_key=resources.secret,
                starter_balance=resources.settings.money.starter_balance,
            )
    except (AccountError, InvalidName) as exc:
        status = 409 if isinstance(exc, NameTaken) else 422
        return await _page("signup.html", status, settings=settings, form=form, error=str(exc))
    if result.pending:
        return await _page("pending.html", 202)
    response = redirect(url_for("web.home"), 303)
    set_session_cookie(response, await start_session(result.user.id))
    remember_device(response, result.user.username)
    return response


@accounts.route("/login", methods=["GET", "POST"])
async def login() -> ResponseReturnValue:
    if request.method == "GET":
        return await _page("login.html", form={})
    await check_csrf()
    form = await request.form
    name = form.get("username", "").strip().lower()
    await limit_login(name[:40])
    async with resources_of(current_app).sessionmaker() as session:
        user = await check_login(session, name, form.get("password", ""))
    if user is None:
        return await _page("login.html", 401, form=form, error="wrong name or password")
    if user.status is AccountStatus.PENDING:
        return await _page("login.html", 403, form=form, error="your account waits for approval")
    if user.status is AccountStatus.DISABLED:
        return await _page("login.html", 403, form=form, error="this account is disabled")
    base = resources_of(current_app).settings.instance.base_url
    target = local_target(request.args.get("next"), base) or url_for("web.home")
    response = redirect(target, 303)
    set_session_cookie(response, await start_session(user.id))
    remember_device(response, user.username)
    return response


@accounts.post("/logout")
async def logout() -> ResponseReturnValue:
    await check_csrf()
    await end_session()
    response = redirect(url_for("web.home"), 303)
    clear_session_cookie(response)
    return response


async def _settings_page(user: User, status: int = 200, **context: object) -> ResponseReturnValue:
    async with resources_of(current_app).sessionmaker() as session:
        tokens = (
            await session.scalars(
                select(AccessToken)
                .where(AccessToken.user_id == user.id, AccessToken.revoked_at.is_(None))
                .order_by(AccessToken.id)
            )
        ).all()
        closing = await closing_preview(session, user.id)
        apps = await app_passwords.list_active(session, user.id)
    return await _page(
        "settings.html", status, user=user, tokens=tokens, closing=closing,
        app_passwords=apps, max_app_passwords=app_passwords.MAX_ACTIVE, **context,
    )  # fmt: skip


@accounts.get("/settings")
@page_requires()
async def settings_page() -> ResponseReturnValue:
    user = page_user()
    return await _settings_page(user)


@accounts.post("/settings/password")
@page_requires()
async def password() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    await limit_password_check()
    form = await request.form
    if form.get("new_password", "") != form.get("new_password_again", ""):
        return await _settings_page(user, 422, error="the two new passwords differ")
    error = None
    async with resources_of(current_app).sessionmaker() as session:
        fresh = await session.get(User, user.id)
        assert fresh is not None
        try:
            await change_password(
                session, fresh, form.get("current_password", ""), form.get("new_password", "")
            )
        except AccountError as exc:
            error = str(exc)
    if error is not None:
        return await _settings_page(user, 422, error=error)
    return await _settings_page(user, message="your password has been changed")


@accounts.post("/settings/tokens")
@page_requires()
async def make_token() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    form = await request.form
    try:
        scopes = parse_scopes(" ".join(form.getlist("scope")))
    except InvalidScope as exc:
        return await _settings_page(user, 422, error=str(exc))
    try:
        check_admin_scope(scopes, is_admin=user.role is Role.ADMIN)
    except InvalidScope as exc:
        return await _settings_page(user, 403, error=str(exc))
    secret = new_token()
    async with resources_of(current_app).sessionmaker() as session:
        session.add(
            AccessToken(
                user_id=user.id,
                digest=token_digest(secret),
                name=(form.get("name") or "personal token")[:100],
                scopes=" ".join(sorted(scope.value for scope in scopes)),
            )
        )
        await session.commit()
    return await _settings_page(user, new_token=secret)


@accounts.post("/settings/tokens/<int:token_id>/revoke")
@page_requires()
async def revoke_token(token_id: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).sessionmaker() as session:
        await session.execute(
            update(AccessToken)
            .where(AccessToken.id == token_id, AccessToken.user_id == user.id)
            .values(revoked_at=utcnow())
        )
        await session.commit()
    return redirect(url_for("accounts.settings_page"), 303)


@accounts.post("/settings/app-passwords")
@page_requires()
async def make_app_password() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    form = await request.form
    resources = resources_of(current_app)
    try:
        async with resources.sessionmaker() as session:
            made = await app_passwords.create(session, user, form.get("name", ""), resources.secret)
    except Refused as refused:
        return await _settings_page(user, refused.status, error=str(refused))
    return await _settings_page(
        user, new_app_password=made.password, new_app_password_name=made.row.name
    )


@accounts.post("/settings/app-passwords/<int:app_password_id>/revoke")
@page_requires()
async def revoke_app_password(app_password_id: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).sessionmaker() as session:
        await app_passwords.revoke(session, user.id, app_password_id)
    return redirect(url_for("accounts.settings_page") + "#apps", 303)


@accounts.get("/settings/export")
@page_requires()
async def export() -> ResponseReturnValue:
    user = page_user()
    resources = resources_of(current_app)
    async with resources.sessionmaker() as session:
        document = await export_account(session, user, resources.settings.instance.base_url)
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False),
        200,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": f'attachment; filename="playfair-{user.username}.json"',
            "Cache-Control": "no-store",
        },
    )


@accounts.post("/settings/delete")
@page_requires()
async def delete() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    await limit_password_check()
    form = await request.form
    resources = resources_of(current_app)
    choice_text = form.get("balance", "")
    if choice_text not in ("", *BalanceChoice):
        return await _settings_page(user, 422, error="choose where your tokens go")
    refusal: tuple[int, str] | None = None
    async with resources.sessionmaker() as session:
        fresh = await check_login(session, user.username, form.get("password", ""))
        if fresh is None:
            refusal = (422, "the password is not right")
        else:
            try:
                await delete_account(
                    session, fresh, name_key=resources.secret,
                    base_url=resources.settings.instance.base_url,
                    balance=BalanceChoice(choice_text) if choice_text else None,
                    recipient=form.get("recipient") or None,
                )  # fmt: skip
            except AccountError as exc:
                refusal = (getattr(exc, "status", 409), str(exc))
    if refusal is not None:
        return await _settings_page(user, refusal[0], error=refusal[1])
    response = redirect(url_for("web.home"), 303)
    clear_session_cookie(response)
    return response
