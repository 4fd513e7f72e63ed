"""The double-entry ledger: every movement of tokens is a transaction whose entries sum
to zero, and an account's balance is kept beside its entries in the same transaction.

Accounts that may never go below zero (listener wallets) are debited with a guarded
``UPDATE … SET balance = balance + :amount WHERE … AND balance + :amount >= 0``, which is
atomic on both databases: of many concurrent debits only those the balance covers pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, insert_once, str_enum, utcnow
from models.pricing import BASIS_POINTS, split
from models.states import StateMachine


class AccountKind(StrEnum):
    WALLET = "wallet"  # a listener's tokens (never negative)
    ARTIST = "artist"  # an artist's earnings
    INSTANCE = "instance"  # the instance's share of plays
    VOUCHERS = "vouchers"  # where voucher top-ups come from
    PROVIDER = "provider"  # where paid top-ups come from (one per payment provider)
    PAYOUTS = "payouts"  # tokens paid out to artists as money
    # Tokens an artist asked to be paid, moved out of their earnings when they asked and
    # held here until a payout run pays them (never below zero).
    PENDING_PAYOUTS = "pending-payouts"
    GRANTS = "grants"  # starter balances the instance gives new accounts
    # Another instance: what we owe it (positive) or it owes us (negative) for plays of
    # its artists' tracks by our listeners and the other way round
    # (docs/architecture.md#a-play-of-a-partners-track).
    PEER = "peer"
    # Money that moved between instances outside the ledger, as the hub's settlement said.
    SETTLEMENTS = "settlements"


NON_NEGATIVE = frozenset({AccountKind.WALLET, AccountKind.ARTIST, AccountKind.PENDING_PAYOUTS})
PENDING_PAYOUTS_KEY = "payouts:pending"


class InsufficientBalance(Exception):
    """The debit would take an account below zero; nothing was written."""


class DuplicateTransaction(Exception):
    """A transaction with this reference exists already (the operation is idempotent)."""


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # "wallet:12", "artist:3", "instance", "vouchers", "provider:stripe", "payouts"
    key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[AccountKind] = mapped_column(str_enum(AccountKind, 16))
    owner_id: Mapped[int | None] = mapped_column(BigIntId, default=None, index=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # For artist accounts: the gross charged for the artist's tracks so far, which the
    # rounding rule of the split needs (docs/architecture.md#money-stream-to-own).
    gross: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    # Makes each operation happen once: "play:<session>", "voucher:<id>", "stripe:<event>"
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    # The track a play or a purchase was about, for earnings per track.
    track_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracks.id", ondelete="SET NULL"), default=None, index=True
    )


class PayoutState(StrEnum):
    REQUESTED = "requested"
    PAID = "paid"
    # A request the earnings never covered (booked twice before requests reserved their
    # tokens): a payout run refuses it and says so instead of failing.
    CANCELLED = "cancelled"


PAYOUT_STATES: StateMachine[PayoutState] = StateMachine(
    "Payout.state",
    initial=[PayoutState.REQUESTED],
    transitions={PayoutState.REQUESTED: [PayoutState.PAID, PayoutState.CANCELLED]},
    terminal=[PayoutState.PAID, PayoutState.CANCELLED],
)


class Payout(Base):
    """An artist's request to be paid their earnings, and the admin run that paid it."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    artist_id: Mapped[int] = mapped_column(
        ForeignKey("artists.id", ondelete="RESTRICT"), index=True
    )
    state: Mapped[PayoutState] = mapped_column(str_enum(PayoutState, 16))
    tokens: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    rate_tokens: Mapped[int] = mapped_column(BigInteger)
    rate_cents: Mapped[int] = mapped_column(BigInteger)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    paid_by: Mapped[int | None] = mapped_column(BigIntId, default=None)
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), default=None
    )


def tokens_to_cents(tokens: int, rate_tokens: int, rate_cents: int) -> int:
    """Money for tokens at a rate, rounded down to the cent (never more than earned)."""
    return tokens * rate_cents // rate_tokens


def wallet_key(user_id: int) -> str:
    return f"wallet:{user_id}"


def artist_key(artist_id: int) -> str:
    return f"artist:{artist_id}"


def peer_key(actor_id: int) -> str:
    """The account of another instance, by its instance actor's row id."""
    return f"peer:{actor_id}"


async def account(
    session: AsyncSession, key: str, kind: AccountKind, owner_id: int | None = None
) -> LedgerAccount:
    """The account with this key, made on first use."""
    found = await session.scalar(select(LedgerAccount).where(LedgerAccount.key == key))
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            made = LedgerAccount(key=key, kind=kind, owner_id=owner_id, balance=0, gross=0)
            session.add(made)
        return made
    except IntegrityError:
        found = await session.scalar(select(LedgerAccount).where(LedgerAccount.key == key))
        assert found is not None
        return found


@dataclass(frozen=True)
class AccountRef:
    """What names an account, and what it is made with on first use."""

    key: str
    kind: AccountKind
    owner_id: int | None = None


@dataclass(frozen=True)
class Posted:
    """A transaction written: its id, and the balance each account it moved has now (by
    the account's key)."""

    id: int
    balances: dict[str, int]


async def post(
    session: AsyncSession,
    kind: str,
    reference: str,
    entries: Sequence[tuple[LedgerAccount, int]],
    details: dict[str, Any] | None = None,
    track_id: int | None = None,
) -> Posted:
    """Write one balanced transaction in the caller's database transaction (no commit).

    Raises InsufficientBalance if a wallet or earnings account would go negative, and
    DuplicateTransaction if the reference was used before; in both cases the caller
    rolls back and nothing is kept. The reference is taken by the insert itself
    (``ON CONFLICT DO NOTHING``): no look-up first, and a duplicate leaves the database
    transaction usable on PostgreSQL too.
    """
    if sum(amount for _account, amount in entries) != 0:
        raise ValueError(f"unbalanced transaction {reference}: {entries!r}")
    transaction_id = await _new_transaction(session, kind, reference, details)
    balances: dict[str, int] = {}
    rows = []
    for ledger_account, amount in entries:
        if amount == 0:
            continue
        statement = update(LedgerAccount).where(LedgerAccount.id == ledger_account.id)
        if ledger_account.kind in NON_NEGATIVE and amount < 0:
            statement = statement.where(LedgerAccount.balance + amount >= 0)
        after = await session.scalar(
            statement.values(balance=LedgerAccount.balance + amount)
            .returning(LedgerAccount.balance)
            .execution_options(synchronize_session=False)
        )
        if after is None:
            raise InsufficientBalance(ledger_account.key)
        balances[ledger_account.key] = int(after)
        rows.append({"transaction_id": transaction_id, "account_id": ledger_account.id,
                     "amount": amount, "track_id": track_id})  # fmt: skip
    if rows:  # one statement for all the entries (an empty list would insert one blank)
        await session.execute(insert(LedgerEntry), rows)
    return Posted(transaction_id, balances)


async def _new_transaction(
    session: AsyncSession, kind: str, reference: str, details: dict[str, Any] | None
) -> int:
    """The transaction's row, its reference taken by the insert itself (``ON CONFLICT DO
    NOTHING``): no look-up first, and a duplicate leaves the database transaction usable
    on PostgreSQL too. DuplicateTransaction if the reference was used before."""
    transaction_id = await session.scalar(
        insert_once(session)(LedgerTransaction)
        .values(kind=kind, reference=reference, details=details or {})
        .on_conflict_do_nothing(index_elements=[LedgerTransaction.reference])
        .returning(LedgerTransaction.id)
    )
    if transaction_id is None:
        raise DuplicateTransaction(reference)
    return int(transaction_id)


async def post_split(
    session: AsyncSession,
    kind: str,
    reference: str,
    *,
    payer: AccountRef,
    payee: AccountRef,
    rest: AccountRef,
    amount: int,
    share_bp: int,
    details: dict[str, Any] | None = None,
    track_id: int | None = None,
) -> Posted:
    """Move ``amount`` from ``payer`` (never below zero) to ``payee``, whose share is the
    rounding rule of ``models.pricing.split`` over its running gross, and the rest to
    ``rest``: what a play or a purchase does, in one transaction of the ledger (the
    caller commits). Each account is moved by its key in one statement (the payee's
    gross and balance together, so the split is taken under the row's lock), made on
    first use; none is looked up first. InsufficientBalance and DuplicateTransaction as
    for :func:`post`."""
    transaction_id = await _new_transaction(session, kind, reference, details)
    debited = (
        await session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.key == payer.key, LedgerAccount.balance >= amount)
            .values(balance=LedgerAccount.balance - amount)
            .returning(LedgerAccount.id, LedgerAccount.balance)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if debited is None:  # too low, or no wallet at all yet
        raise InsufficientBalance(payer.key)
    gross, balance = LedgerAccount.gross, LedgerAccount.balance
    share = (gross + amount) * share_bp // BASIS_POINTS - gross * share_bp // BASIS_POINTS
    payee_id, payee_balance, gross_after = await _move(
        session, payee, {"gross": gross + amount, "balance": balance + share}
    )
    to_payee, to_rest = split(gross_after - amount, amount, share_bp)
    rest_id, rest_balance, _gross = await _move(session, rest, {"balance": balance + to_rest})
    moves = [(debited.id, -amount), (payee_id, to_payee), (rest_id, to_rest)]
    rows = [
        {"transaction_id": transaction_id, "account_id": account_id, "amount": moved,
         "track_id": track_id}
        for account_id, moved in moves
        if moved
    ]  # fmt: skip
    await session.execute(insert(LedgerEntry), rows)
    balances = {payer.key: int(debited.balance), payee.key: payee_balance, rest.key: rest_balance}
    return Posted(transaction_id, balances)


async def _move(
    session: AsyncSession, ref: AccountRef, values: dict[str, Any]
) -> tuple[int, int, int]:
    """Update the account ``ref`` names with ``values`` (made first if it does not exist
    yet); its id, balance and gross after."""
    statement = (
        update(LedgerAccount)
        .where(LedgerAccount.key == ref.key)
        .values(values)
        .returning(LedgerAccount.id, LedgerAccount.balance, LedgerAccount.gross)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).first()
    if row is None:
        await account(session, ref.key, ref.kind, ref.owner_id)
        row = (await session.execute(statement)).first()
        assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def balance(session: AsyncSession, key: str) -> int:
    value = await session.scalar(select(LedgerAccount.balance).where(LedgerAccount.key == key))
    return int(value or 0)


async def add_gross(session: AsyncSession, artist_account: LedgerAccount, amount: int) -> int:
    """Add to an artist's gross and return the gross before (atomically)."""
    after = await session.scalar(
        update(LedgerAccount)
        .where(LedgerAccount.id == artist_account.id)
        .values(gross=LedgerAccount.gross + amount)
        .returning(LedgerAccount.gross)
        .execution_options(synchronize_session=False)
    )
    return int(after or 0) - amount


@dataclass(frozen=True)
class Movement:
    """One entry of an account, with its transaction and the balance it left."""

    entry_id: int
    at: datetime
    kind: str
    reference: str
    details: dict[str, Any]
    track_id: int | None
    amount: int
    balance_after: int


@dataclass(frozen=True)
class History:
    """An account's balance and a page of its entries, read in one statement (so that they
    agree on every database, whatever moves beside the read)."""

    balance: int
    movements: list[Movement]


async def movements(
    session: AsyncSession, key: str, *, limit: int, before: int | None = None
) -> History:
    """The entries of the account ``key``, newest first, at most ``limit`` of them and
    only those older than the entry ``before`` when it is given, with the account's
    balance. Each entry carries the balance after it: the running sum of the account's
    entries in the order they were written, which for the newest is the account's balance
    (every change of a balance is an entry of the same transaction)."""
    running = func.sum(LedgerEntry.amount).over(order_by=LedgerEntry.id)
    query = (
        select(
            LedgerEntry.id,
            LedgerTransaction.at,
            LedgerTransaction.kind,
            LedgerTransaction.reference,
            LedgerTransaction.details,
            LedgerEntry.track_id,
            LedgerEntry.amount,
            running,
            LedgerAccount.balance,
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerAccount.key == key)
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    rows = (await session.execute(query.order_by(LedgerEntry.id.desc()).limit(limit))).all()
    if not rows:
        return History(await balance(session, key), [])
    return History(
        int(rows[0][-1]),
        [
            Movement(int(entry), at, kind, ref, details or {}, track, int(amount), int(after))
            for entry, at, kind, ref, details, track, amount, after, _balance in rows
        ],
    )


@dataclass(frozen=True)
class Recipient:
    """An account that received tokens, and how many."""

    kind: AccountKind
    owner_id: int | None
    tokens: int


async def paid_to(
    session: AsyncSession,
    key: str,
    kinds: Sequence[str],
    start: datetime,
    end: datetime,
) -> list[Recipient]:
    """Where the tokens the account ``key`` paid in transactions of ``kinds`` from
    ``start`` (included) to ``end`` (excluded) went: every account credited by those
    transactions, with what it was credited, most first. Each play or purchase is one
    transaction, so this is exactly what reached each artist, partner and the instance."""
    paying = (
        select(LedgerEntry.transaction_id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerAccount.key == key,
            LedgerEntry.amount < 0,
            LedgerTransaction.kind.in_(kinds),
            LedgerTransaction.at >= start,
            LedgerTransaction.at < end,
        )
    )
    total = func.sum(LedgerEntry.amount)
    rows = await session.execute(
        select(LedgerAccount.kind, LedgerAccount.owner_id, total)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.transaction_id.in_(paying), LedgerEntry.amount > 0)
        .group_by(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.owner_id)
        .order_by(total.desc(), LedgerAccount.id)
    )
    return [Recipient(kind, owner, int(tokens)) for kind, owner, tokens in rows]
