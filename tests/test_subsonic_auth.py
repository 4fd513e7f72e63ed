"""The classic Subsonic credentials against app passwords, in-process on both databases:
``u`` + ``t`` + ``s`` and ``p`` (plain and ``enc:``), every refusal code 40 and alike,
the throttle that bites guessing but not use, app passwords sealed at rest and gone with
their account, the settings' Apps section and the command line, and ``getUser``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.fernet import InvalidToken
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from models.app_passwords import SEALING_PURPOSE, AppPassword
from models.base import utcnow
from models.database import create_sessionmaker
from models.sealing import sealer
from models.users import AccountStatus, Role, User
from server.services import app_passwords
from server.services.accounts import delete_account
from server.web.app import create_app
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.conftest import make_settings
from tests.processes import run_playfair
from tests.test_account_pages import PASSWORD, csrf, sign_up
from tests.test_cli import assert_one_line_error, env_for

SALT = "c19b2d"
WRONG = "wrong user name or app password"


def token(password: str, salt: str = SALT) -> str:
    return hashlib.md5((password + salt).encode(), usedforsecurity=False).hexdigest()


def by_token(user: str, password: str, salt: str = SALT) -> str:
    return urlencode({"u": user, "t": token(password, salt), "s": salt})


async def rest(
    client: Client, query: str, method: str = "ping", address: str | None = None
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if address is not None:
        extra["scope_base"] = {"client": (address, 50000)}
    answer = await client.get(f"/rest/{method}?f=json&c=tests&v=1.16.1&{query}", **extra)
    assert answer.status_code == 200, await answer.get_data(as_text=True)
    body: dict[str, Any] = (await answer.get_json())["subsonic-response"]
    return body


def refused(body: dict[str, Any], code: int = 40) -> str:
    assert body["status"] == "failed", body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


async def listener(app: Quart, name: str, role: Role = Role.LISTENER) -> tuple[User, str]:
    """An account and an app password of it."""
    await make_account(app, name, role)
    async with resources_of(app).sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == name))
        assert user is not None
        made = await app_passwords.create(session, user, "Phone", resources_of(app).secret)
    return user, made.password


async def test_token_and_salt(app: Quart, client: Client) -> None:
    _, password = await listener(app, "lena")
    assert re.fullmatch(r"([a-z2-9]{5}-){3}[a-z2-9]{5}", password)
    assert (await rest(client, by_token("lena", password)))["status"] == "ok"
    fresh = await rest(client, by_token("Lena", password, salt="another-salt-77"))
    assert fresh["status"] == "ok", "a fresh salt each call, the name in any case"
    compact = password.replace("-", "")
    assert (await rest(client, by_token("lena", compact)))["status"] == "ok"
    upper = urlencode({"u": "lena", "t": token(password).upper(), "s": SALT})
    assert (await rest(client, upper))["status"] == "ok"

    assert refused(await rest(client, by_token("lena", password + "x"))).startswith(WRONG)
    wrong_salt = urlencode({"u": "lena", "t": token(password), "s": SALT + "1"})
    refused(await rest(client, wrong_salt))
    hostile = urlencode({"u": "lena", "t": "é" * 32, "s": SALT})
    refused(await rest(client, hostile))  # not ASCII: refused, not a 500
    refused(await rest(client, by_token("lena", "a long password")), 40)  # the account's


async def test_plain_and_encoded_password(app: Quart, client: Client) -> None:
    _, password = await listener(app, "lena")
    assert (await rest(client, urlencode({"u": "lena", "p": password})))["status"] == "ok"
    encoded = "enc:" + password.encode().hex()
    assert (await rest(client, urlencode({"u": "lena", "p": encoded})))["status"] == "ok"
    typed = password.upper().replace("-", " ")  # as a phone's keyboard may give it
    assert (await rest(client, urlencode({"u": "lena", "p": typed})))["status"] == "ok"

    refused(await rest(client, urlencode({"u": "lena", "p": password[:-1]})))
    refused(await rest(client, urlencode({"u": "lena", "p": "enc:zz"})))
    refused(await rest(client, urlencode({"u": "lena", "p": "a long password"})))
    both = urlencode({"u": "lena", "p": password, "t": token(password), "s": SALT})
    refused(await rest(client, both), 43)


async def test_revoked_never_works_again(app: Quart, client: Client) -> None:
    user, password = await listener(app, "lena")
    async with resources_of(app).sessionmaker() as session:
        [row] = await app_passwords.list_active(session, user.id)
        assert await app_passwords.revoke(session, user.id, row.id)
        assert not await app_passwords.revoke(session, user.id, row.id), "once is enough"
    assert refused(await rest(client, by_token("lena", password))).startswith(WRONG)
    assert refused(await rest(client, urlencode({"u": "lena", "p": password}))).startswith(WRONG)


async def test_bad_salt(app: Quart, client: Client) -> None:
    _, password = await listener(app, "lena")
    for salt in ("abc", "12345", "x" * 65):
        message = refused(await rest(client, by_token("lena", password, salt=salt)))
        assert "salt" in message
    refused(await rest(client, urlencode({"u": "lena", "t": token(password)})), 10)


async def test_another_accounts_app_password_and_unknown_names(app: Quart, client: Client) -> None:
    _, lena = await listener(app, "lena")
    _, omar = await listener(app, "omar")
    assert (await rest(client, by_token("omar", omar)))["status"] == "ok"
    wrong_user = refused(await rest(client, by_token("omar", lena)))
    nobody = refused(await rest(client, by_token("nobody", lena)))
    wrong_password = refused(await rest(client, by_token("omar", omar + "x")))
    assert wrong_user == nobody == wrong_password, "no telling which names exist"


async def test_inactive_and_deleted_accounts(app: Quart, client: Client) -> None:
    resources = resources_of(app)
    lena, lena_password = await listener(app, "lena")
    _, omar_password = await listener(app, "omar")
    for status in (AccountStatus.DISABLED, AccountStatus.PENDING):
        async with resources.sessionmaker() as session:
            await session.execute(update(User).where(User.id == lena.id).values(status=status))
            await session.commit()
        assert refused(await rest(client, by_token("lena", lena_password))).startswith(WRONG)
    async with resources.sessionmaker() as session:
        await session.execute(
            update(User).where(User.id == lena.id).values(status=AccountStatus.ACTIVE)
        )
        await session.commit()
    assert (await rest(client, by_token("lena", lena_password)))["status"] == "ok"

    async with resources.sessionmaker() as session:
        omar = await session.scalar(select(User).where(User.username == "omar"))
        assert omar is not None
        await delete_account(
            session, omar, name_key=resources.secret, base_url=resources.settings.instance.base_url
        )
    async with resources.sessionmaker() as session:
        left = await session.scalar(select(func.count()).select_from(AppPassword))
    assert left == 1, "the deleted account's app passwords went with it"
    assert refused(await rest(client, by_token("omar", omar_password))).startswith(WRONG)


async def test_sealed_at_rest(app: Quart, client: Client) -> None:
    resources = resources_of(app)
    _, password = await listener(app, "lena")
    assert (await rest(client, by_token("lena", password)))["status"] == "ok"
    async with resources.sessionmaker() as session:
        raw = (await session.execute(text("SELECT * FROM app_passwords"))).all()
    dumped = repr(raw).encode()
    for spelling in (password, password.replace("-", "")):
        assert spelling.encode() not in dumped
        assert spelling.encode().hex().encode() not in dumped
    [row] = raw
    sealed = bytes(row._mapping["password_sealed"])
    assert sealer(resources.secret, SEALING_PURPOSE).decrypt(sealed).decode() == password
    # under any other secret (or another purpose's key) it opens nothing
    with pytest.raises(InvalidToken):
        sealer("another-secret-" + "y" * 40, SEALING_PURPOSE).decrypt(sealed)
    with pytest.raises(InvalidToken):
        sealer(resources.secret, b"playfair instance keys").decrypt(sealed)


async def test_last_used_is_written_coarsely(app: Quart, client: Client) -> None:
    resources = resources_of(app)
    user, password = await listener(app, "lena")

    async def last_used() -> Any:
        async with resources.sessionmaker() as session:
            return await session.scalar(
                select(AppPassword.last_used_at).where(AppPassword.user_id == user.id)
            )

    assert await last_used() is None
    assert (await rest(client, by_token("lena", password)))["status"] == "ok"
    first = await last_used()
    assert first is not None
    assert (await rest(client, by_token("lena", password, salt="second-salt")))["status"] == "ok"
    assert await last_used() == first, "no write on every call"
    earlier = utcnow() - timedelta(hours=2)
    async with resources.sessionmaker() as session:
        await session.execute(
            update(AppPassword).where(AppPassword.user_id == user.id).values(last_used_at=earlier)
        )
        await session.commit()
    assert (await rest(client, by_token("lena", password)))["status"] == "ok"
    assert await last_used() > earlier + timedelta(hours=1)


async def test_api_key_and_classic_together(app: Quart, client: Client) -> None:
    account = await make_account(app, "sol", Role.LISTENER, scopes="read")
    _, password = await listener(app, "lena")
    both = f"apiKey={account.token}&{by_token('lena', password)}"
    refused(await rest(client, both), 43)


# --- throttled like log-in ----------------------------------------------------------------

ALLOWED = 3


@pytest.fixture
async def strict(tmp_path: Path, database_url: str) -> AsyncIterator[Quart]:
    settings = make_settings(tmp_path, database_url, accounts={"login_attempts": ALLOWED})
    application = create_app(settings)
    async with application.test_app() as test_app:
        yield test_app.app  # type: ignore[attr-defined]


async def test_the_throttle_bites_failures_from_one_address(strict: Quart) -> None:
    client = strict.test_client()
    _, password = await listener(strict, "lena")
    _, omar = await listener(strict, "omar")
    here, elsewhere = "198.51.100.7", "192.0.2.20"
    for attempt in range(ALLOWED):
        body = await rest(client, by_token("lena", f"guess-{attempt}"), address=here)
        assert refused(body).startswith(WRONG)
    # the window is full for this address: even the right password waits, unchecked
    message = refused(await rest(client, by_token("lena", password), address=here))
    assert "wait" in message and "minutes" in message
    message = refused(await rest(client, urlencode({"u": "omar", "p": omar}), address=here))
    assert "wait" in message, "the address's allowance, whatever name it tries"
    # from another address the owner gets in; the name's own allowance is far from full
    assert (await rest(client, by_token("lena", password), address=elsewhere))["status"] == "ok"


async def test_the_throttle_bites_one_name_from_many_addresses(strict: Quart) -> None:
    client = strict.test_client()
    _, password = await listener(strict, "lena")
    allowance = ALLOWED * 10  # throttle.SUBSONIC_NAME_FACTOR
    for number in range(allowance):
        address = f"203.0.113.{number + 1}"
        refused(await rest(client, by_token("lena", f"guess-{number}"), address=address))
    message = refused(await rest(client, by_token("lena", password), address="192.0.2.99"))
    assert "wait" in message
    _, omar = await listener(strict, "omar")
    assert (await rest(client, by_token("omar", omar), address="192.0.2.99"))["status"] == "ok"


async def test_the_throttle_does_not_bite_use(strict: Quart) -> None:
    client = strict.test_client()
    _, password = await listener(strict, "lena")
    address = "198.51.100.8"
    refused(await rest(client, by_token("lena", "one typo"), address=address))
    for call in range(ALLOWED * 5):  # an app's every call, a fresh salt each time
        salt = f"salt-{call:04d}"
        body = await rest(client, by_token("lena", password, salt=salt), address=address)
        assert body["status"] == "ok", (call, body)
        body = await rest(client, urlencode({"u": "lena", "p": password}), address=address)
        assert body["status"] == "ok", (call, body)


# --- the settings' Apps section --------------------------------------------------------------


async def make_on_page(client: Client, name: str) -> tuple[int, str]:
    token = await csrf(client, "/settings")
    answer = await client.post("/settings/app-passwords", form={"csrf_token": token, "name": name})
    return answer.status_code, await answer.get_data(as_text=True)


async def test_the_apps_section(app: Quart, client: Client) -> None:
    assert (await sign_up(client, "mona")).status_code == 303
    page = await (await client.get("/settings")).get_data(as_text=True)
    base = resources_of(app).settings.instance.base_url
    assert f'<code id="subsonic-server">{base}</code>' in page
    assert '<code id="subsonic-user">mona</code>' in page
    assert "DSub" in page and "Symfonium" in page

    status, page = await make_on_page(client, "  Car   stereo ")
    assert status == 200
    found = re.search(r'<code id="new-app-password">([^<]+)</code>', page)
    assert found, page
    password = found.group(1)
    assert "Car stereo, made" in page
    assert (await rest(client, by_token("mona", password)))["status"] == "ok"
    again = await (await client.get("/settings")).get_data(as_text=True)
    assert password not in again and "new-app-password" not in again, "shown only once"

    status, page = await make_on_page(client, "car STEREO")
    assert status == 409 and "already" in page
    status, page = await make_on_page(client, "   ")
    assert status == 422
    missing = await client.post("/settings/app-passwords", form={"name": "No token"})
    assert missing.status_code == 403, "CSRF as the other forms"

    # someone else cannot revoke it
    other = app.test_client()
    assert (await sign_up(other, "nils")).status_code == 303
    async with resources_of(app).sessionmaker() as session:
        row = await session.scalar(select(AppPassword).where(AppPassword.name == "Car stereo"))
    assert row is not None
    token = await csrf(other, "/settings")
    answer = await other.post(
        f"/settings/app-passwords/{row.id}/revoke", form={"csrf_token": token}
    )
    assert answer.status_code == 303
    assert (await rest(client, by_token("mona", password)))["status"] == "ok"
    # its owner can
    token = await csrf(client, "/settings")
    answer = await client.post(
        f"/settings/app-passwords/{row.id}/revoke", form={"csrf_token": token}
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/settings#apps")
    refused(await rest(client, by_token("mona", password)))
    page = await (await client.get("/settings")).get_data(as_text=True)
    assert "Car stereo" not in page


async def test_at_most_ten_active(app: Quart, client: Client) -> None:
    assert (await sign_up(client, "mona")).status_code == 303
    for number in range(app_passwords.MAX_ACTIVE):
        assert (await make_on_page(client, f"Device {number}"))[0] == 200
    status, page = await make_on_page(client, "One too many")
    assert status == 409 and "revoke one" in page
    assert 'action="/settings/app-passwords"' not in page, "no form to make one more"
    async with resources_of(app).sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(AppPassword))
    assert count == app_passwords.MAX_ACTIVE


async def test_the_account_password_is_never_an_app_password(app: Quart, client: Client) -> None:
    assert (await sign_up(client, "mona")).status_code == 303
    refused(await rest(client, urlencode({"u": "mona", "p": PASSWORD})))
    refused(await rest(client, by_token("mona", PASSWORD)))


# --- the command line -----------------------------------------------------------------------


async def test_the_command_line(tmp_path: Path, database_url: str) -> None:
    env = env_for(tmp_path, database_url)
    assert run_playfair(["init"], env).returncode == 0
    assert run_playfair(["user", "add", "sol"], env, "a long password\n").returncode == 0
    added = run_playfair(["app-password", "add", "sol", "--name", "Phone"], env)
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip()
    assert added.stdout == password + "\n", "only the password on stdout"
    assert re.fullmatch(r"([a-z2-9]{5}-){3}[a-z2-9]{5}", password)

    secret = (tmp_path / "data" / "secret.key").read_text().strip()
    engine = create_async_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            verified = await app_passwords.verify_password(session, secret, "sol", password)
            assert verified is not None and verified.user.username == "sol"
    finally:
        await engine.dispose()

    listed = run_playfair(["app-password", "list", "sol"], env)
    assert listed.returncode == 0 and listed.stdout.startswith("Phone\t")
    assert password not in listed.stdout and listed.stdout.rstrip().endswith("never")
    twice = run_playfair(["app-password", "add", "sol", "--name", "phone"], env)
    assert twice.returncode == 1 and twice.stdout == ""
    assert_one_line_error(twice.stderr, "already")
    nobody = run_playfair(["app-password", "add", "nobody", "--name", "Phone"], env)
    assert_one_line_error(nobody.stderr, "there is no account 'nobody'")

    revoked = run_playfair(["app-password", "revoke", "sol", "Phone"], env)
    assert revoked.returncode == 0, revoked.stderr
    assert run_playfair(["app-password", "list", "sol"], env).stdout == ""
    again = run_playfair(["app-password", "revoke", "sol", "Phone"], env)
    assert_one_line_error(again.stderr, "no app password named 'Phone'")
    engine = create_async_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            assert await app_passwords.verify_password(session, secret, "sol", password) is None
    finally:
        await engine.dispose()


# --- getUser ------------------------------------------------------------------------------


async def test_get_user(app: Quart, client: Client) -> None:
    resources = resources_of(app)
    lena, lena_password = await listener(app, "lena")
    async with resources.sessionmaker() as session:
        await session.execute(
            update(User).where(User.id == lena.id).values(email="lena@example.org")
        )
        await session.commit()
    _, mira_password = await listener(app, "mira", Role.ARTIST)
    boss = await make_account(app, "boss", Role.ADMIN, scopes="read admin")
    _, boss_password = await listener(app, "boss2", Role.ADMIN)

    body = await rest(client, by_token("lena", lena_password), "getUser")
    user = body["user"]
    assert user == {
        "username": "lena", "email": "lena@example.org", "scrobblingEnabled": True,
        "adminRole": False, "settingsRole": False, "downloadRole": True, "uploadRole": False,
        "playlistRole": True, "coverArtRole": False, "commentRole": False,
        "podcastRole": False, "streamRole": True, "jukeboxRole": False, "shareRole": False,
        "videoConversionRole": False, "folder": [1, 2],
    }  # fmt: skip
    named = await rest(client, by_token("lena", lena_password) + "&username=lena", "getUser")
    assert named["user"] == user
    xml = await client.get(f"/rest/getUser?{by_token('lena', lena_password)}")
    text_body = await xml.get_data(as_text=True)
    assert '<user username="lena" email="lena@example.org"' in text_body
    assert "<folder>1</folder><folder>2</folder></user>" in text_body

    mira = (await rest(client, by_token("mira", mira_password), "getUser"))["user"]
    assert mira["uploadRole"] is True and mira["adminRole"] is False and "email" not in mira

    # a listener sees only themselves: another name, existing or not, is refused alike
    as_lena = by_token("lena", lena_password)
    other = refused(await rest(client, as_lena + "&username=mira", "getUser"), 50)
    ghost = refused(await rest(client, as_lena + "&username=ghost", "getUser"), 50)
    assert other == ghost
    # an admin's apiKey with the admin scope sees anyone
    seen = await rest(client, f"apiKey={boss.token}&username=lena", "getUser")
    assert seen["user"]["email"] == "lena@example.org"
    assert (await rest(client, f"apiKey={boss.token}", "getUser"))["user"]["adminRole"] is True
    refused(await rest(client, f"apiKey={boss.token}&username=ghost", "getUser"), 70)
    # an admin's app password never carries admin powers
    body = await rest(client, by_token("boss2", boss_password) + "&username=lena", "getUser")
    refused(body, 50)
    own = await rest(client, by_token("boss2", boss_password), "getUser")
    assert own["user"]["adminRole"] is True
