"""Money transitions under real concurrency, on SQLite and PostgreSQL.

Each transition is raced by 50 clients at once through real HTTP against a real
`playfair run` (on PostgreSQL a second `playfair serve` on the same database takes half of
the requests, so writers really race in two processes): one session claimed by everybody,
many sessions against a thin wallet, "buy now" racing claims, buys racing buys, payout
requests racing each other and payout runs, one voucher code, one Stripe event delivered
again and again, playlist adds. Every answer is a success or a clear 402/409, never a
5xx, and afterwards the ledger is read to check the money invariants
(tests/money_invariants.py). The tracks are real audio, imported and transcoded by the
instance's worker.

A hypothesis state machine then interleaves plays, claims, buys, top-ups, payout requests
and runs, sequentially and in small races, in-process through the app's test client, and
checks each answer against the state before it and the invariants after every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from quart import Quart
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.catalogue import Artist, PriceModel, Release, Track, TrackStatus, Visibility
from models.database import DatabaseOptions, create_engine, create_sessionmaker
from models.handles import HandleKind, claim_handle
from models.ledger import LedgerAccount, Payout, PayoutState
from models.plays import Play, PlaySession
from models.pricing import buy_now_cost
from models.tokens import AccessToken, new_token, token_digest
from models.users import Role, User
from server.runtime.config import load_settings
from server.services.account_rules import hash_password
from server.services.catalogue import create_artist
from server.services.importer import find_files, import_files
from server.services.money import grant_starter_balance, issue_vouchers
from server.services.payments import sign
from server.web.app import create_app
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, make_account
from tests.conftest import fresh_database, make_settings
from tests.instances import Instance, database_of, free_port, make_instance
from tests.money_invariants import check_money_invariants
from tests.processes import PlayfairProcess

CLIENTS = 50
TRACKS = 10
WEBHOOK_SECRET = "whsec_races"
HOSTS = {"sqlite": "127.0.0.31", "postgres": "127.0.0.32"}
LIMITS = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
_names = itertools.count()

Headers = dict[str, str]


@dataclass
class Site:
    """One running instance (two server processes on PostgreSQL) shared by the module."""

    instance: Instance
    bases: list[str]
    tracks: list[int]  # aurora's, stream-to-own
    payee_track: int  # boreal's, whose earnings the payout test pays out
    admin: Headers
    boreal: Headers
    extra: list[PlayfairProcess] = field(default_factory=list)

    def base(self, client: int) -> str:
        """Clients take turns between the server processes."""
        return self.bases[client % len(self.bases)]


@functools.cache
def password_hash() -> str:
    """One Argon2 hash for every test account (they sign in with tokens, never with it)."""
    return hash_password("a long password")


async def add_user(
    session: AsyncSession, role: Role, scopes: str, tokens: int = 0
) -> tuple[User, Account]:
    """An account with a personal access token, as `playfair user add` and `playfair token
    issue` make them (and its starter balance)."""
    name = await claim_handle(session, f"fan{next(_names)}", HandleKind.USER)
    user = User(username=name, password_hash=password_hash(), role=role)
    session.add(user)
    await session.flush()
    await grant_starter_balance(session, user.id, tokens)
    token = new_token()
    session.add(AccessToken(user_id=user.id, digest=token_digest(token), scopes=scopes))
    await session.commit()
    return user, Account(user.id, token)


async def _populate(instance: Instance, albums: Path) -> tuple[Headers, Headers]:
    """The admin and two artists, and their albums imported as `playfair import` does;
    the running instance's worker transcodes them."""
    settings = load_settings(None, environ=instance.env)
    engine = create_engine(DatabaseOptions(url=settings.database_url))
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            _admin, admin = await add_user(session, Role.ADMIN, "read write admin")
            for artist in ("aurora", "boreal"):
                owner, account = await add_user(session, Role.ARTIST, "read write")
                await create_artist(session, artist, owner)
                await session.commit()
        for artist in ("aurora", "boreal"):
            report = await import_files(
                settings, sessionmaker, artist, find_files(albums / artist), publish=True
            )
            assert not report.failures, report.failures
    finally:
        await engine.dispose()
    return admin.headers, account.headers


async def _track_ids(instance: Instance, artist: str) -> list[int]:
    async with database_of(instance) as session:
        return list(
            await session.scalars(
                select(Track.id)
                .join(Artist, Artist.id == Track.artist_id)
                .where(Artist.name == artist, Track.status == TrackStatus.READY)
                .order_by(Track.position)
            )
        )


@pytest.fixture(scope="module")
def albums(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real audio, made once for both databases: ten short tracks and a single."""
    folder = tmp_path_factory.mktemp("albums")
    for artist, count in (("aurora", TRACKS), ("boreal", 1)):
        (folder / artist).mkdir()
        for number in range(count):
            make_audio(
                folder / artist / f"{number + 1:02d} - Tune {number}.mp3", "mp3",
                seconds=0.6, frequency=300 + 40 * number,
            )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def site(
    database_kind: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    albums: Path,
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp(f"races-{database_kind}")
    with fresh_database(database_kind, request, folder) as url:
        host = HOSTS[database_kind]
        instance = make_instance(folder / "data", host, url, init=False)
        instance.env["PLAYFAIR_MONEY__PAYOUT_THRESHOLD_CENTS"] = "50"
        instance.env["PLAYFAIR_MONEY__STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        instance.start()
        extra = []
        try:
            admin, boreal = asyncio.run(_populate(instance, albums))
            bases = [instance.base]
            if database_kind == "postgres":
                second = PlayfairProcess(["serve", "--bind", f"{host}:{free_port(host)}"],
                                         instance.env)  # fmt: skip
                extra.append(second)
                bases.append(second.address())
            instance.wait_for_count(r"release \d+ announced", 2)
            tracks = asyncio.run(_track_ids(instance, "aurora"))
            [payee_track] = asyncio.run(_track_ids(instance, "boreal"))
            assert len(tracks) == TRACKS
            yield Site(instance, bases, tracks, payee_track, admin, boreal, extra)
        finally:
            outputs = []
            for process in extra:
                process.stop()
                outputs.append(process.output)
            outputs.append(instance.stop())
        for output in outputs:
            assert "Traceback" not in output, output


async def add_listeners(site: Site, count: int, tokens: int) -> list[tuple[int, Headers]]:
    async with database_of(site.instance) as session:
        made = []
        for _ in range(count):
            user, account = await add_user(session, Role.LISTENER, "read write play", tokens)
            made.append((user.id, account.headers))
        return made


async def add_listener(site: Site, tokens: int) -> tuple[int, Headers]:
    [made] = await add_listeners(site, 1, tokens)
    return made


async def heard(site: Site, tokens: list[str]) -> None:
    """Move play sessions' start a minute back, as if the tracks had been heard."""
    async with database_of(site.instance) as session:
        await session.execute(
            update(PlaySession)
            .where(PlaySession.token.in_(tokens))
            .values(started_at=utcnow() - timedelta(seconds=60))
        )
        await session.commit()


async def check_invariants(site: Site) -> None:
    async with database_of(site.instance) as session:
        await check_money_invariants(session)


async def at_once(calls: list[Callable[[], Awaitable[httpx.Response]]]) -> list[httpx.Response]:
    answers = await asyncio.gather(*(call() for call in calls))
    errors = [(a.request.url.path, a.status_code, a.text) for a in answers if a.status_code >= 500]
    assert not errors, errors
    return list(answers)


def codes(answers: list[httpx.Response]) -> Counter[int]:
    return Counter(answer.status_code for answer in answers)


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=120, limits=LIMITS)


async def open_plays(
    http: httpx.AsyncClient, site: Site, plays: list[tuple[Headers, int]]
) -> list[str]:
    """Open play sessions at once (listener, track), all as heard already."""
    opened = await at_once(
        [
            lambda i=i, h=h, t=t: http.post(f"{site.base(i)}/api/v1/tracks/{t}/plays", headers=h)
            for i, (h, t) in enumerate(plays)
        ]
    )
    assert all(o.status_code == 201 and o.json()["mode"] == "full" for o in opened), opened
    tokens = [o.json()["session"] for o in opened]
    await heard(site, tokens)
    return tokens


async def test_one_session_claimed_by_fifty_clients(site: Site) -> None:
    """One play, the same answer for everybody; a session is its own listener's only."""
    (user_id, lena), (_other, omar) = await add_listeners(site, 2, 128)
    async with http_client() as http:
        [token] = await open_plays(http, site, [(lena, site.tracks[0])])
        answers = await at_once(
            [
                lambda i=i: http.post(
                    f"{site.base(i)}/api/v1/plays/{token}/claim", headers=omar if i < 5 else lena
                )
                for i in range(CLIENTS)
            ]
        )
        omar_wallet = (await http.get(f"{site.base(0)}/api/v1/me/wallet", headers=omar)).json()
    assert codes(answers[:5]) == {404: 5}, "someone else's session is nobody's to claim"
    assert omar_wallet["balance"] == 128 and omar_wallet["plays"] == []
    answers = answers[5:]
    assert codes(answers) == {200: CLIENTS - 5}
    expected = {"outcome": "charged", "tokens": 2, "paid_number": 1, "owned": False, "balance": 126}
    assert [a.json() for a in answers] == [expected] * (CLIENTS - 5), "one play, one answer"
    async with database_of(site.instance) as session:
        plays = await session.scalar(select(func.count()).where(Play.user_id == user_id))
    assert plays == 1
    await check_invariants(site)


async def test_many_sessions_against_a_thin_wallet(site: Site) -> None:
    _user_id, lena = await add_listener(site, 41)
    async with http_client() as http:
        tracks = [site.tracks[i % TRACKS] for i in range(CLIENTS)]
        tokens = await open_plays(http, site, [(lena, t) for t in tracks])
        answers = await at_once(
            [
                lambda i=i, t=t: http.post(f"{site.base(i)}/api/v1/plays/{t}/claim", headers=lena)
                for i, t in enumerate(tokens)
            ]
        )
        balance = (await http.get(f"{site.base(0)}/api/v1/me/wallet", headers=lena)).json()[
            "balance"
        ]
        refused_tracks = {t for t, a in zip(tracks, answers, strict=True) if a.status_code == 402}
        prices = [
            (await http.get(f"{site.base(0)}/api/v1/tracks/{t}/price", headers=lena)).json()
            for t in sorted(refused_tracks)
        ]
    seen = codes(answers)
    assert set(seen) <= {200, 402} and seen[200] and seen[402], seen
    charged = sum(a.json()["tokens"] for a in answers if a.status_code == 200)
    assert 0 <= balance == 41 - charged, "only the claims the balance covered were charged"
    assert all(price["price"] > balance for price in prices), "a refused play was affordable"
    await check_invariants(site)


async def test_buy_now_racing_claims_of_the_same_track(site: Site) -> None:
    """The purchase and the claims commit in any order; the listener always ends up the
    owner, having paid exactly 1022 tokens (at commit 7302212, on PostgreSQL, a claim
    that had read the count before the purchase committed wrote the ownership away)."""
    track = site.tracks[1]
    listeners = await add_listeners(site, 10, 1100)
    async with http_client() as http:
        tokens = await open_plays(http, site, [(h, track) for _, h in listeners for _ in range(4)])
        calls = []
        for number, (_user_id, headers) in enumerate(listeners):
            for token in tokens[number * 4 : number * 4 + 4]:
                calls.append(
                    lambda i=number, t=token, h=headers: http.post(
                        f"{site.base(i + 1)}/api/v1/plays/{t}/claim", headers=h
                    )
                )
            calls.insert(  # between the claims: some commit before it, some after
                len(calls) - 2,
                lambda i=number, h=headers: http.post(
                    f"{site.base(i)}/api/v1/tracks/{track}/buy", headers=h
                ),
            )
        answers = await at_once(calls)
        wallets = [
            (await http.get(f"{site.base(0)}/api/v1/me/wallet", headers=h)).json()
            for _user_id, h in listeners
        ]
    assert codes(answers) == {200: len(calls)}
    assert [(w["balance"], track in w["owned_track_ids"]) for w in wallets] == [(78, True)] * 10
    await check_invariants(site)


async def test_buy_now_by_fifty_clients(site: Site) -> None:
    track = site.tracks[2]
    listeners = await add_listeners(site, 5, 1100)
    async with http_client() as http:
        answers = await at_once(
            [
                lambda i=i, h=h: http.post(f"{site.base(i)}/api/v1/tracks/{track}/buy", headers=h)
                for i in range(CLIENTS // 5)
                for _user_id, h in listeners
            ]
        )
        balances = [
            (await http.get(f"{site.base(0)}/api/v1/me/wallet", headers=h)).json()["balance"]
            for _user_id, h in listeners
        ]
    assert codes(answers) == {200: 5, 409: CLIENTS - 5}
    assert sorted(a.json()["tokens"] for a in answers if a.status_code == 200) == [1022] * 5
    assert balances == [78] * 5
    await check_invariants(site)


async def test_payout_requests_racing_each_other_and_payout_runs(site: Site) -> None:
    earnings_url = f"{site.base(0)}/api/v1/artists/boreal/earnings"
    async with http_client() as http:
        for _ in range(2):
            _user_id, buyer = await add_listener(site, 1022)
            bought = await http.post(
                f"{site.base(0)}/api/v1/tracks/{site.payee_track}/buy", headers=buyer
            )
            assert bought.status_code == 200, bought.text
        earned = (await http.get(earnings_url, headers=site.boreal)).json()["balance_tokens"]
        assert earned == 2 * 715
        calls = [
            (lambda i=i: http.post(f"{site.base(i)}/api/v1/admin/payouts/run", headers=site.admin))
            if i % 5 == 0
            else (
                lambda i=i: http.post(
                    f"{site.base(i)}/api/v1/artists/boreal/payouts", headers=site.boreal
                )
            )
            for i in range(CLIENTS)
        ]
        answers = await at_once(calls)
        requests = [a for a in answers if a.request.url.path.endswith("/boreal/payouts")]
        runs = [a for a in answers if a.request.url.path.endswith("/run")]
        final = await http.post(f"{site.base(1)}/api/v1/admin/payouts/run", headers=site.admin)
        left = (await http.get(earnings_url, headers=site.boreal)).json()["balance_tokens"]
        again = await http.post(
            f"{site.base(0)}/api/v1/artists/boreal/payouts", headers=site.boreal
        )
    assert codes(requests) == {201: 1, 409: len(requests) - 1}, "one request takes the earnings"
    assert [a.json()["tokens"] for a in requests if a.status_code == 201] == [earned]
    assert codes(runs) == {200: len(runs)} and final.status_code == 200
    paid = [p for run in [*runs, final] for p in run.json()["paid"]]
    assert [(p["artist_id"], p["tokens"], p["state"]) for p in paid] == [
        (paid[0]["artist_id"], earned, "paid")
    ], "paid once, exactly what was earned"
    assert left == 0 and again.status_code == 409
    await check_invariants(site)


async def test_one_voucher_redeemed_by_fifty_clients(site: Site) -> None:
    async with database_of(site.instance) as session:
        [code] = await issue_vouchers(session, 500, 1, None)
    listeners = await add_listeners(site, 10, 0)
    async with http_client() as http:
        answers = await at_once(
            [
                lambda i=i, h=h: http.post(
                    f"{site.base(i)}/api/v1/me/vouchers", json={"code": code}, headers=h
                )
                for i in range(CLIENTS // 10)
                for _user_id, h in listeners
            ]
        )
        balances = [
            (await http.get(f"{site.base(0)}/api/v1/me/wallet", headers=h)).json()["balance"]
            for _user_id, h in listeners
        ]
    assert codes(answers) == {200: 1, 409: CLIENTS - 1}
    assert sorted(balances) == [0] * 9 + [500]
    await check_invariants(site)


def checkout_event(checkout: str, user_id: int, event_id: str) -> bytes:
    return json.dumps({
        "id": event_id, "type": "checkout.session.completed",
        "data": {"object": {"id": checkout, "payment_status": "paid", "amount_total": 125,
                            "currency": "eur", "client_reference_id": str(user_id),
                            "metadata": {"pack": "song"}}},
    }).encode()  # fmt: skip


async def test_one_stripe_checkout_delivered_fifty_times(site: Site) -> None:
    """Stripe delivers an event more than once, and may send several events for one
    checkout: the wallet is credited once. An event naming no account credits nothing."""
    user_id, lena = await add_listener(site, 0)
    checkout = f"cs_races_{next(_names)}"
    now = int(time.time())
    payloads = [checkout_event(checkout, user_id, f"evt_{i % 3}") for i in range(CLIENTS)]
    async with http_client() as http:
        answers = await at_once(
            [
                lambda i=i, p=p: http.post(
                    f"{site.base(i)}/payments/stripe/webhook",
                    content=p,
                    headers={
                        "Stripe-Signature": sign(p, WEBHOOK_SECRET, now),
                        "Content-Type": "application/json",
                    },
                )
                for i, p in enumerate(payloads)
            ]
        )
        balance = (await http.get(f"{site.base(0)}/api/v1/me/wallet", headers=lena)).json()[
            "balance"
        ]
        nobody = 10**9
        stray = checkout_event(f"{checkout}_x", nobody, "evt_stray")
        ignored = await http.post(
            f"{site.base(0)}/payments/stripe/webhook", content=stray,
            headers={"Stripe-Signature": sign(stray, WEBHOOK_SECRET, now)},
        )  # fmt: skip
    assert codes(answers) == {200: CLIENTS}
    outcomes = Counter(a.json()["outcome"] for a in answers)
    assert outcomes == {"credited 1022 tokens": 1, "already credited": CLIENTS - 1}
    assert balance == 1022
    assert ignored.status_code == 200 and ignored.json()["outcome"].startswith("ignored")
    async with database_of(site.instance) as session:
        stray_wallet = await session.scalar(
            select(LedgerAccount).where(LedgerAccount.owner_id == nobody)
        )
    assert stray_wallet is None, "an account that does not exist got a wallet"
    await check_invariants(site)


async def test_fifty_concurrent_playlist_adds(site: Site) -> None:
    """Ten tracks, each added by five clients at once: each lands once, at its own place."""
    _user_id, lena = await add_listener(site, 0)
    async with http_client() as http:
        made = await http.post(
            f"{site.base(0)}/api/v1/me/playlists", json={"title": "Busy"}, headers=lena
        )
        playlist = made.json()["id"]
        answers = await at_once(
            [
                lambda i=i, t=t: http.post(
                    f"{site.base(i)}/api/v1/playlists/{playlist}/items",
                    json={"track_id": t},
                    headers=lena,
                )
                for i, t in enumerate(site.tracks * (CLIENTS // TRACKS))
            ]
        )
        items = (
            await http.get(f"{site.base(0)}/api/v1/playlists/{playlist}", headers=lena)
        ).json()["items"]
    assert codes(answers) == {201: TRACKS, 409: CLIENTS - TRACKS}
    refused = {a.json()["reason"] for a in answers if a.status_code == 409}
    assert all("already" in reason for reason in refused), refused
    assert sorted(i["track_id"] for i in items) == sorted(site.tracks)
    assert [i["position"] for i in items] == list(range(1, TRACKS + 1))


# In-process: payouts booked twice by the code before requests reserved their tokens.


async def test_a_payout_run_pays_what_it_can_and_reports_the_rest(
    tmp_path: Path, database_url: str
) -> None:
    """Before requests reserved their tokens, concurrent requests each booked the whole
    balance; the payout run then failed with a 500 for every artist. Now it pays what the
    earnings cover, cancels what they do not, says so, and the next run is clean."""
    app = create_app(make_settings(tmp_path, database_url, money={"payout_threshold_cents": 50}))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        resources = resources_of(test_app.app)
        admin = await make_account(test_app.app, "boss", Role.ADMIN, scopes="read write admin")
        artists = []
        for name in ("ebb", "flow"):
            account = await make_account(test_app.app, f"{name}_owner", Role.ARTIST, artist=name)
            async with resources.sessionmaker() as session:
                artist = await session.scalar(select(Artist).where(Artist.name == name))
                assert artist is not None
                release = Release(
                    artist_id=artist.id, title="R", slug="r", visibility=Visibility.PUBLIC
                )
                session.add(release)
                await session.flush()
                track = Track(
                    release_id=release.id, artist_id=artist.id, title="T", slug="t",
                    duration_ms=60_000, status=TrackStatus.READY,
                )  # fmt: skip
                session.add(track)
                await session.commit()
            listener = await make_account(test_app.app, f"{name}_fan", Role.LISTENER)
            async with resources.sessionmaker() as session:
                [code] = await issue_vouchers(session, 1022, 1, None)
            assert (
                await client.post(
                    "/api/v1/me/vouchers", json={"code": code}, headers=listener.headers
                )
            ).status_code == 200
            assert (
                await client.post(f"/api/v1/tracks/{track.id}/buy", headers=listener.headers)
            ).status_code == 200
            artists.append((artist.id, account))
        # what the old request_payout left after two concurrent requests: two requests
        # for the whole balance of "ebb", and none reserved in the ledger
        async with resources.sessionmaker() as session:
            for _ in range(2):
                session.add(
                    Payout(
                        artist_id=artists[0][0], state=PayoutState.REQUESTED, tokens=715,
                        amount_cents=87, currency="EUR", rate_tokens=1022, rate_cents=125,
                    )
                )  # fmt: skip
            await session.commit()
        asked = await client.post("/api/v1/artists/flow/payouts", headers=artists[1][1].headers)
        assert asked.status_code == 201
        refused = await client.post("/api/v1/artists/ebb/payouts", headers=artists[0][1].headers)
        assert refused.status_code == 409, "what is already requested cannot be asked again"

        run = await client.post("/api/v1/admin/payouts/run", headers=admin.headers)
        assert run.status_code == 200, await run.get_data(as_text=True)
        body = await run.get_json()
        assert sorted((p["artist_id"], p["tokens"]) for p in body["paid"]) == sorted(
            [(artists[0][0], 715), (artists[1][0], 715)]
        )
        [cancelled] = body["refused"]
        assert (cancelled["artist_id"], cancelled["tokens"]) == (artists[0][0], 715)
        assert "cover" in cancelled["reason"]
        again = await (
            await client.post("/api/v1/admin/payouts/run", headers=admin.headers)
        ).get_json()
        assert again == {"paid": [], "refused": []}
        async with resources.sessionmaker() as session:
            await check_money_invariants(session)


# The state machine: plays, claims, buys, top-ups and payouts interleaved.


@dataclass
class World:
    """A few listeners, artists and tracks on a fresh database and app, per example."""

    app: Quart
    client: Any
    context: Any
    players: list[Account]  # three listeners, and an artist who plays their own tracks too
    artists: list[tuple[str, Account]]
    tracks: list[int]  # two of the first artist's, one of the second's, and a free one
    admin: Account

    @classmethod
    async def make(cls, folder: Path, database_url: str) -> World:
        settings = make_settings(folder, database_url, money={"payout_threshold_cents": 1})
        context = create_app(settings).test_app()
        await context.__aenter__()
        async with resources_of(context.app).sessionmaker() as session:
            _user, admin = await add_user(session, Role.ADMIN, "read write admin")
            artists, tracks = [], []
            for name in ("sea", "sky"):
                owner, account = await add_user(session, Role.ARTIST, "read write play")
                artist = await create_artist(session, name, owner)
                artists.append((name, account))
                release = Release(
                    artist_id=artist.id, title="R", slug="r", visibility=Visibility.PUBLIC
                )
                session.add(release)
                await session.flush()
                for price in (PriceModel.STREAM_TO_OWN, PriceModel.FREE if name == "sky" else
                              PriceModel.STREAM_TO_OWN):  # fmt: skip
                    track = Track(
                        release_id=release.id, artist_id=artist.id, title="T", slug="t",
                        duration_ms=180_000, status=TrackStatus.READY, price_model=price,
                    )  # fmt: skip
                    session.add(track)
                    await session.flush()
                    tracks.append(track.id)
            await session.commit()
            players = [(await add_user(session, Role.LISTENER, "read write play"))[1]
                       for _ in range(3)]  # fmt: skip
        players.append(artists[0][1])
        return cls(context.app, context.test_client(), context, players, artists, tracks, admin)

    async def close(self) -> None:
        await self.context.__aexit__(None, None, None)


@dataclass(frozen=True)
class Started:
    player: int
    track: int
    token: str


class MoneyMachine(RuleBasedStateMachine):
    runner: ClassVar[asyncio.Runner]
    database: ClassVar[Callable[[Path], contextlib.AbstractContextManager[str]]]
    root: ClassVar[Path]

    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.claimed: dict[str, dict[str, Any]] = {}
        self.resources = contextlib.ExitStack()
        folder = self.root / f"example{next(_names)}"
        folder.mkdir()
        url = self.resources.enter_context(self.database(folder))
        self.world = self.run(World.make(folder, url))
        self.resources.callback(lambda: self.run(self.world.close()))

    def teardown(self) -> None:
        self.resources.close()

    def run(self, work: Awaitable[Any]) -> Any:
        return self.runner.run(work)  # type: ignore[arg-type]

    async def _post(self, path: str, account: Account, **kwargs: Any) -> tuple[int, Any]:
        answer = await self.world.client.post(path, headers=account.headers, **kwargs)
        body = await answer.get_json()
        assert answer.status_code < 500, (path, answer.status_code, body)
        return answer.status_code, body

    async def _price(self, player: int, track: int) -> dict[str, Any]:
        answer = await self.world.client.get(
            f"/api/v1/tracks/{self.world.tracks[track]}/price",
            headers=self.world.players[player].headers,
        )
        return await answer.get_json()  # type: ignore[no-any-return]

    async def _heard(self, token: str) -> None:
        async with resources_of(self.world.app).sessionmaker() as session:
            await session.execute(
                update(PlaySession)
                .where(PlaySession.token == token)
                .values(started_at=utcnow() - timedelta(seconds=60))
            )
            await session.commit()

    def _claim(self, started: Started) -> Awaitable[tuple[int, Any]]:
        return self._post(
            f"/api/v1/plays/{started.token}/claim", self.world.players[started.player]
        )

    def _buy(self, player: int, track: int) -> Awaitable[tuple[int, Any]]:
        return self._post(
            f"/api/v1/tracks/{self.world.tracks[track]}/buy", self.world.players[player]
        )

    def _check_claim(self, started: Started, before: dict[str, Any], code: int, body: Any) -> None:
        """A claim's answer against the state just before it (nothing raced it)."""
        if started.token in self.claimed:
            assert (code, body["tokens"]) == (200, self.claimed[started.token]["tokens"])
            return
        cost = before["price"]
        if cost > before["balance"]:
            assert code == 402, body
            return
        assert code == 200, body
        assert body["tokens"] == cost and body["balance"] == before["balance"] - cost
        assert body["paid_number"] == (before["paid_plays"] + 1 if cost else None)
        assert body["owned"] == (before["owned"] or before["paid_plays"] + (cost > 0) >= 9)
        self.claimed[started.token] = body

    async def _top_up(self, player: int, tokens: int) -> None:
        async with resources_of(self.world.app).sessionmaker() as session:
            [code] = await issue_vouchers(session, tokens, 1, None)
        before = (await self._price(player, 0))["balance"]
        status, body = await self._post(
            "/api/v1/me/vouchers", self.world.players[player], json={"code": code}
        )
        assert (status, body["balance"]) == (200, before + tokens)

    @rule(player=st.integers(0, 3), tokens=st.integers(1, 700))
    def top_up(self, player: int, tokens: int) -> None:
        self.run(self._top_up(player, tokens))

    @rule(target=sessions, player=st.integers(0, 3), track=st.integers(0, 3))
    def open_play(self, player: int, track: int) -> Started:
        async def go() -> Started:
            before = await self._price(player, track)
            status, body = await self._post(
                f"/api/v1/tracks/{self.world.tracks[track]}/plays", self.world.players[player]
            )
            assert status == 201
            assert body["mode"] == ("full" if before["price"] <= before["balance"] else "preview")
            return Started(player, track, body["session"] or "")

        return self.run(go())  # type: ignore[no-any-return]

    @rule(started=sessions)
    def claim(self, started: Started) -> None:
        if not started.token:
            return  # a preview: nothing to claim

        async def go() -> None:
            await self._heard(started.token)
            before = await self._price(started.player, started.track)
            self._check_claim(started, before, *(await self._claim(started)))

        self.run(go())

    @rule(started=sessions)
    def claim_thrice_at_once(self, started: Started) -> None:
        if not started.token:
            return

        async def go() -> None:
            await self._heard(started.token)
            answers = await asyncio.gather(*(self._claim(started) for _ in range(3)))
            if answers[0][0] == 200:
                assert {a[1]["tokens"] for a in answers} == {answers[0][1]["tokens"]}
                assert {a[0] for a in answers} == {200}
                self.claimed.setdefault(started.token, answers[0][1])
            else:
                assert {a[0] for a in answers} == {402}

        self.run(go())

    @rule(player=st.integers(0, 3), track=st.integers(0, 3))
    def buy(self, player: int, track: int) -> None:
        async def go() -> None:
            before = await self._price(player, track)
            status, body = await self._buy(player, track)
            if before["owned"] or before["free"]:
                assert status == 409, body
                return
            cost = buy_now_cost(before["paid_plays"])
            if cost > before["balance"]:
                assert status == 402, body
                return
            assert (status, body["tokens"], body["owned"]) == (200, cost, True)
            assert body["balance"] == before["balance"] - cost

        self.run(go())

    @rule(player=st.integers(0, 2), track=st.integers(0, 2))  # listeners, paid tracks
    def buy_racing_claims(self, player: int, track: int) -> None:
        """Four plays of a track claimed while the listener buys it (topped up to afford
        it): in any order, the listener owns it, having paid what was left of 1022 once."""

        async def go() -> None:
            if (await self._price(player, track))["balance"] < 1100:
                await self._top_up(player, 1100)
            opened = [await self._post(f"/api/v1/tracks/{self.world.tracks[track]}/plays",
                                       self.world.players[player]) for _ in range(4)]  # fmt: skip
            started = [Started(player, track, body["session"]) for _, body in opened]
            if not all(s.token for s in started):
                return  # previews: the balance is too low to race anything
            for one in started:
                await self._heard(one.token)
            before = await self._price(player, track)
            (buy_code, bought), *claims = await asyncio.gather(
                self._buy(player, track), *(self._claim(one) for one in started)
            )
            after = await self._price(player, track)
            spent = sum(body["tokens"] for code, body in claims if code == 200)
            spent += bought["tokens"] if buy_code == 200 else 0
            assert after["balance"] == before["balance"] - spent, (bought, claims)
            if buy_code == 200:
                assert after["owned"] and spent == buy_now_cost(before["paid_plays"])
            for one, (code, body) in zip(started, claims, strict=True):
                if code == 200:
                    self.claimed[one.token] = body

        self.run(go())

    async def _earnings(self, artist: int) -> int:
        name, account = self.world.artists[artist]
        answer = await self.world.client.get(
            f"/api/v1/artists/{name}/earnings", headers=account.headers
        )
        return (await answer.get_json())["balance_tokens"]  # type: ignore[no-any-return]

    async def _requested(self) -> int:
        async with resources_of(self.world.app).sessionmaker() as session:
            return int(
                await session.scalar(
                    select(func.coalesce(func.sum(Payout.tokens), 0)).where(
                        Payout.state == PayoutState.REQUESTED
                    )
                )
                or 0
            )

    @rule(artist=st.integers(0, 1))
    def request_payout(self, artist: int) -> None:
        async def go() -> None:
            name, account = self.world.artists[artist]
            before = await self._earnings(artist)
            status, body = await self._post(f"/api/v1/artists/{name}/payouts", account)
            if before * 125 // 1022 >= 1:
                assert (status, body["tokens"]) == (201, before)
                assert await self._earnings(artist) == 0
            else:
                assert status == 409

        self.run(go())

    @rule()
    def run_payouts(self) -> None:
        async def go() -> None:
            requested = await self._requested()
            status, body = await self._post("/api/v1/admin/payouts/run", self.world.admin)
            assert status == 200
            assert sum(p["tokens"] for p in body["paid"]) == requested and not body["refused"]
            assert await self._requested() == 0

        self.run(go())

    @rule(artist=st.integers(0, 1))
    def payout_requests_racing_a_run(self, artist: int) -> None:
        async def go() -> None:
            name, account = self.world.artists[artist]
            answers = await asyncio.gather(
                self._post(f"/api/v1/artists/{name}/payouts", account),
                self._post(f"/api/v1/artists/{name}/payouts", account),
                self._post("/api/v1/admin/payouts/run", self.world.admin),
            )
            assert [code for code, _ in answers[:2]].count(201) <= 1
            assert answers[2][0] == 200 and not answers[2][1]["refused"]

        self.run(go())

    @invariant()
    def money_adds_up(self) -> None:
        async def go() -> None:
            async with resources_of(self.world.app).sessionmaker() as session:
                await check_money_invariants(session)

        self.run(go())


def test_money_state_machine(
    database_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each example on a fresh database: a broken invariant is that example's own doing."""
    with asyncio.Runner() as runner:
        MoneyMachine.runner, MoneyMachine.root = runner, tmp_path
        MoneyMachine.database = staticmethod(  # type: ignore[assignment]
            lambda folder: fresh_database(database_kind, request, folder)
        )
        run_state_machine_as_test(
            MoneyMachine,
            # No shrinking: a race does not replay the same way twice, so shrinking one
            # only hunts for a timing; the failing steps and the broken invariant are
            # reported as they were found.
            settings=settings(
                max_examples=5,
                stateful_step_count=25,
                deadline=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
            ),
        )
