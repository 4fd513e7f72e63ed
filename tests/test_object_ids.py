"""Every activity we send can be fetched by its id (server/services/activitypub/sent.py):
public ones by anyone, the others only by a GET signed on an addressee's server (404 for
everybody else, as for an id that never existed); a reply sent inside a Create by its own
id; what was sent about a withdrawn release is withdrawn with it, its Delete is not.

The walk over real HTTP, of every id in every document two instances send each other,
is ``test_every_id_we_send_resolves`` at the end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from federation.objects import PUBLIC, activity
from federation.signatures import sign_request
from models.base import utcnow
from models.catalogue import Release, ReleaseKind, Visibility
from models.federation import OutboundActivity
from models.users import Role
from server.services.account_rules import create_user
from server.services.activitypub.sent import may_fetch
from server.services.catalogue import create_artist
from server.web.current import resources_of
from tests.audio import make_audio
from tests.instances import Instance, database_of, instance_keys, make_instance

AP = {"Accept": "application/activity+json"}
REMOTE = "https://social.example/users/ada"


async def _record(app: Quart, document: dict[str, Any], *, public: bool = False) -> None:
    async with resources_of(app).sessionmaker() as session:
        session.add(
            OutboundActivity(
                uri=document["id"], actor_name=None, type=document["type"], public=public,
                document=document,
            )
        )  # fmt: skip
        await session.commit()


def _path(app: Quart, uri: str) -> str:
    return uri.removeprefix(resources_of(app).settings.instance.base_url)


async def test_public_activities_are_served_by_id(app: Quart, client: Client) -> None:
    base = resources_of(app).settings.instance.base_url
    me = f"{base}/users/lena"
    note: dict[str, Any] = {
        "id": f"{me}/notes/1",
        "type": "Note",
        "attributedTo": me,
        "content": "<p>hi</p>",
        "to": [PUBLIC, REMOTE],
        "inReplyTo": f"{REMOTE}/statuses/9",
    }
    create = activity(f"{me}/notes/1/create", "Create", me, note, to=note["to"])
    await _record(app, create, public=True)
    answer = await client.get(_path(app, create["id"]), headers=AP)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/activity+json"
    assert await answer.get_json() == create
    # the reply itself, by its own id, with a context of its own
    reply = await (await client.get(_path(app, note["id"]), headers=AP)).get_json()
    assert reply["id"] == note["id"] and reply["type"] == "Note"
    assert reply["@context"] == create["@context"]
    # addressed to as:Public is public, whatever the flag said
    announce = activity(f"{base}/labels/tide/announces/77", "Announce", f"{base}/labels/tide",
                        f"{REMOTE}/statuses/3", to=[PUBLIC])  # fmt: skip
    await _record(app, announce)
    assert (await client.get(_path(app, announce["id"]))).status_code == 200


async def test_private_activities_and_unknown_ids_are_404(app: Quart, client: Client) -> None:
    base = resources_of(app).settings.instance.base_url
    me = f"{base}/users/lena"
    like = activity(f"{me}/likes/abc", "Like", me, f"{REMOTE}/statuses/9", to=[REMOTE])
    follow = activity(f"{base}/actor/follows/def", "Follow", f"{base}/actor", REMOTE, to=[REMOTE])
    for document in (like, follow):
        await _record(app, document)
        unsigned = await client.get(_path(app, document["id"]), headers=AP)
        assert unsigned.status_code == 404, document["type"]
        assert document["id"] not in await unsigned.get_data(as_text=True)
    for missing in (
        f"{me}/likes/nope",
        f"{me}/notes/none",
        f"{base}/actor/follows/x/undo",
        f"{base}/releases/5/note/update/1",
        f"{base}/artists/x/answers/1/accept/2",
    ):
        assert (await client.get(_path(app, missing), headers=AP)).status_code == 404, missing
    # the fixed routes under the same prefixes still win
    assert (await client.get("/actor/outbox", headers=AP)).status_code == 200


def test_only_an_addressees_server_may_read_a_private_one() -> None:
    like = {"type": "Like", "to": [REMOTE], "cc": []}
    assert not may_fetch(like, False, None)
    assert may_fetch(like, False, REMOTE)
    assert may_fetch(like, False, "https://social.example/actor")  # its instance actor
    assert not may_fetch(like, False, "https://other.example/users/ada")
    assert not may_fetch(like, False, "http://social.example/users/ada")  # not the origin
    assert not may_fetch(like, False, "https://social.example:8443/actor")
    assert may_fetch(like, True, None)  # recorded as public
    assert may_fetch({"to": ["as:Public"]}, False, None)


async def test_activities_of_a_withdrawn_release_are_withdrawn(app: Quart, client: Client) -> None:
    base = resources_of(app).settings.instance.base_url
    async with resources_of(app).sessionmaker() as session:
        user = await create_user(session, "mira", "a long password", Role.ARTIST)
        artist = await create_artist(session, "aurora", user)
        release = Release(artist_id=artist.id, title="R", slug="r", kind=ReleaseKind.ALBUM,
                          visibility=Visibility.PUBLIC, published_at=utcnow())  # fmt: skip
        session.add(release)
        await session.commit()
        release_id = release.id
    artist_uri, note = f"{base}/artists/aurora", f"{base}/releases/{release_id}/note"
    update = activity(f"{note}/update/1", "Update", artist_uri, {"id": note, "type": "Note"},
                      to=[PUBLIC])  # fmt: skip
    delete = activity(f"{note}/delete/2", "Delete", artist_uri,
                      {"id": note, "type": "Tombstone"}, to=[PUBLIC])  # fmt: skip
    await _record(app, update, public=True)
    await _record(app, delete, public=True)
    assert (await client.get(_path(app, update["id"]), headers=AP)).status_code == 200
    async with resources_of(app).sessionmaker() as session:
        row = await session.get(Release, release_id)
        assert row is not None
        row.visibility = Visibility.DRAFT
        await session.commit()
    assert (await client.get(_path(app, update["id"]), headers=AP)).status_code == 404
    assert (await client.get(_path(app, delete["id"]), headers=AP)).status_code == 200


# --- over real HTTP: every id in every document two instances send each other -----------


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[tuple[Instance, Instance]]:
    a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")
    b = make_instance(tmp_path / "b", "127.0.0.3", database_url)
    yield a, b
    for instance in (a, b):
        if instance.process is not None:
            output = instance.stop()
            assert "Traceback" not in output, output


ID_KEYS = ("id", "actor", "object", "attributedTo", "inReplyTo", "partOf", "release", "track")


def ids_in(document: Any) -> set[str]:
    """Every id a document names (its own and its embedded objects', and what they point
    at), without the collections' query strings."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ID_KEYS and isinstance(value, str):
                found.add(value)
            found |= ids_in(value)
    elif isinstance(document, list):
        for item in document:
            found |= ids_in(item)
    return found


async def _sent(instance: Instance) -> list[dict[str, Any]]:
    async with database_of(instance) as session:
        return list(await session.scalars(select(OutboundActivity.document)))


@pytest.mark.mixed_databases
async def test_every_id_we_send_resolves(pair: tuple[Instance, Instance], tmp_path: Path) -> None:
    a, b = pair
    b.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "aurora", "--owner", "mira")
    a.cli("user", "add", "lena", stdin="a long password\n")
    lena = {"Authorization": f"Bearer {a.cli('token', 'issue', 'lena', '--scopes', 'read write')}"}
    a.start()
    b.start()
    host_b = b.base.split("://", 1)[1]
    async with httpx.AsyncClient(timeout=30) as http:
        made = await http.post(
            f"{a.base}/api/v1/follows", json={"account": f"@aurora@{host_b}"}, headers=lena
        )
        assert made.status_code == 201, made.text
        a.wait_for(r"inbox item \d+ \(Accept from .*/artists/aurora\): done")
        folder = tmp_path / "Night Ferry"
        folder.mkdir()
        make_audio(folder / "01 - Harbour Lights.mp3", "mp3", seconds=2, tags={"genre": "Drone"})
        b.cli("import", str(folder), "--artist", "aurora")
        a.wait_for(r"inbox item \d+ \(Create from .*/artists/aurora\): done")
        [item] = (await http.get(f"{a.base}/api/v1/feed", headers=lena)).json()["items"]
        for path, body in (("like", {}), ("reply", {"content": "Lovely"})):
            answer = await http.post(
                f"{a.base}/api/v1/feed/{path}", json={"uri": item["uri"], **body}, headers=lena
            )
            assert answer.status_code == 201, answer.text
        b.wait_for(r"inbox item \d+ \(Like from .*/users/lena\): done")
        b.wait_for(r"inbox item \d+ \(Create from .*/users/lena\): done: reply")
        follow_id = (await http.get(f"{a.base}/api/v1/follows", headers=lena)).json()["items"]
        assert (
            await http.delete(f"{a.base}/api/v1/follows/{follow_id[0]['id']}", headers=lena)
        ).status_code == 204
        b.wait_for(r"inbox item \d+ \(Undo from .*/users/lena\): done")

        signers = {}
        for instance in (a, b):
            keys = await instance_keys(instance)
            signers[instance.base] = (f"{instance.base}/actor#{keys.rsa_name}", keys.rsa)
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        async def get(url: str, signer: Instance | None, forged: bool = False) -> httpx.Response:
            headers = dict(AP)
            if signer is not None:
                key_id, key = signers[signer.base]
                headers |= sign_request("GET", url, None, key_id, stranger if forged else key)
            return await http.get(url, headers=headers)

        documents = {inst.base: await _sent(inst) for inst in (a, b)}
        kinds = {d["type"] for docs in documents.values() for d in docs}
        assert {"Follow", "Accept", "Create", "Like", "Undo"} <= kinds, kinds
        walked = 0
        for sender in (a, b):
            for document in documents[sender.base]:
                for uri in sorted(ids_in(document)):
                    owner = a if uri.startswith(a.base) else b if uri.startswith(b.base) else None
                    if owner is None or uri == PUBLIC:
                        continue
                    reader = b if owner is a else a
                    plain = await get(uri, None)
                    if plain.status_code == 404:  # not public: for the other server only
                        signed = await get(uri, reader)
                        assert signed.status_code == 200, (uri, signed.text, document)
                        assert signed.headers["cache-control"] == "private, no-store", uri
                        assert (await get(uri, reader, forged=True)).status_code == 404, uri
                        answered = signed
                    else:
                        answered = plain
                    assert answered.status_code == 200, (uri, answered.text)
                    body = answered.json()
                    assert re.sub(r"#.*", "", uri) in (body["id"], body.get("url")), uri
                    walked += 1
        assert walked >= 20, walked


async def test_post_only_paths_under_an_actor_stay_405(app: Quart, client: Client) -> None:
    async with resources_of(app).sessionmaker() as session:
        user = await create_user(session, "mira", "a long password", Role.ARTIST)
        await create_artist(session, "aurora", user)
        await session.commit()
    for path in ("/artists/aurora/inbox", "/actor/inbox", "/artists/aurora/remote-follow"):
        answer = await client.get(path, headers=AP)
        assert answer.status_code == 405, path
        assert "POST" in answer.headers["Allow"]
