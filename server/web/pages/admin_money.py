"""Admin pages about money: voucher batches, artists' payouts, and the royalty statements
exchanged with partner instances (with a hub's log on a hub)."""

from __future__ import annotations

from datetime import timedelta

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest

from models.base import utcnow
from models.catalogue import Artist
from models.federation import RemoteActor
from models.ledger import Payout, PayoutState
from models.remote_plays import HubLogEntry, RoyaltyStatementRecord, SettlementRecord
from models.vouchers import Voucher
from server.runtime.config import MAX_DURATION
from server.runtime.values import whole_number
from server.services.earnings import run_payouts
from server.services.money import MoneyError, issue_vouchers
from server.web.auth import Audience, page_requires, page_user
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.i18n import ngettext
from server.web.pages.common import render
from server.web.sessions import check_csrf

admin_money = Blueprint("admin_money", __name__, url_prefix="/admin")


@admin_money.get("/vouchers")
@page_requires(Audience.ADMINS)
async def vouchers_page() -> ResponseReturnValue:
    async with resources_of(current_app).read_sessionmaker() as session:
        batches = (
            await session.execute(
                select(
                    Voucher.batch,
                    Voucher.tokens,
                    func.count(),
                    func.count(Voucher.redeemed_at),
                    func.min(Voucher.created_at),
                )
                .group_by(Voucher.batch, Voucher.tokens)
                .order_by(func.min(Voucher.created_at).desc())
                .limit(50)
            )
        ).all()
    return await render("admin_vouchers.html", batches=batches, codes=None, error=None)


@admin_money.post("/vouchers")
@page_requires(Audience.ADMINS)
async def issue_vouchers_form() -> ResponseReturnValue:
    """Issue a batch; the codes are shown once, on this answer, and never stored."""
    await check_csrf()
    form = await request.form
    tokens = whole_number(form.get("tokens", "").strip(), low=1, high=1_000_000_000)
    count = whole_number(form.get("count", "1").strip(), low=1, high=10_000)
    # a whole number of days (the form's number field), bounded like every duration
    days = whole_number(form.get("days", "").strip() or "0", high=MAX_DURATION.days)
    if tokens is None or count is None or days is None:
        raise BadRequest(_("Tokens, count and days are whole numbers."))
    expires = utcnow() + timedelta(days=days) if days > 0 else None
    async with resources_of(current_app).sessionmaker() as session:
        try:
            codes = await issue_vouchers(session, tokens, count, expires)
        except MoneyError as error:
            failure: str | None = str(error)
        else:
            failure = None
    if failure is not None:  # rendered after the session: the page needs one of its own
        return await render("admin_vouchers.html", batches=[], codes=None, error=failure)
    return await render("admin_vouchers.html", batches=[], codes=codes, tokens=tokens, error=None)


@admin_money.get("/payouts")
@page_requires(Audience.ADMINS)
async def payouts_page() -> ResponseReturnValue:
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = (
            await session.execute(
                select(Payout, Artist)
                .join(Artist, Artist.id == Payout.artist_id)
                .order_by(Payout.id.desc())
                .limit(100)
            )
        ).all()
    waiting = [row for row in rows if row[0].state is PayoutState.REQUESTED]
    return await render(
        "admin_payouts.html", rows=rows, waiting=len(waiting), message=request.args.get("message")
    )


@admin_money.post("/payouts/run")
@page_requires(Audience.ADMINS)
async def run_payouts_form() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).sessionmaker() as session:
        run = await run_payouts(session, user.id)
    message = _("Paid %(count)s payouts.", count=len(run.paid))
    if run.refused:
        message += " " + ngettext(
            "Cancelled %(num)s payout that the earnings do not cover.",
            "Cancelled %(num)s payouts that the earnings do not cover.",
            len(run.refused),
        )
    return redirect(url_for("admin_money.payouts_page", message=message), 303)


@admin_money.get("/statements")
@page_requires(Audience.ADMINS)
async def statements_page() -> ResponseReturnValue:
    """Royalty statements with partners, both ways, with their state and reasons; and,
    on a hub, its log."""
    async with resources_of(current_app).read_sessionmaker() as session:
        rows = (
            await session.execute(
                select(RoyaltyStatementRecord, RemoteActor.uri)
                .join(RemoteActor, RemoteActor.id == RoyaltyStatementRecord.counterpart_id)
                .order_by(RoyaltyStatementRecord.id.desc())
                .limit(200)
            )
        ).all()
        settlements = (
            await session.scalars(select(SettlementRecord).order_by(SettlementRecord.id.desc()))
        ).all()
        hub_log = (
            await session.scalars(select(HubLogEntry).order_by(HubLogEntry.id.desc()).limit(200))
        ).all()
    return await render(
        "admin_statements.html",
        rows=rows,
        settlements=settlements,
        hub_log=hub_log,
        hub_role=resources_of(current_app).settings.federation.hub_role,
    )
