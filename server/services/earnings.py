"""Artists' earnings, payout requests, and the admin's payout runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import cast

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.base import utcnow
from models.catalogue import Artist, Track
from models.ledger import (
    PAYOUT_STATES,
    PENDING_PAYOUTS_KEY,
    AccountKind,
    InsufficientBalance,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutState,
    tokens_to_cents,
)
from server.runtime.config import MoneySettings
from server.services.money import MoneyError


@dataclass(frozen=True)
class Earnings:
    balance: int
    gross: int
    balance_cents: int
    per_track: list[tuple[int, str, int]]  # track id, title, tokens earned
    per_day: list[tuple[date, int]]


async def earnings_of(session: AsyncSession, artist: Artist, settings: MoneySettings) -> Earnings:
    account = await session.scalar(
        select(LedgerAccount).where(LedgerAccount.key == ledger.artist_key(artist.id))
    )
    if account is None:
        return Earnings(0, 0, 0, [], [])
    credited = (LedgerEntry.account_id == account.id) & (LedgerEntry.amount > 0)
    per_track = [
        (cast(int, track_id), title, int(tokens))  # the inner join drops entries without one
        for track_id, title, tokens in await session.execute(
            select(LedgerEntry.track_id, Track.title, func.sum(LedgerEntry.amount))
            .join(Track, Track.id == LedgerEntry.track_id)
            .where(credited)
            .group_by(LedgerEntry.track_id, Track.title)
            .order_by(func.sum(LedgerEntry.amount).desc())
        )
    ]
    day = func.date(LedgerTransaction.at)
    per_day = []
    for when, tokens in await session.execute(
        select(day, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(credited)
        .group_by(day)
        .order_by(day)
    ):
        per_day.append(
            (when if isinstance(when, date) else date.fromisoformat(str(when)), int(tokens))
        )
    return Earnings(
        account.balance,
        account.gross,
        tokens_to_cents(account.balance, settings.rate_tokens, settings.rate_cents),
        per_track,
        per_day,
    )


async def _unreserved(session: AsyncSession, artist_id: int | None = None) -> list[Payout]:
    """Requested payouts whose tokens were never reserved in the ledger: those made before
    requests reserved them (a run pays them from the earnings if these still cover them)."""
    query = select(Payout).where(Payout.state == PayoutState.REQUESTED)
    if artist_id is not None:
        query = query.where(Payout.artist_id == artist_id)
    waiting = {reservation_reference(p.id): p for p in await session.scalars(query)}
    if not waiting:
        return []
    reserved = set(
        await session.scalars(
            select(LedgerTransaction.reference).where(LedgerTransaction.reference.in_(waiting))
        )
    )
    return [payout for reference, payout in waiting.items() if reference not in reserved]


def reservation_reference(payout_id: int) -> str:
    return f"payout-request:{payout_id}"


async def request_payout(session: AsyncSession, artist: Artist, settings: MoneySettings) -> Payout:
    """Ask to be paid all the earnings; commits.

    The tokens are reserved at once: in the request's own transaction they move from the
    artist's earnings to the pending-payouts account, with the ledger's guarded debit that
    never takes an earnings account below zero. Of concurrent requests only the first gets
    the balance; the others find it taken and are refused (409), so requests can never add
    up to more than was earned, and a payout run only moves tokens already set aside.
    """
    balance = await ledger.balance(session, ledger.artist_key(artist.id))
    available = balance - sum(p.tokens for p in await _unreserved(session, artist.id))
    cents = tokens_to_cents(max(available, 0), settings.rate_tokens, settings.rate_cents)
    if cents < settings.payout_threshold_cents or available <= 0:
        raise MoneyError(
            f"payouts start at {settings.payout_threshold_cents / 100:.2f} {settings.currency}; "
            f"you can ask for {cents / 100:.2f} {settings.currency} now",
            409,
        )
    payout = Payout(
        artist_id=artist.id,
        state=PAYOUT_STATES.start(PayoutState.REQUESTED),
        tokens=available,
        amount_cents=cents,
        currency=settings.currency,
        rate_tokens=settings.rate_tokens,
        rate_cents=settings.rate_cents,
    )
    session.add(payout)
    await session.flush()
    earnings = await ledger.account(
        session, ledger.artist_key(artist.id), AccountKind.ARTIST, artist.id
    )
    pending = await ledger.account(session, PENDING_PAYOUTS_KEY, AccountKind.PENDING_PAYOUTS)
    try:
        await ledger.post(
            session,
            "payout-request",
            reservation_reference(payout.id),
            [(earnings, -available), (pending, available)],
            {"payout": payout.id, "amount_cents": cents, "currency": settings.currency},
        )
    except InsufficientBalance:
        await session.rollback()
        raise MoneyError(
            "these earnings were asked for a moment ago: the payout is requested already", 409
        ) from None
    await session.commit()
    return payout


@dataclass(frozen=True)
class Settled:
    """A payout as a run left it (plain values: each payout is its own transaction)."""

    id: int
    artist_id: int
    state: PayoutState
    tokens: int
    amount_cents: int
    currency: str

    @classmethod
    def of(cls, payout: Payout) -> Settled:
        return cls(payout.id, payout.artist_id, payout.state, payout.tokens,
                   payout.amount_cents, payout.currency)  # fmt: skip


@dataclass(frozen=True)
class PayoutRun:
    paid: list[Settled]
    refused: list[tuple[Settled, str]]  # and why


async def run_payouts(session: AsyncSession, admin_id: int) -> PayoutRun:
    """Pay every requested payout: its reserved tokens leave the pending-payouts account
    for the payouts account, and the payout records what was paid, at which rate, by
    whom. Each payout is its own transaction, taken with a guarded update of its state:
    concurrent runs pay each payout once, and one that cannot be paid (an old request the
    earnings never covered) is cancelled and reported, not a failure of the whole run."""
    waiting = list(
        await session.scalars(
            select(Payout.id).where(Payout.state == PayoutState.REQUESTED).order_by(Payout.id)
        )
    )
    legacy = {payout.id for payout in await _unreserved(session)}
    await session.commit()
    paid: list[Settled] = []
    refused: list[tuple[Settled, str]] = []
    for payout_id in waiting:
        payout = await _pay(session, payout_id, admin_id, reserved=payout_id not in legacy)
        if payout is None:
            continue  # another run paid it meanwhile
        if payout.state is PayoutState.PAID:
            paid.append(payout)
        else:
            refused.append((payout, "the earnings do not cover it (requested twice)"))
    return PayoutRun(paid, refused)


async def _pay(
    session: AsyncSession, payout_id: int, admin_id: int, *, reserved: bool
) -> Settled | None:
    now = utcnow()
    taken = await session.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.state == PayoutState.REQUESTED)
        .values(
            state=PAYOUT_STATES.check(PayoutState.REQUESTED, PayoutState.PAID),
            paid_at=now,
            paid_by=admin_id,
        )
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        await session.rollback()
        return None
    payout = await session.get(Payout, payout_id, populate_existing=True)
    assert payout is not None
    source = (
        await ledger.account(session, PENDING_PAYOUTS_KEY, AccountKind.PENDING_PAYOUTS)
        if reserved
        else await ledger.account(
            session, ledger.artist_key(payout.artist_id), AccountKind.ARTIST, payout.artist_id
        )
    )
    payouts_account = await ledger.account(session, "payouts", AccountKind.PAYOUTS)
    try:
        transaction = await ledger.post(
            session,
            "payout",
            f"payout:{payout.id}",
            [(source, -payout.tokens), (payouts_account, payout.tokens)],
            {
                "amount_cents": payout.amount_cents,
                "currency": payout.currency,
                "rate": {"tokens": payout.rate_tokens, "cents": payout.rate_cents},
            },
        )
    except InsufficientBalance:
        await session.rollback()
        cancelled = await session.execute(
            update(Payout)
            .where(Payout.id == payout_id, Payout.state == PayoutState.REQUESTED)
            .values(state=PAYOUT_STATES.check(PayoutState.REQUESTED, PayoutState.CANCELLED))
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        if not cancelled.rowcount:  # type: ignore[attr-defined]
            return None  # another run settled it meanwhile
        payout = await session.get(Payout, payout_id, populate_existing=True)
        assert payout is not None
        return Settled.of(payout)
    payout.transaction_id = transaction.id
    await session.commit()
    return Settled.of(payout)
