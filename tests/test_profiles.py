"""Actor profiles: avatars and headers uploaded by the API and the dashboard, cut to size
by the worker and then shown in the actor document and served at versioned URLs; bad
pictures and bad links refused with nothing changed; only the owner may change a
profile. The move between two real instances is in the second half."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from quart import Quart
from quart.datastructures import FileStorage
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from models import jobs
from models.federation import OutboundActivity
from models.profiles import ActorImage, ActorProfile, ImageRole, ImageState
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist, create_label
from server.services.media.storage import LocalStorage
from server.services.profiles import PROFILE_IMAGE_JOB
from server.web.current import resources_of
from tests.catalogue_fixtures import Account, artist, make_account, run_worker, stored_files
from tests.conftest import make_settings
from tests.instances import Instance, database_of, make_instance
from tests.processes import run_playfair
from tests.test_account_pages import PASSWORD, csrf, log_in

__all__ = ["artist"]

AS_JSON = {"Accept": "application/activity+json"}
HOSTILE = b"<html><body><script>alert(document.cookie)</script></body></html>"


def picture(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A picture with a left half and a right half of different colours, so that a crop
    can be told from a squeeze."""
    image = Image.new(mode, size, (200, 30, 30, 255)[: len(mode)])
    image.paste((30, 30, 200, 255)[: len(mode)], (size[0] // 2, 0, size[0], size[1]))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def api_upload(
    client: Client, account: Account, name: str, role: str, data: bytes, filename: str = "p.png"
):  # type: ignore[no-untyped-def]
    return await client.post(
        f"/api/v1/profiles/{name}/{role}",
        headers=account.headers,
        files={"file": FileStorage(io.BytesIO(data), filename=filename)},
    )


async def actor_document(client: Client, path: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(path, headers=AS_JSON)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


async def stored_picture(app: Quart, image_id: int) -> Image.Image:
    """The file the worker stored, read back from the media folder."""
    async with resources_of(app).read_sessionmaker() as session:
        row = await session.get(ActorImage, image_id)
        assert row is not None and row.storage_key is not None
        key = row.storage_key
    path = LocalStorage(resources_of(app).settings.media_dir).path(key)
    return decoded(path.read_bytes())


async def test_avatar_and_header_through_the_api(
    app: Quart, client: Client, artist: Account
) -> None:
    sent = await api_upload(client, artist, "aurora", "avatar", picture("PNG", (900, 600)))
    assert sent.status_code == 202, await sent.get_data(as_text=True)
    avatar = await sent.get_json()
    assert avatar["state"] == "pending" and avatar["role"] == "avatar"

    # until the worker has cut it, the actor has no icon (not a broken link)
    document = await actor_document(client, "/artists/aurora")
    assert "icon" not in document and "image" not in document
    profile = await (await client.get("/api/v1/profiles/aurora", headers=artist.headers)).get_json()
    assert profile["avatar"] is None and profile["pending"] == ["avatar"]

    assert await run_worker(app) >= 1
    document = await actor_document(client, "/artists/aurora")
    base = resources_of(app).settings.instance.base_url
    icon_url = f"{base}/artists/aurora/avatar/{avatar['id']}.jpg"
    assert document["icon"] == {"type": "Image", "mediaType": "image/jpeg", "url": icon_url}
    stored = await stored_picture(app, avatar["id"])
    assert stored.size == (400, 400) and stored.format == "JPEG"
    # cropped about the centre: both colours still there, each on its own side
    assert stored.getpixel((10, 200))[0] > 150 and stored.getpixel((390, 200))[2] > 150

    served = await client.get(icon_url.removeprefix(base))
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/jpeg"
    assert "immutable" in served.headers["Cache-Control"]
    body = await served.get_data()
    assert decoded(body).size == (400, 400)
    head = await client.head(icon_url.removeprefix(base))  # its length: over real HTTP below
    assert head.status_code == 200 and await head.get_data() == b""
    again = await client.get(
        icon_url.removeprefix(base), headers={"If-None-Match": served.headers["ETag"]}
    )
    assert again.status_code == 304

    sent = await api_upload(client, artist, "aurora", "header", picture("JPEG", (2400, 1000)))
    assert sent.status_code == 202
    header = await sent.get_json()
    await run_worker(app)
    document = await actor_document(client, "/artists/aurora")
    assert document["image"]["url"] == f"{base}/artists/aurora/header/{header['id']}.jpg"
    assert (await stored_picture(app, header["id"])).size == (1500, 500)
    assert document["icon"]["url"] == icon_url  # the avatar did not change

    # a new avatar: a new URL; the old version and its file are gone
    old_file = set(stored_files(app))
    sent = await api_upload(client, artist, "aurora", "avatar", picture("PNG", (300, 300), "RGBA"))
    newer = await sent.get_json()
    await run_worker(app)
    document = await actor_document(client, "/artists/aurora")
    assert document["icon"]["url"] == f"{base}/artists/aurora/avatar/{newer['id']}.jpg"
    assert (await client.get(icon_url.removeprefix(base))).status_code == 404
    assert (await stored_picture(app, newer["id"])).size == (400, 400)
    async with resources_of(app).read_sessionmaker() as session:
        kept = (await session.scalars(select(ActorImage.id).order_by(ActorImage.id))).all()
    assert kept == [header["id"], newer["id"]]
    assert len(stored_files(app)) == len(old_file)  # one file replaced by one

    # the HTML page shows both
    page = await (await client.get("/artists/aurora")).get_data(as_text=True)
    assert f'src="{document["icon"]["url"]}"' in page
    assert f'src="{document["image"]["url"]}"' in page


async def test_bad_pictures_are_refused_and_nothing_is_kept(
    app: Quart, client: Client, artist: Account
) -> None:
    before = stored_files(app)
    for data in (HOSTILE, b"", picture("PNG", (40, 40))[:60], picture("GIF", (40, 40))):
        sent = await api_upload(client, artist, "aurora", "avatar", data)
        assert sent.status_code == 422, (data[:20], await sent.get_data(as_text=True))
        assert "picture" in (await sent.get_json())["reason"]
    async with resources_of(app).read_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ActorImage)) == 0
        queued = (
            select(func.count()).select_from(jobs.Job).where(jobs.Job.kind == PROFILE_IMAGE_JOB)
        )
        assert await session.scalar(queued) == 0
    assert stored_files(app) == before
    # an unknown role is no upload at all
    sent = await api_upload(client, artist, "aurora", "banner", picture("PNG", (40, 40)))
    assert sent.status_code == 404
    assert "icon" not in await actor_document(client, "/artists/aurora")


async def test_a_picture_over_the_upload_limit_is_413(tmp_path: Path, database_url: str) -> None:
    from server.web.app import create_app

    settings = make_settings(tmp_path, database_url, media={"max_upload_bytes": 1024 * 1024})
    app = create_app(settings)
    async with app.test_app() as test_app:
        account = await make_account(test_app.app, "mira", Role.ARTIST, artist="aurora")
        client = test_app.test_client()
        noise = io.BytesIO()
        Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3)).save(noise, "PNG")
        assert len(noise.getvalue()) > 1024 * 1024
        sent = await api_upload(client, account, "aurora", "avatar", noise.getvalue())
        assert sent.status_code == 413
        assert stored_files(test_app.app) == []
        small = await api_upload(client, account, "aurora", "avatar", picture("PNG", (64, 64)))
        assert small.status_code == 202


async def test_only_the_owner_changes_a_profile(
    app: Quart, client: Client, artist: Account
) -> None:
    other = await make_account(app, "otto", Role.ARTIST, artist="basalt")
    sent = await api_upload(client, other, "aurora", "avatar", picture("PNG", (40, 40)))
    assert sent.status_code == 404
    changed = await client.patch(
        "/api/v1/profiles/aurora", headers=other.headers, json={"discoverable": False}
    )
    assert changed.status_code == 404
    no_upload = await make_account(app, "nina", Role.ARTIST, scopes="read write", artist="coral")
    sent = await api_upload(client, no_upload, "coral", "avatar", picture("PNG", (40, 40)))
    assert sent.status_code == 403
    nobody = await client.post(
        "/api/v1/profiles/aurora/avatar",
        files={"file": FileStorage(io.BytesIO(picture("PNG", (40, 40))), filename="p.png")},
    )
    assert nobody.status_code == 401
    async with resources_of(app).read_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ActorImage)) == 0
        assert await session.get(ActorProfile, "aurora") is None
    assert (await actor_document(client, "/artists/aurora"))["discoverable"] is True


async def test_links_are_checked(app: Quart, client: Client, artist: Account) -> None:
    good = [
        {"name": "Bandcamp", "url": "https://aurora.bandcamp.com/"},
        {"name": "Site", "url": "http://aurora.example/<b>"},
    ]
    changed = await client.patch(
        "/api/v1/profiles/aurora",
        headers=artist.headers,
        json={"links": good, "indexable": False},
    )
    assert changed.status_code == 200, await changed.get_data(as_text=True)
    document = await actor_document(client, "/artists/aurora")
    assert document["attachment"] == [
        {
            "type": "PropertyValue",
            "name": "Bandcamp",
            "value": '<a href="https://aurora.bandcamp.com/" rel="me nofollow noopener" '
            'target="_blank">aurora.bandcamp.com</a>',
        },
        {
            "type": "PropertyValue",
            "name": "Site",
            "value": '<a href="http://aurora.example/&lt;b&gt;" rel="me nofollow noopener" '
            'target="_blank">aurora.example/&lt;b&gt;</a>',
        },
    ]
    assert document["discoverable"] is True and document["indexable"] is False
    # followers' servers are told: an Update of the actor, recorded as public
    await run_worker(app)
    async with resources_of(app).read_sessionmaker() as session:
        [update] = (
            await session.scalars(select(OutboundActivity).where(OutboundActivity.type == "Update"))
        ).all()
    assert update.public and update.actor_name == "aurora"
    assert update.document["object"]["attachment"] == document["attachment"]
    assert update.document["object"]["id"] == document["id"]

    bad = [
        ([{"name": "x", "url": "javascript:alert(1)"}], "only https and http"),
        ([{"name": "x", "url": "ftp://files.example/"}], "only https and http"),
        ([{"name": "x", "url": "https://user:pw@host.example/"}], "user name"),
        ([{"name": "x", "url": "https:///nohost"}], "no host"),
        ([{"name": "", "url": "https://a.example/"}], "both a name and a URL"),
        ([{"name": "x", "url": ""}], "both a name and a URL"),
        ([{"name": "x\n", "url": "https://a.example/ b"}], "spaces or control"),
        ([{"name": f"n{i}", "url": f"https://a.example/{i}"} for i in range(5)], "at most 4"),
    ]
    for links, reason in bad:
        refused = await client.patch(
            "/api/v1/profiles/aurora", headers=artist.headers, json={"links": links}
        )
        assert refused.status_code == 422, links
        assert reason in (await refused.get_json())["reason"], links
    assert (await actor_document(client, "/artists/aurora"))["attachment"] == document["attachment"]


async def test_aliases_and_moves_refuse_what_cannot_be(
    app: Quart, client: Client, artist: Account
) -> None:
    base = resources_of(app).settings.instance.base_url
    for path, account, reason in (
        ("aliases", f"{base}/artists/aurora", "another server"),
        ("aliases", "not a handle", "cannot be found"),
        ("move", "@nobody@", "cannot be found"),
    ):
        refused = await client.post(
            f"/api/v1/profiles/aurora/{path}", headers=artist.headers, json={"account": account}
        )
        assert refused.status_code == 422, (path, account)
        assert reason in (await refused.get_json())["reason"], (path, account)
    document = await actor_document(client, "/artists/aurora")
    assert "alsoKnownAs" not in document and "movedTo" not in document


async def test_the_dashboard_profile_forms(app: Quart) -> None:
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "mira", PASSWORD, Role.ARTIST)
        await create_artist(session, "aurora", owner, display_name="Aurora")
        await create_label(session, "tidewater", owner, display_name="Tidewater Records")
        await session.commit()
    client = app.test_client()
    assert (await log_in(client, "mira")).status_code == 303
    token = await csrf(client, "/dashboard")
    page = await (await client.get("/dashboard")).get_data(as_text=True)
    assert 'action="/dashboard/profiles/aurora"' in page
    assert 'action="/dashboard/profiles/tidewater/avatar"' in page  # the label's too

    saved = await client.post(
        "/dashboard/profiles/aurora",
        form={
            "csrf_token": token,
            "indexable": "1",  # discoverable left unticked
            "link_name_0": "Bandcamp",
            "link_url_0": "https://aurora.bandcamp.com",
            "link_name_1": "",
            "link_url_1": "",
        },
    )
    assert saved.status_code == 303 and "message=" in saved.headers["Location"]
    document = await actor_document(client, "/artists/aurora")
    assert document["discoverable"] is False and document["indexable"] is True
    assert [field["name"] for field in document["attachment"]] == ["Bandcamp"]

    refused = await client.post(
        "/dashboard/profiles/aurora",
        form={"csrf_token": token, "link_name_0": "Evil", "link_url_0": "javascript:alert(1)"},
    )
    assert refused.status_code == 303 and "error=" in refused.headers["Location"]
    assert (await actor_document(client, "/artists/aurora"))["attachment"] == document["attachment"]
    forged = await client.post("/dashboard/profiles/aurora", form={"discoverable": "1"})
    assert forged.status_code == 403
    assert (await actor_document(client, "/artists/aurora"))["discoverable"] is False

    async def form_upload(name: str, role: str, data: bytes, with_token: bool = True):  # type: ignore[no-untyped-def]
        return await client.post(
            f"/dashboard/profiles/{name}/{role}",
            form={"csrf_token": token} if with_token else {},
            files={"file": FileStorage(io.BytesIO(data), filename="p.jpg")},
        )

    before = stored_files(app)
    bad = await form_upload("tidewater", "avatar", HOSTILE)
    assert bad.status_code == 303 and "error=" in bad.headers["Location"]
    assert (
        await form_upload("tidewater", "avatar", picture("PNG", (50, 50)), False)
    ).status_code == 403
    assert stored_files(app) == before
    sent = await form_upload("tidewater", "header", picture("JPEG", (1000, 1000)))
    assert sent.status_code == 303 and "message=" in sent.headers["Location"]
    assert "image" not in await actor_document(client, "/labels/tidewater")
    await run_worker(app)
    document = await actor_document(client, "/labels/tidewater")
    [version] = re.findall(r"/labels/tidewater/header/(\d+)\.jpg$", document["image"]["url"])
    assert (await stored_picture(app, int(version))).size == (1500, 500)
    assert document["type"] == "Organization" and document["discoverable"] is True
    dashboard = await (await client.get("/dashboard")).get_data(as_text=True)
    assert document["image"]["url"] in dashboard
    async with resources_of(app).read_sessionmaker() as session:
        states = (await session.scalars(select(ActorImage.state))).all()
    assert states == [ImageState.READY]


async def test_listeners_are_neither_discoverable_nor_indexable(app: Quart, client: Client) -> None:
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "lena", PASSWORD, Role.LISTENER)
        await session.commit()
    document = await actor_document(client, "/users/lena")
    assert document["discoverable"] is False and document["indexable"] is False
    assert document["attachment"] == [] and "icon" not in document
    # a listener has no profile forms to change that
    other = await make_account(app, "lina", Role.LISTENER)
    changed = await client.patch(
        "/api/v1/profiles/lena", headers=other.headers, json={"discoverable": True}
    )
    assert changed.status_code in (403, 404)


# --- two real instances: pictures over real HTTP, the instance actor's, and a move ----------


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[tuple[Instance, Instance]]:
    a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")
    b = make_instance(tmp_path / "b", "127.0.0.3", database_url)
    yield a, b
    for instance in (a, b):
        if instance.process is not None:
            output = instance.stop()
            assert "Traceback" not in output, output


def picture_file(path: Path, fmt: str, size: tuple[int, int]) -> Path:
    path.write_bytes(picture(fmt, size))
    return path


@pytest.mark.mixed_databases
def test_pictures_and_a_move_between_instances(
    pair: tuple[Instance, Instance], tmp_path: Path
) -> None:
    """A's artist uploads an avatar over HTTP and the running worker cuts it; A's admin
    sets the instance actor's header with the command line. A listener on B follows A's
    artist; the artist's move to B's artist is refused until B's artist lists it as an
    alias, then the Move reaches B, whose listener then follows B's artist, and A's actor
    names its new account. A changed profile reaches B as an Update."""
    a, b = pair
    a.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    a.cli("artist", "add", "aurora", "--owner", "mira")
    mira_token = a.cli("token", "issue", "mira", "--scopes", "read write upload")
    mira = {"Authorization": f"Bearer {mira_token}"}
    b.cli("user", "add", "nora", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "nova", "--owner", "nora")
    nora = {"Authorization": f"Bearer {b.cli('token', 'issue', 'nora', '--scopes', 'read write')}"}
    b.cli("user", "add", "lena", stdin="a long password\n")
    lena = {"Authorization": f"Bearer {b.cli('token', 'issue', 'lena', '--scopes', 'read write')}"}
    header = picture_file(tmp_path / "header.png", "PNG", (3000, 1200))
    assert "queued for resizing" in a.cli("instance", "picture", "header", str(header))
    a.start()
    b.start()
    aurora, nova = f"{a.base}/artists/aurora", f"{b.base}/artists/nova"

    with httpx.Client(timeout=30) as http:
        a.wait_for(r"header of actor is ready")
        instance = http.get(f"{a.base}/actor", headers=AS_JSON).json()
        assert "icon" not in instance
        served = http.get(instance["image"]["url"])
        assert served.status_code == 200 and decoded(served.content).size == (1500, 500)

        with (tmp_path / "avatar.jpg").open("wb") as handle:
            handle.write(picture("JPEG", (640, 480)))
        with (tmp_path / "avatar.jpg").open("rb") as handle:
            sent = http.post(
                f"{a.base}/api/v1/profiles/aurora/avatar",
                headers=mira,
                files={"file": ("avatar.jpg", handle, "image/jpeg")},
            )
        assert sent.status_code == 202, sent.text
        a.wait_for(r"avatar of aurora is ready")
        document = http.get(aurora, headers=AS_JSON).json()
        assert document["icon"]["url"] == f"{aurora}/avatar/{sent.json()['id']}.jpg"
        served = http.get(document["icon"]["url"])
        assert served.status_code == 200 and decoded(served.content).size == (400, 400)
        head = http.head(document["icon"]["url"])
        assert head.headers["content-length"] == str(len(served.content))
        assert "immutable" in served.headers["cache-control"]

        # a follower on B
        host_a = a.base.split("://", 1)[1]
        made = http.post(
            f"{b.base}/api/v1/follows", json={"account": f"@aurora@{host_a}"}, headers=lena
        )
        assert made.status_code == 201, made.text
        b.wait_for(r"inbox item \d+ \(Accept from .*/artists/aurora\): done")

        # a changed profile reaches the follower's server as an Update of the actor
        changed = http.patch(
            f"{a.base}/api/v1/profiles/aurora",
            json={"links": [{"name": "Site", "url": "https://aurora.example/"}]},
            headers=mira,
        )
        assert changed.status_code == 200, changed.text
        a.wait_for(r"delivery \d+ of Update to .*: delivered")
        b.wait_for(r"inbox item \d+ \(Update from .*/artists/aurora\): done")

        # nova does not list aurora: no move, nothing sent
        refused = http.post(
            f"{a.base}/api/v1/profiles/aurora/move", json={"account": nova}, headers=mira
        )
        assert refused.status_code == 422, refused.text
        assert "alsoKnownAs" in refused.json()["reason"]
        assert "movedTo" not in http.get(aurora, headers=AS_JSON).json()

        # nova lets aurora move there (resolved by handle), then the move goes through
        aliased = http.post(
            f"{b.base}/api/v1/profiles/nova/aliases",
            json={"account": f"@aurora@{host_a}"},
            headers=nora,
        )
        assert aliased.status_code == 200, aliased.text
        assert aliased.json()["also_known_as"] == [aurora]
        assert http.get(nova, headers=AS_JSON).json()["alsoKnownAs"] == [aurora]
        moved = http.post(
            f"{a.base}/api/v1/profiles/aurora/move",
            json={"account": f"@nova@{b.base.split('://', 1)[1]}"},
            headers=mira,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["moved_to"] == nova
        a.wait_for(r"delivery \d+ of Move to .*: delivered")
        b.wait_for(r"inbox item \d+ \(Move from .*/artists/aurora\): done: 1 follow\(s\) moved")
        document = http.get(aurora, headers=AS_JSON).json()
        assert document["movedTo"] == nova
        # B's listener now follows nova, and A was told she left aurora
        a.wait_for(r"inbox item \d+ \(Undo from .*/users/lena\): done")
        follows = http.get(f"{b.base}/api/v1/follows", headers=lena).json()["items"]
        assert [item["actor"] for item in follows] == [nova]


async def test_the_instance_picture_command_refuses_a_bad_file(
    tmp_path: Path, database_url: str
) -> None:
    instance = make_instance(tmp_path / "data", "127.0.0.4", database_url)
    bad = tmp_path / "not-a-picture.png"
    bad.write_bytes(HOSTILE)
    result = run_playfair(["instance", "picture", "avatar", str(bad)], instance.env)
    assert result.returncode != 0
    assert "not a JPEG, PNG or WebP picture" in result.stderr
    assert "Traceback" not in result.stderr
    good = picture_file(tmp_path / "good.png", "PNG", (500, 500))
    assert "queued for resizing" in instance.cli("instance", "picture", "avatar", str(good))
    async with database_of(instance) as session:
        rows = (await session.scalars(select(ActorImage))).all()
    assert [(row.actor, row.role, row.state) for row in rows] == [
        ("actor", ImageRole.AVATAR, ImageState.PENDING)
    ]
