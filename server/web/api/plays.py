"""Listening and paying through the API: the price of the next play, play sessions and
claims, buy now (for every track here, ours or a partner's: ``server.services.plays``),
the wallet, vouchers (docs/architecture.md#money-stream-to-own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypeVar, cast

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, jsonify, request
from quart.typing import ResponseReturnValue
from quart_schema import validate_querystring, validate_request, validate_response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import (
    BadGateway,
    BadRequest,
    HTTPException,
    NotFound,
    UnprocessableEntity,
)

from federation.safejson import INT64_MAX
from models import ledger
from models.base import utcnow
from models.plays import Play
from models.tokens import Scope
from models.users import User
from server.services import plays
from server.services.money import redeem_voucher, retrying
from server.services.origins import origins
from server.services.payments import (
    PaymentError,
    create_checkout,
    find_pack,
    handle_event,
    parse_event,
    verify_signature,
)
from server.services.wallet_history import (
    FIRST_YEAR,
    LAST_YEAR,
    PAGE,
    MovementKind,
    RecipientKind,
    wallet_history,
    year_summary,
)
from server.web.api.present import preview_url
from server.web.auth import require, viewer_required
from server.web.current import resources_of

plays_api = Blueprint("plays_api", __name__)


T = TypeVar("T")


class Price(BaseModel):
    price: int = Field(description="tokens the next play costs (0: free, owned or own track)")
    paid_plays: int
    plays_until_owned: int
    owned: bool
    free: bool
    balance: int


class PlayStart(BaseModel):
    session: str | None = Field(
        description="claim it once enough has been heard; null for previews"
    )
    mode: str = Field(description="full, or preview when the balance is too low")
    stream_url: str
    claim_url: str | None
    reason: str | None = None
    quote: Price


class PlayDone(BaseModel):
    outcome: str = Field(description="charged or free")
    tokens: int
    paid_number: int | None
    owned: bool
    balance: int


class VoucherIn(BaseModel):
    code: str = Field(min_length=4, max_length=64)


class WalletPlay(BaseModel):
    track_id: int
    at: str
    tokens: int
    paid_number: int | None


class Wallet(BaseModel):
    balance: int
    owned_track_ids: list[int] = Field(description="local tracks and partners' alike")
    plays: list[WalletPlay]


class WalletMovement(BaseModel):
    id: int = Field(description="the ledger entry; older pages start below it (before=)")
    at: str
    kind: MovementKind
    tokens: int = Field(description="added (positive) or taken (negative)")
    balance: int = Field(description="the balance after this movement")
    track_id: int | None = Field(description="the track a play or a purchase was for")
    track_title: str | None
    partner: str | None = Field(description="the partner instance of a partner's track")
    paid_number: int | None = Field(description="which paid play of the track it was")
    note: str | None = Field(description="the pack a card top-up bought")


class WalletHistory(BaseModel):
    balance: int = Field(description="read with the movements: the newest one's balance")
    movements: list[WalletMovement]
    older: str | None = Field(description="the page of older movements, if there may be one")


class HistoryQuery(BaseModel):
    before: int | None = Field(default=None, ge=1, le=INT64_MAX)
    limit: int = Field(default=PAGE, ge=1, le=200)


class PaidOut(BaseModel):
    kind: RecipientKind = Field(
        description="artist, partner (an instance, for its artists), "
        "instance (this instance's share) or other"
    )
    name: str = Field(description="the artist's display name or the partner's host")
    artist: str | None = Field(description="the artist's name here, for artists")
    tokens: int


class YearSummaryOut(BaseModel):
    year: int
    spent: int = Field(description="what the listener's plays and purchases cost that year")
    paid: list[PaidOut] = Field(description="where it went, most first; adds up to spent")


class YearQuery(BaseModel):
    year: int | None = Field(
        default=None, ge=FIRST_YEAR, le=LAST_YEAR, description="UTC; this year if none"
    )


class Me(BaseModel):
    username: str
    role: str
    email: str | None


async def in_money_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A money operation with retries (``server.services.money.retrying``); a refusal
    (``MoneyError``, a service's ``Refused``) is answered by server.web.errors."""
    return await retrying(resources_of(current_app).sessionmaker, work)


async def _track(session: AsyncSession, track_id: int) -> plays.Playable:
    """The track, of any origin, as the signed-in listener sees it (404 otherwise)."""
    here = origins(resources_of(current_app))
    return await plays.find(session, here, track_id, viewer_required())


def _base() -> str:
    return resources_of(current_app).settings.instance.base_url


def _done(result: plays.ClaimResult) -> PlayDone:
    return PlayDone(
        outcome=result.outcome.value,
        tokens=result.tokens,
        paid_number=result.paid_number,
        owned=result.owned,
        balance=result.balance,
    )


@plays_api.get("/tracks/<int:track_id>/price")
@require(Scope.READ)
@validate_response(Price)
async def price(track_id: int) -> Price:
    """The price of the next play and the plays until owned, for the signed-in listener."""
    viewer = viewer_required()
    async with resources_of(current_app).read_sessionmaker() as session:
        q = await plays.quote(session, viewer.user_id, await _track(session, track_id))
    return Price(**q.__dict__)


@plays_api.post("/tracks/<int:track_id>/plays")
@require(Scope.PLAY)
@validate_response(PlayStart, 201)
async def start_play(track_id: int) -> tuple[PlayStart, int]:
    """Open a play session. With enough balance (or a free or owned track) it gives the
    full stream; otherwise the preview and the reason."""
    viewer = viewer_required()
    async with resources_of(current_app).sessionmaker() as session:
        track = await _track(session, track_id)
        q = await plays.quote(session, viewer.user_id, track)
        price_out = Price(**q.__dict__)
        base = _base()
        if not q.affordable:
            return PlayStart(
                session=None,
                mode="preview",
                stream_url=preview_url(base, track) or "",
                claim_url=None,
                quote=price_out,
                reason=f"your balance ({q.balance} tokens) does not cover this play "
                f"({q.price} tokens): here is the preview; top up to hear it all",
            ), 201
        token = await plays.open_session(session, viewer.user_id, track)
    return PlayStart(
        session=token,
        mode="full",
        stream_url=f"{base}/tracks/{track_id}/stream?session={token}",
        claim_url=f"{base}/api/v1/plays/{token}/claim",
        quote=price_out,
    ), 201


@plays_api.post("/plays/<token>/claim")
@require(Scope.PLAY)
@validate_response(PlayDone)
async def claim_play(token: str) -> PlayDone:
    """Claim the play once min(45 s, track length) has passed since the session opened;
    charged once, however often it is claimed (a partner's track: and reported to the
    partner with a Listen)."""
    viewer = viewer_required()
    resources = resources_of(current_app)
    here = origins(resources)
    return _done(
        await in_money_transaction(
            lambda s: plays.claim(s, here, token, viewer.user_id, resources.settings.money)
        )
    )


@plays_api.post("/tracks/<int:track_id>/buy")
@require(Scope.PLAY)
@validate_response(PlayDone)
async def buy_now(track_id: int) -> PlayDone:
    """Own the track at once for what is left of 1022 tokens."""
    viewer = viewer_required()
    resources = resources_of(current_app)
    here, settings = origins(resources), resources.settings.money
    return _done(
        await in_money_transaction(lambda s: plays.buy_now(s, here, track_id, viewer, settings))
    )


@plays_api.post("/me/vouchers")
@require(Scope.WRITE)
@validate_request(VoucherIn)
@validate_response(Wallet)
async def redeem(data: VoucherIn) -> Wallet:
    viewer = viewer_required()
    money = resources_of(current_app).settings.money
    rate = {"tokens": money.rate_tokens, "cents": money.rate_cents, "currency": money.currency}
    await in_money_transaction(lambda s: redeem_voucher(s, viewer.user_id, data.code, rate))
    return await wallet_of(viewer.user_id)


class CheckoutIn(BaseModel):
    pack: str = Field(min_length=1, max_length=32)


class CheckoutOut(BaseModel):
    id: str
    url: str = Field(description="send the listener here to pay")


@plays_api.post("/me/checkout")
@require(Scope.WRITE)
@validate_request(CheckoutIn)
@validate_response(CheckoutOut, 201)
async def checkout(data: CheckoutIn) -> tuple[CheckoutOut, int]:
    """Start buying a credit pack with the payment provider (Stripe Checkout)."""
    viewer = viewer_required()
    resources = resources_of(current_app)
    settings = resources.settings.money
    base = resources.settings.instance.base_url
    try:
        pack = find_pack(settings, data.pack)
        made = await create_checkout(
            resources.http, settings, pack, viewer.user_id,
            success_url=f"{base}/wallet?paid=1", cancel_url=f"{base}/wallet",
        )  # fmt: skip
    except PaymentError as exc:
        raise _payment_http(exc) from None
    return CheckoutOut(id=made.id, url=made.url), 201


def _payment_http(exc: PaymentError) -> HTTPException:
    kinds: dict[int, type[HTTPException]] = {404: NotFound, 422: UnprocessableEntity,
                                             502: BadGateway}  # fmt: skip
    return kinds.get(exc.status, BadRequest)(str(exc))


payments_hooks = Blueprint("payments_hooks", __name__)


@payments_hooks.post("/payments/stripe/webhook")
async def stripe_webhook() -> ResponseReturnValue:
    """Stripe's events, verified by their signature; a completed checkout is credited once."""
    resources = resources_of(current_app)
    payload = cast(bytes, await request.get_data())  # Quart's overloads miss the defaults
    try:
        verify_signature(payload, request.headers.get("Stripe-Signature"),
                         resources.settings.money.stripe_webhook_secret)  # fmt: skip
        event = parse_event(payload)
        async with resources.sessionmaker() as session:
            outcome = await handle_event(session, resources.settings.money, event)
    except PaymentError as exc:
        raise _payment_http(exc) from None
    return jsonify({"received": True, "outcome": outcome})


@plays_api.get("/me")
@require(Scope.READ)
@validate_response(Me)
async def me() -> Me:
    viewer = viewer_required()
    async with resources_of(current_app).read_sessionmaker() as session:
        user = await session.get(User, viewer.user_id)
        assert user is not None
    return Me(username=user.username, role=user.role.value, email=user.email)


@plays_api.get("/me/wallet")
@require(Scope.READ)
@validate_response(Wallet)
async def wallet() -> Wallet:
    """Balance, paid-play history of local tracks with the cost of each, and owned tracks
    (of any origin)."""
    return await wallet_of(viewer_required().user_id)


@plays_api.get("/me/wallet/history")
@require(Scope.READ)
@validate_querystring(HistoryQuery)
@validate_response(WalletHistory)
async def wallet_movements(query_args: HistoryQuery) -> WalletHistory:
    """Every movement of the signed-in listener's tokens, newest first, each with the
    balance it left (the starter grant, vouchers, card top-ups, paid plays and purchases
    of local and partners' tracks, an account's closing)."""
    viewer = viewer_required()
    async with resources_of(current_app).read_sessionmaker() as session:
        page = await wallet_history(
            session, viewer.user_id, limit=query_args.limit, before=query_args.before
        )
    older = None
    if page.older is not None:
        older = f"{_base()}/api/v1/me/wallet/history?before={page.older}&limit={query_args.limit}"
    return WalletHistory(
        balance=page.balance,
        movements=[
            WalletMovement(**{**asdict(line), "at": line.at.isoformat()}) for line in page.lines
        ],
        older=older,
    )


@plays_api.get("/me/wallet/summary")
@require(Scope.READ)
@validate_querystring(YearQuery)
@validate_response(YearSummaryOut)
async def wallet_summary(query_args: YearQuery) -> YearSummaryOut:
    """What the signed-in listener's plays and purchases paid in a year, and to whom: each
    artist, each partner instance, and this instance's share."""
    viewer = viewer_required()
    year = query_args.year or utcnow().year
    async with resources_of(current_app).read_sessionmaker() as session:
        summary = await year_summary(session, viewer.user_id, year)
    return YearSummaryOut(
        year=summary.year,
        spent=summary.spent,
        paid=[PaidOut(kind=p.kind, name=p.name, artist=p.handle, tokens=p.tokens)
              for p in summary.paid],
    )  # fmt: skip


async def wallet_of(user_id: int) -> Wallet:
    """The wallet of one account, as ``wallet`` answers it (also after a voucher, whose
    token needs no ``read`` scope for it)."""
    async with resources_of(current_app).read_sessionmaker() as session:
        balance = await ledger.balance(session, ledger.wallet_key(user_id))
        owned = set()
        for origin in origins(resources_of(current_app)):
            counts, track = origin.rows.counts, origin.rows.count_track
            owned |= set(
                await session.scalars(
                    select(track).where(counts.user_id == user_id, counts.owned_at.is_not(None))
                )
            )
        plays = await session.scalars(
            select(Play).where(Play.user_id == user_id).order_by(Play.id.desc()).limit(200)
        )
        return Wallet(
            balance=balance,
            owned_track_ids=sorted(owned),
            plays=[
                WalletPlay(
                    track_id=p.track_id,
                    at=p.at.isoformat(),
                    tokens=p.tokens,
                    paid_number=p.paid_number,
                )
                for p in plays
            ],
        )
