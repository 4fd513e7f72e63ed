"""Admin pages: accounts (approvals, disabling, deletion, invitations), membership, and
the audit log that records each of these actions."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from quart import Blueprint, current_app, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

from models.accounts import AuditEntry, Invitation, WebSession, secret_digest
from models.base import utcnow
from models.membership import Member, MembershipStatus, ShareMethod
from models.users import AccountStatus, Role, User
from server.runtime.values import whole_number
from server.services.account_closing import BalanceChoice
from server.services.account_rules import AccountError
from server.services.accounts import delete_account
from server.services.membership import MembershipError, add_member, record_shares, update_member
from server.web.auth import Audience, page_requires, page_user
from server.web.current import resources_of
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
    return await render_template(
        "admin_accounts.html",
        instance=resources_of(current_app).settings.instance,
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


@admin.get("/members")
@page_requires(Audience.ADMINS)
async def members_page() -> ResponseReturnValue:
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        rows = (
            await session.execute(
                select(Member, User.username)
                .outerjoin(User, User.id == Member.user_id)
                .order_by(Member.number)
            )
        ).all()
    return await render_template(
        "admin_members.html",
        instance=resources.settings.instance,
        rows=rows,
        classes=resources.settings.membership.classes,
        methods=[method.value for method in ShareMethod],
        statuses=[status.value for status in MembershipStatus],
        error=request.args.get("error"),
    )


def _members_page(error: str | None = None) -> ResponseReturnValue:
    return redirect(url_for("admin.members_page", **({"error": error} if error else {})), 303)


@admin.post("/members")
@page_requires(Audience.ADMINS)
async def add_member_form() -> ResponseReturnValue:
    actor = page_user()
    await check_csrf()
    form = await request.form
    resources = resources_of(current_app)
    async with resources.sessionmaker() as session:
        try:
            await add_member(session, form.get("username", ""), form.get("membership_class", ""),
                             resources.settings.membership.classes, actor.id)  # fmt: skip
        except MembershipError as exc:
            return _members_page(str(exc))
    return _members_page()


@admin.post("/members/<int32:number>/shares")
@page_requires(Audience.ADMINS)
async def shares_form(number: int) -> ResponseReturnValue:
    actor = page_user()
    await check_csrf()
    form = await request.form
    try:
        shares = whole_number(form.get("shares", "").strip(), low=-1_000_000, high=1_000_000)
        method = ShareMethod(form.get("method", ""))
    except ValueError:
        shares = None
    if shares is None:
        return _members_page("shares must be a whole number and the method one of the list")
    async with resources_of(current_app).sessionmaker() as session:
        member = await session.scalar(select(Member).where(Member.number == number))
        if member is None:
            raise NotFound(f"there is no member {number}")
        try:
            await record_shares(session, member, shares, method, form.get("reference"), actor.id)
        except MembershipError as exc:
            return _members_page(str(exc))
    return _members_page()


@admin.post("/members/<int32:number>/status")
@page_requires(Audience.ADMINS)
async def status_form(number: int) -> ResponseReturnValue:
    actor = page_user()
    await check_csrf()
    form = await request.form
    try:
        status = MembershipStatus(form.get("status", ""))
        renewal = date.fromisoformat(form["renewal_date"]) if form.get("renewal_date") else None
    except ValueError:
        return _members_page("choose a status; the renewal date is YYYY-MM-DD")
    resources = resources_of(current_app)
    async with resources.sessionmaker() as session:
        member = await session.scalar(select(Member).where(Member.number == number))
        if member is None:
            raise NotFound(f"there is no member {number}")
        await update_member(session, member, status=status, renewal_date=renewal,
                            membership_class=None, classes=resources.settings.membership.classes,
                            actor_id=actor.id)  # fmt: skip
    return _members_page()
