"""What becomes of a wallet when its account is deleted.

Tokens are prepaid credit, never paid back in money here. Starter tokens the instance
gave and the listener did not use go back to the instance (grants count as spent first).
The rest goes where the listener chooses: to the co-op (the instance's account) or to
another listener of this instance; a listener who wants neither spends it first. The
move is one balanced ledger transaction, booked before the account row goes; the wallet
then stays in the books under a key that names nobody (``closed:<account id>``), so that
its history still adds up and no later account can ever reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.ledger import AccountKind, InsufficientBalance, LedgerAccount, LedgerEntry
from models.users import AccountStatus, User
from server.services.account_rules import AccountError

CLOSING_KIND = "account-closing"
GRANT_KIND = "grant"


class BalanceChoice(StrEnum):
    COOP = "coop"
    LISTENER = "listener"


class ClosingRefused(AccountError):
    """The wallet cannot be closed as asked; ``status`` fits an HTTP answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ClosingSplit:
    balance: int
    returned_grant: int  # unused starter tokens, back to the instance

    @property
    def transferable(self) -> int:
        """What the listener decides about."""
        return self.balance - self.returned_grant


def closing_split(balance: int, granted: int, spent: int) -> ClosingSplit:
    """Split a balance: the starter tokens not yet spent (grants are spent first), and
    the rest."""
    unspent_grant = max(granted - spent, 0)
    returned = min(balance, unspent_grant)
    return ClosingSplit(balance, returned)


async def _split(session: AsyncSession, wallet: LedgerAccount) -> ClosingSplit:
    spent = await session.scalar(
        select(func.coalesce(func.sum(-LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == wallet.id, LedgerEntry.amount < 0
        )
    )
    granted = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .join(ledger.LedgerTransaction, ledger.LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerEntry.account_id == wallet.id,
            LedgerEntry.amount > 0,
            ledger.LedgerTransaction.kind == GRANT_KIND,
        )
    )
    balance = await session.scalar(
        select(LedgerAccount.balance).where(LedgerAccount.id == wallet.id)
    )
    return closing_split(int(balance or 0), int(granted or 0), int(spent or 0))


async def _wallet(session: AsyncSession, user_id: int, *, lock: bool) -> LedgerAccount | None:
    statement = select(LedgerAccount).where(LedgerAccount.key == ledger.wallet_key(user_id))
    if lock:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def preview(session: AsyncSession, user_id: int) -> ClosingSplit:
    """What deleting the account now would do with its wallet (for the settings page)."""
    wallet = await _wallet(session, user_id, lock=False)
    return ClosingSplit(0, 0) if wallet is None else await _split(session, wallet)


async def close_wallet(
    session: AsyncSession,
    user: User,
    choice: BalanceChoice | None,
    recipient: str | None = None,
) -> ClosingSplit:
    """Empty and retire the account's wallet in the caller's transaction (no commit).

    Raises ClosingRefused when tokens are left to decide about and no valid choice was
    given; nothing is written then.
    """
    wallet = await _wallet(session, user.id, lock=True)
    if wallet is None:
        return ClosingSplit(0, 0)
    split = await _split(session, wallet)
    entries: list[tuple[LedgerAccount, int]] = [(wallet, -split.balance)]
    if split.returned_grant:
        grants = await ledger.account(session, "grants", AccountKind.GRANTS)
        entries.append((grants, split.returned_grant))
    if split.transferable:
        entries.append(
            (await _destination(session, user, split, choice, recipient), split.transferable)
        )
    if split.balance:
        try:
            await ledger.post(
                session,
                CLOSING_KIND,
                f"closing:{wallet.id}",
                entries,
                {
                    "to": choice.value if split.transferable and choice else None,
                    "returned_grant": split.returned_grant,
                },
            )
        except InsufficientBalance:
            raise ClosingRefused(
                "your balance changed while the account was being closed: try again", 409
            ) from None
    left = await session.scalar(select(LedgerAccount.balance).where(LedgerAccount.id == wallet.id))
    if left:
        raise ClosingRefused(
            "your balance changed while the account was being closed: try again", 409
        )
    await session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == wallet.id)
        .values(key=f"closed:{wallet.id}", owner_id=None)
        .execution_options(synchronize_session=False)
    )
    return split


async def _destination(
    session: AsyncSession,
    user: User,
    split: ClosingSplit,
    choice: BalanceChoice | None,
    recipient: str | None,
) -> LedgerAccount:
    if choice is None:
        raise ClosingRefused(
            f"your wallet still holds {split.transferable} tokens: choose whether they go to "
            "the co-op or to another listener, or spend them first"
        )
    if choice is BalanceChoice.COOP:
        return await ledger.account(session, "instance", AccountKind.INSTANCE)
    name = (recipient or "").strip().lower().removeprefix("@")
    if not name:
        raise ClosingRefused("give the name of the listener who gets your tokens")
    other = None
    if len(name) <= 30:
        other = await session.scalar(select(User).where(User.username == name))
    if other is None or other.status is not AccountStatus.ACTIVE:
        raise ClosingRefused(f"there is no active account called {name!r} here", 404)
    if other.id == user.id:
        raise ClosingRefused("choose another listener than yourself")
    return await ledger.account(session, ledger.wallet_key(other.id), AccountKind.WALLET, other.id)
