"""The money invariants, checked by reading the ledger and the tables beside it after any
interleaving of plays, buys, top-ups and payouts (one checker for every money test).

What must hold at any time, whatever ran concurrently before:

* every ledger transaction balances, so all entries together sum to zero;
* each account's balance is the sum of its entries; no wallet, artist earnings or
  pending-payouts account is below zero;
* an artist account's gross is what its listeners paid for its tracks, and it was
  credited exactly floor(gross × share) of it;
* per listener and track: the paid plays are numbered 1..n with n ≤ 9, each cost what the
  curve says, and the count kept is n; ownership comes exactly with the ninth paid play or
  with one purchase; a bought track is owned (never loses its owner), nothing is paid
  after ownership, and an owned track cost exactly 1022 tokens in all, an unowned one less;
* a redeemed voucher credited its tokens once, to the account that redeemed it;
* per artist, what was paid out or is reserved for a payout never exceeds what was
  earned; the pending-payouts account holds exactly the reserved requests, the payouts
  account exactly what the runs paid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import Artist, PriceModel, Track
from models.ledger import (
    NON_NEGATIVE,
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutState,
)
from models.plays import ListenerTrack, Play, PlayOutcome
from models.pricing import FULL_PRICE, PAID_PLAYS_TO_OWN, play_cost, share_of
from models.users import User
from models.vouchers import Voucher


async def check_money_invariants(session: AsyncSession, artist_share_bp: int = 7000) -> None:
    """Raise AssertionError naming every invariant the database breaks."""
    problems: list[str] = []
    problems += await _ledger(session)
    problems += await _artists(session, artist_share_bp)
    problems += await _ownership(session)
    problems += await _vouchers(session)
    problems += await _payouts(session)
    await session.rollback()
    assert not problems, "money invariants broken:\n  " + "\n  ".join(problems)


async def _ledger(session: AsyncSession) -> list[str]:
    problems = []
    unbalanced = (
        await session.execute(
            select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.transaction_id)
            .having(func.sum(LedgerEntry.amount) != 0)
        )
    ).all()
    problems += [f"transaction {t} sums to {s}" for t, s in unbalanced]
    total = await session.scalar(select(func.sum(LedgerEntry.amount)))
    if total not in (0, None):
        problems.append(f"all entries sum to {total}")
    sums = dict(
        (
            await session.execute(
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount)).group_by(
                    LedgerEntry.account_id
                )
            )
        ).all()
    )
    for account in await session.scalars(select(LedgerAccount)):
        entries = int(sums.get(account.id) or 0)
        if account.balance != entries:
            problems.append(
                f"{account.key}: balance {account.balance} but its entries sum to {entries}"
            )
        if account.kind in NON_NEGATIVE and account.balance < 0:
            problems.append(f"{account.key} is below zero: {account.balance}")
    return problems


async def _entries_by_transaction(
    session: AsyncSession, kinds: Iterable[str]
) -> dict[int, list[tuple[LedgerAccount, int]]]:
    rows = await session.execute(
        select(LedgerEntry.transaction_id, LedgerAccount, LedgerEntry.amount)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerTransaction.kind.in_(list(kinds)))
    )
    found: dict[int, list[tuple[LedgerAccount, int]]] = defaultdict(list)
    for transaction_id, account, amount in rows:
        found[transaction_id].append((account, amount))
    return found


async def _artists(session: AsyncSession, artist_share_bp: int) -> list[str]:
    """Gross and the artist's share, per artist account, from the plays and buys."""
    problems = []
    paid: dict[str, int] = defaultdict(int)
    credited: dict[str, int] = defaultdict(int)
    for entries in (await _entries_by_transaction(session, ["play", "buy"])).values():
        cost = -sum(amount for account, amount in entries if account.kind is AccountKind.WALLET)
        for account, amount in entries:
            if account.kind is AccountKind.ARTIST:
                paid[account.key] += cost
                credited[account.key] += amount
    for account in await session.scalars(
        select(LedgerAccount).where(LedgerAccount.kind == AccountKind.ARTIST)
    ):
        if account.gross != paid[account.key]:
            problems.append(
                f"{account.key}: gross {account.gross}, but plays and buys paid {paid[account.key]}"
            )
        if credited[account.key] != share_of(account.gross, artist_share_bp):
            problems.append(
                f"{account.key}: credited {credited[account.key]} of a gross of "
                f"{account.gross}, not floor(gross × {artist_share_bp / 100:g} %)"
            )
    return problems


async def _ownership(session: AsyncSession) -> list[str]:
    problems = []
    charged: dict[tuple[int, int], list[Play]] = defaultdict(list)
    for play in await session.scalars(
        select(Play).where(Play.outcome == PlayOutcome.CHARGED).order_by(Play.id)
    ):
        charged[(play.user_id or 0, play.track_id)].append(play)
    wallet_debits = {
        transaction_id: -sum(a for account, a in entries if account.kind is AccountKind.WALLET)
        for transaction_id, entries in (
            await _entries_by_transaction(session, ["play", "buy"])
        ).items()
    }
    bought: dict[tuple[int, int], list[int]] = defaultdict(list)
    for transaction in await session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.kind == "buy")
    ):
        _kind, user, track = transaction.reference.split(":")
        bought[(int(user), int(track))].append(wallet_debits.get(transaction.id, 0))
    states = {
        (row.user_id, row.track_id): row for row in await session.scalars(select(ListenerTrack))
    }
    stream_to_own = {
        track_id: owner
        for track_id, owner in await session.execute(
            select(Track.id, Artist.owner_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(Track.price_model == PriceModel.STREAM_TO_OWN)
        )
    }
    # a deleted account's plays keep no user and its purchases name an id nobody has now:
    # its history stays in the ledger (checked above), its ownership went with it
    living = set(await session.scalars(select(User.id)))
    for key in set(charged) | set(bought) | set(states):
        user, track = key
        if user not in living:
            continue
        where = f"listener {user}, track {track}"
        plays = charged.get(key, [])
        buys = bought.get(key, [])
        state = states.get(key)
        numbers = [play.paid_number for play in plays]
        if sorted(n or 0 for n in numbers) != list(range(1, len(plays) + 1)):
            problems.append(f"{where}: paid plays numbered {numbers}")
        if len(plays) > PAID_PLAYS_TO_OWN:
            problems.append(f"{where}: {len(plays)} paid plays")
        for play in plays:
            expected = play_cost((play.paid_number or 1) - 1)
            if play.tokens != expected or wallet_debits.get(play.transaction_id or 0) != expected:
                problems.append(
                    f"{where}: paid play {play.paid_number} cost {play.tokens} "
                    f"(wallet debited {wallet_debits.get(play.transaction_id or 0)}), "
                    f"not {expected}"
                )
        if (plays or buys) and stream_to_own.get(track) in (None, user):
            problems.append(f"{where}: charged for a free track or the artist's own")
        if len(buys) > 1:
            problems.append(f"{where}: bought {len(buys)} times")
        paid_plays = state.paid_plays if state else 0
        if paid_plays != len(plays):
            problems.append(f"{where}: count says {paid_plays} paid plays, {len(plays)} were")
        owned = bool(state and state.owned_at)
        spent = sum(play.tokens for play in plays) + sum(buys)
        if buys and not (owned and state and state.owned_via == "bought"):
            problems.append(f"{where}: bought for {buys} but not owned (lost its owner)")
        if len(plays) == PAID_PLAYS_TO_OWN and not (owned and state and state.owned_via == "plays"):
            problems.append(f"{where}: nine paid plays but not owned through them")
        if owned and not buys and len(plays) < PAID_PLAYS_TO_OWN:
            problems.append(f"{where}: owned after {len(plays)} paid plays and no purchase")
        if owned and spent != FULL_PRICE:
            problems.append(f"{where}: owned for {spent} tokens, not {FULL_PRICE}")
        if not owned and spent >= FULL_PRICE:
            problems.append(f"{where}: paid {spent} tokens and does not own it")
    return problems


async def _vouchers(session: AsyncSession) -> list[str]:
    problems = []
    credits = {
        transaction_id: entries
        for transaction_id, entries in (await _entries_by_transaction(session, ["top-up"])).items()
    }
    by_reference = {
        reference: transaction_id
        for reference, transaction_id in await session.execute(
            select(LedgerTransaction.reference, LedgerTransaction.id).where(
                LedgerTransaction.reference.like("voucher:%")
            )
        )
    }
    for voucher in await session.scalars(select(Voucher)):
        transaction_id = by_reference.get(f"voucher:{voucher.id}")
        if voucher.redeemed_at is None:
            if transaction_id is not None:
                problems.append(f"voucher {voucher.id} credited but not redeemed")
            continue
        wallet = [
            (account.owner_id, amount)
            for account, amount in credits.get(transaction_id or 0, [])
            if account.kind is AccountKind.WALLET
        ]
        if wallet != [(voucher.redeemed_by, voucher.tokens)]:
            problems.append(
                f"voucher {voucher.id} ({voucher.tokens} tokens, redeemed by "
                f"{voucher.redeemed_by}) credited {wallet}"
            )
    return problems


async def _payouts(session: AsyncSession) -> list[str]:
    problems = []
    earned: dict[int, int] = defaultdict(int)
    for owner, amount in await session.execute(
        select(LedgerAccount.owner_id, LedgerEntry.amount)
        .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
        .where(LedgerAccount.kind == AccountKind.ARTIST, LedgerEntry.amount > 0)
    ):
        earned[owner or 0] += amount
    reserved_refs = set(
        await session.scalars(
            select(LedgerTransaction.reference).where(
                LedgerTransaction.reference.like("payout-request:%")
            )
        )
    )
    booked: dict[int, int] = defaultdict(int)
    pending = paid = 0
    for payout in await session.scalars(select(Payout)):
        reserved = f"payout-request:{payout.id}" in reserved_refs
        if payout.state is PayoutState.PAID:
            paid += payout.tokens
            if payout.transaction_id is None:
                problems.append(f"payout {payout.id} is paid without a transaction")
        if payout.state in (PayoutState.PAID, PayoutState.REQUESTED):
            booked[payout.artist_id] += payout.tokens
        if payout.state is PayoutState.REQUESTED and reserved:
            pending += payout.tokens
        if payout.tokens <= 0:
            problems.append(f"payout {payout.id} is for {payout.tokens} tokens")
    for artist_id, tokens in booked.items():
        if tokens > earned[artist_id]:
            problems.append(
                f"artist {artist_id}: {tokens} tokens paid out or requested, "
                f"{earned[artist_id]} earned"
            )
    balances = dict(
        (
            await session.execute(
                select(LedgerAccount.kind, func.sum(LedgerAccount.balance)).group_by(
                    LedgerAccount.kind
                )
            )
        ).all()
    )
    if int(balances.get(AccountKind.PAYOUTS) or 0) != paid:
        problems.append(
            f"the payouts account holds {balances.get(AccountKind.PAYOUTS)}, paid {paid}"
        )
    held = int(balances.get(AccountKind.PENDING_PAYOUTS) or 0)
    if held != pending:
        problems.append(f"the pending-payouts account holds {held}, reserved requests {pending}")
    return problems
