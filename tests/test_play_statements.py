"""What a paid play costs the database, counted on the engines' events (bench/statements.py)
around the claim request as a player sends it, on both databases: a bound that a change
adding a statement or a transaction to the hot path trips."""

from __future__ import annotations

from quart import Quart
from quart.typing import TestClientProtocol as Client

from bench.statements import counting
from models.users import Role
from server.services.money import issue_vouchers
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.test_money import heard, make_tracks


async def test_a_paid_claim_is_ten_statements_in_two_transactions(
    app: Quart, client: Client
) -> None:
    """The bearer token is read, then one transaction reads the session with its track and
    the listener's count, moves the count, books the ledger transaction (one statement
    per account, one for its entries), records the play and takes the session; the answer
    is made from what was written. (It was 23 statements in 3 transactions.)"""
    resources = resources_of(app)
    [track_id] = await make_tracks(resources)
    listener = await make_account(app, "lina", Role.LISTENER)
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 1022, 1, None)
    await client.post("/api/v1/me/vouchers", headers=listener.headers, json={"code": code})
    costs, answers = [], []
    for _play in range(3):  # the first play makes the count and the artist's account
        started = await client.post(f"/api/v1/tracks/{track_id}/plays", headers=listener.headers)
        body = await started.get_json()
        await heard(resources, body["session"])
        with counting(resources.engine, resources.read_engine) as counts:
            done = await client.post(
                body["claim_url"].split("8080", 1)[-1], headers=listener.headers
            )
        assert done.status_code == 200, await done.get_data(as_text=True)
        answer = await done.get_json()
        answers.append((answer["tokens"], answer["paid_number"], answer["balance"]))
        costs.append((counts.statements, counts.transactions))
    assert answers == [(2, 1, 1020), (4, 2, 1016), (8, 3, 1008)]
    assert all(statements <= 10 and transactions <= 2 for statements, transactions in costs[1:]), (
        costs
    )
