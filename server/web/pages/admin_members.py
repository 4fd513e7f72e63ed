"""Admin pages about the co-operative's membership: the register of members, their
shares and their status."""

from __future__ import annotations

from datetime import date
from typing import Any

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from models.membership import Member, MembershipStatus, ShareMethod
from models.users import User
from server.runtime.values import whole_number
from server.services.membership import MembershipError, add_member, record_shares, update_member
from server.web.auth import Audience, page_requires, page_user
from server.web.current import resources_of
from server.web.pages.common import render
from server.web.sessions import check_csrf

admin_members = Blueprint("admin_members", __name__, url_prefix="/admin")


@admin_members.get("/members")
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
    return await render(
        "admin_members.html",
        rows=rows,
        classes=resources.settings.membership.classes,
        methods=[method.value for method in ShareMethod],
        statuses=[status.value for status in MembershipStatus],
        error=request.args.get("error"),
    )


def _members_page(error: str | None = None) -> ResponseReturnValue:
    values: dict[str, Any] = {"error": error} if error else {}
    return redirect(url_for("admin_members.members_page", **values), 303)


@admin_members.post("/members")
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


@admin_members.post("/members/<int32:number>/shares")
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


@admin_members.post("/members/<int32:number>/status")
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
