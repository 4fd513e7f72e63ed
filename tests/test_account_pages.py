"""Accounts in the browser, on both databases: sign-up by policy, log-in, sessions,
CSRF, rate limits, passwords, personal access tokens, export and deletion, admin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models import load_all
from models.accounts import AuditEntry
from models.catalogue import Favourite, Playlist, PlaylistItem, Release, Track
from models.users import AccountStatus, Role, User
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.web.app import create_app
from server.web.current import resources_of
from tests.conftest import make_settings

PASSWORD = "correct horse battery"


async def csrf(client: Client, path: str = "/signup") -> str:
    page = await (await client.get(path)).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def sign_up(client: Client, name: str, **fields: str) -> Any:
    token = await csrf(client)
    form = {"csrf_token": token, "username": name, "password": PASSWORD,
            "password_again": PASSWORD, **fields}  # fmt: skip
    return await client.post("/signup", form=form)


async def log_in(client: Client, name: str, password: str = PASSWORD) -> Any:
    token = await csrf(client, "/login")
    return await client.post(
        "/login", form={"csrf_token": token, "username": name, "password": password}
    )


def fresh_client(app: Quart) -> Client:
    return app.test_client()


async def make_admin(app: Quart) -> Client:
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "root_admin", PASSWORD, Role.ADMIN)
    client = fresh_client(app)
    assert (await log_in(client, "root_admin")).status_code == 303
    return client


async def test_sign_up_log_out_and_in(app: Quart, client: Client) -> None:
    response = await sign_up(client, "Lina", email="lina@example.org")
    assert response.status_code == 303
    assert "pf_session" in response.headers.get("Set-Cookie", "")
    home = await (await client.get("/")).get_data(as_text=True)
    assert ">lina</a>" in home
    token = await csrf(client, "/settings")
    assert (await client.post("/logout", form={"csrf_token": token})).status_code == 303
    assert (await client.get("/settings")).status_code == 303  # to the log-in page
    assert (await log_in(client, "lina")).status_code == 303
    assert (await client.get("/settings")).status_code == 200
    async with resources_of(app).sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == "lina"))
    assert user is not None
    assert (user.role, user.status, user.email) == (Role.LISTENER, AccountStatus.ACTIVE,
                                                   "lina@example.org")  # fmt: skip


async def test_email_is_optional(client: Client) -> None:
    assert (await sign_up(client, "noemail")).status_code == 303
    page = await (await client.get("/signup")).get_data(as_text=True)
    assert "E-mail (optional)" in page


async def test_forms_without_csrf_token_change_nothing(app: Quart, client: Client) -> None:
    no_token = await client.post(
        "/signup", form={"username": "sneaky", "password": PASSWORD, "password_again": PASSWORD}
    )
    assert no_token.status_code == 403
    assert "security token" in await no_token.get_data(as_text=True)
    await csrf(client)  # the browser has a cookie now, but the form still lacks the field
    wrong = await client.post(
        "/signup", form={"csrf_token": "forged", "username": "sneaky", "password": PASSWORD,
                         "password_again": PASSWORD},
    )  # fmt: skip
    assert wrong.status_code == 403
    async with resources_of(app).sessionmaker() as session:
        assert await session.scalar(select(User).where(User.username == "sneaky")) is None
    assert (await sign_up(client, "lina")).status_code == 303
    assert (await client.post("/logout", form={})).status_code == 403
    assert (await client.get("/settings")).status_code == 200, "still signed in"


async def test_wrong_password_and_unknown_user_look_the_same(client: Client) -> None:
    await sign_up(client, "lina")
    other = client.app.test_client()  # type: ignore[attr-defined]
    wrong = await log_in(other, "lina", "not the password")
    unknown = await log_in(other, "nobody_here", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        assert "wrong name or password" in await response.get_data(as_text=True)
        assert "pf_session" not in response.headers.get("Set-Cookie", "")


async def test_log_in_is_rate_limited(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, accounts={"login_attempts": 3})
    app = create_app(settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for _ in range(3):
            assert (await log_in(client, "lina", "guess guess guess")).status_code == 401
        limited = await log_in(client, "lina", "guess guess guess")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
        assert "too many attempts" in await limited.get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [("admin", 422, "reserved"), ("inbox", 422, "reserved"), ("x y", 422, "1 to 30"),
     ("taken", 409, "already taken"), ("aurora", 409, "already taken")],
)  # fmt: skip
async def test_names_that_cannot_be_had(
    app: Quart, client: Client, name: str, status: int, reason: str
) -> None:
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "taken", PASSWORD, Role.ARTIST)
        await create_artist(session, "aurora", owner)
        await session.commit()
    response = await sign_up(client, name)
    assert response.status_code == status
    assert reason in await response.get_data(as_text=True)
    async with resources_of(app).sessionmaker() as session:
        assert len((await session.scalars(select(User))).all()) == 1


async def test_artist_sign_up_waits_for_approval(app: Quart, client: Client) -> None:
    response = await sign_up(client, "mira", account_type="artist")
    assert response.status_code == 202
    assert "waits for an admin" in await response.get_data(as_text=True)
    refused = await log_in(fresh_client(app), "mira")
    assert refused.status_code == 403
    assert "waits for approval" in await refused.get_data(as_text=True)

    admin = await make_admin(app)
    async with resources_of(app).sessionmaker() as session:
        mira = await session.scalar(select(User).where(User.username == "mira"))
    assert mira is not None
    assert (mira.role, mira.wants_role) == (Role.LISTENER, Role.ARTIST)
    listener = fresh_client(app)
    await sign_up(listener, "lina")
    forbidden = await listener.post(
        f"/admin/accounts/{mira.id}/approve", form={"csrf_token": await csrf(listener, "/settings")}
    )
    assert forbidden.status_code == 403
    token = await csrf(admin, "/admin/accounts")
    approved = await admin.post(f"/admin/accounts/{mira.id}/approve", form={"csrf_token": token})
    assert approved.status_code == 303
    assert (await log_in(fresh_client(app), "mira")).status_code == 303
    async with resources_of(app).sessionmaker() as session:
        mira = await session.scalar(select(User).where(User.username == "mira"))
        entries = (await session.scalars(select(AuditEntry))).all()
    assert mira is not None
    assert mira.role is Role.ARTIST
    assert [(e.action, e.target_user_id) for e in entries] == [("account.approve", mira.id)]


async def test_invitation_only_sign_up(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, accounts={"signup": "invite"})
    app = create_app(settings)
    async with app.test_app() as test_app:
        app = test_app.app  # type: ignore[attr-defined]
        missing = await sign_up(test_app.test_client(), "lina")
        assert missing.status_code == 422
        assert "needs an invitation code" in await missing.get_data(as_text=True)
        bad = await sign_up(test_app.test_client(), "lina", invitation="made-up")
        assert bad.status_code == 422
        admin = await make_admin(app)
        made = await admin.post(
            "/admin/invitations",
            form={"csrf_token": await csrf(admin, "/admin/accounts"), "role": "listener"},
        )
        code = made.headers["Location"].split("invitation=")[1]
        assert (await sign_up(test_app.test_client(), "lina", invitation=code)).status_code == 303
        reused = await sign_up(test_app.test_client(), "sol", invitation=code)
        assert reused.status_code == 422
        assert "not valid" in await reused.get_data(as_text=True)


async def test_change_password(client: Client, app: Quart) -> None:
    await sign_up(client, "lina")
    token = await csrf(client, "/settings")
    new = {"new_password": "a new long password", "new_password_again": "a new long password"}
    wrong = await client.post(
        "/settings/password",
        form={"csrf_token": token, "current_password": "nope nope nope", **new},
    )
    assert wrong.status_code == 422
    ok = await client.post(
        "/settings/password", form={"csrf_token": token, "current_password": PASSWORD, **new}
    )
    assert ok.status_code == 200
    assert (await log_in(fresh_client(app), "lina")).status_code == 401
    assert (await log_in(fresh_client(app), "lina", "a new long password")).status_code == 303


async def test_personal_access_tokens_page(client: Client) -> None:
    await sign_up(client, "lina")
    token = await csrf(client, "/settings")
    page = await client.post(
        "/settings/tokens", form={"csrf_token": token, "name": "my script", "scope": "read"}
    )
    secret = re.search(r'<code id="new-token">([^<]+)</code>', await page.get_data(as_text=True))
    assert secret
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    assert (await client.get("/api/v1/releases", headers=headers)).status_code == 200
    admin_scope = await client.post(
        "/settings/tokens", form={"csrf_token": token, "name": "x", "scope": "admin"}
    )
    assert admin_scope.status_code == 403
    token_id = re.search(r"/settings/tokens/(\d+)/revoke", await page.get_data(as_text=True))
    assert token_id
    await client.post(f"/settings/tokens/{token_id.group(1)}/revoke", form={"csrf_token": token})
    assert (await client.get("/api/v1/releases", headers=headers)).status_code == 401


async def test_session_requests_to_the_api_need_the_csrf_header(app: Quart, client: Client) -> None:
    await sign_up(client, "lina")
    without = await client.post("/api/v1/releases/1/publish")
    assert without.status_code == 403
    token = await csrf(client, "/settings")
    with_header = await client.post("/api/v1/releases/1/publish", headers={"X-CSRF-Token": token})
    assert with_header.status_code == 404  # passed the CSRF check; there is no such release


async def seed_personal_data(app: Quart, client: Client) -> None:
    await sign_up(client, "lina_deleted", email="lina.deleted@example.org")
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "some_artist", PASSWORD, Role.ARTIST)
        artist = await create_artist(session, "band", owner)
        release = Release(artist_id=artist.id, title="R", slug="r")
        session.add(release)
        await session.flush()
        track = Track(release_id=release.id, artist_id=artist.id, title="T", slug="t")
        session.add(track)
        await session.flush()
        lina = await session.scalar(select(User).where(User.username == "lina_deleted"))
        assert lina is not None
        session.add(Favourite(user_id=lina.id, track_id=track.id))
        playlist = Playlist(user_id=lina.id, title="Secret Mixtape of Lina")
        session.add(playlist)
        await session.flush()
        session.add(PlaylistItem(playlist_id=playlist.id, position=1, track_id=track.id))
        await session.commit()
    token = await csrf(client, "/settings")
    await client.post("/settings/tokens", form={"csrf_token": token, "name": "lina's script",
                                                "scope": "read"})  # fmt: skip


async def test_export_holds_everything(app: Quart, client: Client) -> None:
    await seed_personal_data(app, client)
    response = await client.get("/settings/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    document = await response.get_json()
    tables = document["tables"]
    [account] = tables["users"]
    assert account["username"] == "lina_deleted"
    assert account["email"] == "lina.deleted@example.org"
    assert account["password_hash"] == "withheld"
    assert len(tables["favourites"]) == 1
    assert tables["playlists"][0]["title"] == "Secret Mixtape of Lina"
    assert tables["playlist_items"][0]["track_id"] == tables["favourites"][0]["track_id"]
    assert tables["access_tokens"][0]["name"] == "lina's script"
    assert tables["web_sessions"]
    assert document["withheld"]["access_tokens"] == ["digest"]


async def all_database_text(app: Quart) -> str:
    chunks = []
    async with resources_of(app).sessionmaker() as session:
        for table in load_all().sorted_tables:
            for row in (await session.execute(select(table))).all():
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


async def test_delete_account_leaves_nothing_personal(app: Quart, client: Client) -> None:
    await seed_personal_data(app, client)
    token = await csrf(client, "/settings")
    wrong = await client.post("/settings/delete", form={"csrf_token": token, "password": "nope"})
    assert wrong.status_code == 422
    assert "lina_deleted" in await all_database_text(app)
    done = await client.post("/settings/delete", form={"csrf_token": token, "password": PASSWORD})
    assert done.status_code == 303
    everything = await all_database_text(app)
    for value in ("lina_deleted", "lina.deleted@example.org", "Secret Mixtape", "lina's script"):
        assert value not in everything, value
    async with resources_of(app).sessionmaker() as session:
        assert (await session.scalars(select(Favourite))).all() == []
    assert (await client.get("/settings")).status_code == 303, "the session ended"
    again = await sign_up(fresh_client(app), "lina_deleted")
    assert again.status_code == 409, "a deleted name is not given out again"


async def test_an_artist_account_must_hand_over_its_profiles_first(
    app: Quart, client: Client
) -> None:
    await sign_up(client, "mira")
    async with resources_of(app).sessionmaker() as session:
        mira = await session.scalar(select(User).where(User.username == "mira"))
        assert mira is not None
        await create_artist(session, "aurora", mira)
        await session.commit()
    token = await csrf(client, "/settings")
    refused = await client.post(
        "/settings/delete", form={"csrf_token": token, "password": PASSWORD}
    )
    assert refused.status_code == 409
    assert "hand them over" in await refused.get_data(as_text=True)
    assert (await client.get("/settings")).status_code == 200


async def test_admin_disables_and_deletes_with_an_audit_trail(app: Quart) -> None:
    admin = await make_admin(app)
    lina = fresh_client(app)
    await sign_up(lina, "lina")
    async with resources_of(app).sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == "lina"))
    assert user is not None
    token = await csrf(admin, "/admin/accounts")
    await admin.post(f"/admin/accounts/{user.id}/disable", form={"csrf_token": token})
    assert (await lina.get("/settings")).status_code == 303, "signed out everywhere"
    assert (await log_in(fresh_client(app), "lina")).status_code == 403
    await admin.post(f"/admin/accounts/{user.id}/delete", form={"csrf_token": token})
    bad = await admin.post(f"/admin/accounts/{user.id}/frobnicate", form={"csrf_token": token})
    assert bad.status_code == 404
    page = await (await admin.get("/admin/accounts")).get_data(as_text=True)
    assert "account.disable" in page
    assert "account.delete" in page
    assert "lina" not in await all_database_text(app)
