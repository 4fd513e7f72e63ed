"""Admin pages about accounts: approving, disabling and deleting them, invitations, and
the audit log that records each of these actions."""

from __future__ import annotations

import secrets
from datetime import timedelta

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

from models.accounts import AuditEntry, Invitation, WebSession, secret_digest
from models.base import utcnow
from models.users import AccountStatus, Role, User
from server.services.account_closing import BalanceChoice
from server.services.account_rules import AccountError
from server.services.accounts import delete_account
from server.web.auth import Audience, page_requires, page_user
from server.web.current import resources_of
from server.web.pages.common import render
from server.web.sessions import check_csrf

admin = Blueprint("admin", __name__, url_prefix="/admin")


@admin.get("/accounts")
@page_requires(Audience.ADMINS)
async def accounts_page() -> ResponseReturnValue:
    async with resources_of(current_app).read_sessionmaker() as session:
        users = (await session.scalars(select(User).order_by(User.status, User.username))).all()
        audit = (
            await session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(50))
        ).all()
    return await render(
        "admin_accounts.html",
        users=users,
        audit=audit,
        new_invitation=request.args.get("invitation"),
    )


ACTIONS = ("approve", "disable", "enable", "delete")


@admin.post("/accounts/<int:user_id>/<action>")
@page_requires(Audience.ADMINS)
async def account_action(user_id: int, action: str) -> ResponseReturnValue:
    actor = page_user()
    await check_csrf()
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}: one of {', '.join(ACTIONS)}")
    resources = resources_of(current_app)
    async with resources.sessionmaker() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"there is no account {user_id}")
        if user.id == actor.id and action in ("disable", "delete"):
            raise Forbidden("admins cannot disable or delete their own account here")
        if action == "delete":
            try:
                # a balance left to decide about goes to the co-op (docs/decisions.md)
                await delete_account(
                    session, user, name_key=resources.secret,
                    base_url=resources.settings.instance.base_url,
                    balance=BalanceChoice.COOP, actor_id=actor.id,
                )  # fmt: skip
            except AccountError as exc:
                raise Forbidden(str(exc)) from None
            return redirect(url_for("admin.accounts_page"), 303)
        if action == "approve":
            if user.status is not AccountStatus.PENDING:
                raise Forbidden("only accounts waiting for approval can be approved")
            user.status = AccountStatus.ACTIVE
            user.role = user.wants_role or user.role
            user.wants_role = None
        elif action == "disable":
            user.status = AccountStatus.DISABLED
            # a disabled account is signed out everywhere
            for web_session in await session.scalars(
                select(WebSession).where(WebSession.user_id == user.id)
            ):
                await session.delete(web_session)
        else:
            user.status = AccountStatus.ACTIVE
        session.add(
            AuditEntry(actor_user_id=actor.id, action=f"account.{action}", target_user_id=user.id)
        )
        await session.commit()
    return redirect(url_for("admin.accounts_page"), 303)


@admin.post("/invitations")
@page_requires(Audience.ADMINS)
async def invite() -> ResponseReturnValue:
    actor = page_user()
    await check_csrf()
    form = await request.form
    role = Role.ARTIST if form.get("role") == "artist" else Role.LISTENER
    code = secrets.token_urlsafe(12)
    async with resources_of(current_app).sessionmaker() as session:
        session.add(
            Invitation(
                digest=secret_digest(code),
                role=role.value,
                created_by=actor.id,
                expires_at=utcnow() + timedelta(days=14),
            )
        )
        session.add(AuditEntry(actor_user_id=actor.id, action="invitation.issue",
                               details={"role": role.value}))  # fmt: skip
        await session.commit()
    return redirect(url_for("admin.accounts_page", invitation=code), 303)
