"""The pure core of federated royalties (docs/architecture.md#a-royalty-period): Listens,
statements, reconciliation and the hub's settlement, by example (one refusal per rule) and
as properties of random play schedules between three instances."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.parse import PUBLIC, InvalidObject, same_origin
from federation.royalties import (
    ROYALTY_CONTEXT,
    Dispute,
    DisputedLine,
    InvalidAnswer,
    InvalidListen,
    InvalidSettlement,
    InvalidStatement,
    ListenRecord,
    Period,
    Settlement,
    Statement,
    StatementLine,
    Transfer,
    answer_document,
    build_statement,
    instant,
    listen_activity,
    listens_digest,
    parse_answer,
    parse_listen,
    parse_settlement,
    parse_statement,
    pseudonymous_listener,
    reconcile,
    settle,
    settlement_document,
    statement_create,
    statement_document,
)
from models.pricing import BASIS_POINTS, play_cost, share_of

A, B, C = "https://a.example", "https://b.example", "https://c.example"
HUB = "https://hub.example/actor"
HOSTS = (A, B, C)
SECRET = b"0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TODAY = Period(T0, T0 + DAY)
SHARE = 7000


def actor(host: str) -> str:
    return f"{host}/actor"


def track(host: str, number: int) -> str:
    return f"{host}/tracks/{number}"


def host(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def listen(
    number: int,
    *,
    payer: str = A,
    on: str = track(B, 1),
    play: int | None = 1,
    at: datetime | None = None,
    listener: int = 1,
    owned: bool | None = None,
) -> ListenRecord:
    return ListenRecord(
        id=f"{payer}/listens/{number}",
        payer=actor(payer),
        track=on,
        listener=pseudonymous_listener(SECRET, listener, host(on)),
        play_number=play,
        tokens=0 if play is None else 2**play,
        owned=(play is None or play == 9) if owned is None else owned,
        at=at or T0 + timedelta(minutes=number),
    )


def roundtrip(document: dict[str, Any]) -> dict[str, Any]:
    """The document as a peer decodes it."""
    decoded = json.loads(json.dumps(document))
    assert isinstance(decoded, dict)
    return decoded


# --- Listen ---------------------------------------------------------------------------------


def test_the_pseudonymous_listener_is_stable_per_payee_and_unlinkable_across() -> None:
    one = pseudonymous_listener(SECRET, 7, "b.example")
    assert one == pseudonymous_listener(SECRET, 7, "B.example")
    assert len(one) == 64 and int(one, 16) >= 0
    assert one != pseudonymous_listener(SECRET, 7, "c.example")
    assert one != pseudonymous_listener(SECRET, 8, "b.example")
    assert one != pseudonymous_listener(b"another secret", 7, "b.example")


def test_a_listen_activity_and_back() -> None:
    record = listen(3, play=3)
    document = listen_activity(record, to=[actor(B)])
    assert document["type"] == "Listen"
    assert document["actor"] == actor(A) and document["object"] == track(B, 1)
    assert document["playNumber"] == 3 and document["tokens"] == 8
    assert document["owned"] is False and document["to"] == [actor(B)]
    assert document["@context"] == ROYALTY_CONTEXT
    terms = document["@context"][-1]
    assert all(terms[key] for key in ("playNumber", "tokens", "owned", "listener"))
    assert parse_listen(roundtrip(document)) == record


def test_a_listen_carries_nothing_personal() -> None:
    document = listen_activity(listen(1))
    assert set(document) == {
        "@context",
        "id",
        "type",
        "actor",
        "object",
        "published",
        "listener",
        "tokens",
        "owned",
        "playNumber",
    }


def test_free_and_owned_plays_and_precise_times_round_trip() -> None:
    free = listen(1, play=None, owned=False, at=T0 + timedelta(microseconds=123))
    document = listen_activity(free)
    assert "playNumber" not in document and document["tokens"] == 0
    assert document["published"] == "2026-03-01T00:00:00.000123Z"
    assert parse_listen(roundtrip(document)) == free
    last = listen(2, play=9)
    assert last.owned and parse_listen(listen_activity(last)).tokens == 512


def _listen_doc(**changes: Any) -> dict[str, Any]:
    document = roundtrip(listen_activity(listen(4, play=4)))
    for key, value in changes.items():
        if value is ...:
            del document[key]
        else:
            document[key] = value
    return document


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": "Like"}, "type Listen"),
        ({"tokens": 17}, "costs 16 tokens, not 17"),
        ({"playNumber": 10, "tokens": 1024}, "play number must be 1 to 9"),
        ({"playNumber": 0}, "at least 1"),
        ({"playNumber": True}, "whole number"),
        ({"playNumber": ..., "owned": True}, "costs 0 tokens, not 16"),
        ({"tokens": 16.0}, "whole number"),
        ({"tokens": -16}, "at least 0"),
        ({"owned": True}, "owns a track after paid play 9"),
        ({"owned": "no"}, "true or false"),
        ({"id": "https://elsewhere.example/listens/4"}, "same host as its actor"),
        # ids that come close to the shape of our own ids, checked without parsing
        ({"id": "https://a.example.evil/listens/4"}, "same host as its actor"),
        ({"id": "http://a.example/listens/4"}, "same host as its actor"),
        ({"id": "https://a.example:8443/listens/4"}, "same host as its actor"),
        ({"id": "https://a.example:0/listens/4"}, "absolute http"),
        ({"id": "https://a.example:/listens/4"}, "absolute http"),
        ({"id": "https://user@a.example/listens/4"}, "absolute http"),
        ({"id": "https://a.example/listens/4\n"}, "absolute http"),
        ({"id": "https://a.example/" + "x" * 2048}, "absolute http"),
        ({"id": ...}, "Listen id is missing"),
        ({"actor": "acct:a@a.example"}, "absolute http"),
        ({"object": track(A, 1)}, "track on another instance"),
        ({"listener": "alice"}, "pseudonymous id"),
        ({"listener": ...}, "no pseudonymous listener"),
        ({"name": "Alice"}, "personal data (name)"),
        ({"email": "alice@example.org"}, "personal data (email)"),
        ({"ipAddress": "192.0.2.1"}, "personal data (ipAddress)"),
        ({"to": [PUBLIC]}, "public"),
        ({"cc": "as:Public"}, "public"),
        ({"published": "2026-03-01T10:00:00"}, "no time zone"),
        ({"published": "yesterday"}, "not an ISO 8601"),
    ],
)
def test_listen_refusals(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidListen, match=re.escape(reason)):
        parse_listen(_listen_doc(**changes))


def test_listen_errors_are_invalid_objects_and_the_builder_refuses_too() -> None:
    assert issubclass(InvalidListen, InvalidObject)
    with pytest.raises(InvalidListen, match="JSON object"):
        parse_listen([])
    with pytest.raises(InvalidListen, match="costs 4 tokens"):
        listen_activity(dataclasses.replace(listen(1, play=2), tokens=5))
    with pytest.raises(ValueError, match="never public"):
        listen_activity(listen(1), cc=[PUBLIC])


def test_parsers_ignore_a_proof() -> None:
    document = _listen_doc(proof={"type": "DataIntegrityProof", "proofValue": "z..."})
    assert parse_listen(document) == listen(4, play=4)


# --- statements ---------------------------------------------------------------------------


def example_listens() -> list[ListenRecord]:
    return [
        listen(1, play=1, on=track(B, 1)),  # 2
        listen(2, play=1, on=track(B, 2), listener=2),  # 2
        listen(3, play=2, on=track(B, 1)),  # 4
        listen(4, play=3, on=track(B, 1)),  # 8
        listen(5, play=None, on=track(B, 2), listener=3),  # owned: no money
    ]


def example_statement(**changes: Any) -> Statement:
    statement = build_statement(
        f"{A}/statements/1", actor(A), actor(B), TODAY, example_listens(), None, SHARE
    )
    return dataclasses.replace(statement, **changes)


def test_build_statement_follows_the_running_floor() -> None:
    statement = example_statement()
    # In order of time the plays cost 2, 2, 4, 8; floor(gross × 70 %) runs 1, 2, 5, 11, so
    # they credit 1, 1, 3, 6: track 1 owes 1 + 3 + 6, track 2 owes 1.
    assert statement.lines == (
        StatementLine(track(B, 1), 3, 14, 10),
        StatementLine(track(B, 2), 1, 2, 1),
    )
    assert (statement.total_plays, statement.total_charged, statement.total_owed) == (4, 16, 11)
    assert statement.total_owed == share_of(16, SHARE)
    assert statement.listen_ids == tuple(f"{A}/listens/{n}" for n in (1, 2, 3, 4))
    assert statement.listens_digest == listens_digest(reversed(statement.listen_ids))
    assert statement.previous is None and statement.charged_before == 0


def test_the_digest_is_over_the_sorted_ids() -> None:
    expected = "sha256:" + hashlib.sha256(b"https://x/1\nhttps://x/2").hexdigest()
    assert listens_digest(["https://x/2", "https://x/1"]) == expected
    assert listens_digest([]) == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_an_empty_period_makes_an_empty_statement() -> None:
    statement = build_statement(f"{A}/statements/0", actor(A), actor(B), TODAY, [], None, SHARE)
    assert statement.lines == () and statement.total_owed == 0
    assert parse_statement(roundtrip(statement_document(statement))) == statement


def test_a_chain_carries_the_running_floor_on() -> None:
    first = example_statement()
    tomorrow = Period(TODAY.end, TODAY.end + DAY)
    later = listen(10, play=4, at=tomorrow.start)  # 16 tokens on top of 16
    second = build_statement(
        f"{A}/statements/2", actor(A), actor(B), tomorrow, [later], first, SHARE
    )
    assert second.previous == first.id and second.charged_before == 16
    assert second.total_owed == share_of(32, SHARE) - share_of(16, SHARE) == 11
    assert first.total_owed + second.total_owed == share_of(32, SHARE)
    with pytest.raises(ValueError, match="start where the previous"):
        build_statement(f"{A}/statements/3", actor(A), actor(B), TODAY, [], first, SHARE)


def test_build_statement_refusals() -> None:
    def build(listens: list[ListenRecord]) -> Statement:
        return build_statement(f"{A}/statements/9", actor(A), actor(B), TODAY, listens, None, SHARE)

    with pytest.raises(ValueError, match="another payer"):
        build([listen(1, payer=C)])
    with pytest.raises(ValueError, match="outside the period"):
        build([listen(1, at=TODAY.end)])
    with pytest.raises(ValueError, match="does not host"):
        build([listen(1, on=track(C, 1))])
    with pytest.raises(ValueError, match="share the id"):
        build([listen(1), dataclasses.replace(listen(1), at=T0)])
    with pytest.raises(InvalidStatement, match="same instance"):
        build_statement(f"{A}/s", actor(A), f"{A}/other", TODAY, [], None, SHARE)
    with pytest.raises(ValueError, match="end after it starts"):
        Period(T0, T0)
    with pytest.raises(ValueError, match="aware"):
        Period(T0.replace(tzinfo=None), T0 + DAY)


def test_a_statement_document_and_back() -> None:
    statement = example_statement()
    document = statement_document(statement)
    assert document["type"] == "RoyaltyStatement" and document["attributedTo"] == actor(A)
    assert document["startTime"] == "2026-03-01T00:00:00Z"
    assert document["listens"] == {
        "type": "OrderedCollection",
        "totalItems": 4,
        "orderedItems": list(statement.listen_ids),
    }
    assert "previousStatement" not in document
    assert parse_statement(roundtrip(document)) == statement
    chained = example_statement(previous=f"{A}/statements/0", charged_before=100)
    chained = dataclasses.replace(
        chained, lines=_relined(chained), total_owed=sum(x.tokens_owed for x in _relined(chained))
    )
    assert parse_statement(roundtrip(statement_document(chained))) == chained
    create = statement_create(statement, HUB)
    assert create["type"] == "Create" and create["actor"] == actor(A)
    assert create["to"] == [actor(B)] and create["cc"] == [HUB]
    assert create["object"] == document


def _relined(statement: Statement) -> tuple[StatementLine, ...]:
    """The example's lines, by hand with the running floor, on top of chargedBefore."""
    gross, owed = statement.charged_before, {track(B, 1): 0, track(B, 2): 0}
    for record in example_listens()[:4]:
        owed[record.track] += share_of(gross + record.tokens, SHARE) - share_of(gross, SHARE)
        gross += record.tokens
    return tuple(dataclasses.replace(x, tokens_owed=owed[x.track]) for x in statement.lines)


Mutator = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Mutator:
    def mutate(document: dict[str, Any]) -> None:
        document[key] = value

    return mutate


def _line(index: int, key: str, value: Any) -> Mutator:
    def mutate(document: dict[str, Any]) -> None:
        document["lines"][index][key] = value

    return mutate


def _ids(ids: list[str], digest: bool = True) -> Mutator:
    def mutate(document: dict[str, Any]) -> None:
        document["listens"]["orderedItems"] = ids
        document["listens"]["totalItems"] = len(ids)
        if digest:
            document["listensDigest"] = listens_digest(ids)

    return mutate


def _swap_lines(document: dict[str, Any]) -> None:
    document["lines"].reverse()


def _double_line(document: dict[str, Any]) -> None:
    document["lines"] = [document["lines"][0], *document["lines"]]


def _owe_more(document: dict[str, Any]) -> None:
    document["lines"][1]["tokensOwed"] += 1
    document["totalOwed"] += 1


L1, L2, L3, L4 = (f"{A}/listens/{n}" for n in (1, 2, 3, 4))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_set("type", "Note"), "type RoyaltyStatement"),
        (_set("totalCharged", 17), "totalCharged is 17 but the lines add up to 16"),
        (_set("totalPlays", 5), "totalPlays is 5"),
        (_line(0, "tokensOwed", 9), "totalOwed is 11 but the lines add up to 10"),
        (_owe_more, "artist share of 16 tokens after 0 is 11"),
        (_set("listensDigest", "sha256:" + "0" * 64), "not the digest"),
        (_set("listensDigest", "md5:abc"), "64 lower-case hex"),
        (_ids([L1, L2, L3, L3]), "appears twice"),
        (_ids([L2, L1, L3, L4]), "not in sorted order"),
        (_ids([L1, L2, L3]), "counts 4 paid plays but lists 3"),
        (_ids([L1, L2, L3, "https://c.example/listens/4"]), "not on the payer's host"),
        (_ids([L1, L2, L3, "https://a.example:0/listens/4"]), "absolute http"),
        (_ids([L1, L2, L3, "https://a.example:8443/listens/4"]), "not on the payer's host"),
        (_ids([L1, L2, L3, "https://user@a.example/listens/4"]), "absolute http"),
        (_ids([L1, L2, L3, "https://a.example/listens/4\t"]), "absolute http"),
        (_ids([L1, L2, L3, "https://a.examplf/listens/4"]), "not on the payer's host"),
        (_ids([L1, L2, L3, 42], digest=False), "an item of the listens is missing"),
        (_ids([L1, L2, L3, {"type": "Listen"}], digest=False), "an item of the listens is missing"),
        (_swap_lines, "not in sorted order"),
        (_double_line, "appears twice"),
        (_set("endTime", "2026-03-01T00:00:00Z"), "end after it starts"),
        (_set("endTime", "2026-03-02T00:00:00"), "no time zone"),
        (_set("chargedBefore", -1), "at least 0"),
        (_set("totalOwed", 11.0), "whole number"),
        (_set("totalPlays", False), "whole number"),
        (_line(0, "paidPlays", -3), "at least 0"),
        (_line(0, "paidPlays", 0), "no paid plays"),
        (_line(1, "tokensCharged", 1), "cannot cost 1 tokens"),
        (_line(1, "track", track(C, 2)), "not on the payee's host"),
        (_set("id", f"{C}/statements/1"), "same host as its payer"),
        (_set("payee", f"{A}/other-actor"), "same instance"),
        (_set("attributedTo", actor(C)), "attributed to someone other"),
        (_set("artistShareBasisPoints", 10_001), "0 to 10000 basis points"),
        (_set("previousStatement", f"{C}/statements/0"), "earlier one of the payer"),
        (_set("lines", {}), "no list of lines"),
        (_set("listens", [L1]), "must be a JSON object"),
    ],
)
def test_statement_refusals(mutate: Mutator, reason: str) -> None:
    document = roundtrip(statement_document(example_statement()))
    mutate(document)
    with pytest.raises(InvalidStatement, match=re.escape(reason)):
        parse_statement(document)


def test_a_statement_with_a_mismatched_total_items_is_refused() -> None:
    document = roundtrip(statement_document(example_statement()))
    document["listens"]["totalItems"] = 3
    with pytest.raises(InvalidStatement, match="totalItems 3 but list 4"):
        parse_statement(document)


# --- reconciliation -------------------------------------------------------------------------

HOSTED = frozenset({track(B, 1), track(B, 2)})


def known(*records: ListenRecord) -> dict[str, ListenRecord]:
    return {record.id: record for record in (records or example_listens())}


def reasons(statement: Statement, **kwargs: Any) -> list[str]:
    arguments: dict[str, Any] = {
        "known": known(),
        "hosted_tracks": HOSTED,
        "artist_share_bp": SHARE,
        "last_accepted": None,
    } | kwargs
    result = reconcile(statement, **arguments)
    assert result.accepted is (not result.missing and not result.disputed)
    return [d.reason for d in result.disputed]


def test_reconcile_accepts_what_matches() -> None:
    result = reconcile(example_statement(), known(), HOSTED, SHARE, None)
    assert result.accepted and result.answer == "Accept"
    assert result.missing == () and result.disputed == ()


def test_missing_listens_are_to_be_fetched_then_reconciled_again() -> None:
    have = known(*example_listens()[1:])
    result = reconcile(example_statement(), have, HOSTED, SHARE, None)
    assert not result.accepted and result.answer is None
    assert result.missing == (L1,) and result.disputed == ()
    fetched = reconcile(example_statement(), known(), HOSTED, SHARE, None)
    assert fetched.accepted
    gone = reconcile(example_statement(), have, HOSTED, SHARE, None, unavailable={L1})
    assert gone.answer == "Reject"
    assert gone.disputed[0].reason == Dispute.UNAVAILABLE_LISTEN


def test_reconcile_disputes_a_track_we_do_not_host() -> None:
    found = reasons(example_statement(), hosted_tracks={track(B, 1)})
    assert found[0] == Dispute.UNKNOWN_TRACK and Dispute.PAID_PLAYS in found


def test_reconcile_disputes_a_line_that_does_not_add_up() -> None:
    statement = example_statement()
    lines = (dataclasses.replace(statement.lines[0], tokens_charged=16), statement.lines[1])
    wrong = dataclasses.replace(statement, lines=lines, total_charged=18)
    result = reconcile(wrong, known(), HOSTED, SHARE, None)
    line = next(d for d in result.disputed if d.reason == Dispute.TOKENS_CHARGED)
    assert line == DisputedLine(Dispute.TOKENS_CHARGED, track=track(B, 1), expected=14, stated=16)
    assert "expected 14, stated 16" in line.text


def test_reconcile_disputes_a_listen_outside_the_period() -> None:
    moved = dataclasses.replace(example_listens()[0], at=T0 - timedelta(seconds=1))
    found = reasons(example_statement(), known=known(moved, *example_listens()[1:]))
    assert found[0] == Dispute.OUTSIDE_PERIOD


def test_reconcile_disputes_listens_of_another_payer() -> None:
    other = dataclasses.replace(example_listens()[0], payer=actor(C))
    found = reasons(example_statement(), known=known(other, *example_listens()[1:]))
    assert found[0] == Dispute.OTHER_PAYER


def test_reconcile_disputes_an_unpaid_listen_counted_as_paid() -> None:
    free = dataclasses.replace(example_listens()[0], play_number=None, tokens=0, owned=True)
    assert reasons(example_statement(), known=known(free, *example_listens()[1:]))[0] == (
        Dispute.UNPAID_LISTEN
    )


def test_reconcile_disputes_an_omitted_listen() -> None:
    extra = listen(6, play=2, on=track(B, 2), listener=2)
    found = reasons(example_statement(), known=known(*example_listens(), extra))
    assert found == [Dispute.OMITTED_LISTEN]


def test_reconcile_disputes_another_share() -> None:
    assert reasons(example_statement(), artist_share_bp=6000)[0] == Dispute.SHARE


def test_reconcile_disputes_a_broken_chain() -> None:
    first = example_statement()
    tomorrow = Period(TODAY.end, TODAY.end + DAY)
    later = listen(10, play=4, at=tomorrow.start)
    second = build_statement(
        f"{A}/statements/2", actor(A), actor(B), tomorrow, [later], first, SHARE
    )
    everything = known(*example_listens(), later)
    assert reasons(second, known=everything, last_accepted=first) == []
    assert Dispute.CHAIN in reasons(second, known=everything, last_accepted=None)
    assert Dispute.CHARGED_BEFORE in reasons(second, known=everything, last_accepted=None)
    detached = dataclasses.replace(first, id=f"{A}/statements/1b")
    assert reasons(second, known=everything, last_accepted=detached) == [Dispute.CHAIN]
    early = dataclasses.replace(first, period_end=first.period_end - timedelta(hours=1))
    assert Dispute.PERIOD in reasons(second, known=everything, last_accepted=early)


def test_reconcile_disputes_a_statement_that_contradicts_itself() -> None:
    found = reasons(example_statement(total_plays=5))
    assert found[0] == Dispute.INCONSISTENT and Dispute.TOTAL_PLAYS in found


def test_accept_and_reject_documents() -> None:
    statement = example_statement()
    accept = answer_document(
        "Accept", statement.id, actor(B), [], id=f"{B}/answers/1", to=[actor(A)], cc=[HUB]
    )
    assert accept["type"] == "Accept" and accept["object"] == statement.id
    assert accept["actor"] == actor(B) and accept["cc"] == [HUB] and "disputes" not in accept
    parsed = parse_answer(roundtrip(accept))
    assert (parsed.kind, parsed.statement, parsed.responder, parsed.disputed) == (
        "Accept",
        statement.id,
        actor(B),
        (),
    )
    result = reconcile(statement, known(), HOSTED, 6000, None)
    reject = answer_document("Reject", statement.id, actor(B), result.disputed, id=f"{B}/a/2")
    assert reject["disputes"][0]["summary"].startswith("the artist share is not the one agreed")
    assert parse_answer(roundtrip(reject)).disputed == result.disputed


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": "Like"}, "Accept or Reject"),
        ({"disputes": [{"reason": "share"}]}, "an Accept disputes nothing"),
        ({"type": "Reject"}, "must say which lines"),
        ({"id": f"{C}/answers/1"}, "same host as its actor"),
        ({"object": None}, "statement id is missing"),
        ({"type": "Reject", "disputes": [{"track": track(B, 1)}]}, "needs a reason"),
        ({"type": "Reject", "disputes": [{"reason": "x", "stated": 1.5}]}, "number or a short"),
        ({"type": "Reject", "disputes": "all of it"}, "must be a list"),
    ],
)
def test_answer_refusals(changes: dict[str, Any], reason: str) -> None:
    document = answer_document("Accept", f"{A}/statements/1", actor(B), [], id=f"{B}/answers/1")
    document.update(changes)
    with pytest.raises(InvalidAnswer, match=re.escape(reason)):
        parse_answer(document)


def test_answer_document_refuses_what_makes_no_sense() -> None:
    dispute = DisputedLine(Dispute.SHARE, expected=7000, stated=6000)
    with pytest.raises(ValueError, match="disputes nothing"):
        answer_document("Accept", f"{A}/s/1", actor(B), [dispute], id=f"{B}/a/1")
    with pytest.raises(ValueError, match="which lines"):
        answer_document("Reject", f"{A}/s/1", actor(B), [], id=f"{B}/a/1")


# --- settlement -----------------------------------------------------------------------------


def _statement(payer: str, payee: str, first_plays: int) -> Statement:
    """``first_plays`` listeners each play a track of the payee once (2 tokens each)."""
    records = [
        listen(n, payer=payer, on=track(payee, 1), play=1, listener=n) for n in range(first_plays)
    ]
    return build_statement(
        f"{payer}/statements/1", actor(payer), actor(payee), TODAY, records, None, SHARE
    )


def test_settle_nets_each_pair_once() -> None:
    a_to_b = _statement(A, B, 3)  # 6 → owes 4
    b_to_a = _statement(B, A, 1)  # 2 → owes 1
    c_to_a = _statement(C, A, 2)  # 4 → owes 2
    settlement = settle(TODAY, [a_to_b, b_to_a, c_to_a, a_to_b])
    assert settlement.transfers == (
        Transfer(actor(A), actor(B), 3),
        Transfer(actor(C), actor(A), 2),
    )
    assert [(n.member, n.tokens) for n in settlement.nets] == [
        (actor(A), -1),
        (actor(B), 3),
        (actor(C), -2),
    ]
    assert settlement.net_of(actor(B)) == 3 and settlement.net_of(HUB) == 0
    assert settlement.statement_ids == tuple(sorted({a_to_b.id, b_to_a.id, c_to_a.id}))
    document = settlement_document(settlement, HUB, "https://hub.example/settlements/1")
    assert document["type"] == "Settlement" and document["attributedTo"] == HUB
    published = parse_settlement(roundtrip(document))
    assert published.settlement == settlement and published.hub == HUB


def test_settle_refusals() -> None:
    statement = _statement(A, B, 1)
    with pytest.raises(ValueError, match="share the id"):
        settle(TODAY, [statement, dataclasses.replace(statement, total_owed=0)])
    with pytest.raises(ValueError, match="ends after"):
        settle(Period(T0 - DAY, T0), [statement])
    with pytest.raises(ValueError, match="hub's host"):
        settlement_document(settle(TODAY, [statement]), HUB, f"{A}/settlements/1")
    empty = settle(TODAY, [])
    assert empty.nets == () and empty.transfers == ()


def _settlement_doc() -> dict[str, Any]:
    settlement = settle(TODAY, [_statement(A, B, 3), _statement(B, A, 1), _statement(C, A, 2)])
    return roundtrip(settlement_document(settlement, HUB, "https://hub.example/settlements/1"))


AX, BX, CX = actor(A), actor(B), actor(C)


def _net(index: int, value: Any) -> Mutator:
    def mutate(document: dict[str, Any]) -> None:
        document["nets"][index]["net"] = value

    return mutate


def _transfers(transfers: list[tuple[str, str, Any]]) -> Mutator:
    def mutate(document: dict[str, Any]) -> None:
        document["transfers"] = [{"payer": p, "payee": q, "tokens": t} for p, q, t in transfers]

    return mutate


def _statement_ids(document: dict[str, Any]) -> None:
    document["statements"]["orderedItems"].reverse()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_set("type", "Note"), "type Settlement"),
        (_set("id", f"{A}/settlements/1"), "same host as the hub"),
        (_net(0, 0), "do not add up to zero"),
        (_net(0, "-1"), "whole number"),
        (
            _transfers([(AX, BX, 2), (BX, AX, -1), (CX, AX, 2)]),
            "at least 1",
        ),
        (
            _transfers([(AX, BX, 4), (BX, AX, 1), (CX, AX, 2)]),
            "more than one transfer",
        ),
        (
            _transfers([(AX, BX, 4), (CX, AX, 2), (BX, AX, 1)]),
            "not in sorted order",
        ),
        (_transfers([(AX, BX, 3)]), "not its net"),
        (_transfers([(AX, BX, 3), (CX, HUB, 2)]), "no net amount"),
        (_statement_ids, "not in sorted order"),
        (_set("statementsDigest", "sha256:" + "1" * 64), "not the digest"),
        (_set("startTime", "2026-03-02T00:00:00Z"), "end after it starts"),
    ],
)
def test_settlement_refusals(mutate: Mutator, reason: str) -> None:
    document = _settlement_doc()
    mutate(document)
    with pytest.raises(InvalidSettlement, match=re.escape(reason)):
        parse_settlement(document)


def test_instants_are_utc_and_lossless() -> None:
    moment = datetime(2026, 3, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert instant(moment) == "2026-03-01T12:00:00.000005Z"
    assert instant(T0) == "2026-03-01T00:00:00Z"


# --- properties -----------------------------------------------------------------------------

TRACKS = tuple(track(h, n) for h in HOSTS for n in (1, 2))
LISTENERS = 6  # listener i lives on HOSTS[i % 3]
SECONDS = 3 * 24 * 3600
DAYS = tuple(Period(T0 + d * DAY, T0 + (d + 1) * DAY) for d in range(3))
PAIRS = tuple((p, q) for p in HOSTS for q in HOSTS if p != q)

events = st.lists(
    st.tuples(
        st.integers(0, LISTENERS - 1), st.integers(0, len(TRACKS) - 1), st.integers(0, SECONDS - 1)
    ),
    max_size=80,
)
shares = st.one_of(st.sampled_from([7000, 0, BASIS_POINTS, 3333, 5000]), st.integers(0, 10_000))


@dataclasses.dataclass
class Simulation:
    listens: list[ListenRecord]
    paid: dict[tuple[str, str], int]  # what the listeners of p paid for tracks of q
    plays: dict[tuple[str, str], int]  # their paid plays


def simulate(schedule: list[tuple[int, int, int]]) -> Simulation:
    """Listeners play tracks; the k-th paid play of a track costs 2^k, then it is free."""
    ordered = sorted(enumerate(schedule), key=lambda item: (item[1][2], item[0]))
    earlier: Counter[tuple[int, int]] = Counter()
    wallets: Counter[int] = Counter()
    spent: dict[tuple[str, str], int] = defaultdict(int)
    plays: dict[tuple[str, str], int] = defaultdict(int)
    listens: list[ListenRecord] = []
    for number, (listener, track_index, second) in ordered:
        payer, on = HOSTS[listener % 3], TRACKS[track_index]
        if same_origin(payer, on):
            continue  # a local play: no Listen
        cost = play_cost(earlier[listener, track_index])
        wallets[listener] -= cost
        spent[payer, on.rsplit("/tracks/", 1)[0]] += cost
        paid = cost > 0
        if paid:
            plays[payer, on.rsplit("/tracks/", 1)[0]] += 1
            earlier[listener, track_index] += 1
        play_number = earlier[listener, track_index] if paid else None
        listens.append(
            ListenRecord(
                id=f"{payer}/listens/{number}",
                payer=actor(payer),
                track=on,
                listener=pseudonymous_listener(SECRET, listener, host(on)),
                play_number=play_number,
                tokens=cost,
                owned=earlier[listener, track_index] >= 9,
                at=T0 + timedelta(seconds=second),
            )
        )
    assert -sum(wallets.values()) == sum(spent.values())
    return Simulation(listens, dict(spent), dict(plays))


def of_pair(listens: list[ListenRecord], payer: str, payee: str) -> list[ListenRecord]:
    return [r for r in listens if r.payer == actor(payer) and same_origin(r.track, payee)]


def statement_for(
    payer: str,
    payee: str,
    listens: list[ListenRecord],
    share: int,
    period: Period = Period(T0, T0 + 3 * DAY),  # noqa: B008 - immutable
    previous: Statement | None = None,
) -> Statement:
    return build_statement(
        f"{payer}/statements/{host(payee)}/{instant(period.start)}",
        actor(payer),
        actor(payee),
        period,
        [r for r in listens if r.at in period],
        previous,
        share,
    )


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(schedule=events, share=shares, data=st.data())
def test_statements_add_up_to_what_listeners_paid(
    schedule: list[tuple[int, int, int]], share: int, data: st.DataObject
) -> None:
    simulation = simulate(schedule)
    for payer, payee in PAIRS:
        mine = of_pair(simulation.listens, payer, payee)
        statement = statement_for(payer, payee, mine, share)
        paid = simulation.paid.get((payer, payee), 0)
        assert statement.total_charged == paid
        assert statement.total_plays == simulation.plays.get((payer, payee), 0)
        assert statement.total_owed == paid * share // BASIS_POINTS
        assert statement.total_owed == sum(line.tokens_owed for line in statement.lines)
        assert all(0 <= line.tokens_owed <= line.tokens_charged for line in statement.lines)
        delivered = data.draw(st.permutations(mine))
        if mine:
            delivered += data.draw(st.lists(st.sampled_from(mine), max_size=5))
        assert statement_for(payer, payee, delivered, share) == statement
        assert parse_statement(roundtrip(statement_document(statement))) == statement


def _mutations(
    statement: Statement, listens: list[ListenRecord], everything: dict[str, ListenRecord]
) -> st.SearchStrategy[Statement]:
    replace = dataclasses.replace
    fields = ("paid_plays", "tokens_charged", "tokens_owed")
    totals = ("total_plays", "total_charged", "total_owed")
    index = st.integers(0, len(statement.lines) - 1)
    delta = st.sampled_from([-1, 1])

    def line_changed(i: int, name: str, d: int, with_total: bool) -> Statement:
        line = statement.lines[i]
        lines = list(statement.lines)
        lines[i] = replace(line, **{name: getattr(line, name) + d})
        changed = replace(statement, lines=tuple(lines))
        if with_total:
            total = totals[fields.index(name)]
            changed = replace(changed, **{total: getattr(statement, total) + d})
        return changed

    def total_changed(name: str, d: int) -> Statement:
        return replace(statement, **{name: getattr(statement, name) + d})

    def ids_changed(ids: tuple[str, ...]) -> Statement:
        return replace(statement, listen_ids=ids, listens_digest=listens_digest(ids))

    def dropped(i: int, rebuild: bool) -> Statement:
        gone = statement.listen_ids[i]
        if rebuild:
            rest = [r for r in listens if r.id != gone]
            return statement_for(A, B, rest, statement.artist_share_bp, statement.period)
        return ids_changed(tuple(x for x in statement.listen_ids if x != gone))

    def added(extra: str) -> Statement:
        return ids_changed(tuple(sorted({*statement.listen_ids, extra})))

    def reshared(share: int) -> Statement:
        return statement_for(A, B, listens, share, statement.period)

    others = sorted(everything.keys() - set(statement.listen_ids))
    other_share = st.integers(0, BASIS_POINTS).filter(lambda s: s != statement.artist_share_bp)
    return st.one_of(
        st.builds(line_changed, index, st.sampled_from(fields), delta, st.booleans()),
        st.builds(total_changed, st.sampled_from(totals), delta),
        st.builds(dropped, st.integers(0, len(statement.listen_ids) - 1), st.booleans()),
        st.builds(added, st.sampled_from([f"{A}/listens/999999", *others])),
        st.builds(reshared, other_share),
    )


@FAST
@given(schedule=events, share=shares, data=st.data())
def test_reconcile_accepts_the_truth_and_rejects_any_single_change(
    schedule: list[tuple[int, int, int]], share: int, data: st.DataObject
) -> None:
    simulation = simulate(schedule)
    everything = {r.id: r for r in simulation.listens}
    hosted = frozenset(t for t in TRACKS if same_origin(t, B))
    mine = of_pair(simulation.listens, A, B)
    statement = statement_for(A, B, mine, share)
    assert reconcile(statement, everything, hosted, share, None).accepted
    if not statement.lines:
        return
    mutated = data.draw(_mutations(statement, mine, everything))
    assert mutated != statement
    result = reconcile(mutated, everything, hosted, share, None)
    assert not result.accepted
    if not result.missing:
        assert result.answer == "Reject"


@FAST
@given(schedule=events, share=shares, data=st.data())
def test_the_settlement_is_what_listeners_paid_times_the_share(
    schedule: list[tuple[int, int, int]], share: int, data: st.DataObject
) -> None:
    simulation = simulate(schedule)
    everything = {r.id: r for r in simulation.listens}
    accepted: list[Statement] = []
    owed_by_pair: dict[tuple[str, str], int] = {}
    for payer, payee in PAIRS:
        mine = of_pair(simulation.listens, payer, payee)
        hosted = frozenset(t for t in TRACKS if same_origin(t, payee))
        # Daily statements, or one catch-up statement after a brown-out of the payee.
        cut = data.draw(st.sampled_from([(0, 1, 2, 3), (0, 1, 3), (0, 3), (0, 2, 3)]))
        previous: Statement | None = None
        for start, end in itertools.pairwise(cut):
            period = Period(T0 + start * DAY, T0 + end * DAY)
            statement = statement_for(payer, payee, mine, share, period, previous)
            assert reconcile(statement, everything, hosted, share, previous).accepted
            accepted.append(statement)
            previous = statement
        owed_by_pair[payer, payee] = sum(s.total_owed for s in accepted if s.payer == actor(payer)
                                         and s.payee == actor(payee))  # fmt: skip
        # The property: to the token, the share of what the listeners paid.
        assert owed_by_pair[payer, payee] == share_of(simulation.paid.get((payer, payee), 0), share)

    whole = Period(T0, T0 + 3 * DAY)
    settlement = settle(whole, accepted)
    assert sum(n.tokens for n in settlement.nets) == 0
    pairs = [frozenset((t.payer, t.payee)) for t in settlement.transfers]
    assert len(pairs) == len(set(pairs))
    for member in map(actor, HOSTS):
        received = sum(s.total_owed for s in accepted if s.payee == member)
        paid = sum(s.total_owed for s in accepted if s.payer == member)
        assert settlement.net_of(member) == received - paid
    for p, q in PAIRS:
        net = owed_by_pair[p, q] - owed_by_pair[q, p]
        moved = [
            t.tokens for t in settlement.transfers if (t.payer, t.payee) == (actor(p), actor(q))
        ]
        assert sum(moved) == max(net, 0)
    redelivered = data.draw(st.permutations(accepted + accepted[: len(accepted) // 2]))
    assert settle(whole, redelivered) == settlement
    document = settlement_document(settlement, HUB, "https://hub.example/settlements/1")
    assert parse_settlement(roundtrip(document)).settlement == settlement


@FAST
@given(schedule=events, share=shares)
def test_listens_round_trip(schedule: list[tuple[int, int, int]], share: int) -> None:
    del share
    for record in simulate(schedule).listens[:10]:
        assert parse_listen(roundtrip(listen_activity(record))) == record


def test_settlement_round_trip_keeps_a_deep_copy_intact() -> None:
    document = _settlement_doc()
    before = copy.deepcopy(document)
    parse_settlement(document)
    assert document == before
    assert isinstance(parse_settlement(document).settlement, Settlement)
