"""The wallet's history through the API, on both databases: every way tokens reach or
leave a wallet is a line of it (the starter grant, a voucher, a card top-up, paid plays, a
purchase), each line carries the balance it left, the lines add up to the balance, and
pages of it join up. Partners' tracks are in tests/test_remote_plays.py (two instances)."""

from __future__ import annotations

import time
from typing import Any

from quart import Quart
from quart.typing import TestClientProtocol as Client

from models import ledger
from models.base import utcnow
from models.catalogue import Artist, Track
from models.pricing import share_of
from models.tokens import AccessToken, new_token, token_digest
from models.users import Role
from server.services.account_rules import create_user
from server.services.money import issue_vouchers
from server.services.payments import sign
from server.web.current import resources_of
from tests.catalogue_fixtures import Account
from tests.test_account_pages import PASSWORD as PAGE_PASSWORD
from tests.test_account_pages import log_in
from tests.test_money import heard, make_tracks
from tests.test_payments import SECRET, event, stripe_app

__all__ = ["stripe_app"]  # the fixture, used by name below

STARTER = 30


async def _listener(app: Quart, name: str, scopes: str = "read write play") -> Account:
    async with resources_of(app).sessionmaker() as session:
        user = await create_user(
            session, name, "a long password", Role.LISTENER, starter_balance=STARTER
        )
        token = new_token()
        session.add(AccessToken(user_id=user.id, digest=token_digest(token), scopes=scopes))
        await session.commit()
        return Account(user.id, token)


async def _play(app: Quart, client: Client, listener: Account, track_id: int) -> dict[str, Any]:
    opened = await client.post(f"/api/v1/tracks/{track_id}/plays", headers=listener.headers)
    session = (await opened.get_json())["session"]
    await heard(resources_of(app), session)
    claimed = await client.post(f"/api/v1/plays/{session}/claim", headers=listener.headers)
    assert claimed.status_code == 200, await claimed.get_data(as_text=True)
    return dict(await claimed.get_json())


async def _history(client: Client, listener: Account, query: str = "") -> dict[str, Any]:
    answer = await client.get(f"/api/v1/me/wallet/history{query}", headers=listener.headers)
    assert answer.status_code == 200, await answer.get_data(as_text=True)
    return dict(await answer.get_json())


def adds_up(movements: list[dict[str, Any]]) -> None:
    """Each line's balance is the one before it (older, next in the list) plus its tokens;
    the oldest line starts from zero."""
    for newer, older in zip(movements, [*movements[1:], {"balance": 0}], strict=True):
        assert newer["balance"] == older["balance"] + newer["tokens"], (newer, older)


async def test_every_movement_is_a_line_and_the_lines_add_up_to_the_balance(
    stripe_app: Any,
) -> None:
    test_app, _checkouts = stripe_app
    app, client = test_app.app, test_app.test_client()
    resources = resources_of(app)
    [track_id] = await make_tracks(resources)
    listener = await _listener(app, "lina")
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 1022, 1, None)
    redeemed = await client.post(
        "/api/v1/me/vouchers", headers=listener.headers, json={"code": code}
    )
    assert redeemed.status_code == 200
    paid = event(listener.user_id)
    webhook = await client.post(
        "/payments/stripe/webhook",
        data=paid,
        headers={"Content-Type": "application/json",
                 "Stripe-Signature": sign(paid, SECRET, int(time.time()))},
    )  # fmt: skip
    assert webhook.status_code == 200
    assert [(await _play(app, client, listener, track_id))["tokens"] for _ in range(2)] == [2, 4]
    bought = await client.post(f"/api/v1/tracks/{track_id}/buy", headers=listener.headers)
    assert (await bought.get_json())["tokens"] == 1022 - 2 - 4

    history = await _history(client, listener)
    movements = history["movements"]
    assert [(m["kind"], m["tokens"]) for m in movements] == [
        ("buy", -1016),
        ("play", -4),
        ("play", -2),
        ("card", 1022),
        ("voucher", 1022),
        ("starter", STARTER),
    ]
    adds_up(movements)
    async with resources.read_sessionmaker() as session:
        balance = await ledger.balance(session, ledger.wallet_key(listener.user_id))
    assert movements[0]["balance"] == history["balance"] == balance == STARTER + 1022
    plays = [m for m in movements if m["kind"] == "play"]
    assert [(m["track_id"], m["track_title"], m["paid_number"]) for m in plays] == [
        (track_id, "T0", 2),
        (track_id, "T0", 1),
    ]
    assert (movements[0]["track_id"], movements[0]["track_title"]) == (track_id, "T0")
    assert [m["note"] for m in movements if m["kind"] in ("card", "voucher")] == ["song", None]
    assert history["older"] is None

    # pages of two join up into the whole history, each following the last one's link
    paged, query = [], "?limit=2"
    while query is not None:
        page = await _history(client, listener, query)
        assert len(page["movements"]) <= 2
        paged += page["movements"]
        older = page["older"]
        query = older[older.index("?") :] if older else None
    assert paged == movements


async def test_the_history_is_the_listeners_own_and_refuses_bad_paging(
    app: Quart, client: Client
) -> None:
    lina = await _listener(app, "lina")
    omar = await _listener(app, "omar")
    [track_id] = await make_tracks(resources_of(app))
    await _play(app, client, lina, track_id)
    assert [m["kind"] for m in (await _history(client, lina))["movements"]] == ["play", "starter"]
    assert [m["kind"] for m in (await _history(client, omar))["movements"]] == ["starter"]
    for query in ("?before=0", "?before=-1", "?before=x", "?limit=0", "?limit=201",
                  "?before=99999999999999999999"):  # fmt: skip
        answer = await client.get(f"/api/v1/me/wallet/history{query}", headers=lina.headers)
        assert answer.status_code == 400, (query, answer.status_code)
    assert (await client.get("/api/v1/me/wallet/history")).status_code == 401
    writer = await _listener(app, "nils", scopes="write")
    refused = await client.get("/api/v1/me/wallet/history", headers=writer.headers)
    assert refused.status_code == 403
    past_the_end = await _history(client, lina, "?before=1")
    assert past_the_end["movements"] == [] and past_the_end["older"] is None


async def test_the_year_summary_says_what_the_plays_paid_and_to_whom(
    app: Quart, client: Client
) -> None:
    resources = resources_of(app)
    [first] = await make_tracks(resources)
    [second] = await make_tracks(resources)
    lina = await _listener(app, "lina")
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 1022, 1, None)
    await client.post("/api/v1/me/vouchers", headers=lina.headers, json={"code": code})
    await _play(app, client, lina, first)
    await _play(app, client, lina, first)
    bought = await client.post(f"/api/v1/tracks/{second}/buy", headers=lina.headers)
    assert bought.status_code == 200

    answer = await client.get("/api/v1/me/wallet/summary", headers=lina.headers)
    summary = await answer.get_json()
    assert summary["year"] == utcnow().year
    assert summary["spent"] == 2 + 4 + 1022
    assert sum(p["tokens"] for p in summary["paid"]) == summary["spent"]
    tokens = [p["tokens"] for p in summary["paid"]]
    assert tokens == sorted(tokens, reverse=True)
    # each artist got what their ledger account was credited; the instance the rest
    async with resources.read_sessionmaker() as session:
        credited = {}
        for track_id in (first, second):
            track = await session.get(Track, track_id)
            assert track is not None
            artist = await session.get(Artist, track.artist_id)
            assert artist is not None
            credited[artist.name] = await ledger.balance(session, ledger.artist_key(artist.id))
    artists = {p["artist"]: p["tokens"] for p in summary["paid"] if p["kind"] == "artist"}
    assert artists == credited
    assert set(credited.values()) == {share_of(6, 7000), share_of(1022, 7000)}
    [instance] = [p["tokens"] for p in summary["paid"] if p["kind"] == "instance"]
    assert instance == summary["spent"] - sum(credited.values())

    last_year = await client.get(
        "/api/v1/me/wallet/summary", headers=lina.headers,
        query_string={"year": str(utcnow().year - 1)},
    )  # fmt: skip
    assert (await last_year.get_json())["paid"] == []
    far = await client.get(
        "/api/v1/me/wallet/summary", headers=lina.headers, query_string={"year": "9998"}
    )
    assert (await far.get_json())["spent"] == 0
    for year in ("1999", "9999", "10000", "x", ""):  # 9999 ends in a year no date reaches
        refused = await client.get(
            "/api/v1/me/wallet/summary", headers=lina.headers, query_string={"year": year}
        )
        assert refused.status_code == 400, year
    other = await _listener(app, "omar")
    theirs = await client.get("/api/v1/me/wallet/summary", headers=other.headers)
    assert (await theirs.get_json())["spent"] == 0


async def test_the_wallet_pages_refuse_bad_paging_and_years(app: Quart) -> None:
    """The pages' own query values: a clear 400, as the API's."""
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "pia", PAGE_PASSWORD, Role.LISTENER)
    client = app.test_client()
    assert (await log_in(client, "pia", PAGE_PASSWORD)).status_code == 303
    for path in ("/wallet", "/wallet?before=1", "/wallet/summary", "/wallet/summary?year=2000",
                 "/wallet/summary?year=9998"):  # fmt: skip
        assert (await client.get(path)).status_code == 200, path
    for path in ("/wallet?before=0", "/wallet?before=x", "/wallet/summary?year=1999",
                 "/wallet/summary?year=9999", "/wallet/summary?year=%C2%B2"):  # fmt: skip
        assert (await client.get(path)).status_code == 400, path
    page = await (await client.get("/wallet/summary?year=2000")).get_data(as_text=True)
    assert "No paid plays or purchases that year." in page
