"""Stream-to-own across instances (issue 7, §6.2-6.3), between two real instances: a
listener on A plays a track of an artist on B ten times; A charges 2 + 4 + … + 512 = 1022
tokens and makes the listener the owner; B records each Listen once and credits its
artist exactly the artist share of what was paid (floor(1022 × 70 %) = 715)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.objects import activity
from federation.proofs import sign_object
from federation.royalties import (
    ListenRecord,
    Period,
    build_statement,
    listen_activity,
    parse_statement,
    statement_document,
)
from federation.signatures import sign_request
from tests.audio import make_audio
from tests.instances import Instance, instance_keys, make_instance, peer_balances

TRACK_SECONDS = 1.0

# A on SQLite, B on the last test database: one run covers both kinds.
pytestmark = pytest.mark.mixed_databases


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[tuple[Instance, Instance]]:
    a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")
    b = make_instance(tmp_path / "b", "127.0.0.3", database_url)
    b.env["PLAYFAIR_FEDERATION__PARTNERSHIPS"] = "auto"
    yield a, b
    for instance in (a, b):
        if instance.process is not None:
            output = instance.stop()
            assert "Traceback" not in output, output


def test_a_listener_on_a_owns_a_track_of_b(pair: tuple[Instance, Instance], tmp_path: Path) -> None:
    a, b = pair
    b.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "aurora", "--owner", "mira")
    mira = {"Authorization": f"Bearer {b.cli('token', 'issue', 'mira', '--scopes', 'read')}"}
    folder = tmp_path / "Tide Tables"
    folder.mkdir()
    make_audio(folder / "01 - Ebb.mp3", "mp3", seconds=TRACK_SECONDS)
    b.cli("import", str(folder), "--artist", "aurora")
    a.cli("user", "add", "lena", stdin="a long password\n")
    lena = {
        "Authorization": f"Bearer {a.cli('token', 'issue', 'lena', '--scopes', 'read write play')}"
    }
    [voucher, voucher_omar] = a.cli("voucher", "issue", "--tokens", "1022", "--count", "2").split()
    a.cli("user", "add", "omar", stdin="a long password\n")
    omar = {
        "Authorization": f"Bearer {a.cli('token', 'issue', 'omar', '--scopes', 'read write play')}"
    }
    a.start()
    b.start()
    b.wait_for(r"release (\d+) announced")
    a.cli("partners", "request", b.base.split("://", 1)[1])
    a.wait_for(r"inbox item \d+ \(Accept from .*/actor\): done: Accept of our partnership")

    with httpx.Client(timeout=30) as http:
        start = http.get(f"{a.base}/api/v1/me/wallet", headers=lena).json()["balance"]
        redeemed = http.post(f"{a.base}/api/v1/me/vouchers", json={"code": voucher}, headers=lena)
        assert redeemed.status_code == 200, redeemed.text
        redeemed = http.post(
            f"{a.base}/api/v1/me/vouchers", json={"code": voucher_omar}, headers=omar
        )
        assert redeemed.status_code == 200, redeemed.text
        resolved = http.post(
            f"{a.base}/api/v1/remote-releases", json={"uri": f"{b.base}/releases/1"}, headers=lena
        )
        assert resolved.status_code == 200, resolved.text
        [track] = resolved.json()["items"]
        assert track["title"] == "Ebb"

        paid = []
        for _ in range(10):
            opened = http.post(f"{a.base}/api/v1/tracks/{track['id']}/plays", headers=lena)
            assert opened.status_code == 201, opened.text
            play = opened.json()
            assert play["mode"] == "full"
            # the session's stream is for its listener only; streaming it to the end
            # charges the play, whether the player claims it or not
            assert http.get(play["stream_url"], headers=omar).status_code == 403
            audio = http.get(play["stream_url"], headers=lena)
            assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
            part = http.get(play["stream_url"], headers={"Range": "bytes=10-19", **lena})
            assert part.status_code == 206 and part.content == audio.content[10:20]
            time.sleep(TRACK_SECONDS)  # the rule itself: a play counts after min(45 s, length)
            claimed = http.post(play["claim_url"], headers=lena)
            assert claimed.status_code == 200, claimed.text
            paid.append(claimed.json()["tokens"])
        assert paid == [2, 4, 8, 16, 32, 64, 128, 256, 512, 0]
        assert claimed.json()["owned"] is True
        price = http.get(f"{a.base}/api/v1/tracks/{track['id']}/price", headers=lena)
        assert price.json()["owned"] is True and price.json()["price"] == 0
        assert http.get(f"{a.base}/api/v1/me/wallet", headers=lena).json()["balance"] == start

        # a second listener plays twice, then buys the rest: 2 + 4 + 1016 = 1022, owned
        for _ in range(2):
            play = http.post(f"{a.base}/api/v1/tracks/{track['id']}/plays", headers=omar).json()
            time.sleep(TRACK_SECONDS)
            assert http.post(play["claim_url"], headers=omar).status_code == 200
        bought = http.post(f"{a.base}/api/v1/tracks/{track['id']}/buy", headers=omar)
        assert bought.status_code == 200, bought.text
        assert (bought.json()["tokens"], bought.json()["owned"]) == (1016, True)
        again = http.post(f"{a.base}/api/v1/tracks/{track['id']}/buy", headers=omar)
        assert again.status_code == 409
        # omar's wallet history names the partner's track and instance, and adds up
        history = http.get(f"{a.base}/api/v1/me/wallet/history", headers=omar).json()
        moved = history["movements"]
        assert [(m["kind"], m["tokens"]) for m in moved[:4]] == [
            ("partner-buy", -1016), ("partner-play", -4), ("partner-play", -2), ("voucher", 1022),
        ]  # fmt: skip
        assert {(m["track_id"], m["track_title"], m["partner"]) for m in moved[:3]} == {
            (track["id"], "Ebb", host_of(b))
        }
        assert [m["paid_number"] for m in moved[1:3]] == [2, 1]
        for newer, older in zip(moved, [*moved[1:], {"balance": 0}], strict=True):
            assert newer["balance"] == older["balance"] + newer["tokens"]
        assert moved[0]["balance"] == history["balance"]
        assert (
            history["balance"]
            == http.get(f"{a.base}/api/v1/me/wallet", headers=omar).json()["balance"]
        )

        # the year's summary: what omar's plays paid went to B (for its artist) and to A
        summary = http.get(f"{a.base}/api/v1/me/wallet/summary", headers=omar).json()
        assert summary["spent"] == 1022
        assert {p["kind"]: p["name"] for p in summary["paid"]} == {
            "partner": host_of(b), "instance": "",
        }  # fmt: skip
        [to_b] = [p["tokens"] for p in summary["paid"] if p["kind"] == "partner"]
        assert to_b == 1022 * 70 // 100

        # B records each Listen once (the purchase as the seven remaining paid plays)
        # and pays its artist the share of what was paid: floor(2044 × 70 %) = 1430
        b.wait_for_count(r"inbox item \d+ \(Listen from .*/actor\): done: Listen of track", 19)
        earnings = http.get(f"{b.base}/api/v1/artists/aurora/earnings", headers=mira).json()
        assert earnings["balance_tokens"] == 2044 * 70 // 100 == 1430
        assert [(t["title"], t["tokens"]) for t in earnings["per_track"]] == [("Ebb", 1430)]

        # the cached audio is what B holds, and nobody without a session gets it
        assert http.get(f"{a.base}/tracks/{track['id']}/stream").status_code == 403

        # A states the period's Listens to B, signed; B verifies and accepts it
        [statement_uri, _summary] = a.cli("statements", "send").splitlines()
        b.wait_for(r"inbox item \d+ \(Create from .*/actor\): done: statement .*: accepted")
        a.wait_for(r"inbox item \d+ \(Accept from .*/actor\): done: Accept of our royalty")
        [ours] = a.cli("statements", "list").splitlines()
        assert ours.startswith(f"{statement_uri}\toutgoing\taccepted")
        assert "charged 2044\towed 1430" in ours
        [theirs] = b.cli("statements", "list").splitlines()
        assert theirs.startswith(f"{statement_uri}\tincoming\taccepted")
        signed = http.get(statement_uri, headers={"Accept": "application/activity+json"}).json()
        assert signed["proof"]["cryptosuite"] == "eddsa-jcs-2022"
        assert signed["totalOwed"] == 1430
        # nothing new to state: nothing sent
        assert a.cli("statements", "send").endswith("0 statements queued for delivery")


def host_of(instance: Instance) -> str:
    return instance.base.split("://", 1)[1]


@pytest.fixture
def trio(tmp_path: Path, database_url: str) -> Iterator[tuple[Instance, Instance, Instance]]:
    a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")
    b = make_instance(tmp_path / "b", "127.0.0.3", database_url)
    hub = make_instance(tmp_path / "h", "127.0.0.4", f"sqlite+aiosqlite:///{tmp_path}/h.sqlite3")
    hub.env.update(
        {"PLAYFAIR_FEDERATION__HUB_ROLE": "true", "PLAYFAIR_FEDERATION__PARTNERSHIPS": "auto"}
    )
    b.env["PLAYFAIR_FEDERATION__PARTNERSHIPS"] = "auto"
    for member in (a, b):
        member.env["PLAYFAIR_FEDERATION__HUB"] = f"{hub.base}/actor"
    yield a, b, hub
    for instance in (a, b, hub):
        if instance.process is not None:
            output = instance.stop()
            assert "Traceback" not in output, output


def start_three(
    a: Instance, b: Instance, hub: Instance, folder: Path
) -> tuple[dict[str, str], str]:
    """An artist with a short track on B, a listener on A with a voucher of 1022 tokens,
    the three started, and the partnerships A-B, A-hub and B-hub in place."""
    b.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "aurora", "--owner", "mira")
    folder = folder / "Tide Tables"
    folder.mkdir()
    make_audio(folder / "01 - Ebb.mp3", "mp3", seconds=TRACK_SECONDS)
    b.cli("import", str(folder), "--artist", "aurora")
    a.cli("user", "add", "lena", stdin="a long password\n")
    token = a.cli("token", "issue", "lena", "--scopes", "read write play")
    lena = {"Authorization": f"Bearer {token}"}
    [voucher] = a.cli("voucher", "issue", "--tokens", "1022").split()
    for instance in (a, b, hub):
        instance.start()
    b.wait_for(r"release (\d+) announced")
    a.cli("partners", "request", host_of(b))
    a.cli("partners", "request", host_of(hub))
    b.cli("partners", "request", host_of(hub))
    a.wait_for_count(r"\(Accept from .*/actor\): done: Accept of our partnership", 2)
    b.wait_for(r"\(Accept from .*/actor\): done: Accept of our partnership")
    return lena, voucher


def test_the_hub_settles_what_a_owes_b(
    trio: tuple[Instance, Instance, Instance], tmp_path: Path
) -> None:
    """Issue 7's three-instance scenario: A's listener pays 1022 tokens for B's track and
    owns it, B's artist is credited the share, A's statement is accepted, and the hub's
    settlement says A pays B exactly that; both book it and owe each other nothing."""
    a, b, hub = trio
    lena, voucher = start_three(a, b, hub, tmp_path)

    with httpx.Client(timeout=30) as http:
        assert (
            http.post(
                f"{a.base}/api/v1/me/vouchers", json={"code": voucher}, headers=lena
            ).status_code
            == 200
        )
        [track] = http.post(
            f"{a.base}/api/v1/remote-releases", json={"uri": f"{b.base}/releases/1"}, headers=lena
        ).json()["items"]
        for _ in range(10):
            play = http.post(f"{a.base}/api/v1/tracks/{track['id']}/plays", headers=lena).json()
            assert http.get(play["stream_url"], headers=lena).status_code == 200
            time.sleep(TRACK_SECONDS)  # the rule itself: a play counts after min(45 s, length)
            assert http.post(play["claim_url"], headers=lena).status_code == 200
    b.wait_for_count(r"\(Listen from .*/actor\): done: Listen of track", 10)

    a.cli("statements", "send")
    b.wait_for(r"\(Create from .*/actor\): done: statement .*: accepted")
    hub.wait_for(r"\(Create from .*/actor\): done: statement .* logged: verified")
    hub.wait_for(r"\(Accept from .*/actor\): done: accept of .* logged")
    settled = hub.cli("hub", "settle").splitlines()
    assert settled[1:] == [f"{a.base}/actor pays {b.base}/actor 715 tokens"]
    a.wait_for(r"\(Create from .*/actor\): done: settlement .* booked: net -715 tokens")
    b.wait_for(r"\(Create from .*/actor\): done: settlement .* booked: net 715 tokens")
    assert asyncio.run(peer_balances(a)) == [0]  # nothing owed either way any more
    assert asyncio.run(peer_balances(b)) == [0]
    assert hub.cli("hub", "settle") == "nothing to settle"  # each statement settles once


def test_a_brown_out_at_b_loses_nothing(
    trio: tuple[Instance, Instance, Instance], tmp_path: Path
) -> None:
    """B goes away after the first play: A keeps playing from its cache and charging,
    queues the Listens and its statement, and when B is back everything arrives; the
    totals are still exact and the hub settles them once."""
    a, b, hub = trio
    a.env.update(
        {"PLAYFAIR_FEDERATION__DELIVERY_RETRY_BASE": "1s",
         "PLAYFAIR_FEDERATION__DELIVERY_RETRY_MAX": "2s"}
    )  # fmt: skip
    lena, voucher = start_three(a, b, hub, tmp_path)

    with httpx.Client(timeout=30) as http:
        redeemed = http.post(f"{a.base}/api/v1/me/vouchers", json={"code": voucher}, headers=lena)
        assert redeemed.status_code == 200, redeemed.text
        [track] = http.post(
            f"{a.base}/api/v1/remote-releases", json={"uri": f"{b.base}/releases/1"}, headers=lena
        ).json()["items"]
        paid = []
        for number in range(10):
            if number == 1:
                b.stop()  # the brown-out: B is unreachable from the second play on
            play = http.post(f"{a.base}/api/v1/tracks/{track['id']}/plays", headers=lena).json()
            assert play["mode"] == "full", play
            assert http.get(play["stream_url"], headers=lena).status_code == 200  # from A's cache
            time.sleep(TRACK_SECONDS)  # the rule itself: a play counts after min(45 s, length)
            paid.append(http.post(play["claim_url"], headers=lena).json()["tokens"])
    assert paid == [2, 4, 8, 16, 32, 64, 128, 256, 512, 0]
    a.cli("statements", "send")  # queued too: B is still away
    a.wait_for(r"delivery \d+ of Create to http://127\.0\.0\.3.*: retry")

    b.start()  # back: the queued Listens and the statement arrive, in any order
    b.wait_for(r"\(Create from .*/actor\): done: statement .*: accepted", timeout=120)
    hub.wait_for(r"\(Accept from .*/actor\): done: accept of .* logged", timeout=60)
    settled = hub.cli("hub", "settle").splitlines()
    assert settled[1:] == [f"{a.base}/actor pays {b.base}/actor 715 tokens"]
    b.wait_for(r"\(Create from .*/actor\): done: settlement .* booked: net 715 tokens")
    a.wait_for(r"\(Create from .*/actor\): done: settlement .* booked: net -715 tokens")
    listens = [
        line
        for line in b.process.output.splitlines()
        if "done: Listen of track" in line  # type: ignore[union-attr]
    ]
    assert len(listens) <= 9  # the ones queued while B was away (any not yet arrived were fetched)
    assert asyncio.run(peer_balances(a)) == [0]
    assert asyncio.run(peer_balances(b)) == [0]


def test_bad_statements_are_refused_with_their_reason(
    pair: tuple[Instance, Instance], tmp_path: Path
) -> None:
    """Statements that A's real keys sign, posted straight to B's inbox: tampered in
    transit, a forged proof, a Listen for a track B does not host, a broken chain, and a
    replay; each refused or rejected, the reason recorded."""
    a, b = pair
    b.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "aurora", "--owner", "mira")
    folder = tmp_path / "Tide Tables"
    folder.mkdir()
    make_audio(folder / "01 - Ebb.mp3", "mp3", seconds=TRACK_SECONDS)
    b.cli("import", str(folder), "--artist", "aurora")
    a.start()
    b.start()
    b.wait_for(r"release (\d+) announced")
    a.cli("partners", "request", host_of(b))
    a.wait_for(r"\(Accept from .*/actor\): done: Accept of our partnership")
    keys = asyncio.run(instance_keys(a))
    actor_a, actor_b = f"{a.base}/actor", f"{b.base}/actor"
    start = datetime.now(UTC) - timedelta(hours=1)

    def listen_on(track: str, begin: datetime = start) -> ListenRecord:
        return ListenRecord(
            f"{a.base}/listens/{uuid.uuid4().hex}", actor_a, track, "f" * 64, 1, 2, False,
            begin + timedelta(minutes=1),
        )  # fmt: skip

    def statement(
        track: str, previous: Any = None, signer: Any = None, listen: Any = None
    ) -> dict[str, Any]:
        begin = previous.period_end if previous else start
        listen = listen or listen_on(track, begin)
        built = build_statement(
            f"{a.base}/statements/{uuid.uuid4().hex}", actor_a, actor_b,
            Period(begin, begin + timedelta(minutes=30)), [listen], previous, 7000,
        )  # fmt: skip
        return sign_object(
            statement_document(built), signer or keys.ed25519,
            f"{actor_a}#{keys.ed25519_name}", created=datetime.now(UTC),
        )  # fmt: skip

    def post(document: dict[str, Any]) -> None:
        create = activity(
            f"{actor_a}/tests/{uuid.uuid4().hex}", "Create", actor_a, document, to=[actor_b]
        )
        post_activity(create)

    def post_activity(document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        headers = sign_request(
            "POST", f"{b.base}/inbox", body, f"{actor_a}#{keys.rsa_name}", keys.rsa
        )
        headers["Content-Type"] = "application/activity+json"
        assert httpx.post(f"{b.base}/inbox", content=body, headers=headers).status_code == 202

    tampered = statement(f"{b.base}/tracks/1")
    tampered["endTime"] = (start + timedelta(minutes=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    post(tampered)
    b.wait_for(r"\(Create from .*\): ignored: statement refused: the statement's proof does not")
    post(statement(f"{b.base}/tracks/1", signer=Ed25519PrivateKey.generate()))
    b.wait_for_count(r"ignored: statement refused: the statement's proof does not hold", 2)

    # a Listen for a track B does not host is refused on arrival, and so is a statement
    # that lists it
    stray = listen_on(f"{b.base}/tracks/999")
    post_activity(listen_activity(stray, to=[actor_b]))
    b.wait_for(r"\(Listen from .*\): ignored: the Listen is not about a track hosted here")
    unhosted = statement(f"{b.base}/tracks/999", listen=stray)
    post(unhosted)
    b.wait_for(r"done: statement .*: rejected \(a listed Listen could not be fetched .*999")
    fake_previous = parse_statement(statement(f"{b.base}/tracks/1"))
    post(statement(f"{b.base}/tracks/1", previous=fake_previous))
    b.wait_for(r"done: statement .*: rejected \(.*not the last one accepted")
    post(unhosted)  # the same statement again
    b.wait_for(r"done: statement already answered")

    listed = b.cli("statements", "list").splitlines()
    assert len(listed) == 2
    assert all("\tincoming\trejected\t" in line for line in listed)
    assert "tracks/999" in listed[0]
    assert "not the last one accepted" in listed[1]


def test_the_hub_checks_for_itself(trio: tuple[Instance, Instance, Instance]) -> None:
    """Statements copied to the hub are checked there without trusting the sender: a
    share other than the co-op's, a chain the hub has not seen, a changed document; each
    is logged as refused with its reason, and none is settled."""
    a, b, hub = trio
    for instance in (a, hub):
        instance.start()
    a.cli("partners", "request", host_of(hub))
    a.wait_for(r"\(Accept from .*/actor\): done: Accept of our partnership")
    keys = asyncio.run(instance_keys(a))
    actor_a, actor_b = f"{a.base}/actor", f"{b.base}/actor"
    start = datetime.now(UTC) - timedelta(hours=1)

    def signed(share: int = 7000, previous: Any = None, begin: datetime = start) -> dict[str, Any]:
        listen = ListenRecord(
            f"{a.base}/listens/{uuid.uuid4().hex}", actor_a, f"{b.base}/tracks/1", "f" * 64,
            1, 2, False, begin + timedelta(minutes=1),
        )  # fmt: skip
        built = build_statement(
            f"{a.base}/statements/{uuid.uuid4().hex}", actor_a, actor_b,
            Period(begin, begin + timedelta(minutes=10)), [listen], previous, share,
        )  # fmt: skip
        return sign_object(
            statement_document(built), keys.ed25519, f"{actor_a}#{keys.ed25519_name}",
            created=datetime.now(UTC),
        )  # fmt: skip

    def post(document: dict[str, Any]) -> None:
        create = activity(
            f"{actor_a}/tests/{uuid.uuid4().hex}", "Create", actor_a, document, to=[actor_b],
            cc=[f"{hub.base}/actor"],
        )  # fmt: skip
        body = json.dumps(create).encode()
        headers = sign_request(
            "POST", f"{hub.base}/inbox", body, f"{actor_a}#{keys.rsa_name}", keys.rsa
        )
        headers["Content-Type"] = "application/activity+json"
        assert httpx.post(f"{hub.base}/inbox", content=body, headers=headers).status_code == 202

    post(signed(share=6000))
    hub.wait_for(r"logged: refused \(the artist share is 60 %, not the co-op's 70 %\)")
    unseen = parse_statement(signed())
    post(signed(previous=unseen, begin=unseen.period_end))
    hub.wait_for(r"logged: refused \(the statement's previous statement is not in the hub's log\)")
    changed = signed()
    # the numbers still add up; only the period changed after signing
    changed["startTime"] = (start - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    post(changed)
    hub.wait_for(r"logged: refused \(the signature does not match the document")
    log = hub.cli("hub", "log").splitlines()
    assert len(log) == 3 and all("\trefused: " in line for line in log)
    assert hub.cli("hub", "settle") == "nothing to settle"
