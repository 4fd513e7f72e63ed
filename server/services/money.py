"""Money operations: refusals, retries, starter balances and vouchers. Plays and buying
are in ``server.services.plays``.

Each operation is one database transaction: the debit and the credits commit together or
not at all (docs/architecture.md#money-stream-to-own).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ledger
from models.accounts import secret_digest
from models.base import utcnow
from models.ledger import AccountKind, DuplicateTransaction
from models.vouchers import Voucher
from server.services.errors import Refused


class MoneyError(Refused, ValueError):
    """A money operation refused (422 unless it names another status); a route that does
    not catch it answers it like any refusal of a service."""

    status = 422


class ConcurrentChange(Exception):
    """Another request changed the same play count first; run the operation again."""


T = TypeVar("T")
RETRIES = 8
# serialization_failure, deadlock_detected
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


async def retrying(
    sessionmaker: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Run a money operation in a session of its own, again if a concurrent one got in
    first: a guarded update that found its row changed, a unique key taken meanwhile, or
    a PostgreSQL serialization failure or deadlock. The loser's retry reads the winner's
    result or gets its own clear refusal (a MoneyError); it never ends in a crash."""
    for _ in range(RETRIES):
        async with sessionmaker() as session:
            try:
                return await work(session)
            except (ConcurrentChange, DuplicateTransaction, IntegrityError):
                await session.rollback()
            except DBAPIError as exc:
                await session.rollback()
                if getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                    raise
            except MoneyError:
                await session.rollback()
                raise
    raise MoneyError("too many changes to this at once; try again", 409)


async def grant_starter_balance(session: AsyncSession, user_id: int, tokens: int) -> None:
    if tokens <= 0:
        return
    grants = await ledger.account(session, "grants", AccountKind.GRANTS)
    wallet = await ledger.account(session, ledger.wallet_key(user_id), AccountKind.WALLET, user_id)
    await ledger.post(session, "grant", f"starter:{user_id}", [(grants, -tokens), (wallet, tokens)])


def new_voucher_code() -> str:
    """16 random characters from an alphabet without look-alikes, in groups of four."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


async def issue_vouchers(
    session: AsyncSession, tokens: int, count: int, expires_at: datetime | None
) -> list[str]:
    if not 0 < tokens <= 1_000_000 or not 0 < count <= 10_000:
        raise MoneyError("tokens must be 1 to 1,000,000 and count 1 to 10,000")
    batch = secrets.token_hex(4)
    codes = [new_voucher_code() for _ in range(count)]
    for code in codes:
        session.add(
            Voucher(
                digest=secret_digest(normalise_code(code)),
                tokens=tokens,
                batch=batch,
                expires_at=expires_at,
            )
        )
    await session.commit()
    return codes


async def redeem_voucher(
    session: AsyncSession, user_id: int, code: str, rate: dict[str, object] | None = None
) -> int:
    """Credit a voucher once; returns the tokens added."""
    now = utcnow()
    voucher = await session.scalar(
        select(Voucher).where(Voucher.digest == secret_digest(normalise_code(code)))
    )
    if voucher is None:
        raise MoneyError("this voucher code is not valid", 404)
    if voucher.redeemed_at is not None:
        raise MoneyError("this voucher has been redeemed already", 409)
    if voucher.expires_at is not None and voucher.expires_at <= now:
        raise MoneyError("this voucher has expired", 410)
    claimed = await session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.redeemed_at.is_(None))
        .values(redeemed_at=now, redeemed_by=user_id)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise MoneyError("this voucher has been redeemed already", 409)
    source = await ledger.account(session, "vouchers", AccountKind.VOUCHERS)
    wallet = await ledger.account(session, ledger.wallet_key(user_id), AccountKind.WALLET, user_id)
    await ledger.post(
        session,
        "top-up",
        f"voucher:{voucher.id}",
        [(source, -voucher.tokens), (wallet, voucher.tokens)],
        {"method": "voucher", "batch": voucher.batch, "rate": rate or {}},
    )
    await session.commit()
    return voucher.tokens
