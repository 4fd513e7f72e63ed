"""Stream-to-own through the API and the money service, on both databases: vouchers,
ten plays of one track, buy now, previews for a thin wallet, concurrent claims, and the
ledger's invariants under any sequence of operations (hypothesis)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.base import utcnow
from models.catalogue import Artist, PriceModel, Release, Track, TrackStatus, Visibility
from models.ledger import AccountKind, LedgerAccount, LedgerEntry
from models.plays import ListenerTrack, PlaySession
from models.pricing import share_of
from models.users import Role
from server.runtime.resources import Resources
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.services.local_plays import LOCAL
from server.services.money import ConcurrentChange, MoneyError, issue_vouchers, redeem_voucher
from server.services.plays import buy, claim, open_session
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.money_invariants import check_money_invariants

PRICES = [2, 4, 8, 16, 32, 64, 128, 256, 512]


_names = itertools.count()


async def make_tracks(resources: Resources, count: int = 1, *, free: bool = False) -> list[int]:
    number = next(_names)
    async with resources.sessionmaker() as session:
        owner = await create_user(session, f"owner{number}", "a long password", Role.ARTIST)
        artist = await create_artist(session, f"band{number}", owner)
        release = Release(artist_id=artist.id, title="R", slug="r", visibility=Visibility.PUBLIC)
        session.add(release)
        await session.flush()
        ids = []
        for number in range(count):
            track = Track(
                release_id=release.id,
                artist_id=artist.id,
                title=f"T{number}",
                slug="t",
                duration_ms=180_000,
                status=TrackStatus.READY,
                price_model=PriceModel.FREE if free else PriceModel.STREAM_TO_OWN,
            )
            session.add(track)
            await session.flush()
            ids.append(track.id)
        await session.commit()
        return ids


async def heard(resources: Resources, token: str, seconds: int = 60) -> None:
    """Move a play session's start into the past, as if the listener had listened."""
    async with resources.sessionmaker() as session:
        await mark_heard(session, token, seconds)
        await session.commit()


async def mark_heard(session: AsyncSession, token: str, seconds: int = 60) -> None:
    """``heard`` in the caller's unit of work."""
    await session.execute(
        update(PlaySession)
        .where(PlaySession.token == token)
        .values(started_at=utcnow() - timedelta(seconds=seconds))
    )


async def ledger_sums_to_zero(resources: Resources) -> None:
    """The ledger balances and every money invariant holds (tests/money_invariants.py)."""
    async with resources.sessionmaker() as session:
        await check_money_invariants(session, resources.settings.money.artist_share_bp)


async def test_a_write_only_token_redeems_a_voucher_and_sees_the_balance(
    app: Quart, client: Client
) -> None:
    # Found in review: the answer was made by the wallet route, which checks the read
    # scope again, so a write-only token spent the voucher and got a 403.
    resources = resources_of(app)
    listener = await make_account(app, "lina", Role.LISTENER, scopes="write")
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 40, 1, None)
    redeemed = await client.post(
        "/api/v1/me/vouchers", headers=listener.headers, json={"code": code}
    )
    assert redeemed.status_code == 200, await redeemed.get_data(as_text=True)
    assert (await redeemed.get_json())["balance"] == 40
    # and the read route still needs the read scope
    refused = await client.get("/api/v1/me/wallet", headers=listener.headers)
    assert refused.status_code == 403


async def test_a_listener_owns_a_track_after_nine_paid_plays(app: Quart, client: Client) -> None:
    resources = resources_of(app)
    [track_id] = await make_tracks(resources)
    listener = await make_account(app, "lina", Role.LISTENER)
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 1022, 1, None)
    redeemed = await client.post(
        "/api/v1/me/vouchers",
        headers=listener.headers,
        json={"code": code.lower().replace("-", " ")},
    )
    assert redeemed.status_code == 200, await redeemed.get_data(as_text=True)
    assert (await redeemed.get_json())["balance"] == 1022
    again = await client.post("/api/v1/me/vouchers", headers=listener.headers, json={"code": code})
    assert again.status_code == 409

    shown = await (
        await client.get(f"/api/v1/tracks/{track_id}", headers=listener.headers)
    ).get_json()
    assert shown["listener"] == {"next_play_price": 2, "plays_until_owned": 9, "owned": False}
    anonymous = await (await client.get(f"/api/v1/tracks/{track_id}")).get_json()
    assert anonymous["listener"] is None
    charged = []
    for play in range(10):
        price = await (
            await client.get(f"/api/v1/tracks/{track_id}/price", headers=listener.headers)
        ).get_json()
        assert price["plays_until_owned"] == max(9 - play, 0)
        started = await client.post(f"/api/v1/tracks/{track_id}/plays", headers=listener.headers)
        body = await started.get_json()
        assert body["mode"] == "full"
        # the session opens the stream to its listener; this test track has no audio files,
        # hence 409 (a refused session would be 401 or 403)
        stream = body["stream_url"].split("8080", 1)[-1]
        assert (await client.get(stream, headers=listener.headers)).status_code == 409
        early = await client.post(body["claim_url"].split("8080", 1)[-1], headers=listener.headers)
        assert early.status_code == 425, "a claim before 45 s is refused"
        await heard(resources, body["session"])
        done = await client.post(body["claim_url"].split("8080", 1)[-1], headers=listener.headers)
        result = await done.get_json()
        assert done.status_code == 200, result
        twice = await client.post(body["claim_url"].split("8080", 1)[-1], headers=listener.headers)
        assert (await twice.get_json())["tokens"] == result["tokens"], "claimed once"
        charged.append(result["tokens"])
        assert result["owned"] == (play >= 8)
    assert charged == [*PRICES, 0]
    wallet = await (await client.get("/api/v1/me/wallet", headers=listener.headers)).get_json()
    assert wallet["balance"] == 0
    assert wallet["owned_track_ids"] == [track_id]
    async with resources.sessionmaker() as session:
        artist_account = await session.scalar(
            select(LedgerAccount).where(LedgerAccount.kind == AccountKind.ARTIST)
        )
        instance = await ledger.balance(session, "instance")
    assert artist_account is not None
    assert artist_account.balance == share_of(1022, 7000) == 715
    assert artist_account.balance + instance == 1022
    await ledger_sums_to_zero(resources)


async def test_thin_wallets_get_the_preview(app: Quart, client: Client) -> None:
    [track_id] = await make_tracks(resources_of(app))
    listener = await make_account(app, "lina", Role.LISTENER)
    body = await (
        await client.post(f"/api/v1/tracks/{track_id}/plays", headers=listener.headers)
    ).get_json()
    assert body["mode"] == "preview"
    assert body["stream_url"].endswith(f"/tracks/{track_id}/preview")
    assert "does not cover" in body["reason"]
    stream = await client.get(f"/tracks/{track_id}/stream?session=made-up")
    assert stream.status_code == 403


async def test_buy_now_and_free_tracks(app: Quart, client: Client) -> None:
    resources = resources_of(app)
    [track_id] = await make_tracks(resources)
    [free_id] = await make_tracks(resources, free=True)
    listener = await make_account(app, "lina", Role.LISTENER)
    async with resources.sessionmaker() as session:
        await redeem_voucher(
            session, listener.user_id, (await issue_vouchers(session, 2000, 1, None))[0]
        )
    bought = await client.post(f"/api/v1/tracks/{track_id}/buy", headers=listener.headers)
    assert (await bought.get_json())["tokens"] == 1022
    again = await client.post(f"/api/v1/tracks/{track_id}/buy", headers=listener.headers)
    assert again.status_code == 409
    body = await (
        await client.post(f"/api/v1/tracks/{free_id}/plays", headers=listener.headers)
    ).get_json()
    await heard(resources, body["session"])
    free = await (
        await client.post(f"/api/v1/plays/{body['session']}/claim", headers=listener.headers)
    ).get_json()
    assert (free["outcome"], free["tokens"], free["balance"]) == ("free", 0, 978)
    assert (
        await client.post(f"/api/v1/tracks/{free_id}/buy", headers=listener.headers)
    ).status_code == 409


async def test_fifty_concurrent_claims_never_overdraw(resources: Resources) -> None:
    tracks = await make_tracks(resources, 50)
    async with resources.sessionmaker() as session:
        user = await create_user(
            session, "lina", "a long password", Role.LISTENER, starter_balance=41
        )
        sessions = []
        for track_id in tracks:
            track = await LOCAL.track(session, track_id)
            assert track is not None
            sessions.append(await open_session(session, user.id, track))
    for token in sessions:
        await heard(resources, token)

    async def one(token: str) -> str:
        for _ in range(5):
            async with resources.sessionmaker() as session:
                try:
                    await claim(session, (LOCAL,), token, user.id, resources.settings.money)
                    return "charged"
                except ConcurrentChange:
                    continue
                except MoneyError as exc:
                    return str(exc.status)
        return "gave up"

    outcomes = await asyncio.gather(*(one(token) for token in sessions))
    assert outcomes.count("charged") == 20  # 41 tokens pay for twenty 2-token plays
    assert outcomes.count("402") == 30
    async with resources.sessionmaker() as session:
        assert await ledger.balance(session, ledger.wallet_key(user.id)) == 1
    await ledger_sums_to_zero(resources)


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["top-up", "play", "buy"]), st.integers(0, 2), st.integers(1, 600)),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
async def test_ledger_invariants_under_any_sequence(
    resources: Resources, operations: list[tuple[str, int, int]]
) -> None:
    tracks = await make_tracks(resources, 3)
    async with resources.sessionmaker() as session:
        user = await create_user(
            session, f"listener{next(_names)}", "a long password", Role.LISTENER
        )
    paid_before: dict[int, int] = {}
    for kind, index, amount in operations:
        track_id = tracks[index]
        async with resources.sessionmaker() as session:
            try:
                if kind == "top-up":
                    [code] = await issue_vouchers(session, amount, 1, None)
                    await redeem_voucher(session, user.id, code)
                elif kind == "buy":
                    track = await LOCAL.track(session, track_id)
                    await buy(session, user.id, track, resources.settings.money)  # type: ignore[arg-type]
                else:
                    track = await LOCAL.track(session, track_id)
                    token = await open_session(session, user.id, track)  # type: ignore[arg-type]
                    await mark_heard(session, token)
                    await claim(session, (LOCAL,), token, user.id, resources.settings.money)
            except MoneyError:
                await session.rollback()
        async with resources.sessionmaker() as session:
            state = await session.get(ListenerTrack, (user.id, track_id))
            if state is not None:
                # ownership comes exactly with the ninth paid play or with buying
                assert (state.owned_at is not None) == (
                    state.paid_plays >= 9 or state.owned_via == "bought"
                )
                assert state.paid_plays >= paid_before.get(track_id, 0)
                paid_before[track_id] = state.paid_plays
        await ledger_sums_to_zero(resources)
    async with resources.sessionmaker() as session:
        charged = (
            await session.scalar(
                select(func.sum(LedgerEntry.amount))
                .join(LedgerAccount)
                .where(LedgerAccount.key == ledger.wallet_key(user.id), LedgerEntry.amount < 0)
            )
            or 0
        )
        wallet = await ledger.balance(session, ledger.wallet_key(user.id))
        topped = (
            await session.scalar(
                select(func.sum(LedgerEntry.amount))
                .join(LedgerAccount)
                .where(LedgerAccount.key == ledger.wallet_key(user.id), LedgerEntry.amount > 0)
            )
            or 0
        )
    assert wallet >= 0
    assert topped + charged == wallet


async def test_earnings_and_payouts(tmp_path: Path, database_url: str) -> None:
    from server.web.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, database_url, money={"payout_threshold_cents": 50}))
    async with app.test_app() as test_app:
        app = test_app.app
        client = test_app.test_client()
        resources = resources_of(app)
        artist_account = await make_account(app, "mira", Role.ARTIST, artist="aurora")
        async with resources.sessionmaker() as session:
            owner_artist = await session.scalar(select(Artist).where(Artist.name == "aurora"))
            release = Release(
                artist_id=owner_artist.id,
                title="R",
                slug="r",  # type: ignore[union-attr]
                visibility=Visibility.PUBLIC,
            )
            session.add(release)
            await session.flush()
            track = Track(
                release_id=release.id,
                artist_id=owner_artist.id,
                title="Tune",  # type: ignore[union-attr]
                slug="tune",
                duration_ms=60_000,
                status=TrackStatus.READY,
            )
            session.add(track)
            await session.commit()
        listener = await make_account(app, "lina", Role.LISTENER)
        async with resources.sessionmaker() as session:
            [code] = await issue_vouchers(session, 1022, 1, None)
            await redeem_voucher(session, listener.user_id, code)
        assert (
            await client.post(f"/api/v1/tracks/{track.id}/buy", headers=listener.headers)
        ).status_code == 200

        seen = await (
            await client.get("/api/v1/artists/aurora/earnings", headers=artist_account.headers)
        ).get_json()
        assert seen["balance_tokens"] == 715
        assert seen["balance_cents"] == 715 * 125 // 1022 == 87
        assert seen["per_track"] == [
            {"track_id": track.id, "title": "Tune", "tokens": 715, "cents": 87}
        ]
        assert sum(day["tokens"] for day in seen["per_day"]) == 715
        assert (
            await client.get("/api/v1/artists/aurora/earnings", headers=listener.headers)
        ).status_code == 403

        asked = await client.post("/api/v1/artists/aurora/payouts", headers=artist_account.headers)
        assert asked.status_code == 201
        assert (await asked.get_json())["amount_cents"] == 87
        again = await client.post("/api/v1/artists/aurora/payouts", headers=artist_account.headers)
        assert again.status_code == 409, "what is already requested cannot be asked for twice"

        admin = await make_account(app, "head_admin", Role.ADMIN, scopes="read write admin")
        assert (
            await client.post("/api/v1/admin/payouts/run", headers=artist_account.headers)
        ).status_code == 403
        run = await (
            await client.post("/api/v1/admin/payouts/run", headers=admin.headers)
        ).get_json()
        assert [(p["state"], p["tokens"]) for p in run["paid"]] == [("paid", 715)]
        async with resources.sessionmaker() as session:
            assert await ledger.balance(session, ledger.artist_key(owner_artist.id)) == 0  # type: ignore[union-attr]
            assert await ledger.balance(session, "payouts") == 715
        await ledger_sums_to_zero(resources)

        today = utcnow().date().isoformat()
        period = f"?start={today}&end={today}"
        earned = await client.get(
            f"/api/v1/admin/reports/earnings.csv{period}", headers=admin.headers
        )
        assert earned.status_code == 200
        assert earned.content_type.startswith("text/csv")
        lines = (await earned.get_data(as_text=True)).splitlines()
        assert lines[0] == "account,earned_tokens,earned_cents,paid_out_tokens,currency"
        assert f"artist:{owner_artist.id},715,87,715,EUR" in lines  # type: ignore[union-attr]
        assert "instance,307,37,0,EUR" in lines
        topups = await (
            await client.get(f"/api/v1/admin/reports/top-ups.csv{period}", headers=admin.headers)
        ).get_data(as_text=True)
        assert ",voucher,1022," in topups
        payouts_csv = await (
            await client.get(f"/api/v1/admin/reports/payouts.csv{period}", headers=admin.headers)
        ).get_data(as_text=True)
        assert ",aurora,715,87,EUR,1022,125" in payouts_csv
        assert (
            await client.get(f"/api/v1/admin/reports/secrets.csv{period}", headers=admin.headers)
        ).status_code == 404
        backwards = await client.get(
            f"/api/v1/admin/reports/plays.csv?start={today}&end=2000-01-01", headers=admin.headers
        )
        assert backwards.status_code == 400
        assert (
            await client.get(
                f"/api/v1/admin/reports/plays.csv{period}", headers=artist_account.headers
            )
        ).status_code == 403
