"""Admin pages about federation: partnerships with other instances, domain policies
(block, allow), deliveries (with replay) and the reports other servers sent."""

from __future__ import annotations

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import BadRequest

from models.federation import DeliveryState, DomainPolicy, DomainPolicyKind, Report
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
from server.web.auth import Audience, page_requires
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.pages.common import render
from server.web.sessions import check_csrf

admin_federation = Blueprint("admin_federation", __name__, url_prefix="/admin")


@admin_federation.get("/federation")
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


@admin_federation.post("/federation/domains")
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
            return redirect(url_for("admin_federation.federation_page", error=str(error)), 303)
    return redirect(url_for("admin_federation.federation_page", message=_("Saved.")), 303)


@admin_federation.post("/federation/deliveries/replay")
@page_requires(Audience.ADMINS)
async def replay_form() -> ResponseReturnValue:
    await check_csrf()
    form = await request.form
    ids = [n for n in map(whole_number, form.getlist("id")) if n is not None]
    async with resources_of(current_app).sessionmaker() as session:
        count = await replay(session, ids or None)
    message = _("%(count)s deliveries queued again.", count=count)
    return redirect(url_for("admin_federation.federation_page", message=message), 303)


@admin_federation.post("/federation/partnerships")
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
        return redirect(url_for("admin_federation.federation_page", error=str(error)), 303)
    return redirect(url_for("admin_federation.federation_page", message=message), 303)
