"""More admin pages: vouchers, payouts, federation (domain policies, deliveries with
replay, reports). Accounts and membership are in pages_admin.py."""

from __future__ import annotations

from datetime import timedelta

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest

from models.base import utcnow
from models.catalogue import Artist
from models.federation import (
    DeliveryState,
    DomainPolicy,
    DomainPolicyKind,
    RemoteActor,
    Report,
)
from models.ledger import Payout, PayoutState
from models.remote_plays import HubLogEntry, RoyaltyStatementRecord, SettlementRecord
from models.vouchers import Voucher
from server.runtime.config import MAX_DURATION
from server.runtime.values import whole_number
from server.services.activitypub import partners
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import replay
from server.services.activitypub.moderation import (
    ModerationError,
    list_deliveries,
    remove_domain_policy,
    set_domain_policy,
)
from server.services.earnings import run_payouts
from server.services.money import MoneyError, issue_vouchers
from server.web.auth import Audience, page_requires, page_user
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.i18n import ngettext
from server.web.pages.listener import render
from server.web.sessions import check_csrf

admin_more = Blueprint("admin_more", __name__, url_prefix="/admin")


@admin_more.get("/vouchers")
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


@admin_more.post("/vouchers")
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
            failure = str(error)
        else:
            failure = None
    if failure is not None:  # rendered after the session: the page needs one of its own
        return await render("admin_vouchers.html", batches=[], codes=None, error=failure)
    return await render("admin_vouchers.html", batches=[], codes=codes, tokens=tokens, error=None)


@admin_more.get("/payouts")
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


@admin_more.post("/payouts/run")
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
    return redirect(url_for("admin_more.payouts_page", message=message), 303)


@admin_more.get("/federation")
@page_requires(Audience.ADMINS)
async def federation_page() -> ResponseReturnValue:
    raw = request.args.get("state") or None
    try:
        state = DeliveryState(raw) if raw else None
    except ValueError:
        raise BadRequest(_("Unknown delivery state.")) from None
    async with resources_of(current_app).read_sessionmaker() as session:
        domains = (await session.scalars(select(DomainPolicy).order_by(DomainPolicy.domain))).all()
        deliveries = await list_deliveries(session, state, 100)
        reports = (await session.scalars(select(Report).order_by(Report.id.desc()).limit(50))).all()
        partnerships = await partners.list_partnerships(session)
    return await render(
        "admin_federation.html",
        partnerships=partnerships,
        partnership_policy=resources_of(current_app).settings.federation.partnerships.value,
        domains=domains,
        deliveries=deliveries,
        reports=reports,
        state=raw or "",
        states=[s.value for s in DeliveryState],
        mode=resources_of(current_app).settings.federation.mode.value,
        message=request.args.get("message"),
        error=request.args.get("error"),
    )


@admin_more.post("/federation/domains")
@page_requires(Audience.ADMINS)
async def domain_form() -> ResponseReturnValue:
    await check_csrf()
    form = await request.form
    action = form.get("action", "")
    domain = form.get("domain", "")
    async with resources_of(current_app).sessionmaker() as session:
        try:
            if action in ("block", "allow"):
                await set_domain_policy(
                    session, domain, DomainPolicyKind(action), form.get("reason", "")[:2000]
                )
            elif action == "remove":
                await remove_domain_policy(session, domain)
            else:
                raise BadRequest(_("Choose block, allow or remove."))
        except ModerationError as error:
            return redirect(url_for("admin_more.federation_page", error=str(error)), 303)
    return redirect(url_for("admin_more.federation_page", message=_("Saved.")), 303)


@admin_more.post("/federation/deliveries/replay")
@page_requires(Audience.ADMINS)
async def replay_form() -> ResponseReturnValue:
    await check_csrf()
    form = await request.form
    ids = [n for n in map(whole_number, form.getlist("id")) if n is not None]
    async with resources_of(current_app).sessionmaker() as session:
        count = await replay(session, ids or None)
    message = _("%(count)s deliveries queued again.", count=count)
    return redirect(url_for("admin_more.federation_page", message=message), 303)


@admin_more.post("/federation/partnerships")
@page_requires(Audience.ADMINS)
async def partnership_form() -> ResponseReturnValue:
    """Ask an instance to be a partner, or accept or refuse one that asked."""
    await check_csrf()
    form = await request.form
    fed = federation_of(resources_of(current_app))
    action = form.get("action", "")
    try:
        if action == "request":
            await partners.request_partnership(fed, form.get("instance", "")[:300])
            message = _("Asked; the answer arrives in the background.")
        elif action in ("accept", "refuse") and (chosen := whole_number(form.get("id"))):
            await partners.decide(fed, chosen, action == "accept")
            message = _("Saved.")
        else:
            raise BadRequest(_("Choose request, accept or refuse."))
    except partners.PartnershipError as error:
        return redirect(url_for("admin_more.federation_page", error=str(error)), 303)
    return redirect(url_for("admin_more.federation_page", message=message), 303)


@admin_more.get("/statements")
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
