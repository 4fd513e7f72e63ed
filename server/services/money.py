"""Money operations: starter balances, vouchers, play sessions and paid plays, buying.

Each operation is one database transaction: the debit, the credits, the play and the
ownership change commit together or not at all (docs/architecture.md#money-stream-to-own).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ledger
from models.accounts import secret_digest
from models.base import utcnow
from models.catalogue import Artist, PriceModel, Track, TrackStatus
from models.ledger import AccountKind, DuplicateTransaction, InsufficientBalance
from models.plays import ListenerTrack, Play, PlayOutcome, PlaySession
from models.pricing import (
    PAID_PLAYS_TO_OWN,
    buy_now_cost,
    play_cost,
    plays_until_owned,
    split,
)
from models.vouchers import Voucher
from server.runtime.config import MoneySettings

PLAY_THRESHOLD = timedelta(seconds=45)


class MoneyError(ValueError):
    """Refused; ``status`` fits an HTTP answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


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


@dataclass(frozen=True)
class Quote:
    """What the next play of a track costs this listener, before it starts."""

    price: int
    paid_plays: int
    plays_until_owned: int
    owned: bool
    free: bool
    balance: int

    @property
    def affordable(self) -> bool:
        return self.free or self.owned or self.balance >= self.price


async def _listener_track(session: AsyncSession, user_id: int, track_id: int) -> ListenerTrack:
    row = await session.get(ListenerTrack, (user_id, track_id))
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            row = ListenerTrack(user_id=user_id, track_id=track_id, paid_plays=0)
            session.add(row)
    except IntegrityError:
        row = await session.get(ListenerTrack, (user_id, track_id), populate_existing=True)
        assert row is not None
    return row


async def quote(session: AsyncSession, user_id: int, track: Track, artist: Artist) -> Quote:
    state = await session.get(ListenerTrack, (user_id, track.id))
    paid = state.paid_plays if state else 0
    owned = bool(state and state.owned_at)
    free = track.price_model is PriceModel.FREE or artist.owner_id == user_id
    price = 0 if (free or owned) else play_cost(paid)
    return Quote(
        price,
        paid,
        plays_until_owned(paid),
        owned,
        free,
        await ledger.balance(session, ledger.wallet_key(user_id)),
    )


async def open_session(session: AsyncSession, user_id: int, track: Track) -> PlaySession:
    if track.status is not TrackStatus.READY:
        raise MoneyError(f"the track is {track.status.value}, not playable yet", 409)
    play_session = PlaySession(token=secrets.token_urlsafe(24), user_id=user_id, track_id=track.id)
    session.add(play_session)
    await session.commit()
    return play_session


@dataclass(frozen=True)
class ClaimResult:
    outcome: PlayOutcome
    tokens: int
    paid_number: int | None
    owned: bool
    balance: int


async def claim(
    session: AsyncSession,
    token: str,
    user_id: int,
    settings: MoneySettings,
    now: datetime | None = None,
) -> ClaimResult:
    """The player says the play was heard: charge it once min(45 s, length) has passed
    since the session opened, by the server's clock. The same claim twice is one play."""
    return await charge_session(session, token, user_id, settings, now, heard_check=True)


async def charge_session(
    session: AsyncSession,
    token: str,
    user_id: int,
    settings: MoneySettings,
    now: datetime | None = None,
    *,
    heard_check: bool,
) -> ClaimResult:
    """Charge the play of a session once, whoever asks first (the player's claim, or the
    stream reaching the end of the free part, which passes ``heard_check=False``).

    One winner under any concurrency: the session row is marked first with a guarded
    update (on PostgreSQL a concurrent charger waits for its lock, then finds it taken
    and raises ConcurrentChange, and its retry reads the result); the count is moved
    with a guard on the count read and on the track not being owned, so that a "buy now"
    that committed in between is never written over.
    """
    now = now or utcnow()
    play_session = await session.scalar(
        select(PlaySession).where(PlaySession.token == token, PlaySession.user_id == user_id)
    )
    if play_session is None:
        raise MoneyError("there is no such play session", 404)
    if play_session.play_id is not None:
        return await _result_of(session, play_session.play_id, user_id)
    track = await session.get(Track, play_session.track_id)
    if track is None:
        raise MoneyError("the track is gone", 410)
    artist = await session.get(Artist, track.artist_id)
    assert artist is not None
    if now - play_session.started_at > settings.play_session_lifetime:
        raise MoneyError("the play session has expired: start the track again", 410)
    if heard_check:
        needed = min(PLAY_THRESHOLD, timedelta(milliseconds=track.duration_ms))
        heard = now - play_session.started_at
        if heard < needed:
            left = (needed - heard).total_seconds()
            raise MoneyError(
                f"a play counts after {needed.total_seconds():g} s: {left:.1f} s to go", 425
            )
    taken = await session.execute(
        update(PlaySession)
        .where(PlaySession.id == play_session.id, PlaySession.claimed_at.is_(None))
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        raise ConcurrentChange()
    state = await _listener_track(session, user_id, track.id)
    free = track.price_model is PriceModel.FREE or artist.owner_id == user_id
    cost = 0 if (free or state.owned_at) else play_cost(state.paid_plays)
    transaction_id = None
    paid_number = None
    if cost:
        paid_number = state.paid_plays + 1
        owns_now = paid_number >= PAID_PLAYS_TO_OWN
        values: dict[str, object] = {"paid_plays": paid_number}
        if owns_now:
            values.update(owned_at=now, owned_via="plays")
        moved = await session.execute(
            update(ListenerTrack)
            .where(
                ListenerTrack.user_id == user_id,
                ListenerTrack.track_id == track.id,
                ListenerTrack.paid_plays == state.paid_plays,
                ListenerTrack.owned_at.is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            raise ConcurrentChange()
        transaction_id = await _charge(
            session,
            user_id,
            artist,
            cost,
            settings,
            kind="play",
            reference=f"play:{token}",
            details={"track": track.id, "paid_number": paid_number},
        )
    play = Play(
        user_id=user_id,
        track_id=track.id,
        at=now,
        outcome=PlayOutcome.CHARGED if cost else PlayOutcome.FREE,
        paid_number=paid_number,
        tokens=cost,
        transaction_id=transaction_id,
    )
    session.add(play)
    await session.flush()
    await session.execute(
        update(PlaySession)
        .where(PlaySession.id == play_session.id)
        .values(play_id=play.id)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return await _result_of(session, play.id, user_id)


async def _charge(
    session: AsyncSession,
    user_id: int,
    artist: Artist,
    cost: int,
    settings: MoneySettings,
    *,
    kind: str,
    reference: str,
    details: dict[str, object],
) -> int:
    wallet = await ledger.account(session, ledger.wallet_key(user_id), AccountKind.WALLET, user_id)
    earnings = await ledger.account(
        session, ledger.artist_key(artist.id), AccountKind.ARTIST, artist.id
    )
    instance = await ledger.account(session, "instance", AccountKind.INSTANCE)
    gross_before = await ledger.add_gross(session, earnings, cost)
    to_artist, to_instance = split(gross_before, cost, settings.artist_share_bp)
    try:
        transaction = await ledger.post(
            session,
            kind,
            reference,
            [(wallet, -cost), (earnings, to_artist), (instance, to_instance)],
            details,
            track_id=int(details["track"]),  # type: ignore[call-overload]
        )
    except InsufficientBalance:
        balance = await ledger.balance(session, wallet.key)
        raise MoneyError(
            f"your balance is too low: this costs {cost} tokens and you have "
            f"{balance}; top up, or listen to the preview",
            402,
        ) from None
    return transaction.id


async def buy(
    session: AsyncSession, user_id: int, track: Track, artist: Artist, settings: MoneySettings
) -> ClaimResult:
    """Buy now: what is left of 1022 tokens, and the listener owns the track at once."""
    state = await _listener_track(session, user_id, track.id)
    if state.owned_at is not None:
        raise MoneyError("you own this track already", 409)
    if track.price_model is PriceModel.FREE or artist.owner_id == user_id:
        raise MoneyError("this track is free for you: there is nothing to buy", 409)
    cost = buy_now_cost(state.paid_plays)
    now = utcnow()
    moved = await session.execute(
        update(ListenerTrack)
        .where(
            ListenerTrack.user_id == user_id,
            ListenerTrack.track_id == track.id,
            ListenerTrack.owned_at.is_(None),
            ListenerTrack.paid_plays == state.paid_plays,
        )
        .values(owned_at=now, owned_via="bought")
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConcurrentChange()
    await _charge(
        session,
        user_id,
        artist,
        cost,
        settings,
        kind="buy",
        reference=f"buy:{user_id}:{track.id}",
        details={"track": track.id},
    )
    await session.commit()
    return ClaimResult(
        PlayOutcome.CHARGED,
        cost,
        None,
        True,
        await ledger.balance(session, ledger.wallet_key(user_id)),
    )


async def _result_of(session: AsyncSession, play_id: int, user_id: int) -> ClaimResult:
    play = await session.get(Play, play_id)
    assert play is not None
    state = await session.get(ListenerTrack, (user_id, play.track_id), populate_existing=True)
    return ClaimResult(
        play.outcome,
        play.tokens,
        play.paid_number,
        bool(state and state.owned_at),
        await ledger.balance(session, ledger.wallet_key(user_id)),
    )
