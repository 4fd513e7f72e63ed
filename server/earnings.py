"""Artists' earnings, payout requests, and the admin's payout runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.base import utcnow
from models.catalogue import Artist, Track
from models.ledger import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutState,
    tokens_to_cents,
)
from server.config import MoneySettings
from server.money import MoneyError


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
        (track_id, title, int(tokens))
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


async def request_payout(session: AsyncSession, artist: Artist, settings: MoneySettings) -> Payout:
    balance = await ledger.balance(session, ledger.artist_key(artist.id))
    waiting = (
        await session.scalar(
            select(func.sum(Payout.tokens)).where(
                Payout.artist_id == artist.id, Payout.state == PayoutState.REQUESTED
            )
        )
        or 0
    )
    available = balance - int(waiting)
    cents = tokens_to_cents(available, settings.rate_tokens, settings.rate_cents)
    if cents < settings.payout_threshold_cents or available <= 0:
        raise MoneyError(
            f"payouts start at {settings.payout_threshold_cents / 100:.2f} {settings.currency}; "
            f"you can ask for {cents / 100:.2f} {settings.currency} now",
            409,
        )
    payout = Payout(
        artist_id=artist.id,
        state=PayoutState.REQUESTED,
        tokens=available,
        amount_cents=cents,
        currency=settings.currency,
        rate_tokens=settings.rate_tokens,
        rate_cents=settings.rate_cents,
    )
    session.add(payout)
    await session.commit()
    return payout


async def run_payouts(session: AsyncSession, admin_id: int) -> list[Payout]:
    """Pay every requested payout: tokens leave the artist's earnings for the payouts
    account, and the payout records what was paid, at which rate, by whom."""
    paid = []
    requested = (
        await session.scalars(
            select(Payout).where(Payout.state == PayoutState.REQUESTED).order_by(Payout.id)
        )
    ).all()
    payouts_account = await ledger.account(session, "payouts", AccountKind.PAYOUTS)
    for payout in requested:
        earnings = await ledger.account(
            session, ledger.artist_key(payout.artist_id), AccountKind.ARTIST, payout.artist_id
        )
        transaction = await ledger.post(
            session,
            "payout",
            f"payout:{payout.id}",
            [(earnings, -payout.tokens), (payouts_account, payout.tokens)],
            {
                "amount_cents": payout.amount_cents,
                "currency": payout.currency,
                "rate": {"tokens": payout.rate_tokens, "cents": payout.rate_cents},
            },
        )
        payout.state = PayoutState.PAID
        payout.paid_at = utcnow()
        payout.paid_by = admin_id
        payout.transaction_id = transaction.id
        paid.append(payout)
    await session.commit()
    return paid
