"""Earnings and payouts through the API."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field
from quart import Blueprint, Response, current_app
from quart.typing import ResponseReturnValue
from quart_schema import validate_querystring, validate_response
from sqlalchemy import select
from werkzeug.exceptions import BadRequest, Conflict, Forbidden, NotFound

from models.catalogue import Artist
from models.ledger import tokens_to_cents
from models.tokens import Scope
from server.services.earnings import earnings_of, request_payout, run_payouts
from server.services.money import MoneyError
from server.services.reports import ReportKind, report
from server.web.auth import require, viewer_required
from server.web.current import resources_of

earnings_api = Blueprint("earnings_api", __name__)


class TrackEarnings(BaseModel):
    track_id: int
    title: str
    tokens: int
    cents: int


class DayEarnings(BaseModel):
    day: date
    tokens: int
    cents: int


class EarningsOut(BaseModel):
    artist: str
    balance_tokens: int
    balance_cents: int
    currency: str
    gross_tokens: int
    payout_threshold_cents: int
    per_track: list[TrackEarnings]
    per_day: list[DayEarnings]


class PayoutOut(BaseModel):
    id: int
    artist_id: int
    state: str
    tokens: int
    amount_cents: int
    currency: str


class RefusedPayout(BaseModel):
    id: int
    artist_id: int
    tokens: int
    reason: str


class PayoutRun(BaseModel):
    paid: list[PayoutOut]
    refused: list[RefusedPayout] = Field(
        description="requests the run could not pay (cancelled), and why"
    )


async def own_artist(name: str, refusal: str = "only the artist's own account sees this") -> Artist:
    """The artist of that name, if the viewer manages it (or is an admin)."""
    viewer = viewer_required()
    async with resources_of(current_app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == name.lower()))
    if artist is None:
        raise NotFound(f"there is no artist {name!r}")
    if artist.owner_id != viewer.user_id and not viewer.is_admin:
        raise Forbidden(refusal)
    return artist


@earnings_api.get("/artists/<name>/earnings")
@require(Scope.READ)
@validate_response(EarningsOut)
async def earnings(name: str) -> EarningsOut:
    """Earnings in tokens and money, per track and per day."""
    artist = await own_artist(name, "only the artist's own account sees their earnings")
    settings = resources_of(current_app).settings.money
    async with resources_of(current_app).read_sessionmaker() as session:
        found = await earnings_of(session, artist, settings)

    def money(tokens: int) -> int:
        return tokens_to_cents(tokens, settings.rate_tokens, settings.rate_cents)

    return EarningsOut(
        artist=artist.name,
        balance_tokens=found.balance,
        balance_cents=found.balance_cents,
        currency=settings.currency,
        gross_tokens=found.gross,
        payout_threshold_cents=settings.payout_threshold_cents,
        per_track=[
            TrackEarnings(track_id=t, title=title, tokens=n, cents=money(n))
            for t, title, n in found.per_track
        ],
        per_day=[DayEarnings(day=d, tokens=n, cents=money(n)) for d, n in found.per_day],
    )


def _payout_out(payout: object) -> PayoutOut:
    return PayoutOut.model_validate(payout, from_attributes=True)


@earnings_api.post("/artists/<name>/payouts")
@require(Scope.WRITE)
@validate_response(PayoutOut, 201)
async def ask_for_payout(name: str) -> tuple[PayoutOut, int]:
    """Ask to be paid what the earnings are worth (above the instance's threshold)."""
    artist = await own_artist(name, "only the artist's own account sees their earnings")
    settings = resources_of(current_app).settings.money
    async with resources_of(current_app).sessionmaker() as session:
        try:
            payout = await request_payout(session, artist, settings)
        except MoneyError as exc:
            raise Conflict(str(exc)) from None
    return _payout_out(payout), 201


@earnings_api.post("/admin/payouts/run")
@require(Scope.ADMIN)
@validate_response(PayoutRun)
async def payout_run() -> PayoutRun:
    """Pay all requested payouts and record them in the ledger (admins); what cannot be
    paid is listed with the reason, never a failure of the run."""
    viewer = viewer_required()
    if not viewer.is_admin:
        raise Forbidden("this is for the instance's admins")
    async with resources_of(current_app).sessionmaker() as session:
        run = await run_payouts(session, viewer.user_id)
    return PayoutRun(
        paid=[_payout_out(p) for p in run.paid],
        refused=[
            RefusedPayout(id=p.id, artist_id=p.artist_id, tokens=p.tokens, reason=reason)
            for p, reason in run.refused
        ],
    )


class ReportQuery(BaseModel):
    start: date
    end: date


@earnings_api.get("/admin/reports/<kind>.csv")
@require(Scope.ADMIN)
@validate_querystring(ReportQuery)
async def report_csv(kind: str, query_args: ReportQuery) -> ResponseReturnValue:
    """Plays, earnings, top-ups or payouts of a period, as CSV (admins)."""
    viewer = viewer_required()
    if not viewer.is_admin:
        raise Forbidden("this is for the instance's admins")
    try:
        report_kind = ReportKind(kind)
    except ValueError:
        raise NotFound(f"no report {kind!r}; one of {', '.join(ReportKind)}") from None
    if query_args.end < query_args.start or (query_args.end - query_args.start).days > 366:
        raise BadRequest("the period runs from start to end, at most a year")
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        text = await report(
            session, report_kind, query_args.start, query_args.end, resources.settings.money
        )
    filename = f"playfair-{report_kind}-{query_args.start}-{query_args.end}.csv"
    return Response(
        text,
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
