"""Privacy, on both databases: the export holds every row the instance keeps about an
account (checked against the tables themselves, so that a new table with a user id
cannot be forgotten), deletion through the settings page leaves none of the account's
name, e-mail or password hash in the database file or its journal, and what the wallet
still holds goes where the listener chose, in balanced ledger transactions."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.sql import visitors

from federation.signatures import sign_request
from models import load_all
from models.accounts import AuditEntry
from models.base import utcnow
from models.catalogue import Artist
from models.federation import Follow, FollowState, InboxItem
from models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from models.oauth import RefreshToken
from models.tokens import AccessToken
from models.users import User
from server.runtime.config import Settings
from server.services.account_closing import ClosingSplit, closing_split
from server.services.account_closing import preview as closing_preview
from server.services.account_data import (
    SECRET_COLUMNS,
    AccountScope,
    account_scope,
    looks_secret,
    row_filters,
    table,
)
from server.services.activitypub.context import federation_of
from server.services.inbox_routes import handle_item
from server.services.jobs import build_worker
from server.services.money import issue_vouchers
from server.services.oauth_clients import register_client
from server.web.app import create_app
from server.web.current import resources_of
from tests.conftest import make_settings
from tests.test_account_pages import PASSWORD, all_database_text, csrf, make_admin, sign_up
from tests.test_fetch import Reply, Server
from tests.test_inbox import KEY, fixture, pem
from tests.test_money import heard, ledger_sums_to_zero, make_tracks

# Tables that hold rows reachable from an account through a chain of foreign keys, but
# whose rows are not the account's: each with the reason.
NOT_EXPORTED = {
    # Listens from other servers about the account's tracks: other people's plays, known
    # here only by a pseudonym; the artist's dashboard shows their totals.
    "received_listens",
}

# Columns whose names look like secrets but are not.
NOT_SECRET: set[tuple[str, str]] = {
    # a public cover's BlurHash: a blurred placeholder of it, sent with every release post
    ("media_files", "blurhash"),
}

# Integer columns that hold a user id (when they have no foreign key, only their name says
# so; a new one must follow this pattern or be named here).
USER_ID_NAME = re.compile(r"(^|_)user_id$|^owner_id$|_by$")

SCOPE = AccountScope(1, "lina", utcnow(), ("lina",), ("http://localhost/users/lina",))

SCHEMA = load_all()  # every table, whatever the imports above happen to load


def _refers_to_account(column: Column[Any]) -> bool:
    """A column that names an account directly: its id or its name."""
    targets = {f"{fk.column.table.name}.{fk.column.name}" for fk in column.foreign_keys}
    if "users.id" in targets:
        return True
    if "handles.name" in targets:
        return not column.unique  # a unique name is the row's own (an artist's, a label's)
    if column.foreign_keys or column.primary_key:
        return False
    if isinstance(column.type, Integer) and USER_ID_NAME.search(column.name):
        return True
    # names are String(30) everywhere (handles.name); one without a foreign key
    return isinstance(column.type, String) and column.type.length == 30


def direct_links(metadata: MetaData = SCHEMA) -> dict[str, set[str]]:
    links: dict[str, set[str]] = {}
    for source in metadata.sorted_tables:
        for column in source.columns:
            if source.name not in ("users", "handles") and _refers_to_account(column):
                links.setdefault(source.name, set()).add(column.name)
    return links


def linked_tables(metadata: MetaData = SCHEMA) -> set[str]:
    """Every table with a row that can refer to an account, directly or through a chain
    of foreign keys (a playlist's items through the playlist)."""
    linked = {"users", "handles", *direct_links(metadata)}
    while True:
        more = {
            source.name
            for source in metadata.sorted_tables
            if source.name not in linked
            and any(fk.column.table.name in linked for fk in source.foreign_keys)
        }
        if not more:
            return linked
        linked |= more


def columns_of(condition: Any) -> set[tuple[str, str]]:
    return {
        (element.table.name, element.name)
        for element in visitors.iterate(condition)
        if isinstance(element, Column) and element.table is not None
    }


def test_every_table_that_refers_to_an_account_is_exported() -> None:
    exported = set(row_filters(SCOPE))
    linked = linked_tables()
    assert exported <= set(SCHEMA.tables), exported - set(SCHEMA.tables)
    assert not (NOT_EXPORTED & exported), "an exception that is exported after all"
    assert linked >= NOT_EXPORTED, "an exception for a table that no longer refers to accounts"
    missing = linked - exported - NOT_EXPORTED
    assert not missing, f"tables with rows about an account that the export leaves out: {missing}"
    # each column that names the account is used to pick the table's rows
    filters = row_filters(SCOPE)
    for name, columns in direct_links().items():
        if name in NOT_EXPORTED:
            continue
        used = {column for table_name, column in columns_of(filters[name]) if table_name == name}
        assert columns <= used, f"{name}: the export ignores {columns - used}"


def test_the_check_finds_what_it_should() -> None:
    """The introspection itself: known links through foreign keys, chains and bare ids."""
    links = direct_links()
    assert links["plays"] == {"user_id"}
    assert links["audit_log"] == {"actor_user_id", "target_user_id"}
    assert links["ledger_accounts"] == {"owner_id"}
    assert links["outbound_activities"] == {"actor_name"}
    assert links["follows"] == {"follower_name", "followed_name"}
    assert links["artists"] == {"owner_id"}  # its own name is not the account's
    linked = linked_tables()
    assert {"playlist_items", "ledger_entries", "deliveries", "received_listens"} <= linked
    assert "remote_actors" not in linked and "instance_keys" not in linked


def test_a_new_table_with_a_user_id_is_caught() -> None:
    """The check above on tables it has never seen: one with a foreign key to users, one
    with a bare user id, one that hangs off the first, and one with a name."""
    metadata = MetaData()
    for source in SCHEMA.sorted_tables:
        source.to_metadata(metadata)
    Table("gifts", metadata, Column("id", Integer, primary_key=True),
          Column("giver_id", Integer, ForeignKey("users.id")))  # fmt: skip
    Table("gift_notes", metadata, Column("id", Integer, primary_key=True),
          Column("gift_id", Integer, ForeignKey("gifts.id")))  # fmt: skip
    Table("badges", metadata, Column("id", Integer, primary_key=True),
          Column("awarded_by", Integer))  # fmt: skip
    Table("shout_outs", metadata, Column("id", Integer, primary_key=True),
          Column("listener", String(30)))  # fmt: skip
    assert linked_tables(metadata) - linked_tables() == {
        "gifts", "gift_notes", "badges", "shout_outs"
    }  # fmt: skip


def test_secrets_are_classified() -> None:
    for name in row_filters(SCOPE):
        for column in table(name).columns:
            if looks_secret(column.name) and (name, column.name) not in NOT_SECRET:
                assert column.name in SECRET_COLUMNS.get(name, ()), f"{name}.{column.name}"
    for name, columns in SECRET_COLUMNS.items():
        assert columns <= set(table(name).columns.keys()), name


def test_closing_split() -> None:
    assert closing_split(0, 128, 0) == ClosingSplit(0, 0)
    assert closing_split(128, 128, 0) == ClosingSplit(128, 128)  # nothing to decide
    assert closing_split(1128, 128, 0).transferable == 1000
    assert closing_split(1100, 128, 28) == ClosingSplit(1100, 100)  # grants spent first
    assert closing_split(900, 128, 300) == ClosingSplit(900, 0)
    assert closing_split(50, 128, 0) == ClosingSplit(50, 50)  # never more than the balance


# --- a real account with a real history -------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, federation={"allow_private_addresses": True})


@pytest.fixture
def remote() -> Iterator[Server]:
    """A Mastodon account on another server (its recorded actor document, with a key
    whose private half we hold), served over real HTTP."""
    server = Server("127.0.0.1")
    base = server.url("")
    document = json.loads(
        json.dumps(fixture("mastodon/actor.json")).replace("https://mastodon.example", base)
    )
    document["publicKey"]["publicKeyPem"] = pem(KEY)
    server.routes["/users/alice"] = Reply(
        200, {"Content-Type": "application/activity+json"}, json.dumps(document).encode()
    )
    yield server
    server.close()


NAME = "lina_gone"
EMAIL = "Lina.Gone@Example.ORG"
PLAYLIST = "Otters at Midnight 7f3a"
TOKEN_NAME = "linas secret script"
APP_NAME = "Linas Otter Phone 5e2b"


async def _token(client: Client) -> str:
    token = await csrf(client, "/settings")
    fields = [("csrf_token", token), ("name", TOKEN_NAME), ("scope", "read"),
              ("scope", "write"), ("scope", "play")]  # fmt: skip
    page = await client.post(
        "/settings/tokens",
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    found = re.search(r'<code id="new-token">([^<]+)</code>', await page.get_data(as_text=True))
    assert found
    return found.group(1)


async def _app_password(client: Client) -> str:
    """An app password made in the settings and used once by a Subsonic app."""
    token = await csrf(client, "/settings")
    page = await client.post(
        "/settings/app-passwords", form={"csrf_token": token, "name": APP_NAME}
    )
    found = re.search(
        r'<code id="new-app-password">([^<]+)</code>', await page.get_data(as_text=True)
    )
    assert found
    used = await client.get(f"/rest/ping?f=json&u={NAME}&p={found.group(1)}")
    assert (await used.get_json())["subsonic-response"]["status"] == "ok"
    return found.group(1)


async def _oauth_grant(app: Quart, client: Client) -> None:
    """The listener lets an app in through the consent page; the app gets its tokens."""
    redirect = "http://127.0.0.1:9999/callback"
    async with resources_of(app).sessionmaker() as session:
        registered, _ = await register_client(
            session, "Otter Player", [redirect], "read play", public=True
        )
    base = resources_of(app).settings.instance.base_url
    verifier = generate_token(48)
    async with AsyncOAuth2Client(
        client_id=registered.client_id, token_endpoint_auth_method="none",
        redirect_uri=redirect, scope="read play", code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app), base_url=base,
    ) as oauth:  # fmt: skip
        url, _state = oauth.create_authorization_url(
            f"{base}/oauth/authorize", code_verifier=verifier
        )
        path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        page = await (await client.get(path)).get_data(as_text=True)
        action = re.search(r'action="([^"]+)"', page.split("<h1>", 1)[1])
        assert action, page
        answer = await client.post(
            action.group(1).replace("&amp;", "&"),
            form={"csrf_token": await csrf(client, "/settings"), "decision": "allow"},
        )
        assert answer.status_code == 302, await answer.get_data(as_text=True)
        token = await oauth.fetch_token(
            f"{base}/oauth/token",
            authorization_response=answer.headers["Location"],
            code_verifier=verifier,
        )
        assert token["refresh_token"]


async def _history(app: Quart, client: Client, remote: Server) -> dict[str, Any]:
    """Sign-up, a voucher, plays and a purchase, a favourite, a playlist, a local and a
    remote follow (accepted by the remote server), an app authorised through OAuth."""
    resources = resources_of(app)
    assert (await sign_up(client, "Lina_Gone", email=EMAIL)).status_code == 303
    headers = {"Authorization": f"Bearer {await _token(client)}"}
    tracks = await make_tracks(resources, 3)
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 1000, 1, None)
    token = await csrf(client, "/wallet")
    await client.post("/wallet/voucher", form={"csrf_token": token, "code": code})
    started = await (
        await client.post(f"/api/v1/tracks/{tracks[0]}/plays", headers=headers)
    ).get_json()
    await heard(resources, started["session"])
    claim = urlsplit(started["claim_url"]).path
    assert (await client.post(claim, headers=headers)).status_code == 200
    bought = await client.post(f"/api/v1/tracks/{tracks[1]}/buy", headers=headers)
    assert bought.status_code == 200, await bought.get_data(as_text=True)
    await client.post(f"/tracks/{tracks[2]}/favourite", form={"csrf_token": token})
    made = await client.post(
        "/api/v1/me/playlists", headers=headers, json={"title": PLAYLIST, "public": True}
    )
    playlist = (await made.get_json())["id"]
    added = await client.post(
        f"/api/v1/playlists/{playlist}/items", headers=headers, json={"track_id": tracks[0]}
    )
    assert added.status_code == 201, await added.get_data(as_text=True)

    async with resources.sessionmaker() as session:
        band = await session.scalar(select(Artist.name).order_by(Artist.id.desc()))
    local = await client.post("/api/v1/follows", headers=headers, json={"account": band})
    assert local.status_code == 201, await local.get_data(as_text=True)
    alice = remote.url("/users/alice")
    followed = await client.post("/api/v1/follows", headers=headers, json={"account": alice})
    assert followed.status_code == 201, await followed.get_data(as_text=True)
    async with resources.sessionmaker() as session:
        follow = await session.scalar(select(Follow).where(Follow.followed_actor_id.is_not(None)))
        assert follow is not None
    # the remote server accepts, at our shared inbox
    accept = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{alice}#accepts/follows/1",
        "type": "Accept",
        "actor": alice,
        "object": follow.activity_uri,
    }
    body = json.dumps(accept).encode()
    base = resources.settings.instance.base_url
    signed = sign_request("POST", f"{base}/inbox", body, f"{alice}#main-key", KEY)
    signed["Content-Type"] = "application/activity+json"
    assert (await client.post("/inbox", data=body, headers=signed)).status_code == 202
    fed = federation_of(resources)
    async with resources.sessionmaker() as session:
        [item] = (await session.scalars(select(InboxItem.id))).all()
    await handle_item(fed, item)
    async with resources.sessionmaker() as session:
        accepted = await session.get(Follow, follow.id)
        assert accepted is not None and accepted.state is FollowState.ACCEPTED
    await _oauth_grant(app, client)
    app_password = await _app_password(client)
    async with resources.sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == NAME))
        assert user is not None
        scope = await account_scope(session, user, base)
    return {"user": user, "scope": scope, "headers": headers, "app_password": app_password}


def _variants(value: str) -> set[bytes]:
    """The bytes a value could be stored as: any case SQLite or PostgreSQL might keep,
    in UTF-8 and in UTF-16 (a database created with UTF-16 text)."""
    cases = {value, value.lower(), value.upper(), value.title(), value.casefold()}
    return {case.encode(codec) for case in cases for codec in ("utf-8", "utf-16-le", "utf-16-be")}


def _needles(user: User) -> dict[bytes, str]:
    hash_tail = user.password_hash.rsplit("$", 1)[1]
    values = {
        "name": NAME, "e-mail": EMAIL, "password hash": user.password_hash,
        "password hash (its digest)": hash_tail, "password": PASSWORD,
        "playlist title": PLAYLIST, "token name": TOKEN_NAME, "app password name": APP_NAME,
    }  # fmt: skip
    return {needle: what for what, value in values.items() for needle in _variants(value)}


def _assert_absent(blobs: dict[str, bytes], needles: dict[bytes, str]) -> None:
    found = [
        f"{what} in {where}"
        for where, blob in blobs.items()
        for needle, what in needles.items()
        if needle in blob
    ]
    assert not found, found


def _sqlite_files(app: Quart) -> dict[str, bytes]:
    path = Path(str(make_url(resources_of(app).settings.database.url).database))
    files = {p.name: p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
             if p.exists()}  # fmt: skip
    assert path.name in files
    return files


async def _postgres_files(app: Quart) -> dict[str, bytes]:
    """Every table, index and TOAST file of the database (and its column statistics), as
    PostgreSQL wrote them to disk."""
    async with resources_of(app).engine.connect() as connection:
        await connection.execute(text("CHECKPOINT"))
        rows = await connection.execute(
            text(
                "SELECT c.relname, pg_read_binary_file(pg_relation_filepath(c.oid)) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE ((n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r','i','t'))"
                " OR c.relname = 'pg_statistic') AND pg_relation_filepath(c.oid) IS NOT NULL"
            )
        )
        files = {name: bytes(blob) for name, blob in rows}
        await connection.rollback()
    assert "users" in files and "pg_statistic" in files
    return files


async def test_deleting_a_real_account_leaves_no_trace(
    app: Quart, client: Client, remote: Server
) -> None:
    resources = resources_of(app)
    history = await _history(app, client, remote)
    user: User = history["user"]
    friend = app.test_client()
    assert (await sign_up(friend, "friend_of_lina")).status_code == 303

    # the export holds every row about the account, secrets only said to exist
    response = await client.get("/settings/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    document = await response.get_json()
    assert document["format"] == "playfair account export" and document["version"] == 2
    assert set(document["tables"]) == set(row_filters(history["scope"]))
    tables = document["tables"]
    counts = {name: len(rows) for name, rows in tables.items()}
    once = ("users", "handles", "web_sessions", "favourites", "playlists", "playlist_items",
            "listener_tracks", "play_sessions", "vouchers", "oauth_codes",
            "oauth_refresh_tokens", "ledger_accounts", "inbox_items")  # fmt: skip
    for name in once:
        assert counts[name] >= 1, (name, counts)
    assert counts["plays"] == 1  # a purchase is no play
    assert counts["access_tokens"] == 2  # the personal token and the app's
    assert counts["app_passwords"] == 1
    assert counts["follows"] == 2 and counts["outbound_activities"] == 1
    assert counts["ledger_entries"] == counts["ledger_transactions"] == 4  # grant, voucher, 2
    [row] = tables["users"]
    assert (row["username"], row["email"], row["password_hash"]) == (NAME, EMAIL, "withheld")
    assert tables["playlists"][0]["title"] == PLAYLIST
    assert document["withheld"]["users"] == ["password_hash"]
    assert set(document["withheld"]["access_tokens"]) == {"digest"}
    [app_row] = tables["app_passwords"]
    assert (app_row["name"], app_row["password_sealed"]) == (APP_NAME, "withheld")
    assert app_row["created_at"] and app_row["last_used_at"] and app_row["revoked_at"] is None
    assert document["withheld"]["app_passwords"] == ["password_sealed"]
    assert document["referenced"]["oauth_clients"] and "Otter Player" in str(document)
    assert all(t["title"] for t in document["referenced"]["tracks"].values())
    exported = json.dumps(document)
    assert user.password_hash not in exported
    assert history["app_password"] not in exported
    assert history["app_password"].replace("-", "") not in exported
    async with resources.sessionmaker() as session:
        digests = (await session.scalars(select(AccessToken.digest))).all()
        digests += (await session.scalars(select(RefreshToken.digest))).all()
    assert digests and not any(digest in exported for digest in digests)

    # a wrong password changes nothing
    token = await csrf(client, "/settings")
    page = await (await client.get("/settings")).get_data(as_text=True)
    async with resources.sessionmaker() as session:
        split = await closing_preview(session, user.id)
    balance = split.balance
    assert split.transferable and f"Your wallet holds {balance} tokens." in page
    wrong = await client.post(
        "/settings/delete",
        form={"csrf_token": token, "password": "nope", "balance": "listener",
              "recipient": "friend_of_lina"},
    )  # fmt: skip
    assert wrong.status_code == 422
    assert NAME in await all_database_text(app)

    # deleted through the settings page, the tokens given to a friend
    done = await client.post(
        "/settings/delete",
        form={"csrf_token": token, "password": PASSWORD, "balance": "listener",
              "recipient": "friend_of_lina"},
    )  # fmt: skip
    assert done.status_code == 303, await done.get_data(as_text=True)
    needles = _needles(user)
    if resources.engine.dialect.name == "sqlite":
        async with resources.engine.connect() as connection:
            # set by us: SQLite builds without SQLITE_SECURE_DELETE leave it off
            assert (await connection.execute(text("PRAGMA secure_delete"))).scalar() == 1
            await connection.rollback()
        _assert_absent(_sqlite_files(app), needles)  # at once, without the worker
    else:
        assert await build_worker(resources).run_until_idle() >= 1  # the VACUUM job
        _assert_absent(await _postgres_files(app), needles)
    everything = (await all_database_text(app)).encode()
    _assert_absent({"rows": everything}, needles)

    # nothing is left that the export would find; money keeps pseudonymous rows only
    async with resources.sessionmaker() as session:
        left = {
            name: await session.scalar(select(func.count()).select_from(table(name)).where(where))
            for name, where in row_filters(history["scope"]).items()
        }
        assert {name: n for name, n in left.items() if n} == {}
        plays = (await session.execute(text("SELECT user_id, transaction_id FROM plays"))).all()
        assert len(plays) == 1 and all(u is None and t for u, t in plays)
        closed = await session.scalar(
            select(LedgerAccount).where(LedgerAccount.key.like("closed:%"))
        )
        assert closed is not None and (closed.owner_id, closed.balance) == (None, 0)
        friend = await session.scalar(select(User).where(User.username == "friend_of_lina"))
        assert friend is not None
        closing = await session.scalar(
            select(LedgerTransaction).where(LedgerTransaction.kind == "account-closing")
        )
        assert closing is not None
        moved = dict(
            (await session.execute(
                select(LedgerAccount.key, LedgerEntry.amount)
                .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
                .where(LedgerEntry.transaction_id == closing.id)
            )).all()
        )  # fmt: skip
    expected = {closed.key: -balance, f"wallet:{friend.id}": split.transferable}
    if split.returned_grant:
        expected["grants"] = split.returned_grant
    assert moved == expected
    await ledger_sums_to_zero(resources)
    again = await sign_up(app.test_client(), NAME)
    assert again.status_code == 409, "a deleted name is not given out again"


# --- what becomes of the balance ---------------------------------------------------------


async def _listener_with_voucher(app: Quart, name: str, tokens: int) -> Client:
    client = app.test_client()
    assert (await sign_up(client, name)).status_code == 303
    if tokens:
        async with resources_of(app).sessionmaker() as session:
            [code] = await issue_vouchers(session, tokens, 1, None)
        token = await csrf(client, "/wallet")
        await client.post("/wallet/voucher", form={"csrf_token": token, "code": code})
    return client


async def _balances(app: Quart) -> dict[str, int]:
    async with resources_of(app).sessionmaker() as session:
        rows = await session.execute(select(LedgerAccount.key, LedgerAccount.balance))
        return dict(rows.all())  # type: ignore[arg-type]


async def _delete(client: Client, **fields: str) -> Any:
    token = await csrf(client, "/settings")
    return await client.post(
        "/settings/delete", form={"csrf_token": token, "password": PASSWORD, **fields}
    )


async def _user_id(app: Quart, name: str) -> int | None:
    async with resources_of(app).sessionmaker() as session:
        return await session.scalar(select(User.id).where(User.username == name))


async def test_the_balance_goes_where_the_listener_chooses(app: Quart) -> None:
    starter = resources_of(app).settings.money.starter_balance
    assert starter > 0
    # every account made first: sign-up after a deletion is another part of issue 12
    ada = await _listener_with_voucher(app, "ada", 1000)
    ben = await _listener_with_voucher(app, "ben", 500)
    cleo = await _listener_with_voucher(app, "cleo", 0)
    dora = await _listener_with_voucher(app, "dora", 0)
    admin = await make_admin(app)
    await _listener_with_voucher(app, "eve", 300)
    ada_id = await _user_id(app, "ada")
    page = await (await ada.get("/settings")).get_data(as_text=True)
    assert f"Your wallet holds {starter + 1000} tokens." in page
    assert f"{starter} of them are starter tokens" in page
    assert "Where your other 1000 tokens go" in page
    assert "not paid back in money" in page

    # refused, and nothing changes: no choice, a bad choice, nobody, oneself
    before = await _balances(app)
    refusals = [
        ({}, 422, "choose whether they go"),
        ({"balance": "the moon"}, 422, "choose where your tokens go"),
        ({"balance": "listener", "recipient": "nobody_here"}, 404, "no active account"),
        ({"balance": "listener", "recipient": ""}, 422, "give the name"),
        ({"balance": "listener", "recipient": "ada"}, 422, "another listener than yourself"),
    ]
    for fields, status, text_ in refusals:
        refused = await _delete(ada, **fields)
        assert refused.status_code == status, fields
        assert text_ in await refused.get_data(as_text=True), fields
    assert await _balances(app) == before
    assert await _user_id(app, "ada") == ada_id

    # to the co-op: the starter tokens back to the grants, the rest to the instance
    assert (await _delete(ada, balance="coop")).status_code == 303
    after = await _balances(app)
    assert after["instance"] == before.get("instance", 0) + 1000
    assert after["grants"] == before["grants"] + starter
    assert f"wallet:{ada_id}" not in after
    await ledger_sums_to_zero(resources_of(app))

    # to another listener, named as they are shown (with an @ and in capitals)
    cleo_id = await _user_id(app, "cleo")
    before = await _balances(app)
    assert (await _delete(ben, balance="listener", recipient="@Cleo")).status_code == 303
    after = await _balances(app)
    assert after[f"wallet:{cleo_id}"] == before[f"wallet:{cleo_id}"] + 500
    assert after["grants"] == before["grants"] + starter
    await ledger_sums_to_zero(resources_of(app))
    cleo_page = await (await cleo.get("/settings")).get_data(as_text=True)
    assert f"Your wallet holds {starter + 500} tokens." in cleo_page

    # only starter tokens left: nothing to decide, they go back
    page = await (await dora.get("/settings")).get_data(as_text=True)
    assert 'name="balance"' not in page
    before = await _balances(app)
    assert (await _delete(dora)).status_code == 303
    assert (await _balances(app))["grants"] == before["grants"] + starter

    # an admin's deletion gives what is left to the co-op, and the audit log says so
    eve_id = await _user_id(app, "eve")
    before = await _balances(app)
    token = await csrf(admin, "/admin/accounts")
    gone = await admin.post(f"/admin/accounts/{eve_id}/delete", form={"csrf_token": token})
    assert gone.status_code == 303
    after = await _balances(app)
    assert after["instance"] == before["instance"] + 300
    async with resources_of(app).sessionmaker() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "account.delete")
        )
        closings = (
            await session.scalars(
                select(LedgerTransaction).where(LedgerTransaction.kind == "account-closing")
            )
        ).all()
    assert entry is not None and entry.target_user_id == eve_id
    assert entry.details == {"tokens_to_coop": 300}
    assert len(closings) == 4  # ada, ben, dora, eve: one balanced transaction each
    await ledger_sums_to_zero(resources_of(app))


async def test_a_reader_in_the_way_delays_the_erasure_to_the_worker(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """SQLite only (it is about SQLite's log): another connection reading while the
    account is deleted keeps the old pages in the write-ahead log; the worker's job
    empties it once the reader is done."""
    path = tmp_path / "busy.sqlite3"
    shutil.copyfile(sqlite_template, path)
    application = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{path}"))
    async with application.test_app() as test_app:
        app: Quart = test_app.app  # type: ignore[attr-defined]
        client = app.test_client()
        assert (await sign_up(client, NAME, email=EMAIL)).status_code == 303
        async with resources_of(app).sessionmaker() as session:
            user = await session.scalar(select(User).where(User.username == NAME))
        assert user is not None
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM users").fetchone() == (1,)
            deleted = await _delete(client)
            assert deleted.status_code == 303
            log = _sqlite_files(app)[f"{path.name}-wal"]
            assert any(needle in log for needle in _needles(user)), (
                "the reader kept the log from being reset (else this test proves nothing)"
            )
        finally:
            reader.close()
        assert await build_worker(resources_of(app)).run_until_idle() == 1
        _assert_absent(_sqlite_files(app), _needles(user))
