"""Federated royalties as pure documents and arithmetic (docs/architecture.md#a-royalty-period).

The ``Listen`` the listener's instance (the *payer*) sends the artist's instance (the
*payee*) for each play, the period's ``RoyaltyStatement``, the payee's reconciliation and
its ``Accept``/``Reject`` answer, and the hub's ``Settlement`` that nets the pairs. Nothing
here does I/O: builders return new, unsigned dicts (integrity proofs are added and checked
elsewhere; parsers ignore a ``proof`` member), parsers raise a subclass of
:class:`~federation.parse.InvalidObject` whose message says in plain words what is wrong.

Decisions worth knowing:

* **Units.** Integer tokens only. Play ``n`` (1-based, 1..9) of a track by a listener costs
  ``2^n`` tokens (``cost(n-1) = 2^n`` in docs/architecture.md#money-stream-to-own); plays
  of owned or free tracks carry ``playNumber`` absent and 0 tokens. The paid play that is
  the 9th makes the listener the owner, so ``owned`` is true exactly then (and may be true
  for an unpaid play).
* **The artist share** is an integer in basis points (7000 = 70 %), as in
  :mod:`models.pricing` and ``Settings.artist_share_bp``; a percentage would need floats.
* **Rounding** (docs/architecture.md#money-stream-to-own: "for each payee the amount
  credited so far always equals ``floor(gross so far × share)`` … Statements between
  instances follow the same rule per payee"). The payee of a statement is the payee
  instance and "so far" is the whole chain of statements from this payer to this payee: a
  statement carries ``chargedBefore`` (the tokens charged in the earlier statements of its
  chain) and its ``totalOwed`` is ``floor((chargedBefore + totalCharged) × share) −
  floor(chargedBefore × share)``. So over any number of statements the artist side
  receives exactly ``floor(everything listeners paid × share)``, never a token more or
  less. The lines split that total by track the way the ledger splits it per play: the
  statement's paid listens, in order of (time, id), each credit the difference of the
  running floor; a line owes the sum of its listens' credits. Lines therefore always add
  up to the totals.
* **The chain.** ``previousStatement`` is the last statement of this payer the payee
  accepted, and a statement's period starts where that one's ended, so no listen falls in
  a gap or is counted twice. After a brown-out the payer sends one statement covering
  everything since the last accepted one (statements are cumulative by id lists).
* **What a statement covers.** Only paid listens (``tokens > 0``); free and owned plays
  are Listens for counting listeners, not money.
* **Canonical form.** Lines are sorted by track, listen ids sorted and unique, the digest
  is ``sha256:`` + hex SHA-256 of the sorted ids joined by ``\\n``. Parsers refuse any
  other order, so the same statement always serialises to the same JSON.
* **Privacy.** The listener appears only as ``HMAC-SHA256(secret, listener id ∥ payee
  host)``; a Listen that carries a name, e-mail or address field, or is addressed to the
  public, is refused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, cast

from federation import urls
from federation.discovery import DATA_INTEGRITY_CONTEXT
from federation.objects import CONTEXT
from federation.parse import PUBLIC, InvalidObject, id_of, same_origin
from models.pricing import BASIS_POINTS, PAID_PLAYS_TO_OWN, play_cost, share_of, split

MAX_URL_CHARS = urls.MAX_URL_CHARS

# Our terms, on top of the AS vocabulary and objects.py's ``playfair:`` prefix.
ROYALTY_TERMS: dict[str, Any] = {
    "RoyaltyStatement": "playfair:RoyaltyStatement",
    "Settlement": "playfair:Settlement",
    "listener": "playfair:listener",
    "playNumber": "playfair:playNumber",
    "tokens": "playfair:tokens",
    "owned": "playfair:owned",
    "payer": {"@id": "playfair:payer", "@type": "@id"},
    "payee": {"@id": "playfair:payee", "@type": "@id"},
    "artistShareBasisPoints": "playfair:artistShareBasisPoints",
    "chargedBefore": "playfair:chargedBefore",
    "previousStatement": {"@id": "playfair:previousStatement", "@type": "@id"},
    "lines": {"@id": "playfair:lines", "@container": "@list"},
    "track": {"@id": "playfair:track", "@type": "@id"},
    "paidPlays": "playfair:paidPlays",
    "tokensCharged": "playfair:tokensCharged",
    "tokensOwed": "playfair:tokensOwed",
    "totalPlays": "playfair:totalPlays",
    "totalCharged": "playfair:totalCharged",
    "totalOwed": "playfair:totalOwed",
    "listens": "playfair:listens",
    "listensDigest": "playfair:listensDigest",
    "disputes": {"@id": "playfair:disputes", "@container": "@list"},
    "reason": "playfair:reason",
    "listen": {"@id": "playfair:listen", "@type": "@id"},
    "expected": "playfair:expected",
    "stated": "playfair:stated",
    "nets": {"@id": "playfair:nets", "@container": "@list"},
    "member": {"@id": "playfair:member", "@type": "@id"},
    "net": "playfair:net",
    "transfers": {"@id": "playfair:transfers", "@container": "@list"},
    "statements": "playfair:statements",
    "statementsDigest": "playfair:statementsDigest",
}
# Signed documents carry a ``proof`` (federation/proofs.py): the data-integrity context
# defines it and its members.
ROYALTY_CONTEXT: list[Any] = [*CONTEXT, DATA_INTEGRITY_CONTEXT, ROYALTY_TERMS]

# Top-level members a Listen must never carry: they would say who the listener is.
# fmt: off
PERSONAL_FIELDS = frozenset({
    "name", "nameMap", "preferredUsername", "username", "email", "e-mail", "mail", "ip",
    "ipAddress", "remoteAddress", "address", "attributedTo", "summary", "content",
})
# fmt: on
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LISTENER = re.compile(r"^[0-9a-f]{64}$")


class InvalidRoyaltyDocument(InvalidObject):
    """A royalty document that cannot be accepted; str() says why."""


class InvalidListen(InvalidRoyaltyDocument):
    pass


class InvalidStatement(InvalidRoyaltyDocument):
    pass


class InvalidAnswer(InvalidRoyaltyDocument):
    pass


class InvalidSettlement(InvalidRoyaltyDocument):
    pass


# --- small helpers ------------------------------------------------------------------------


def instant(moment: datetime) -> str:
    """ISO 8601 in UTC with ``Z``; microseconds only when there are some (lossless)."""
    utc = moment.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _is_url(value: Any) -> bool:
    return urls.is_remote_url(value)


def _url(value: Any, what: str, error: type[InvalidRoyaltyDocument]) -> str:
    if value is None:
        raise error(f"{what} is missing")
    if not _is_url(value):
        shown = value[:200] if isinstance(value, str) else type(value).__name__
        raise error(f"{what} must be an absolute http(s) URL, not {shown!r}")
    return str(value)


# An id in the one shape our own ids take: https, a lower-case DNS host, the default port,
# and a path of unreserved characters only. Such an id is an acceptable remote URL whose
# origin is ("https", host, 443) without parsing it; anything else gets the full check.
_FAST_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_FAST_PATH = "[A-Za-z0-9._~/-]*"


@functools.lru_cache(maxsize=64)
def _fast_shape(owner: str) -> re.Pattern[str] | None:
    """The pattern of ids in the fast shape on ``owner``'s origin, None if it has none."""
    found = urls.origin(owner)
    if found is None or found[0] != "https" or found[2] != 443:
        return None
    host = found[1]
    if not _FAST_HOST.fullmatch(host):
        return None
    return re.compile(f"https://{re.escape(host)}/{_FAST_PATH}")


def _in_fast_shape(value: Any, fast: re.Pattern[str] | None) -> bool:
    """Whether ``value`` is an id in the fast shape ``fast`` (``_fast_shape``): then it is
    an acceptable URL on its owner's origin, with no further check."""
    return (
        fast is not None
        and type(value) is str
        and len(value) <= urls.MAX_URL_CHARS
        and fast.fullmatch(value) is not None
    )


def _ids_on(ids: Iterable[Any], owner: str, what: str, error: type[InvalidRoyaltyDocument]) -> None:
    """Raise ``error`` unless every id is an acceptable URL on ``owner``'s origin."""
    fast = _fast_shape(owner)
    for value in ids:
        if _in_fast_shape(value, fast):
            continue
        _url(value, what, error)
        if not same_origin(value, owner):
            raise error(f"the Listen {value} is not on the payer's host")


@functools.lru_cache(maxsize=4096)
def _is_url_cached(value: str) -> bool:
    return _is_url(value)


@functools.lru_cache(maxsize=4096)
def _same_origin_cached(a: str, b: str) -> bool:
    """:func:`same_origin` for the few tracks and actors a batch of Listens repeats."""
    return same_origin(a, b)


def _int(value: Any, what: str, error: type[InvalidRoyaltyDocument], minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be a whole number")
    if value < minimum:
        raise error(f"{what} must be at least {minimum}, not {value}")
    return value


def _time(value: Any, what: str, error: type[InvalidRoyaltyDocument]) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise error(f"{what} must be an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise error(f"{what} is not an ISO 8601 date and time: {value!r}") from None
    if parsed.tzinfo is None:
        raise error(f"{what} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise error(f"{what} is out of range") from None


def _object(document: Any, what: str, error: type[InvalidRoyaltyDocument]) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise error(f"the {what} must be a JSON object, not {type(document).__name__}")
    return document


def _type(document: dict[str, Any], expected: Set[str], error: type[InvalidRoyaltyDocument]) -> str:
    value = document.get("type")
    if not isinstance(value, str) or value not in expected:
        wanted = " or ".join(sorted(expected))
        raise error(f"the document must be of type {wanted}, not {value!r}")
    return value


def _ids(
    value: Any, what: str, error: type[InvalidRoyaltyDocument], *, urls_checked_later: bool = False
) -> tuple[str, ...]:
    """The ids of an embedded ``OrderedCollection`` (``totalItems`` must match), each an
    acceptable URL; with ``urls_checked_later`` only strings, for a caller that checks
    each id itself (a statement's Listen ids: ``check_statement``, once per id)."""
    collection = _object(value, what, error)
    if collection.get("type") != "OrderedCollection":
        raise error(f"the {what} must be an OrderedCollection")
    items = collection.get("orderedItems")
    if not isinstance(items, list):
        raise error(f"the {what} has no orderedItems list")
    if urls_checked_later:
        found = [id_of(item) for item in items]
        if None in found:
            raise error(f"an item of the {what} is missing")
        ids = tuple(cast(list[str], found))
    else:
        ids = tuple(_url(id_of(item), f"an item of the {what}", error) for item in items)
    total = _int(collection.get("totalItems"), f"the {what}' totalItems", error)
    if total != len(ids):
        raise error(f"the {what} say totalItems {total} but list {len(ids)}")
    return ids


def _id_collection(ids: Sequence[str]) -> dict[str, Any]:
    return {"type": "OrderedCollection", "totalItems": len(ids), "orderedItems": list(ids)}


def _check_sorted_unique(
    items: Sequence[str], what: str, error: type[InvalidRoyaltyDocument]
) -> None:
    for before, after in itertools.pairwise(items):
        if before == after:
            raise error(f"{what} {after} appears twice")
        if before > after:
            raise error(f"{what} are not in sorted order ({after} comes after {before})")


def digest_of(ids: Iterable[str]) -> str:
    """``sha256:`` + hex SHA-256 of the sorted, distinct ids joined by newlines."""
    joined = "\n".join(sorted(set(ids)))
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()


listens_digest = digest_of


@dataclass(frozen=True)
class Period:
    """A half-open time span ``[start, end)`` of aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs aware datetimes")
        if self.end <= self.start:
            raise ValueError("a period must end after it starts")

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


# --- Listen (§6.3) --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenRecord:
    id: str  # absolute URL under the payer's base
    payer: str  # the payer instance actor
    track: str  # the track object on the payee
    listener: str  # pseudonymous_listener(...)
    play_number: int | None  # 1..9 for a paid play; None for a free or owned play
    tokens: int
    owned: bool  # the listener owns the track after this play
    at: datetime  # aware

    @property
    def paid(self) -> bool:
        return self.play_number is not None


def pseudonymous_listener(secret: bytes, listener_id: int, payee_host: str) -> str:
    """A keyed hash of the listener and the payee's host: stable per payee, so the payee can
    count distinct listeners and owners, and unlinkable across payees without the secret."""
    message = f"{listener_id}\n{payee_host.lower()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def listen_tokens(play_number: int | None) -> int:
    """What a Listen must say it charged: 2^n for paid play n (1-based), else 0."""
    return 0 if play_number is None else play_cost(play_number - 1)


def check_listen(record: ListenRecord) -> None:
    """Raise :class:`InvalidListen` unless the record is consistent (the rules both the
    builder and the parser apply)."""
    if type(record.payer) is not str or not _is_url_cached(record.payer):
        _url(record.payer, "the Listen's actor", InvalidListen)
    if not _in_fast_shape(record.id, _fast_shape(record.payer)):
        _url(record.id, "the Listen id", InvalidListen)
        if not same_origin(record.id, record.payer):
            raise InvalidListen("the Listen id is not on the same host as its actor")
    if type(record.track) is not str or not _is_url_cached(record.track):
        _url(record.track, "the Listen's object (the track)", InvalidListen)
    if _same_origin_cached(record.track, record.payer):
        raise InvalidListen("a Listen is for a track on another instance, not the actor's")
    if not _LISTENER.match(record.listener):
        raise InvalidListen("the listener must be a pseudonymous id (64 hex digits)")
    if record.at.tzinfo is None:
        raise InvalidListen("the time of the Listen has no time zone")
    number = record.play_number
    if number is not None:
        if isinstance(number, bool) or not 1 <= number <= PAID_PLAYS_TO_OWN:
            raise InvalidListen(f"the play number must be 1 to {PAID_PLAYS_TO_OWN}, not {number}")
        if record.owned != (number == PAID_PLAYS_TO_OWN):
            raise InvalidListen(
                f"the listener owns a track after paid play {PAID_PLAYS_TO_OWN} and not before"
            )
    if record.tokens != listen_tokens(number):
        raise InvalidListen(
            f"a play with play number {number} costs {listen_tokens(number)} tokens, "
            f"not {record.tokens}"
        )


def listen_activity(
    record: ListenRecord, *, to: Sequence[str] = (), cc: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``Listen`` activity (unsigned). Carries nothing about the listener but the
    pseudonymous id."""
    check_listen(record)
    if PUBLIC in to or PUBLIC in cc:
        raise ValueError("a Listen is never public")
    document: dict[str, Any] = {
        "@context": ROYALTY_CONTEXT,
        "id": record.id,
        "type": "Listen",
        "actor": record.payer,
        "object": record.track,
        "published": instant(record.at),
        "listener": record.listener,
        "tokens": record.tokens,
        "owned": record.owned,
    }
    if record.play_number is not None:
        document["playNumber"] = record.play_number
    if to:
        document["to"] = list(to)
    if cc:
        document["cc"] = list(cc)
    return document


def parse_listen(document: Any) -> ListenRecord:
    listen = _object(document, "Listen", InvalidListen)
    _type(listen, {"Listen"}, InvalidListen)
    personal = sorted(PERSONAL_FIELDS & listen.keys())
    if personal:
        raise InvalidListen(f"a Listen must not carry personal data ({', '.join(personal)})")
    for key in ("to", "cc", "bto", "bcc", "audience"):
        value = listen.get(key)
        addresses = value if isinstance(value, list) else [value]
        if any(id_of(a) in {PUBLIC, "as:Public", "Public"} for a in addresses):
            raise InvalidListen("a Listen must not be addressed to the public")
    listener = listen.get("listener")
    if not isinstance(listener, str):
        raise InvalidListen("the Listen has no pseudonymous listener id")
    play_number = listen.get("playNumber")
    if play_number is not None:
        play_number = _int(play_number, "the play number", InvalidListen, 1)
    owned = listen.get("owned")
    if not isinstance(owned, bool):
        raise InvalidListen("owned must be true or false")
    record = ListenRecord(
        id=_url(listen.get("id"), "the Listen id", InvalidListen),
        payer=_url(id_of(listen.get("actor")), "the Listen's actor", InvalidListen),
        track=_url(id_of(listen.get("object")), "the Listen's object (the track)", InvalidListen),
        listener=listener,
        play_number=play_number,
        tokens=_int(listen.get("tokens"), "tokens", InvalidListen),
        owned=owned,
        at=_time(listen.get("published"), "the time of the Listen", InvalidListen),
    )
    check_listen(record)
    return record


# --- RoyaltyStatement (§6.4) ----------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    track: str
    paid_plays: int
    tokens_charged: int
    tokens_owed: int


@dataclass(frozen=True)
class Statement:
    id: str
    payer: str
    payee: str
    period_start: datetime
    period_end: datetime  # exclusive
    lines: tuple[StatementLine, ...]  # sorted by track
    total_plays: int
    total_charged: int
    total_owed: int
    listen_ids: tuple[str, ...]  # sorted, distinct
    listens_digest: str
    previous: str | None  # the payer's last statement the payee accepted
    artist_share_bp: int
    charged_before: int  # tokens charged in the earlier statements of the chain

    @property
    def period(self) -> Period:
        return Period(self.period_start, self.period_end)

    @property
    def charged_through(self) -> int:
        """Tokens charged in the chain up to and including this statement."""
        return self.charged_before + self.total_charged


def owed_for(charged_before: int, charged: int, share_bp: int) -> int:
    """The artist side of ``charged`` more tokens on top of ``charged_before`` (§4)."""
    return share_of(charged_before + charged, share_bp) - share_of(charged_before, share_bp)


def _lines(
    listens: Iterable[ListenRecord], charged_before: int, share_bp: int
) -> tuple[StatementLine, ...]:
    plays: dict[str, int] = defaultdict(int)
    charged: dict[str, int] = defaultdict(int)
    owed: dict[str, int] = defaultdict(int)
    gross = charged_before
    for listen in sorted(listens, key=lambda r: (r.at, r.id)):
        to_payee, _ = split(gross, listen.tokens, share_bp)
        gross += listen.tokens
        plays[listen.track] += 1
        charged[listen.track] += listen.tokens
        owed[listen.track] += to_payee
    return tuple(
        StatementLine(track, plays[track], charged[track], owed[track]) for track in sorted(plays)
    )


def _distinct(listens: Iterable[ListenRecord]) -> dict[str, ListenRecord]:
    """Listens by id; the same Listen delivered twice counts once."""
    by_id: dict[str, ListenRecord] = {}
    for listen in listens:
        seen = by_id.setdefault(listen.id, listen)
        if seen != listen:
            raise ValueError(f"two different Listens share the id {listen.id}")
    return by_id


def build_statement(
    id: str,
    payer: str,
    payee: str,
    period: Period,
    listens: Iterable[ListenRecord],
    previous: Statement | None,
    artist_share_bp: int,
) -> Statement:
    """The statement of the paid listens of ``period`` (free plays are left out).

    ``previous`` is the last statement of this chain the payee accepted (``None`` for the
    first); the period must start where it ended. Raises ``ValueError`` for listens of
    another payer, outside the period or not for the payee's tracks, and
    :class:`InvalidStatement` if the arguments make no valid statement.
    """
    if previous is not None:
        if (previous.payer, previous.payee) != (payer, payee):
            raise ValueError("the previous statement is of another payer or payee")
        if period.start != previous.period_end:
            raise ValueError("the period must start where the previous statement's ended")
    paid: list[ListenRecord] = []
    for listen in _distinct(listens).values():
        check_listen(listen)
        if listen.payer != payer:
            raise ValueError(f"the Listen {listen.id} is of another payer")
        if listen.at not in period:
            raise ValueError(f"the Listen {listen.id} is outside the period")
        if not _same_origin_cached(listen.track, payee):
            raise ValueError(f"the Listen {listen.id} is for a track the payee does not host")
        if listen.paid:
            paid.append(listen)
    charged_before = previous.charged_through if previous is not None else 0
    lines = _lines(paid, charged_before, artist_share_bp)
    listen_ids = tuple(sorted(listen.id for listen in paid))
    statement = Statement(
        id=id,
        payer=payer,
        payee=payee,
        period_start=period.start,
        period_end=period.end,
        lines=lines,
        total_plays=sum(line.paid_plays for line in lines),
        total_charged=sum(line.tokens_charged for line in lines),
        total_owed=sum(line.tokens_owed for line in lines),
        listen_ids=listen_ids,
        listens_digest=digest_of(listen_ids),
        previous=previous.id if previous is not None else None,
        artist_share_bp=artist_share_bp,
        charged_before=charged_before,
    )
    check_statement(statement)
    return statement


def check_statement(statement: Statement) -> None:
    """Raise :class:`InvalidStatement` unless the statement is consistent in itself."""
    error = InvalidStatement
    s = statement
    _url(s.id, "the statement id", error)
    _url(s.payer, "the payer", error)
    _url(s.payee, "the payee", error)
    if not same_origin(s.id, s.payer):
        raise error("the statement id is not on the same host as its payer")
    if same_origin(s.payer, s.payee):
        raise error("the payer and the payee are the same instance")
    if s.previous is not None:
        _url(s.previous, "the previous statement", error)
        if not same_origin(s.previous, s.payer) or s.previous == s.id:
            raise error("the previous statement must be an earlier one of the payer")
    if s.period_start.tzinfo is None or s.period_end.tzinfo is None:
        raise error("the period has no time zone")
    if s.period_end <= s.period_start:
        raise error("the period must end after it starts")
    if not 0 <= s.artist_share_bp <= BASIS_POINTS:
        raise error(f"the artist share must be 0 to {BASIS_POINTS} basis points")
    for what, number in (
        ("chargedBefore", s.charged_before),
        ("totalPlays", s.total_plays),
        ("totalCharged", s.total_charged),
        ("totalOwed", s.total_owed),
    ):
        if number < 0:
            raise error(f"{what} must not be negative")
    _check_sorted_unique([line.track for line in s.lines], "the line for track", error)
    for line in s.lines:
        _check_line(line, s.payee)
    for what, stated, summed in (
        ("totalPlays", s.total_plays, sum(line.paid_plays for line in s.lines)),
        ("totalCharged", s.total_charged, sum(line.tokens_charged for line in s.lines)),
        ("totalOwed", s.total_owed, sum(line.tokens_owed for line in s.lines)),
    ):
        if stated != summed:
            raise error(f"{what} is {stated} but the lines add up to {summed}")
    _check_sorted_unique(s.listen_ids, "the Listen", error)
    _ids_on(s.listen_ids, s.payer, "a Listen id", error)
    if s.total_plays != len(s.listen_ids):
        raise error(
            f"the statement counts {s.total_plays} paid plays but lists {len(s.listen_ids)}"
        )
    if s.listens_digest != digest_of(s.listen_ids):
        raise error("the listens digest is not the digest of the listed Listen ids")
    rule = owed_for(s.charged_before, s.total_charged, s.artist_share_bp)
    if s.total_owed != rule:
        raise error(
            f"totalOwed is {s.total_owed} but the artist share of {s.total_charged} tokens "
            f"after {s.charged_before} is {rule}"
        )


def _check_line(line: StatementLine, payee: str) -> None:
    error = InvalidStatement
    _url(line.track, "a line's track", error)
    if not same_origin(line.track, payee):
        raise error(f"the track {line.track} is not on the payee's host")
    if line.paid_plays < 1:
        raise error(f"the line for {line.track} has no paid plays")
    cheapest, dearest = play_cost(0), play_cost(PAID_PLAYS_TO_OWN - 1)
    if not cheapest * line.paid_plays <= line.tokens_charged <= dearest * line.paid_plays:
        raise error(
            f"{line.paid_plays} paid plays cannot cost {line.tokens_charged} tokens "
            f"(line for {line.track})"
        )
    if not 0 <= line.tokens_owed <= line.tokens_charged:
        raise error(f"the line for {line.track} owes more than was charged, or less than 0")


def statement_document(statement: Statement) -> dict[str, Any]:
    """The ``RoyaltyStatement`` object (unsigned), to be sent in a ``Create``."""
    s = statement
    document: dict[str, Any] = {
        "@context": ROYALTY_CONTEXT,
        "id": s.id,
        "type": "RoyaltyStatement",
        "attributedTo": s.payer,
        "payer": s.payer,
        "payee": s.payee,
        "startTime": instant(s.period_start),
        "endTime": instant(s.period_end),
        "artistShareBasisPoints": s.artist_share_bp,
        "chargedBefore": s.charged_before,
        "lines": [
            {
                "track": line.track,
                "paidPlays": line.paid_plays,
                "tokensCharged": line.tokens_charged,
                "tokensOwed": line.tokens_owed,
            }
            for line in s.lines
        ],
        "totalPlays": s.total_plays,
        "totalCharged": s.total_charged,
        "totalOwed": s.total_owed,
        "listens": _id_collection(s.listen_ids),
        "listensDigest": s.listens_digest,
    }
    if s.previous is not None:
        document["previousStatement"] = s.previous
    return document


def statement_create(statement: Statement, hub: str | None) -> dict[str, Any]:
    """``Create`` of the statement from the payer, to the payee, cc the hub."""
    document: dict[str, Any] = {
        "@context": ROYALTY_CONTEXT,
        "id": f"{statement.id}/create",
        "type": "Create",
        "actor": statement.payer,
        "object": statement_document(statement),
        "to": [statement.payee],
    }
    if hub is not None:
        document["cc"] = [hub]
    return document


def parse_statement(document: Any) -> Statement:
    error = InvalidStatement
    body = _object(document, "statement", error)
    _type(body, {"RoyaltyStatement"}, error)
    payer = _url(id_of(body.get("payer")), "the payer", error)
    attributed = body.get("attributedTo")
    if attributed is not None and id_of(attributed) != payer:
        raise error("the statement is attributed to someone other than its payer")
    raw_lines = body.get("lines")
    if not isinstance(raw_lines, list):
        raise error("the statement has no list of lines")
    previous = body.get("previousStatement")
    digest = body.get("listensDigest")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise error("the listens digest must be sha256: and 64 lower-case hex digits")
    statement = Statement(
        id=_url(body.get("id"), "the statement id", error),
        payer=payer,
        payee=_url(id_of(body.get("payee")), "the payee", error),
        period_start=_time(body.get("startTime"), "the start of the period", error),
        period_end=_time(body.get("endTime"), "the end of the period", error),
        lines=tuple(_parse_line(item) for item in raw_lines),
        total_plays=_int(body.get("totalPlays"), "totalPlays", error),
        total_charged=_int(body.get("totalCharged"), "totalCharged", error),
        total_owed=_int(body.get("totalOwed"), "totalOwed", error),
        # each id is checked by check_statement below, once
        listen_ids=_ids(body.get("listens"), "listens", error, urls_checked_later=True),
        listens_digest=digest,
        previous=None if previous is None else _url(previous, "the previous statement", error),
        artist_share_bp=_int(body.get("artistShareBasisPoints"), "the artist share", error),
        charged_before=_int(body.get("chargedBefore"), "chargedBefore", error),
    )
    check_statement(statement)
    return statement


def _parse_line(value: Any) -> StatementLine:
    error = InvalidStatement
    line = _object(value, "statement line", error)
    return StatementLine(
        track=_url(id_of(line.get("track")), "a line's track", error),
        paid_plays=_int(line.get("paidPlays"), "a line's paidPlays", error),
        tokens_charged=_int(line.get("tokensCharged"), "a line's tokensCharged", error),
        tokens_owed=_int(line.get("tokensOwed"), "a line's tokensOwed", error),
    )


# --- reconciliation (§6.5) ------------------------------------------------------------------


class Dispute(StrEnum):
    INCONSISTENT = "inconsistent"  # the statement contradicts itself
    SHARE = "share"  # not the agreed artist share
    CHAIN = "chain"  # previousStatement is not the last one we accepted
    CHARGED_BEFORE = "charged-before"  # chargedBefore does not continue the chain
    PERIOD = "period"  # the period does not start where the last accepted one ended
    UNAVAILABLE_LISTEN = "unavailable-listen"  # listed, and the payer could not produce it
    OTHER_PAYER = "other-payer"  # listed, but sent by another instance
    UNKNOWN_TRACK = "unknown-track"  # listed, for a track we do not host
    OUTSIDE_PERIOD = "outside-period"  # listed, played outside the statement's period
    UNPAID_LISTEN = "unpaid-listen"  # listed, but a free or owned play
    OMITTED_LISTEN = "omitted-listen"  # a paid Listen of the period we hold, not listed
    PAID_PLAYS = "paid-plays"  # a line's numbers differ from what its listens add up to
    TOKENS_CHARGED = "tokens-charged"
    TOKENS_OWED = "tokens-owed"
    TOTAL_PLAYS = "total-plays"
    TOTAL_CHARGED = "total-charged"
    TOTAL_OWED = "total-owed"


DISPUTE_TEXT: dict[str, str] = {
    Dispute.INCONSISTENT: "the statement contradicts itself",
    Dispute.SHARE: "the artist share is not the one agreed",
    Dispute.CHAIN: "the previous statement is not the last one accepted",
    Dispute.CHARGED_BEFORE: "the tokens charged before do not continue the chain",
    Dispute.PERIOD: "the period does not start where the last accepted statement ended",
    Dispute.UNAVAILABLE_LISTEN: "a listed Listen could not be fetched",
    Dispute.OTHER_PAYER: "a listed Listen was sent by another instance",
    Dispute.UNKNOWN_TRACK: "a listed Listen is for a track not hosted here",
    Dispute.OUTSIDE_PERIOD: "a listed Listen was played outside the period",
    Dispute.UNPAID_LISTEN: "a listed Listen was not a paid play",
    Dispute.OMITTED_LISTEN: "a paid Listen of the period is not listed",
    Dispute.PAID_PLAYS: "the paid plays of a track differ from its Listens",
    Dispute.TOKENS_CHARGED: "the tokens charged for a track differ from its Listens",
    Dispute.TOKENS_OWED: "the tokens owed for a track differ from the artist share",
    Dispute.TOTAL_PLAYS: "the total of paid plays differs from the Listens",
    Dispute.TOTAL_CHARGED: "the total charged differs from the Listens",
    Dispute.TOTAL_OWED: "the total owed differs from the artist share of the Listens",
}


@dataclass(frozen=True)
class DisputedLine:
    reason: str  # a Dispute value (peers may send codes we do not know)
    track: str | None = None  # None: the statement as a whole
    listen: str | None = None
    expected: int | str | None = None
    stated: int | str | None = None

    @property
    def text(self) -> str:
        """Plain words for an admin."""
        words = DISPUTE_TEXT.get(self.reason, self.reason)
        about = [part for part in (self.track, self.listen) if part]
        if about:
            words += f" ({', '.join(about)})"
        if self.expected is not None or self.stated is not None:
            words += f": expected {self.expected}, stated {self.stated}"
        return words


@dataclass(frozen=True)
class Reconciliation:
    missing: tuple[str, ...]  # listed Listen ids we do not hold: fetch them, then again
    disputed: tuple[DisputedLine, ...]

    @property
    def accepted(self) -> bool:
        return not self.missing and not self.disputed

    @property
    def answer(self) -> Literal["Accept", "Reject"] | None:
        """What to answer now; ``None`` while Listens are still to be fetched."""
        if self.disputed:
            return "Reject"
        return None if self.missing else "Accept"


_LINE_FIELDS = (
    (Dispute.PAID_PLAYS, "paid_plays"),
    (Dispute.TOKENS_CHARGED, "tokens_charged"),
    (Dispute.TOKENS_OWED, "tokens_owed"),
)


def reconcile(
    statement: Statement,
    known: Mapping[str, ListenRecord],
    hosted_tracks: Set[str],
    artist_share_bp: int,
    last_accepted: Statement | None,
    unavailable: Set[str] = frozenset(),
) -> Reconciliation:
    """Compare a statement with the Listens we hold (the payee's side).

    ``known`` maps Listen ids to what we recorded: at least every listed id we have and
    every Listen of this payer in the period (to see omissions). ``last_accepted`` is the
    last statement of this payer we accepted; ``unavailable`` are listed ids the payer
    could not produce when we fetched them (disputed rather than missing).
    """
    disputes: list[DisputedLine] = []
    missing: list[str] = []
    try:
        check_statement(statement)
    except InvalidStatement as inconsistency:
        disputes.append(DisputedLine(Dispute.INCONSISTENT, stated=str(inconsistency)))

    if statement.artist_share_bp != artist_share_bp:
        disputes.append(
            DisputedLine(Dispute.SHARE, expected=artist_share_bp, stated=statement.artist_share_bp)
        )
    expected_previous = last_accepted.id if last_accepted is not None else None
    if statement.previous != expected_previous:
        disputes.append(
            DisputedLine(Dispute.CHAIN, expected=expected_previous, stated=statement.previous)
        )
    charged_before = last_accepted.charged_through if last_accepted is not None else 0
    if statement.charged_before != charged_before:
        disputes.append(
            DisputedLine(
                Dispute.CHARGED_BEFORE, expected=charged_before, stated=statement.charged_before
            )
        )
    if last_accepted is not None and statement.period_start != last_accepted.period_end:
        disputes.append(
            DisputedLine(
                Dispute.PERIOD,
                expected=instant(last_accepted.period_end),
                stated=instant(statement.period_start),
            )
        )

    period_start, period_end = statement.period_start, statement.period_end
    listed = set(statement.listen_ids)
    covered: list[ListenRecord] = []
    for listen_id in sorted(listed):
        record = known.get(listen_id)
        if record is None:
            if listen_id in unavailable:
                disputes.append(DisputedLine(Dispute.UNAVAILABLE_LISTEN, listen=listen_id))
            else:
                missing.append(listen_id)
            continue
        if record.payer != statement.payer:
            problem = DisputedLine(
                Dispute.OTHER_PAYER, listen=listen_id, expected=statement.payer, stated=record.payer
            )
        elif record.track not in hosted_tracks:
            problem = DisputedLine(Dispute.UNKNOWN_TRACK, track=record.track, listen=listen_id)
        elif not period_start <= record.at < period_end:
            problem = DisputedLine(
                Dispute.OUTSIDE_PERIOD,
                track=record.track,
                listen=listen_id,
                stated=instant(record.at),
            )
        elif not record.paid:
            problem = DisputedLine(Dispute.UNPAID_LISTEN, track=record.track, listen=listen_id)
        else:
            covered.append(record)
            continue
        disputes.append(problem)

    for record in sorted(known.values(), key=lambda r: r.id):
        if (
            record.paid
            and record.id not in listed
            and record.payer == statement.payer
            and record.track in hosted_tracks
            and period_start <= record.at < period_end
        ):
            disputes.append(
                DisputedLine(Dispute.OMITTED_LISTEN, track=record.track, listen=record.id)
            )

    if not missing:
        disputes.extend(_compare_lines(statement, covered, charged_before, artist_share_bp))
    return Reconciliation(missing=tuple(missing), disputed=tuple(disputes))


def _compare_lines(
    statement: Statement, covered: list[ListenRecord], charged_before: int, share_bp: int
) -> list[DisputedLine]:
    disputes: list[DisputedLine] = []
    expected = {line.track: line for line in _lines(covered, charged_before, share_bp)}
    stated = {line.track: line for line in statement.lines}
    nothing = StatementLine("", 0, 0, 0)
    for track in sorted(expected.keys() | stated.keys()):
        ours, theirs = expected.get(track, nothing), stated.get(track, nothing)
        for reason, name in _LINE_FIELDS:
            want, got = getattr(ours, name), getattr(theirs, name)
            if want != got:
                disputes.append(DisputedLine(reason, track=track, expected=want, stated=got))
    for reason, want, got in (
        (Dispute.TOTAL_PLAYS, sum(x.paid_plays for x in expected.values()), statement.total_plays),
        (
            Dispute.TOTAL_CHARGED,
            sum(x.tokens_charged for x in expected.values()),
            statement.total_charged,
        ),
        (Dispute.TOTAL_OWED, sum(x.tokens_owed for x in expected.values()), statement.total_owed),
    ):
        if want != got:
            disputes.append(DisputedLine(reason, expected=want, stated=got))
    return disputes


@dataclass(frozen=True)
class Answer:
    id: str
    kind: Literal["Accept", "Reject"]
    statement: str  # the statement's id
    responder: str  # the payee instance actor
    disputed: tuple[DisputedLine, ...] = field(default=())


def answer_document(
    kind: Literal["Accept", "Reject"],
    statement_id: str,
    responder: str,
    disputed: Sequence[DisputedLine],
    *,
    id: str,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
) -> dict[str, Any]:
    """``Accept`` (no disputes) or ``Reject`` (at least one) of a statement (unsigned)."""
    answer = Answer(id, kind, statement_id, responder, tuple(disputed))
    _check_answer(answer, ValueError)
    document: dict[str, Any] = {
        "@context": ROYALTY_CONTEXT,
        "id": id,
        "type": kind,
        "actor": responder,
        "object": statement_id,
    }
    if disputed:
        document["disputes"] = [_dispute_json(d) for d in disputed]
    if to:
        document["to"] = list(to)
    if cc:
        document["cc"] = list(cc)
    return document


def _dispute_json(dispute: DisputedLine) -> dict[str, Any]:
    found: dict[str, Any] = {"reason": dispute.reason, "summary": dispute.text}
    for key, value in (
        ("track", dispute.track),
        ("listen", dispute.listen),
        ("expected", dispute.expected),
        ("stated", dispute.stated),
    ):
        if value is not None:
            found[key] = value
    return found


def _check_answer(answer: Answer, error: type[ValueError]) -> None:
    if answer.kind not in {"Accept", "Reject"}:
        raise error("an answer is an Accept or a Reject")
    for what, value in (
        ("the answer id", answer.id),
        ("the answer's actor", answer.responder),
        ("the statement id", answer.statement),
    ):
        if not _is_url(value):
            raise error(f"{what} must be an absolute http(s) URL")
    if not same_origin(answer.id, answer.responder):
        raise error("the answer id is not on the same host as its actor")
    if answer.kind == "Accept" and answer.disputed:
        raise error("an Accept disputes nothing")
    if answer.kind == "Reject" and not answer.disputed:
        raise error("a Reject must say which lines it disputes")


def parse_answer(document: Any) -> Answer:
    error = InvalidAnswer
    body = _object(document, "answer", error)
    kind: Literal["Accept", "Reject"] = (
        "Accept" if _type(body, {"Accept", "Reject"}, error) == "Accept" else "Reject"
    )
    raw = body.get("disputes", [])
    if not isinstance(raw, list):
        raise error("disputes must be a list")
    answer = Answer(
        id=_url(body.get("id"), "the answer id", error),
        kind=kind,
        statement=_url(id_of(body.get("object")), "the statement id", error),
        responder=_url(id_of(body.get("actor")), "the answer's actor", error),
        disputed=tuple(_parse_dispute(item) for item in raw),
    )
    _check_answer(answer, error)
    return answer


def _parse_dispute(value: Any) -> DisputedLine:
    error = InvalidAnswer
    item = _object(value, "dispute", error)
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason or len(reason) > 100:
        raise error("a dispute needs a reason code")

    def optional_url(key: str) -> str | None:
        value = item.get(key)
        return None if value is None else _url(value, f"a dispute's {key}", error)

    def number_or_text(key: str) -> int | str | None:
        value = item.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and len(value) <= MAX_URL_CHARS:
            return value
        raise error(f"a dispute's {key} must be a number or a short text")

    return DisputedLine(
        reason=reason,
        track=optional_url("track"),
        listen=optional_url("listen"),
        expected=number_or_text("expected"),
        stated=number_or_text("stated"),
    )


# --- Settlement (§6.6) ----------------------------------------------------------------------


@dataclass(frozen=True)
class MemberNet:
    member: str  # a member instance actor
    tokens: int  # received − paid


@dataclass(frozen=True)
class Transfer:
    payer: str
    payee: str
    tokens: int  # > 0


@dataclass(frozen=True)
class Settlement:
    period_start: datetime
    period_end: datetime
    nets: tuple[MemberNet, ...]  # sorted by member; sum to zero
    transfers: tuple[Transfer, ...]  # sorted; at most one per pair of members
    statement_ids: tuple[str, ...]  # sorted, distinct
    statements_digest: str

    def net_of(self, member: str) -> int:
        return next((n.tokens for n in self.nets if n.member == member), 0)


@dataclass(frozen=True)
class PublishedSettlement:
    id: str
    hub: str
    settlement: Settlement


def settle(period: Period, accepted: Iterable[Statement]) -> Settlement:
    """Net the accepted statements: each statement's payer owes its payee ``total_owed``.

    The caller chooses the statements (accepted ones not in an earlier settlement; a
    catch-up statement after a brown-out may start before ``period``); each must have ended
    by the end of the period. The same statement given twice counts once.
    """
    by_id: dict[str, Statement] = {}
    for statement in accepted:
        if by_id.setdefault(statement.id, statement) != statement:
            raise ValueError(f"two different statements share the id {statement.id}")
        if statement.period_end > period.end:
            raise ValueError(f"the statement {statement.id} ends after the settlement period")
    owed: dict[tuple[str, str], int] = defaultdict(int)
    members: set[str] = set()
    for statement in by_id.values():
        owed[statement.payer, statement.payee] += statement.total_owed
        members.update((statement.payer, statement.payee))
    net: dict[str, int] = dict.fromkeys(members, 0)
    transfers: list[Transfer] = []
    for first, second in {(min(a, b), max(a, b)) for a, b in owed}:
        balance = owed.get((first, second), 0) - owed.get((second, first), 0)
        net[second] += balance
        net[first] -= balance
        if balance > 0:
            transfers.append(Transfer(first, second, balance))
        elif balance < 0:
            transfers.append(Transfer(second, first, -balance))
    ids = tuple(sorted(by_id))
    return Settlement(
        period_start=period.start,
        period_end=period.end,
        nets=tuple(MemberNet(member, net[member]) for member in sorted(net)),
        transfers=tuple(sorted(transfers, key=lambda t: (t.payer, t.payee))),
        statement_ids=ids,
        statements_digest=digest_of(ids),
    )


def check_settlement(settlement: Settlement) -> None:
    error = InvalidSettlement
    s = settlement
    if s.period_start.tzinfo is None or s.period_end.tzinfo is None:
        raise error("the period has no time zone")
    if s.period_end <= s.period_start:
        raise error("the period must end after it starts")
    members = [n.member for n in s.nets]
    _check_sorted_unique(members, "the member", error)
    for member in members:
        _url(member, "a member", error)
    if sum(n.tokens for n in s.nets) != 0:
        raise error("the nets do not add up to zero")
    flows: dict[str, int] = dict.fromkeys(members, 0)
    pairs: set[frozenset[str]] = set()
    keys = [(t.payer, t.payee) for t in s.transfers]
    if keys != sorted(keys):
        raise error("the transfers are not in sorted order")
    for transfer in s.transfers:
        if transfer.payer not in flows or transfer.payee not in flows:
            raise error("a transfer names an instance that has no net amount")
        if transfer.payer == transfer.payee:
            raise error("a transfer goes from an instance to itself")
        if transfer.tokens <= 0:
            raise error("a transfer must move a positive number of tokens")
        pair = frozenset((transfer.payer, transfer.payee))
        if pair in pairs:
            raise error(f"more than one transfer between {transfer.payer} and {transfer.payee}")
        pairs.add(pair)
        flows[transfer.payer] -= transfer.tokens
        flows[transfer.payee] += transfer.tokens
    for net in s.nets:
        if flows[net.member] != net.tokens:
            raise error(
                f"the transfers give {net.member} {flows[net.member]}, not its net {net.tokens}"
            )
    _check_sorted_unique(s.statement_ids, "the statement", error)
    for statement_id in s.statement_ids:
        _url(statement_id, "a statement id", error)
    if s.statements_digest != digest_of(s.statement_ids):
        raise error("the statements digest is not the digest of the listed statement ids")


def settlement_document(settlement: Settlement, hub: str, settlement_id: str) -> dict[str, Any]:
    """The hub's ``Settlement`` (unsigned)."""
    check_settlement(settlement)
    if not _is_url(hub) or not _is_url(settlement_id) or not same_origin(settlement_id, hub):
        raise ValueError("the settlement id must be a URL on the hub's host")
    s = settlement
    return {
        "@context": ROYALTY_CONTEXT,
        "id": settlement_id,
        "type": "Settlement",
        "attributedTo": hub,
        "startTime": instant(s.period_start),
        "endTime": instant(s.period_end),
        "nets": [{"member": n.member, "net": n.tokens} for n in s.nets],
        "transfers": [
            {"payer": t.payer, "payee": t.payee, "tokens": t.tokens} for t in s.transfers
        ],
        "statements": _id_collection(s.statement_ids),
        "statementsDigest": s.statements_digest,
    }


def parse_settlement(document: Any) -> PublishedSettlement:
    error = InvalidSettlement
    body = _object(document, "settlement", error)
    _type(body, {"Settlement"}, error)
    settlement_id = _url(body.get("id"), "the settlement id", error)
    hub = _url(id_of(body.get("attributedTo")), "the hub (attributedTo)", error)
    if not same_origin(settlement_id, hub):
        raise error("the settlement id is not on the same host as the hub")
    raw_nets, raw_transfers = body.get("nets"), body.get("transfers")
    if not isinstance(raw_nets, list) or not isinstance(raw_transfers, list):
        raise error("the settlement needs lists of nets and transfers")
    digest = body.get("statementsDigest")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise error("the statements digest must be sha256: and 64 lower-case hex digits")
    nets = []
    for item in raw_nets:
        net = _object(item, "net", error)
        tokens = net.get("net")
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise error("a net amount must be a whole number")
        nets.append(MemberNet(_url(id_of(net.get("member")), "a member", error), tokens))
    transfers = []
    for item in raw_transfers:
        transfer = _object(item, "transfer", error)
        transfers.append(
            Transfer(
                payer=_url(id_of(transfer.get("payer")), "a transfer's payer", error),
                payee=_url(id_of(transfer.get("payee")), "a transfer's payee", error),
                tokens=_int(transfer.get("tokens"), "a transfer's tokens", error, 1),
            )
        )
    settlement = Settlement(
        period_start=_time(body.get("startTime"), "the start of the period", error),
        period_end=_time(body.get("endTime"), "the end of the period", error),
        nets=tuple(nets),
        transfers=tuple(transfers),
        statement_ids=_ids(body.get("statements"), "statements", error),
        statements_digest=digest,
    )
    check_settlement(settlement)
    return PublishedSettlement(settlement_id, hub, settlement)
