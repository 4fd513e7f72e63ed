"""Per-period CSV reports for the instance's accountant, built from the ledger so that
every row can be traced to a ledger transaction (its id is in the first column)."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import Artist, Track
from models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction, Payout, tokens_to_cents
from models.plays import Play
from server.runtime.config import MoneySettings


class ReportKind(StrEnum):
    """The reports there are; the value is the name in the report's URL."""

    PLAYS = "plays"
    EARNINGS = "earnings"
    TOP_UPS = "top-ups"
    PAYOUTS = "payouts"


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, end + 1 day 00:00 UTC)."""
    return (
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
    )


def to_csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


Builder = Callable[[AsyncSession, datetime, datetime, MoneySettings], Awaitable[str]]


def _in_period(begin: datetime, stop: datetime) -> ColumnElement[bool]:
    return (LedgerTransaction.at >= begin) & (LedgerTransaction.at < stop)


async def _plays(
    session: AsyncSession, begin: datetime, stop: datetime, settings: MoneySettings
) -> str:
    """Every play of the period with its outcome and price."""
    rows = await session.execute(
        select(
            Play.transaction_id,
            Play.at,
            Play.track_id,
            Track.title,
            Artist.name,
            Play.outcome,
            Play.paid_number,
            Play.tokens,
        )
        .join(Track, Track.id == Play.track_id)
        .join(Artist, Artist.id == Track.artist_id)
        .where(Play.at >= begin, Play.at < stop)
        .order_by(Play.id)
    )
    return to_csv(
        ["transaction", "at", "track_id", "track", "artist", "outcome", "paid_play", "tokens"],
        (
            [t, at.isoformat(), tid, title, name, outcome.value, n or "", tokens]
            for t, at, tid, title, name, outcome, n, tokens in rows
        ),
    )


async def _earnings(
    session: AsyncSession, begin: datetime, stop: datetime, settings: MoneySettings
) -> str:
    """Per artist (and the instance): what was earned and paid out in the period."""
    in_period = _in_period(begin, stop)
    rows = await session.execute(
        select(LedgerAccount.key, LedgerTransaction.kind, LedgerEntry.amount)
        .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(in_period, LedgerAccount.key.like("artist:%") | (LedgerAccount.key == "instance"))
    )
    totals: dict[str, list[int]] = {}
    for key, transaction_kind, amount in rows:
        earned, paid_out = totals.setdefault(key, [0, 0])
        # tokens leave an artist's earnings when the payout is asked for (reserved),
        # or, for requests made before reservations, when it is paid
        if transaction_kind in ("payout-request", "payout"):
            totals[key] = [earned, paid_out - amount]
        else:
            totals[key] = [earned + amount, paid_out]
    return to_csv(
        ["account", "earned_tokens", "earned_cents", "paid_out_tokens", "currency"],
        (
            [
                key,
                earned,
                tokens_to_cents(earned, settings.rate_tokens, settings.rate_cents),
                paid,
                settings.currency,
            ]
            for key, (earned, paid) in sorted(totals.items())
        ),
    )


async def _top_ups(
    session: AsyncSession, begin: datetime, stop: datetime, settings: MoneySettings
) -> str:
    """Every top-up of the period, with its method, amount and rate."""
    in_period = _in_period(begin, stop)
    transactions = await session.scalars(
        select(LedgerTransaction)
        .where(in_period, LedgerTransaction.kind == "top-up")
        .order_by(LedgerTransaction.id)
    )
    rows_out = []
    for t in transactions:
        amount = await session.scalar(
            select(LedgerEntry.amount).where(
                LedgerEntry.transaction_id == t.id, LedgerEntry.amount > 0
            )
        )
        rate = t.details.get("rate") or {}
        rows_out.append(
            [
                t.id,
                t.at.isoformat(),
                t.details.get("method", ""),
                amount,
                t.details.get("amount_cents", ""),
                rate.get("tokens", ""),
                rate.get("cents", ""),
                t.details.get("currency", rate.get("currency", "")),
            ]
        )
    return to_csv(
        [
            "transaction",
            "at",
            "method",
            "tokens",
            "amount_cents",
            "rate_tokens",
            "rate_cents",
            "currency",
        ],
        rows_out,
    )


async def _payouts(
    session: AsyncSession, begin: datetime, stop: datetime, settings: MoneySettings
) -> str:
    """Every payout paid in the period."""
    payouts = await session.execute(
        select(Payout, Artist.name)
        .join(Artist, Artist.id == Payout.artist_id)
        .where(Payout.paid_at >= begin, Payout.paid_at < stop)
        .order_by(Payout.id)
    )
    return to_csv(
        [
            "transaction",
            "paid_at",
            "artist",
            "tokens",
            "amount_cents",
            "currency",
            "rate_tokens",
            "rate_cents",
        ],
        (
            [
                p.transaction_id,
                p.paid_at.isoformat() if p.paid_at else "",
                name,
                p.tokens,
                p.amount_cents,
                p.currency,
                p.rate_tokens,
                p.rate_cents,
            ]
            for p, name in payouts
        ),
    )


BUILDERS: Mapping[ReportKind, Builder] = {
    ReportKind.PLAYS: _plays,
    ReportKind.EARNINGS: _earnings,
    ReportKind.TOP_UPS: _top_ups,
    ReportKind.PAYOUTS: _payouts,
}


async def report(
    session: AsyncSession, kind: ReportKind, start: date, end: date, settings: MoneySettings
) -> str:
    """The CSV of one kind of report for the days from ``start`` to ``end``."""
    begin, stop = period(start, end)
    return await BUILDERS[kind](session, begin, stop, settings)
