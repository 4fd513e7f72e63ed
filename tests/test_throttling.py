"""Throttled password guesses that an attacker cannot turn against the owner, on both
databases: device cookies for log-in, addresses (IPv6 by /64), and the settings'
password checks per session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.users import Role
from server.services.account_rules import create_user
from server.web.app import create_app
from server.web.current import resources_of
from server.web.throttle import DEVICE_COOKIE, address_bucket
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
WRONG = "not the password at all"
ALLOWED = 2


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[Quart]:
    settings = make_settings(tmp_path, database_url, accounts={"login_attempts": ALLOWED})
    application = create_app(settings)
    async with application.test_app() as test_app:
        async with resources_of(test_app.app).sessionmaker() as session:  # type: ignore[attr-defined]
            await create_user(session, "lina", PASSWORD, Role.LISTENER)
            await create_user(session, "omar", PASSWORD, Role.LISTENER)
        yield test_app.app  # type: ignore[attr-defined]


def at(address: str) -> dict[str, Any]:
    return {"scope_base": {"client": (address, 50000)}}


async def csrf(client: Client, path: str, address: str) -> str:
    page = await (await client.get(path, **at(address))).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def log_in(client: Client, name: str, password: str, address: str) -> int:
    token = await csrf(client, "/login", address)
    response = await client.post(
        "/login",
        form={"csrf_token": token, "username": name, "password": password},
        **at(address),
    )
    return response.status_code


async def test_guesses_from_everywhere_do_not_lock_the_owners_browser(app: Quart) -> None:
    owner = app.test_client()
    assert await log_in(owner, "lina", PASSWORD, "192.0.2.10") == 303
    assert any(cookie.name == DEVICE_COOKIE for cookie in owner.cookie_jar)  # type: ignore[attr-defined]

    # an attacker guesses from many addresses; the account's allowance for unknown
    # browsers runs out (guessing from many addresses gets no further than from one; the
    # owner's first log-in, from a browser not known then, counted too)
    attacker = app.test_client()
    results = [await log_in(attacker, "lina", WRONG, f"198.51.100.{number}") for number in range(5)]
    assert results == [401] * (ALLOWED - 1) + [429] * (5 - ALLOWED + 1)
    assert await log_in(attacker, "lina", PASSWORD, "198.51.100.99") == 429, "even the password"

    # the browser the owner used before has its own allowance, from any address
    assert await log_in(owner, "lina", PASSWORD, "192.0.2.10") == 303
    assert await log_in(owner, "lina", PASSWORD, "198.51.100.3") == 303
    # the cost, written down: a browser the owner never used waits while the attack lasts
    assert await log_in(app.test_client(), "lina", PASSWORD, "192.0.2.11") == 429
    # other accounts are not touched
    assert await log_in(app.test_client(), "omar", PASSWORD, "192.0.2.12") == 303


async def test_a_known_browser_has_a_limit_of_its_own(app: Quart) -> None:
    owner = app.test_client()
    assert await log_in(owner, "lina", PASSWORD, "192.0.2.10") == 303
    results = [await log_in(owner, "lina", WRONG, "192.0.2.10") for _ in range(ALLOWED + 1)]
    assert results == [401] * ALLOWED + [429]
    # somebody else's browser is not held back by the owner's typing
    assert await log_in(app.test_client(), "lina", PASSWORD, "192.0.2.20") == 303


async def test_a_device_cookie_cannot_be_made_up_or_moved_to_another_account(
    app: Quart,
) -> None:
    owner = app.test_client()
    assert await log_in(owner, "omar", PASSWORD, "192.0.2.10") == 303
    [cookie] = [c for c in owner.cookie_jar if c.name == DEVICE_COOKIE]  # type: ignore[attr-defined]
    attacker = app.test_client()
    for forged in (cookie.value, cookie.value[:-4] + "0000", "abc.def"):
        # omar's cookie, a broken signature, nonsense: none of them is lina's device, so
        # they all use up the allowance of unknown browsers
        attacker.set_cookie("localhost", DEVICE_COOKIE, forged, path="/login")  # type: ignore[attr-defined]
        expected = 401 if forged != "abc.def" else 429
        assert await log_in(attacker, "lina", WRONG, "198.51.100.1") == expected
    assert await log_in(attacker, "lina", PASSWORD, "198.51.100.3") == 429


async def test_one_address_cannot_guess_at_many_accounts(app: Quart) -> None:
    guesser = app.test_client()
    names = ["lina", "omar", "nobody1", "nobody2"]
    results = [await log_in(guesser, name, WRONG, "203.0.113.7") for name in names]
    assert results == [401] * ALLOWED + [429] * (len(names) - ALLOWED)
    # IPv6: one /64 is one party; the next /64 is another
    v6 = [await log_in(guesser, f"x{n}", WRONG, f"2001:db8:0:1::{n + 1}") for n in range(4)]
    assert v6 == [401] * ALLOWED + [429] * (4 - ALLOWED)
    assert await log_in(guesser, "x9", WRONG, "2001:db8:0:2::1") == 401


@pytest.mark.parametrize(
    ("address", "bucket"),
    [("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::/64"),
     ("2001:db8::ffff:1", "2001:db8::/64"), ("::ffff:192.0.2.1", "192.0.2.1"),
     ("unknown", "unknown")],
)  # fmt: skip
def test_address_bucket(address: str, bucket: str) -> None:
    assert address_bucket(address) == bucket


async def test_password_checks_in_the_settings_are_throttled_per_session(app: Quart) -> None:
    thief = app.test_client()  # a session someone left signed in, in other hands
    assert await log_in(thief, "lina", PASSWORD, "192.0.2.30") == 303
    owner = app.test_client()
    assert await log_in(owner, "lina", PASSWORD, "192.0.2.31") == 303

    async def change(client: Client, current: str, address: str) -> int:
        token = await csrf(client, "/settings", address)
        new = "a brand new password"
        form = {"csrf_token": token, "current_password": current, "new_password": new,
                "new_password_again": new}  # fmt: skip
        return (await client.post("/settings/password", form=form, **at(address))).status_code

    async def delete(client: Client, password: str, address: str) -> int:
        token = await csrf(client, "/settings", address)
        form = {"csrf_token": token, "password": password}
        return (await client.post("/settings/delete", form=form, **at(address))).status_code

    guesses = [await change(thief, WRONG, "192.0.2.30") for _ in range(ALLOWED - 1)]
    guesses.append(await delete(thief, WRONG, "192.0.2.30"))  # one allowance for both
    assert guesses == [422] * ALLOWED
    assert await change(thief, PASSWORD, "192.0.2.30") == 429
    assert await delete(thief, PASSWORD, "192.0.2.30") == 429
    # the owner's own session, even from the same address, is not locked by the thief
    assert await change(owner, PASSWORD, "192.0.2.30") == 200
    assert await log_in(app.test_client(), "omar", PASSWORD, "192.0.2.32") == 303
