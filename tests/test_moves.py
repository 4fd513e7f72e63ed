"""Incoming ``Move`` and ``Block`` (both databases, real HTTP): a move is followed only
when both accounts, fetched from their server, confirm it; a block drops the follows
between the blocker and our actor both ways and stops what was queued for it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from federation.moves import also_known_as, move_refusal, moved_to
from federation.objects import activity
from federation.parse import parse_actor
from federation.signatures import sign_request
from models.catalogue import Artist
from models.federation import (
    Delivery,
    DeliveryState,
    Follow,
    FollowState,
    InboxItem,
    InboxState,
    OutboundActivity,
    RemoteActor,
)
from models.profiles import ActorProfile
from models.users import Role
from server.runtime.config import Settings
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.remote import store_actor
from server.services.inbox_routes import handle_item
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.conftest import make_settings
from tests.test_fetch import Reply, Server
from tests.test_inbox import KEY, fixture, pem

# --- the checks, pure ---------------------------------------------------------------------

OLD = "https://old.example/users/alice"
NEW = "https://new.example/users/alice"


def test_a_move_is_believed_only_when_both_accounts_say_so() -> None:
    origin = {"id": OLD, "movedTo": NEW}
    target = {"id": NEW, "alsoKnownAs": [OLD, "https://elsewhere.example/u/a"]}
    assert also_known_as(target) == (OLD, "https://elsewhere.example/u/a")
    assert also_known_as({"alsoKnownAs": {"id": OLD}}) == (OLD,)
    assert moved_to(origin) == NEW and moved_to({"movedTo": {"id": NEW}}) == NEW
    assert move_refusal(OLD, origin, NEW, target) is None
    assert "alsoKnownAs" in str(move_refusal(OLD, origin, NEW, {"id": NEW}))
    assert "alsoKnownAs" in str(move_refusal(OLD, origin, NEW, {"alsoKnownAs": [NEW]}))
    assert "movedTo" in str(move_refusal(OLD, {"id": OLD}, NEW, target))
    other = {"id": OLD, "movedTo": "https://third.example/users/alice"}
    assert "movedTo" in str(move_refusal(OLD, other, NEW, target))
    assert "its own actor" in str(move_refusal(OLD, origin, OLD, {"alsoKnownAs": [OLD]}))


# --- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, federation={"allow_private_addresses": True})


@pytest.fixture
def remote() -> Iterator[Server]:
    server = Server("127.0.0.1")
    yield server
    server.close()


def actor_document(server: Server, name: str, **extra: Any) -> dict[str, Any]:
    """The recorded Mastodon actor, as ``name`` on the test server, with our key."""
    document = json.loads(
        json.dumps(fixture("mastodon/actor.json"))
        .replace("https://mastodon.example/users/alice", server.url(f"/users/{name}"))
        .replace("https://mastodon.example", server.url(""))
    )
    document["preferredUsername"] = name
    document["publicKey"]["publicKeyPem"] = pem(KEY)
    document.update(extra)
    return document


def serve(server: Server, document: dict[str, Any]) -> None:
    path = document["id"].removeprefix(server.url(""))
    headers = {"Content-Type": "application/activity+json"}
    server.routes[path] = Reply(200, headers, json.dumps(document).encode())


async def cache(app: Quart, document: dict[str, Any]) -> RemoteActor:
    async with resources_of(app).sessionmaker() as session:
        row = await store_actor(session, parse_actor(copy.deepcopy(document)))
        await session.commit()
        return row


async def receive(app: Quart, client: Client, document: dict[str, Any]) -> InboxState:
    """Post the activity signed by its actor's key, then run its handler."""
    base = resources_of(app).settings.instance.base_url
    body = json.dumps(document).encode()
    headers = sign_request("POST", f"{base}/inbox", body, f"{document['actor']}#main-key", KEY)
    headers["Content-Type"] = "application/activity+json"
    response = await client.post("/inbox", data=body, headers=headers)
    assert response.status_code == 202, await response.get_data(as_text=True)
    fed = federation_of(resources_of(app))
    async with fed.sessionmaker() as session:
        item = await session.scalar(
            select(InboxItem).where(InboxItem.activity_uri == document["id"])
        )
    assert item is not None
    return await handle_item(fed, item.id)


async def result_of(app: Quart, uri: str) -> str:
    async with resources_of(app).sessionmaker() as session:
        return str(
            await session.scalar(select(InboxItem.result).where(InboxItem.activity_uri == uri))
        )


async def follows(app: Quart) -> list[tuple[str | None, str | None, str | None, FollowState]]:
    """(follower, followed remote actor, followed local name, state) of every follow."""
    async with resources_of(app).sessionmaker() as session:
        rows = await session.execute(
            select(Follow.follower_name, RemoteActor.uri, Follow.followed_name, Follow.state)
            .outerjoin(RemoteActor, RemoteActor.id == Follow.followed_actor_id)
            .order_by(Follow.id)
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def sent(app: Quart) -> list[tuple[str, str | None, list[str]]]:
    """(type, actor name, inboxes) of what we queued."""
    async with resources_of(app).sessionmaker() as session:
        rows = (await session.scalars(select(OutboundActivity).order_by(OutboundActivity.id))).all()
        result = []
        for row in rows:
            inboxes = await session.scalars(
                select(Delivery.inbox).where(Delivery.activity_id == row.id)
            )
            result.append((row.type, row.actor_name, sorted(inboxes)))
        return result


async def following_old(
    app: Quart, remote: Server, *, new_lists_old: bool = True
) -> tuple[str, str]:
    """lena and otto follow the old account, which moved; the new one is served too."""
    old_uri, new_uri = remote.url("/users/alice"), remote.url("/users/alice2")
    old = actor_document(remote, "alice", movedTo=new_uri)
    new = actor_document(remote, "alice2", alsoKnownAs=[old_uri] if new_lists_old else [])
    serve(remote, old)
    serve(remote, new)
    cached = await cache(app, old)
    for name in ("lena", "otto"):
        await make_account(app, name, Role.LISTENER)
    async with resources_of(app).sessionmaker() as session:
        for name, state in (("lena", FollowState.ACCEPTED), ("otto", FollowState.PENDING)):
            session.add(
                Follow(
                    activity_uri=f"{resources_of(app).settings.instance.base_url}/users/{name}/follows/1",
                    follower_name=name,
                    followed_actor_id=cached.id,
                    state=state,
                )
            )
        await session.commit()
    return old_uri, new_uri


def move(old_uri: str, new_uri: str, **changes: Any) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{old_uri}#moves/1",
        "type": "Move",
        "actor": old_uri,
        "object": old_uri,
        "target": new_uri,
        **changes,
    }


async def test_a_confirmed_move_moves_our_listeners_follows(
    app: Quart, client: Client, remote: Server
) -> None:
    old_uri, new_uri = await following_old(app, remote)
    assert await receive(app, client, move(old_uri, new_uri)) is InboxState.DONE
    assert [(who, actor, state) for who, actor, _, state in await follows(app)] == [
        ("lena", new_uri, FollowState.PENDING),  # until the new account accepts
        ("otto", new_uri, FollowState.PENDING),
    ]
    new_inbox, old_inbox = f"{new_uri}/inbox", f"{old_uri}/inbox"
    assert sorted(await sent(app)) == [
        ("Follow", "lena", [new_inbox]),
        ("Follow", "otto", [new_inbox]),
        ("Undo", "lena", [old_inbox]),
        ("Undo", "otto", [old_inbox]),
    ]
    # both accounts were fetched afresh, not taken from the cache
    fetched = [seen.path for seen in remote.seen]
    assert "/users/alice" in fetched and "/users/alice2" in fetched
    # the same Move again changes nothing
    again = move(old_uri, new_uri, id=f"{old_uri}#moves/2")
    assert await receive(app, client, again) is InboxState.IGNORED
    assert len(await sent(app)) == 4


@pytest.mark.parametrize("broken", ["target-does-not-list-origin", "origin-not-moved"])
async def test_an_unconfirmed_move_is_ignored(
    app: Quart, client: Client, remote: Server, broken: str
) -> None:
    old_uri, new_uri = await following_old(
        app, remote, new_lists_old=broken != "target-does-not-list-origin"
    )
    if broken == "origin-not-moved":
        serve(remote, actor_document(remote, "alice"))  # the account says nothing of a move
    before = await follows(app)
    document = move(old_uri, new_uri)
    assert await receive(app, client, document) is InboxState.IGNORED
    reason = "alsoKnownAs" if broken == "target-does-not-list-origin" else "movedTo"
    assert reason in await result_of(app, document["id"])
    assert await follows(app) == before
    assert await sent(app) == []


async def test_a_move_of_somebody_else_or_without_target_is_ignored(
    app: Quart, client: Client, remote: Server
) -> None:
    old_uri, new_uri = await following_old(app, remote)
    before = await follows(app)
    other = move(old_uri, new_uri, object=remote.url("/users/bob"), id=f"{old_uri}#m/3")
    assert await receive(app, client, other) is InboxState.IGNORED  # bob, same server
    assert "somebody else" in await result_of(app, other["id"])
    no_target = move(old_uri, new_uri, id=f"{old_uri}#m/4")
    no_target.pop("target")
    assert await receive(app, client, no_target) is InboxState.IGNORED
    assert await follows(app) == before
    assert await sent(app) == []


# --- Block ------------------------------------------------------------------------------


async def blocking_scene(app: Quart, remote: Server) -> tuple[str, str]:
    """alice (there) follows the artist aurora and the artist bright; the listener lena
    follows alice; deliveries from aurora and from bright to alice are queued."""
    alice = actor_document(remote, "alice")
    serve(remote, alice)
    cached = await cache(app, alice)
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    await make_account(app, "kai", Role.ARTIST, artist="bright")
    await make_account(app, "lena", Role.LISTENER)
    base = resources_of(app).settings.instance.base_url
    async with resources_of(app).sessionmaker() as session:
        for followed in ("aurora", "bright"):
            session.add(
                Follow(
                    activity_uri=f"{alice['id']}#follows/{followed}",
                    follower_actor_id=cached.id,
                    followed_name=followed,
                    state=FollowState.ACCEPTED,
                )
            )
        session.add(
            Follow(
                activity_uri=f"{base}/users/lena/follows/1",
                follower_name="lena",
                followed_actor_id=cached.id,
                state=FollowState.ACCEPTED,
            )
        )
        for name in ("aurora", "bright"):
            note = activity(
                f"{base}/artists/{name}/notes/1", "Create", f"{base}/artists/{name}", {}
            )
            row, _ = await record_activity(session, note, name)
            await deliver(session, row, [alice["inbox"]])
        await session.commit()
    return alice["id"], base


async def deliveries(app: Quart) -> dict[str | None, DeliveryState]:
    async with resources_of(app).sessionmaker() as session:
        rows = await session.execute(
            select(OutboundActivity.actor_name, Delivery.state).join(
                OutboundActivity, OutboundActivity.id == Delivery.activity_id
            )
        )
        return dict(rows.all())  # type: ignore[arg-type]


async def test_a_block_drops_follows_both_ways_and_stops_deliveries(
    app: Quart, client: Client, remote: Server
) -> None:
    alice, base = await blocking_scene(app, remote)
    block = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{alice}#blocks/1",
        "type": "Block",
        "actor": alice,
        "object": f"{base}/artists/aurora",
    }
    assert await receive(app, client, block) is InboxState.DONE
    remaining = [(who, local) for who, _, local, _ in await follows(app)]
    assert remaining == [(None, "bright"), ("lena", None)]  # aurora's follower is gone
    assert await deliveries(app) == {
        "aurora": DeliveryState.ABANDONED,
        "bright": DeliveryState.PENDING,
    }
    assert await sent(app) == [
        ("Create", "aurora", [f"{alice}/inbox"]),
        ("Create", "bright", [f"{alice}/inbox"]),
    ]  # nothing answers a block

    # alice blocks the listener lena: lena no longer follows her
    of_lena = {**block, "id": f"{alice}#blocks/2", "object": f"{base}/users/lena"}
    assert await receive(app, client, of_lena) is InboxState.DONE
    assert [(who, local) for who, _, local, _ in await follows(app)] == [(None, "bright")]


async def test_a_block_of_nobody_here_changes_nothing(
    app: Quart, client: Client, remote: Server
) -> None:
    alice, base = await blocking_scene(app, remote)
    before = (await follows(app), await deliveries(app))
    for number, target in enumerate(
        (f"{base}/artists/nobody", f"{base}/releases/1", remote.url("/users/bob"))
    ):
        block = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{alice}#blocks/{number}",
            "type": "Block",
            "actor": alice,
            "object": target,
        }
        assert await receive(app, client, block) is InboxState.IGNORED
    assert (await follows(app), await deliveries(app)) == before


@pytest.mark.parametrize("aliased", [True, False])
async def test_a_move_to_an_artist_here_needs_her_alias(
    app: Quart, client: Client, remote: Server, aliased: bool
) -> None:
    """A remote account moving to an artist here is believed only when the artist listed
    it as an alias (her ``alsoKnownAs``) and it names her in ``movedTo``; our listeners
    then follow her here (her own rules apply: she approves followers, so they wait)."""
    base = resources_of(app).settings.instance.base_url
    old_uri, _ = await following_old(app, remote)
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    here = f"{base}/artists/aurora"
    serve(remote, actor_document(remote, "alice", movedTo=here))
    async with resources_of(app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == "aurora"))
        assert artist is not None
        artist.approves_followers = True
        session.add(
            ActorProfile(actor="aurora", links=[], also_known_as=[old_uri] if aliased else [])
        )
        await session.commit()
    before = await follows(app)
    document = move(old_uri, here)
    state = await receive(app, client, document)
    if not aliased:
        assert state is InboxState.IGNORED
        assert "alsoKnownAs" in await result_of(app, document["id"])
        assert await follows(app) == before and await sent(app) == []
        return
    assert state is InboxState.DONE
    assert [(who, local, st) for who, _, local, st in await follows(app)] == [
        ("lena", "aurora", FollowState.PENDING),
        ("otto", "aurora", FollowState.PENDING),
    ]
    assert sorted(await sent(app)) == [
        ("Undo", "lena", [f"{old_uri}/inbox"]),
        ("Undo", "otto", [f"{old_uri}/inbox"]),
    ]


async def test_a_move_here_is_checked_against_its_own_actor(
    app: Quart, client: Client, remote: Server
) -> None:
    """alice's server answers her URL with bob's document (bob named the artist here
    and she lists bob as an alias): the Move from alice is not bob's to make."""
    base = resources_of(app).settings.instance.base_url
    old_uri, _ = await following_old(app, remote)
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    here = f"{base}/artists/aurora"
    bob = actor_document(remote, "bob", movedTo=here)
    headers = {"Content-Type": "application/activity+json"}
    remote.routes["/users/alice"] = Reply(200, headers, json.dumps(bob).encode())
    async with resources_of(app).sessionmaker() as session:
        session.add(ActorProfile(actor="aurora", links=[], also_known_as=[bob["id"]]))
        await session.commit()
    before = await follows(app)
    document = move(old_uri, here)
    assert await receive(app, client, document) is InboxState.IGNORED
    assert await follows(app) == before and await sent(app) == []
