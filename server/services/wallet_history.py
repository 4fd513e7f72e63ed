"""A listener's wallet, every movement of it: what each line of the ledger's wallet account
was (the starter grant, a voucher, a card top-up, a paid play or a purchase of a local or
a partner's track, an account's closing) and the balance it left, so that the history
adds up to the balance shown beside it.

The lines are the ledger's own entries (``models.ledger.movements``); this module only
names them and finds the titles of the tracks they were for. The year's summary says
where the tokens a listener's plays and purchases paid went: each artist, each partner
instance (for its artists), and this instance's share (``models.ledger.paid_to``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.catalogue import Artist, Track
from models.federation import RemoteActor
from models.ledger import AccountKind
from models.remote_plays import RemoteTrack
from server.services.account_closing import CLOSING_KIND

PAGE = 50  # lines per page of the history


class MovementKind(StrEnum):
    STARTER = "starter"  # the tokens a new account is given
    VOUCHER = "voucher"
    CARD = "card"  # a top-up paid by card
    PLAY = "play"  # a paid play of a track of this instance
    BUY = "buy"  # the rest of a track's price, paid at once
    PARTNER_PLAY = "partner-play"  # a paid play of a partner instance's track
    PARTNER_BUY = "partner-buy"
    CLOSING = "closing"  # this account closed, or tokens given by an account that closed
    OTHER = "other"  # a movement of a kind this page does not name (an admin's, say)


@dataclass(frozen=True)
class WalletLine:
    id: int  # the ledger entry's id (pages of older lines start below it)
    at: datetime
    kind: MovementKind
    tokens: int  # added (positive) or taken (negative)
    balance: int  # the balance after this line
    track_id: int | None = None  # a local track's page, or a partner track's id here
    track_title: str | None = None
    partner: str | None = None  # the partner instance (its host, and port if any)
    paid_number: int | None = None  # which paid play of the track this was
    note: str | None = None  # the pack a card top-up bought


def _kind(movement: ledger.Movement) -> MovementKind:
    details = movement.details
    if movement.kind == "grant":
        return MovementKind.STARTER
    if movement.kind == "top-up":
        return MovementKind.CARD if details.get("method") == "stripe" else MovementKind.VOUCHER
    if movement.kind == "play":
        return MovementKind.PLAY
    if movement.kind == "buy":
        return MovementKind.BUY
    if movement.kind == "remote-play":
        buy = movement.reference.startswith("remote-buy:")
        return MovementKind.PARTNER_BUY if buy else MovementKind.PARTNER_PLAY
    if movement.kind == CLOSING_KIND:
        return MovementKind.CLOSING
    return MovementKind.OTHER


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _note(kind: MovementKind, details: dict[str, object]) -> str | None:
    value = details.get("pack") if kind is MovementKind.CARD else None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class WalletPage:
    balance: int
    lines: list[WalletLine]
    older: int | None  # where the next page starts (``before``), if there may be one


async def wallet_history(
    session: AsyncSession, user_id: int, *, limit: int = PAGE, before: int | None = None
) -> WalletPage:
    """The listener's balance and wallet lines, newest first (``limit`` of them, older
    than the line ``before`` when given), each with the balance it left."""
    history = await ledger.movements(
        session, ledger.wallet_key(user_id), limit=limit, before=before
    )
    moved = history.movements
    kinds = [_kind(movement) for movement in moved]
    partner_kinds = (MovementKind.PARTNER_PLAY, MovementKind.PARTNER_BUY)
    local_ids = {m.track_id for m in moved if m.track_id is not None}
    partner_ids = {
        track
        for movement, kind in zip(moved, kinds, strict=True)
        if kind in partner_kinds and (track := _int(movement.details.get("track"))) is not None
    }
    local = dict(
        (await session.execute(select(Track.id, Track.title).where(Track.id.in_(local_ids)))).all()
        if local_ids
        else []
    )
    partner = dict(
        (
            await session.execute(
                select(RemoteTrack.id, RemoteTrack.title).where(RemoteTrack.id.in_(partner_ids))
            )
        ).all()
        if partner_ids
        else []
    )
    lines = []
    for movement, kind in zip(moved, kinds, strict=True):
        details = movement.details
        track_id, title, host = movement.track_id, None, None
        if kind in partner_kinds:
            track_id = _int(details.get("track"))
            title = partner.get(track_id) if track_id is not None else None
            payee = details.get("payee")
            host = urlsplit(payee).netloc if isinstance(payee, str) else None
        elif track_id is not None:
            title = local.get(track_id)
        lines.append(
            WalletLine(
                id=movement.entry_id,
                at=movement.at,
                kind=kind,
                tokens=movement.amount,
                balance=movement.balance_after,
                track_id=track_id,
                track_title=title,
                partner=host,
                paid_number=_int(details.get("paid_number")),
                note=_note(kind, details),
            )
        )
    older = lines[-1].id if len(lines) == limit else None
    return WalletPage(history.balance, lines, older)


LISTENING_KINDS = ("play", "buy", "remote-play")  # the transactions a listener's plays make
FIRST_YEAR = 2000
LAST_YEAR = 9998  # a year ends on 1 January of the next: 9999's end is no datetime


class RecipientKind(StrEnum):
    ARTIST = "artist"  # an artist of this instance
    PARTNER = "partner"  # a partner instance, for its artist (settled between the instances)
    INSTANCE = "instance"  # this instance's share
    OTHER = "other"


@dataclass(frozen=True)
class Paid:
    kind: RecipientKind
    name: str  # the artist's display name, the partner's host, or empty for this instance
    handle: str | None  # the artist's name here (their page), for artists
    tokens: int


@dataclass(frozen=True)
class YearSummary:
    year: int
    spent: int  # what the listener's plays and purchases cost in the year
    paid: list[Paid]  # where it went, most first; the tokens add up to ``spent``


async def year_summary(session: AsyncSession, user_id: int, year: int) -> YearSummary:
    """What the listener's plays and purchases in ``year`` (UTC, ``FIRST_YEAR`` to
    ``LAST_YEAR``) paid, and to whom."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"year {year} is outside {FIRST_YEAR}-{LAST_YEAR}")
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    recipients = await ledger.paid_to(
        session, ledger.wallet_key(user_id), LISTENING_KINDS, start, end
    )
    owners = [(r.kind, r.owner_id) for r in recipients if r.owner_id is not None]
    artists = {owner for kind, owner in owners if kind is AccountKind.ARTIST}
    peers = {owner for kind, owner in owners if kind is AccountKind.PEER}
    names: dict[int, tuple[str, str]] = {}
    if artists:
        rows = await session.execute(
            select(Artist.id, Artist.display_name, Artist.name).where(Artist.id.in_(artists))
        )
        names = {artist: (shown, handle) for artist, shown, handle in rows}
    hosts: dict[int, str] = {}
    if peers:
        actors = await session.execute(
            select(RemoteActor.id, RemoteActor.uri).where(RemoteActor.id.in_(peers))
        )
        hosts = {actor: urlsplit(uri).netloc for actor, uri in actors}
    paid = []
    for recipient in recipients:
        owner = recipient.owner_id
        if recipient.kind is AccountKind.ARTIST and owner is not None:
            shown, handle = names.get(owner, ("", ""))
            paid.append(Paid(RecipientKind.ARTIST, shown, handle or None, recipient.tokens))
        elif recipient.kind is AccountKind.PEER and owner is not None:
            paid.append(Paid(RecipientKind.PARTNER, hosts.get(owner, ""), None, recipient.tokens))
        elif recipient.kind is AccountKind.INSTANCE:
            paid.append(Paid(RecipientKind.INSTANCE, "", None, recipient.tokens))
        else:  # no play credits another kind of account today; shown, not dropped
            paid.append(Paid(RecipientKind.OTHER, recipient.kind.value, None, recipient.tokens))
    return YearSummary(year, sum(p.tokens for p in paid), paid)
