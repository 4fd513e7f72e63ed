"""Stream-to-own, written once for every track here, ours or a partner's: the price of
the next play, play sessions, the charge of a play (claimed by the player, or reached by
the stream), buying now, and who owns what (README, "How the server enforces it").

Play n costs 2^n tokens (``models.pricing``); the ninth paid play makes the listener the
owner. Each operation is one database transaction: the debit, the credits, the play and
the ownership change commit together or not at all, and every race has one winner
(``docs/money-threats.md``). What differs between a track of this instance and a
partner's sits behind :class:`Origin` (``server.services.local_plays.Local`` and
``server.services.remote_plays.Partner``; ``server.services.origins`` lists them):

* the tables that keep its play sessions and listeners' counts (the same shape for both,
  so the guarded updates below are written once over them),
* who is owed (the local artist's earnings, or the partner instance) and how the ledger
  names the movement,
* what is recorded of a play (a play row; for a partner's track the Listen reported to
  the partner too),
* where the audio comes from (our media store, or our cache of the partner's file).

Tracks of every origin share one id space (``docs/decisions.md``), so a track id names one
track whatever its origin.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from models import ledger
from models.base import utcnow
from models.catalogue import MediaFile
from models.ledger import AccountKind, AccountRef, InsufficientBalance
from models.plays import PlayOutcome
from models.pricing import PAID_PLAYS_TO_OWN, buy_now_cost, play_cost, plays_until_owned
from server.runtime.config import MoneySettings
from server.runtime.resources import Resources
from server.services.errors import NotFoundError
from server.services.money import ConcurrentChange, MoneyError
from server.services.viewers import Viewer

PLAY_THRESHOLD = timedelta(seconds=45)


@dataclass(frozen=True, kw_only=True)
class Playable:
    """A track as stream-to-own sees it, whatever its origin."""

    origin: Origin
    id: int  # in the one id space of tracks here
    title: str
    duration_ms: int
    free: bool  # free to everybody
    owner_id: int | None  # the account whose track it is: free to them
    public: bool  # otherwise only its owner sees it
    unplayable: str | None  # why it cannot be played (yet), or None

    def free_for(self, user_id: int) -> bool:
        return self.free or self.owner_id == user_id

    def visible_to(self, viewer: Viewer | None) -> bool:
        return self.public or (viewer is not None and viewer.user_id == self.owner_id)


@dataclass(frozen=True)
class Posting:
    """How the ledger names a movement: its kind, its unique reference (what makes it
    happen once), its details, and the local track it is about."""

    kind: str
    reference: str
    details: dict[str, object]
    track_id: int | None


@dataclass(frozen=True)
class Heard:
    """A play as charged, for the origin to record."""

    at: datetime
    paid_number: int | None
    tokens: int
    owned: bool  # the listener owns the track with it
    transaction_id: int | None


@dataclass(frozen=True)
class Recorded:
    """A recorded play, as a claim answers it."""

    track_id: int
    outcome: PlayOutcome
    tokens: int
    paid_number: int | None


@dataclass(frozen=True)
class Audio:
    """A track's audio file, to send. For a partner's track ``file`` is not stored: it
    describes our cached copy. ``keep_timeline`` is the statement that keeps a timeline
    made from the file (``models.stream_gate``) with it."""

    file: MediaFile
    keep_timeline: Callable[[dict[str, Any]], Executable]


@dataclass(frozen=True)
class Rows:
    """The tables an origin keeps its plays' state in, of the same shape for every origin:
    the play sessions (``PlaySession``'s), their column naming the track and the guard
    that a session's play is not taken yet; the listeners' counts and ownership
    (``ListenerTrack``'s) and their column naming the track."""

    sessions: Any
    session_track: Any
    unclaimed: Any
    counts: Any
    count_track: Any


class Origin(Protocol):
    """Where a track comes from, and all that follows from it."""

    name: str  # "local" or "partner", as the API shows it
    # A partner instance's signed request gets the whole track: only our own tracks.
    lends_to_partners: bool
    rows: Rows

    def claiming(self, now: datetime) -> dict[str, object]:
        """The values that take a session's play (guarded by ``unclaimed``)."""
        ...

    def owning(self, now: datetime, via: str) -> dict[str, object]:
        """The values that make the listener the owner, by ``plays`` or ``bought``."""
        ...

    async def track(self, session: AsyncSession, track_id: int) -> Playable | None:
        """The track with this id, if it is of this origin."""
        ...

    async def claimable(
        self, session: AsyncSession, token: str, user_id: int
    ) -> tuple[Any, Any | None, Playable | None] | None:
        """The listener's play session with this token, their count of its track (None
        before their first play of it) and the track (None when it is gone), in one
        query: what a charge reads."""
        ...

    def payee(self, track: Playable) -> AccountRef:
        """The account owed the artist's share."""
        ...

    def play_posting(self, track: Playable, token: str, paid_number: int) -> Posting: ...

    def buy_posting(self, track: Playable, user_id: int) -> Posting: ...

    async def record_play(
        self, session: AsyncSession, track: Playable, user_id: int, heard: Heard
    ) -> int:
        """Record a play in the caller's transaction; its id."""
        ...

    async def record_purchase(
        self, session: AsyncSession, track: Playable, user_id: int, paid_before: int, at: datetime
    ) -> None:
        """Record a purchase beyond its ledger transaction, in the caller's transaction."""
        ...

    async def recorded(self, session: AsyncSession, play_id: int) -> Recorded: ...

    async def audio(self, track: Playable, *, mp3: bool, resources: Resources) -> Audio:
        """The file to stream, in MP3 or Opus as far as the origin has both (refused with
        409 when there is none yet); it opens sessions of its own."""
        ...

    async def stored_audio(
        self, session: AsyncSession, track: Playable, *, mp3: bool
    ) -> Audio | None:
        """:meth:`audio` if the caller's session alone can find it (a request that read
        the track already saves a session); None when only :meth:`audio` can (a
        partner's audio may have to be fetched first, never inside a session)."""
        ...


Origins = Sequence[Origin]


async def new_track_id(session: AsyncSession) -> int:
    """An id in the one id space of tracks here for a track that is not a row of
    ``tracks`` (a partner's): taken from the tracks' own sequence, so no local track ever
    gets it, in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        taken = await session.scalar(text("SELECT nextval(pg_get_serial_sequence('tracks', 'id'))"))
        return int(taken)
    # SQLite: tracks is an AUTOINCREMENT table, which never hands out an id at or below
    # its sqlite_sequence entry; moving the entry on reserves the id.
    taken = await session.scalar(
        text("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'tracks' RETURNING seq")
    )
    if taken is None:  # no track yet
        await session.execute(
            text(
                "INSERT INTO sqlite_sequence (name, seq) "
                "SELECT 'tracks', coalesce(max(id), 0) + 1 FROM tracks"
            )
        )
        taken = await session.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = 'tracks'"))
    return int(taken)


async def find(
    session: AsyncSession, origins: Origins, track_id: int, viewer: Viewer | None
) -> Playable:
    """The track with this id, of whatever origin, or 404 if it does not exist for the
    viewer (another artist's draft does not)."""
    for origin in origins:
        track = await origin.track(session, track_id)
        if track is not None and track.visible_to(viewer):
            return track
    raise NotFoundError(f"there is no track {track_id}")


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


def quote_of(state: Any | None, *, free: bool, balance: int) -> Quote:
    """The quote from a listener's count row of a track (None: never played), whether the
    track is free to them, and their balance: the one price rule, also for callers that
    read many rows at once."""
    paid = state.paid_plays if state else 0
    owned = bool(state and state.owned_at)
    return Quote(
        0 if (free or owned) else play_cost(paid),
        paid,
        plays_until_owned(paid),
        owned,
        free,
        balance,
    )


async def quote(session: AsyncSession, user_id: int, track: Playable) -> Quote:
    state = await session.get(track.origin.rows.counts, (user_id, track.id))
    balance = await ledger.balance(session, ledger.wallet_key(user_id))
    return quote_of(state, free=track.free_for(user_id), balance=balance)


async def quotes(
    session: AsyncSession, origins: Origins, user_id: int, track_ids: Sequence[int]
) -> dict[int, Quote]:
    """The listener's quote for each of these tracks that exists."""
    found = {}
    for track_id in track_ids:
        for origin in origins:
            track = await origin.track(session, track_id)
            if track is not None:
                found[track_id] = await quote(session, user_id, track)
                break
    return found


async def owns(session: AsyncSession, user_id: int, track: Playable) -> bool:
    state = await session.get(track.origin.rows.counts, (user_id, track.id))
    return bool(state and state.owned_at)


async def open_session(session: AsyncSession, user_id: int, track: Playable) -> str:
    """A play session for the listener; its token names it in the stream and claim URLs."""
    if track.unplayable:
        raise MoneyError(track.unplayable, 409)
    rows = track.origin.rows
    token = secrets.token_urlsafe(24)
    session.add(rows.sessions(token=token, user_id=user_id, **{rows.session_track.key: track.id}))
    await session.commit()
    return token


async def claimable_row(
    session: AsyncSession, rows: Rows, token: str, user_id: int, *track: tuple[Any, Any]
) -> Any | None:
    """An origin's ``claimable`` query: the listener's session with this token, their
    count of its track, and the entities ``track`` names, each outer-joined on its
    condition (so a session whose track is gone is still found)."""
    query = select(rows.sessions, rows.counts, *(entity for entity, _on in track)).outerjoin(
        rows.counts,
        (rows.counts.user_id == rows.sessions.user_id) & (rows.count_track == rows.session_track),
    )
    for entity, on in track:
        query = query.outerjoin(entity, on)
    query = query.where(rows.sessions.token == token, rows.sessions.user_id == user_id)
    return (await session.execute(query)).first()


async def session_of(
    session: AsyncSession,
    origins: Origins,
    token: str,
    *,
    user_id: int | None = None,
    track_id: int | None = None,
) -> tuple[Origin, Any] | None:
    """The play session with this token and its origin; only the listener's own, or only
    one of the track ``track_id``, when they are given."""
    for origin in origins:
        rows = origin.rows
        query = select(rows.sessions).where(rows.sessions.token == token)
        if user_id is not None:
            query = query.where(rows.sessions.user_id == user_id)
        if track_id is not None:
            query = query.where(rows.session_track == track_id)
        found = await session.scalar(query)
        if found is not None:
            return origin, found
    return None


@dataclass(frozen=True)
class ClaimResult:
    outcome: PlayOutcome
    tokens: int
    paid_number: int | None
    owned: bool
    balance: int


async def claim(
    session: AsyncSession,
    origins: Origins,
    token: str,
    user_id: int,
    settings: MoneySettings,
    now: datetime | None = None,
) -> ClaimResult:
    """The player says the play was heard: charge it once min(45 s, length) has passed
    since the session opened, by the server's clock. The same claim twice is one play."""
    return await charge_session(session, origins, token, user_id, settings, now, heard_check=True)


async def charge_session(
    session: AsyncSession,
    origins: Origins,
    token: str,
    user_id: int,
    settings: MoneySettings,
    now: datetime | None = None,
    *,
    heard_check: bool,
) -> ClaimResult:
    """Charge the play of a session once, whoever asks first (the player's claim, or the
    stream reaching the end of the free part, which passes ``heard_check=False``).

    One winner under any concurrency: the count is moved with a guard on the count read
    and on the track not being owned, so that a second charger or a "buy now" that
    committed in between is never written over (on PostgreSQL it waits for the row's
    lock, then finds it moved and raises ConcurrentChange, and its retry reads the
    result); the session row is taken last with a guarded update naming the play, which
    stops a second charger of a play that moves no count. The session is looked up with
    its listener: anybody else's claim finds none. The answer is made from what the
    transaction wrote (the wallet's balance as the debit left it), not read again.
    """
    now = now or utcnow()
    for origin in origins:
        found = await origin.claimable(session, token, user_id)
        if found is not None:
            break
    else:
        raise MoneyError("there is no such play session", 404)
    play_session, _count_loaded, track = found  # the count is in the session's identity map
    sessions = origin.rows.sessions
    if play_session.play_id is not None:
        return await _result_of(session, origin, play_session.play_id, user_id)
    if track is None:
        raise MoneyError("the track is gone", 410)
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
    state = await _count(session, origin, user_id, track.id)
    cost = 0 if (track.free_for(user_id) or state.owned_at) else play_cost(state.paid_plays)
    charged: Charged | None = None
    paid_number = None
    if cost:
        paid_number = state.paid_plays + 1
        values: dict[str, object] = {"paid_plays": paid_number}
        if paid_number >= PAID_PLAYS_TO_OWN:
            values.update(origin.owning(now, "plays"))
        await _move_count(session, origin, user_id, track.id, state.paid_plays, values)
        charged = await _charge(
            session, user_id, track, cost, settings, origin.play_posting(track, token, paid_number)
        )
    owned = bool(state.owned_at) or (paid_number or 0) >= PAID_PLAYS_TO_OWN
    play_id = await origin.record_play(
        session,
        track,
        user_id,
        Heard(now, paid_number, cost, owned, charged.transaction_id if charged else None),
    )
    # The session is taken last, with its play: the guard makes a second charger of the
    # same session (on PostgreSQL, waiting on the row's lock) find it taken and roll back
    # all it wrote; a paid second charger has already stopped at the count's guard.
    taken = await session.execute(
        update(sessions)
        .where(sessions.id == play_session.id, origin.rows.unclaimed)
        .values({**origin.claiming(now), "play_id": play_id})
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        raise ConcurrentChange()
    if charged is not None:
        balance = charged.balance
    else:
        balance = await ledger.balance(session, ledger.wallet_key(user_id))
    await session.commit()
    outcome = PlayOutcome.CHARGED if cost else PlayOutcome.FREE
    return ClaimResult(outcome, cost, paid_number, owned, balance)


async def buy(
    session: AsyncSession, user_id: int, track: Playable, settings: MoneySettings
) -> ClaimResult:
    """Buy now: what is left of 1022 tokens, and the listener owns the track at once."""
    origin = track.origin
    state = await _count(session, origin, user_id, track.id)
    if state.owned_at is not None:
        raise MoneyError("you own this track already", 409)
    if track.free_for(user_id):
        raise MoneyError("this track is free for you: there is nothing to buy", 409)
    cost = buy_now_cost(state.paid_plays)
    now = utcnow()
    await _move_count(
        session, origin, user_id, track.id, state.paid_plays, origin.owning(now, "bought")
    )
    charged = await _charge(
        session, user_id, track, cost, settings, origin.buy_posting(track, user_id)
    )
    await origin.record_purchase(session, track, user_id, state.paid_plays, now)
    await session.commit()
    return ClaimResult(PlayOutcome.CHARGED, cost, None, True, charged.balance)


async def buy_now(
    session: AsyncSession,
    origins: Origins,
    track_id: int,
    viewer: Viewer,
    settings: MoneySettings,
) -> ClaimResult:
    """Buy now the track with this id, of whatever origin, for the viewer (404 if it does
    not exist for them): what the API and the track page's button do."""
    return await buy(
        session, viewer.user_id, await find(session, origins, track_id, viewer), settings
    )


async def _count(session: AsyncSession, origin: Origin, user_id: int, track_id: int) -> Any:
    """The listener's count of the track, made (at 0) if there is none yet."""
    rows = origin.rows
    row = await session.get(rows.counts, (user_id, track_id))
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            row = rows.counts(user_id=user_id, paid_plays=0, **{rows.count_track.key: track_id})
            session.add(row)
    except IntegrityError:
        row = await session.get(rows.counts, (user_id, track_id), populate_existing=True)
        assert row is not None
    return row


async def _move_count(
    session: AsyncSession,
    origin: Origin,
    user_id: int,
    track_id: int,
    paid_before: int,
    values: dict[str, object],
) -> None:
    """Change the count that was read as ``paid_before`` and not owned; ConcurrentChange
    when another transaction changed it first."""
    counts = origin.rows.counts
    moved = await session.execute(
        update(counts)
        .where(
            counts.user_id == user_id,
            origin.rows.count_track == track_id,
            counts.paid_plays == paid_before,
            counts.owned_at.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConcurrentChange()


@dataclass(frozen=True)
class Charged:
    transaction_id: int
    balance: int  # the listener's, after


async def _charge(
    session: AsyncSession,
    user_id: int,
    track: Playable,
    cost: int,
    settings: MoneySettings,
    posting: Posting,
) -> Charged:
    """Debit the listener, credit the payee floor(gross × share) over all it was paid and
    the instance the rest. 402 when the balance does not cover it."""
    wallet = ledger.wallet_key(user_id)
    try:
        posted = await ledger.post_split(
            session,
            posting.kind,
            posting.reference,
            payer=AccountRef(wallet, AccountKind.WALLET, user_id),
            payee=track.origin.payee(track),
            rest=AccountRef("instance", AccountKind.INSTANCE),
            amount=cost,
            share_bp=settings.artist_share_bp,
            details=posting.details,
            track_id=posting.track_id,
        )
    except InsufficientBalance:
        balance = await ledger.balance(session, wallet)
        raise MoneyError(
            f"your balance is too low: this costs {cost} tokens and you have "
            f"{balance}; top up, or listen to the preview",
            402,
        ) from None
    return Charged(posted.id, posted.balances[wallet])


async def _result_of(
    session: AsyncSession, origin: Origin, play_id: int, user_id: int
) -> ClaimResult:
    play = await origin.recorded(session, play_id)
    state = await session.get(origin.rows.counts, (user_id, play.track_id), populate_existing=True)
    return ClaimResult(
        play.outcome,
        play.tokens,
        play.paid_number,
        bool(state and state.owned_at),
        await ledger.balance(session, ledger.wallet_key(user_id)),
    )
