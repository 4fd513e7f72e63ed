"""A listener here following an artist here who approves followers waits for the artist's
answer, like a follower from another server, on the same list of the dashboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models.catalogue import Artist
from models.federation import Follow, FollowState, OutboundActivity
from models.users import Role
from server.runtime.config import Settings
from server.web.current import resources_of
from tests.catalogue_fixtures import Account, make_account
from tests.conftest import make_settings
from tests.test_account_pages import log_in

ARTIST = "aurora"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, instance={"base_url": "https://music.example"})


async def scene(app: Quart, approves: bool = True) -> Account:
    """The artist (whose account is ``mira``, password the fixtures' one) and her setting."""
    mira = await make_account(app, "mira", Role.ARTIST, artist=ARTIST)
    async with resources_of(app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == ARTIST))
        assert artist is not None
        artist.approves_followers = approves
        await session.commit()
    return mira


async def follow(client: Client, listener: Account) -> dict[str, object]:
    made = await client.post("/api/v1/follows", json={"account": ARTIST}, headers=listener.headers)
    assert made.status_code == 201, await made.get_data(as_text=True)
    body: dict[str, object] = await made.get_json()
    return body


async def state_of(app: Quart, follower: str) -> FollowState:
    async with resources_of(app).sessionmaker() as session:
        row = await session.scalar(select(Follow).where(Follow.follower_name == follower))
    assert row is not None
    return row.state


async def test_a_local_follow_of_an_approving_artist_waits_for_her_answer(
    app: Quart, client: Client
) -> None:
    mira = await scene(app)
    lena = await make_account(app, "lena", Role.LISTENER)
    otto = await make_account(app, "otto", Role.LISTENER)
    assert (await follow(client, lena))["state"] == "pending"
    assert (await follow(client, otto))["state"] == "pending"
    assert await state_of(app, "lena") is FollowState.PENDING

    listed = await client.get(f"/api/v1/artists/{ARTIST}/follow-requests", headers=mira.headers)
    items = (await listed.get_json())["items"]
    assert [item["handle"] for item in items] == ["@lena@music.example", "@otto@music.example"]
    assert items[0]["actor"] == "https://music.example/users/lena"

    # a listener cannot answer for the artist
    lena_id, otto_id = items[0]["id"], items[1]["id"]
    path = f"/api/v1/artists/{ARTIST}/follow-requests/{lena_id}/accept"
    assert (await client.post(path, headers=lena.headers)).status_code in (403, 404)
    assert await state_of(app, "lena") is FollowState.PENDING

    # the dashboard lists both, with the forms that answer them
    page_client = app.test_client()
    async with resources_of(app).sessionmaker() as session:
        artist_id = await session.scalar(select(Artist.id).where(Artist.name == ARTIST))
    await log_in(page_client, "mira", "a long password")
    page = await (await page_client.get("/dashboard")).get_data(as_text=True)
    assert "@lena@music.example" in page and "@otto@music.example" in page
    assert f"/dashboard/artists/{artist_id}/followers/{lena_id}/accept" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    answered = await page_client.post(
        f"/dashboard/artists/{artist_id}/followers/{lena_id}/accept",
        form={"csrf_token": token.group(1)},
    )
    assert answered.status_code == 303
    path = f"/api/v1/artists/{ARTIST}/follow-requests/{otto_id}/reject"
    assert (await client.post(path, headers=mira.headers)).status_code == 204

    assert await state_of(app, "lena") is FollowState.ACCEPTED
    assert await state_of(app, "otto") is FollowState.REJECTED
    listed = await client.get(f"/api/v1/artists/{ARTIST}/follow-requests", headers=mira.headers)
    assert (await listed.get_json())["items"] == []
    # nothing went out: both sides are here
    async with resources_of(app).sessionmaker() as session:
        assert (await session.scalars(select(OutboundActivity))).all() == []

    # a rejected listener who asks again waits again
    assert (await follow(client, otto))["state"] == "pending"


async def test_a_local_follow_of_an_artist_who_does_not_approve_is_accepted_at_once(
    app: Quart, client: Client
) -> None:
    await scene(app, approves=False)
    lena = await make_account(app, "lena", Role.LISTENER)
    assert (await follow(client, lena))["state"] == "accepted"
    assert await state_of(app, "lena") is FollowState.ACCEPTED
