"""The inbox over HTTP (the app's real routes, both databases): recorded Mastodon and
Funkwhale payloads signed and posted, the handlers run, and every bad input refused
with nothing stored."""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from federation.parse import parse_actor
from federation.signatures import sign_request
from models.base import utcnow
from models.catalogue import Artist, Release, ReleaseKind, Visibility
from models.federation import (
    Delivery,
    DomainPolicyKind,
    Follow,
    FollowState,
    InboxItem,
    InboxState,
    Interaction,
    InteractionKind,
    OutboundActivity,
    RemoteActor,
    RemotePost,
    Report,
)
from models.jobs import ClaimedJob, Job
from models.users import Role, User
from server.runtime.config import FederationMode, Settings
from server.runtime.worker import JobContext
from server.services.activitypub.context import federation_of
from server.services.activitypub.inbox import INBOX_JOB
from server.services.activitypub.moderation import block_actor, set_domain_policy
from server.services.activitypub.policy import refusal
from server.services.activitypub.remote import store_actor
from server.services.catalogue import create_artist, find_or_create_release
from server.services.events import PUBLISHED_JOB
from server.services.inbox_routes import handle_item
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.conftest import make_settings

FIXTURES = Path(__file__).parent / "fixtures" / "fediverse"
BASE = "https://music.example"
ALICE = "https://mastodon.example/users/alice"
ALICE_KEY_ID = f"{ALICE}#main-key"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ACTIVITY_TYPE = "application/activity+json"


def fixture(path: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return document


def pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, instance={"base_url": BASE})


async def cache_actor(app: Quart, document: dict[str, Any], key: rsa.RSAPrivateKey) -> None:
    """What a fetch of the actor would have stored, with a key whose private half we hold."""
    document = copy.deepcopy(document)
    document["publicKey"]["publicKeyPem"] = pem(key)
    async with resources_of(app).sessionmaker() as session:
        await store_actor(session, parse_actor(document))
        await session.commit()


@pytest.fixture
async def scene(app: Quart) -> dict[str, int]:
    return await make_scene(app)


async def make_scene(app: Quart) -> dict[str, int]:
    """The artist the fixtures follow and reply to, with release 1, and alice cached."""
    owner = await make_account(app, "owner", Role.ARTIST)
    async with resources_of(app).sessionmaker() as session:
        user = await session.get_one(User, owner.user_id)
        artist = await create_artist(session, "the_quiet_hours", user)
        release, _ = await find_or_create_release(
            session, artist, "Low Tide", kind=ReleaseKind.ALBUM
        )
        release.visibility = Visibility.PUBLIC
        release.published_at = utcnow()
        await session.commit()
        release_id = release.id
    assert release_id == 1  # the fixtures reply to and like release 1
    await cache_actor(app, fixture("mastodon/actor.json"), KEY)
    return {"release": release_id}


def signed(
    document: Any,
    path: str = "/inbox",
    key: rsa.RSAPrivateKey = KEY,
    key_id: str = ALICE_KEY_ID,
    now: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    headers = sign_request("POST", f"{BASE}{path}", body, key_id, key, now=now)
    headers["Content-Type"] = ACTIVITY_TYPE
    return body, headers


async def post(
    client: Client, document: Any, path: str = "/inbox", **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    body, headers = signed(document, path, **kwargs)
    response = await client.post(path, data=body, headers=headers)
    return response.status_code, await response.get_json()


async def process(app: Quart) -> list[InboxState]:
    """Run the handler of every pending inbox item (the worker's inbox jobs)."""
    fed = federation_of(resources_of(app))
    async with fed.sessionmaker() as session:
        ids = (
            await session.scalars(select(InboxItem.id).where(InboxItem.state == InboxState.PENDING))
        ).all()
    return [await handle_item(fed, item_id) for item_id in ids]


async def count(app: Quart, model: type) -> int:
    async with resources_of(app).sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_follow_is_accepted_and_answered(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    follow = fixture("mastodon/follow.json")
    status, answer = await post(client, follow, "/artists/the_quiet_hours/inbox")
    assert status == 202, answer
    assert await process(app) == [InboxState.DONE]
    async with resources_of(app).sessionmaker() as session:
        row = await session.scalar(select(Follow))
        accept = await session.scalar(
            select(OutboundActivity).where(OutboundActivity.type == "Accept")
        )
        deliveries = (await session.scalars(select(Delivery))).all()
    assert row is not None and row.state is FollowState.ACCEPTED
    assert row.followed_name == "the_quiet_hours"
    assert accept is not None
    assert accept.document["object"]["id"] == follow["id"]
    assert accept.document["actor"] == f"{BASE}/artists/the_quiet_hours"
    # the answer goes to alice's own inbox, not the shared one
    assert [d.inbox for d in deliveries] == ["https://mastodon.example/users/alice/inbox"]

    followers = await client.get(
        "/artists/the_quiet_hours/followers?page=1", headers={"Accept": ACTIVITY_TYPE}
    )
    assert (await followers.get_json())["orderedItems"] == [ALICE]

    # the same activity again: acknowledged, stored once
    status, answer = await post(client, follow, "/inbox")
    assert (status, answer["message"]) == (202, "already received")
    assert await count(app, InboxItem) == 1

    undo = fixture("mastodon/undo_follow.json")
    assert (await post(client, undo))[0] == 202
    assert await process(app) == [InboxState.DONE]
    assert await count(app, Follow) == 0


async def test_artist_who_approves_followers_gets_a_request(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    async with resources_of(app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == "the_quiet_hours"))
        assert artist is not None
        artist.approves_followers = True
        await session.commit()
    assert (await post(client, fixture("mastodon/follow.json")))[0] == 202
    await process(app)
    async with resources_of(app).sessionmaker() as session:
        row = await session.scalar(select(Follow))
        answered = await session.scalar(select(func.count()).select_from(OutboundActivity))
    assert row is not None and row.state is FollowState.PENDING
    assert answered == 0


async def test_reply_like_and_boost_are_shown_and_sanitised(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    reply = fixture("mastodon/create_note_reply.json")
    assert "<script" in json.dumps(reply)
    for name in ("create_note_reply", "like", "announce"):
        assert (await post(client, fixture(f"mastodon/{name}.json")))[0] == 202
    assert await process(app) == [InboxState.DONE] * 3
    async with resources_of(app).sessionmaker() as session:
        rows = (await session.scalars(select(Interaction).order_by(Interaction.id))).all()
    assert [row.kind for row in rows] == [
        InteractionKind.REPLY,
        InteractionKind.LIKE,
        InteractionKind.ANNOUNCE,
    ]
    assert "<script" not in rows[0].content_html
    assert "alert" not in rows[0].content_html
    assert 'rel="nofollow noopener noreferrer"' in rows[0].content_html

    conversation = await (await client.get("/api/v1/releases/1/conversation")).get_json()
    assert (conversation["likes"], conversation["boosts"]) == (1, 1)
    assert len(conversation["replies"]) == 1
    page = await (await client.get("/releases/1", headers={"Accept": "text/html"})).get_data(
        as_text=True
    )
    assert "<script>" not in page and "alert(" not in page  # ours all have src=
    assert "1 like" in page and "1 boost" in page

    # undoing the like removes it; the reply's author deleting the reply removes that
    undo_like = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{ALICE}#likes/904417/undo",
        "type": "Undo",
        "actor": ALICE,
        "object": fixture("mastodon/like.json"),
    }
    undo_like["object"].pop("@context")
    delete_reply = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{reply['object']['id']}#delete",
        "type": "Delete",
        "actor": ALICE,
        "object": {"id": reply["object"]["id"], "type": "Tombstone"},
    }
    for document in (undo_like, delete_reply):
        assert (await post(client, document))[0] == 202
    assert await process(app) == [InboxState.DONE] * 2
    async with resources_of(app).sessionmaker() as session:
        kinds = (await session.scalars(select(Interaction.kind))).all()
    assert kinds == [InteractionKind.ANNOUNCE]


async def test_actor_delete_removes_their_data(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    for name in ("follow", "like"):
        await post(client, fixture(f"mastodon/{name}.json"))
    await process(app)
    assert await count(app, Follow) == 1 and await count(app, Interaction) == 1
    assert (await post(client, fixture("mastodon/delete_actor.json")))[0] == 202
    assert await process(app) == [InboxState.DONE]
    assert await count(app, RemoteActor) == 0
    assert await count(app, Follow) == 0
    assert await count(app, Interaction) == 0


async def test_actor_update_rotates_the_key(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    update = fixture("mastodon/update_actor.json")
    new_pem = update["object"]["publicKey"]["publicKeyPem"]
    assert (await post(client, update))[0] == 202
    assert await process(app) == [InboxState.DONE]
    async with resources_of(app).sessionmaker() as session:
        actor = await session.scalar(select(RemoteActor).where(RemoteActor.uri == ALICE))
    assert actor is not None and actor.public_pem == new_pem


async def test_flag_becomes_a_report(app: Quart, client: Client, scene: dict[str, int]) -> None:
    flag = fixture("mastodon/flag.json")
    await cache_actor(app, _instance_actor_of_mastodon(flag["actor"]), OTHER_KEY)
    status, _ = await post(client, flag, key=OTHER_KEY, key_id=f"{flag['actor']}#main-key")
    assert status == 202
    assert await process(app) == [InboxState.DONE]
    async with resources_of(app).sessionmaker() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.reporter_uri == flag["actor"]
    assert f"{BASE}/releases/77" in report.objects


def _instance_actor_of_mastodon(uri: str) -> dict[str, Any]:
    return {
        "id": uri,
        "type": "Application",
        "preferredUsername": "mastodon.example",
        "inbox": f"{uri}/inbox",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": ""},
    }


async def test_funkwhale_audio_reaches_the_feed_of_a_follower(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    channel = fixture("funkwhale/channel_actor.json")
    await cache_actor(app, channel, OTHER_KEY)
    listener = await make_account(app, "lena", Role.LISTENER, scopes="read write")
    async with resources_of(app).sessionmaker() as session:
        actor = await session.scalar(select(RemoteActor).where(RemoteActor.uri == channel["id"]))
        assert actor is not None
        session.add(
            Follow(
                activity_uri=f"{BASE}/users/lena/follows/1",
                follower_name="lena",
                followed_actor_id=actor.id,
                state=FollowState.ACCEPTED,
            )
        )
        await session.commit()
    create = fixture("funkwhale/create_audio.json")
    key_id = channel["publicKey"]["id"]
    assert (await post(client, create, key=OTHER_KEY, key_id=key_id))[0] == 202
    assert await process(app) == [InboxState.DONE]
    feed = await (await client.get("/api/v1/feed", headers=listener.headers)).get_json()
    assert len(feed["items"]) == 1
    item = feed["items"][0]
    assert item["title"] == create["object"]["name"]
    assert item["previews"] and item["previews"][0]["media_type"].startswith("audio/")
    assert await count(app, RemotePost) == 1


def _mutations() -> dict[str, Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]]:
    def unsigned(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body, {k: v for k, v in headers.items() if k != "Signature"}

    def body_changed(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body.replace(b"Follow", b"Block "), headers

    def digest_missing(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body, {k: v for k, v in headers.items() if k != "Digest"}

    def digest_wrong(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body, {**headers, "Digest": "SHA-256=" + "A" * 43 + "="}

    return {
        "unsigned": unsigned,
        "body changed after signing": body_changed,
        "digest missing": digest_missing,
        "digest wrong": digest_wrong,
    }


@pytest.mark.parametrize("case", sorted(_mutations()))
async def test_tampered_requests_are_refused(
    app: Quart, client: Client, scene: dict[str, int], case: str
) -> None:
    body, headers = signed(fixture("mastodon/follow.json"))
    body, headers = _mutations()[case](body, headers)
    response = await client.post("/inbox", data=body, headers=headers)
    assert response.status_code == 401, case
    assert (await response.get_json())["status"] == "refused"
    assert await count(app, InboxItem) == 0


async def test_signature_rules(app: Quart, client: Client, scene: dict[str, int]) -> None:
    follow = fixture("mastodon/follow.json")
    cases = {
        "wrong key": {"key": OTHER_KEY},
        "date outside the window": {"now": datetime.now(UTC) - timedelta(hours=2)},
        # the key of somebody else: cached below as bob's
        "key owner is not the actor": {
            "key": OTHER_KEY,
            "key_id": "https://mastodon.example/users/bob#main-key",
        },
        # nobody can be asked for this key (loopback is refused by the fetch guard)
        "unknown key": {"key_id": "http://127.0.0.1:9/actor#main-key"},
    }
    bob = fixture("mastodon/actor.json")
    bob = json.loads(json.dumps(bob).replace("/users/alice", "/users/bob"))
    bob["preferredUsername"] = "bob"
    await cache_actor(app, bob, OTHER_KEY)
    for case, kwargs in cases.items():
        status, answer = await post(client, follow, **kwargs)
        assert status == 401, (case, answer)
    assert await count(app, InboxItem) == 0


async def test_policy_and_shape_refusals(
    app: Quart, client: Client, scene: dict[str, int], settings: Settings
) -> None:
    follow = fixture("mastodon/follow.json")
    cross_origin = fixture("mastodon/create_note_reply.json")
    cross_origin["object"]["id"] = "https://elsewhere.example/notes/1"
    cases: list[tuple[str, Any, int]] = [
        ("invalid JSON", b"{not json", 400),
        ("JSON that is not an activity", [1, 2, 3], 422),
        ("an object without type or actor", {"id": f"{ALICE}/x"}, 422),
        ("object id on another host than the actor", cross_origin, 422),
    ]
    for case, document, expected in cases:
        if isinstance(document, bytes):
            headers = sign_request("POST", f"{BASE}/inbox", document, ALICE_KEY_ID, KEY)
            headers["Content-Type"] = ACTIVITY_TYPE
            response = await client.post("/inbox", data=document, headers=headers)
            status = response.status_code
        else:
            status, _ = await post(client, document)
        assert status == expected, case

    big = {**follow, "padding": "x" * settings.federation.max_inbox_bytes}
    status, _ = await post(client, big)
    assert status == 413

    async with resources_of(app).sessionmaker() as session:
        await set_domain_policy(session, "mastodon.example", DomainPolicyKind.BLOCK, "spam")
    status, answer = await post(client, follow)
    assert status == 403 and "blocked" in answer["message"]
    assert await count(app, InboxItem) == 0


async def test_the_same_activity_sent_at_once_is_stored_once(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    """50 deliveries of one activity at the same moment (a sender retrying, or its
    several inboxes here): one row and one job, the rest told "already received"."""
    like = {**fixture("mastodon/like.json"), "id": f"{ALICE}#likes/at-once"}
    answers = await asyncio.gather(*(post(client, like) for _ in range(50)))
    messages = Counter((status, answer["message"]) for status, answer in answers)
    assert messages == Counter({(202, "accepted"): 1, (202, "already received"): 49})
    async with resources_of(app).sessionmaker() as session:
        items = (await session.scalars(select(InboxItem))).all()
        queued = (await session.scalars(select(Job).where(Job.kind == INBOX_JOB))).all()
    assert [item.activity_uri for item in items] == [like["id"]]
    assert [job.payload for job in queued] == [{"item": items[0].id}]


async def test_refusal_rules(app: Quart) -> None:
    """A domain's parents count, a block beats an allow, and an allowed domain's blocked
    actor is still refused (the one statement that decides all three)."""
    actor = "https://social.example.org/users/ana"
    allowlist, open_mode = FederationMode.ALLOWLIST, FederationMode.OPEN
    async with resources_of(app).sessionmaker() as session:
        assert await refusal(session, "social.example.org", actor, open_mode) is None
        assert "allowed" in str(await refusal(session, "social.example.org", actor, allowlist))
        await set_domain_policy(session, "example.org", DomainPolicyKind.ALLOW)
        assert await refusal(session, "social.example.org", actor, allowlist) is None
        assert "allowed" in str(await refusal(session, "example.com", actor, allowlist))
        await set_domain_policy(session, "social.example.org", DomainPolicyKind.BLOCK)
        for mode in (open_mode, allowlist):
            why = await refusal(session, "social.example.org", actor, mode)
            assert why == "the domain social.example.org is blocked here", mode
        assert await refusal(session, "other.example.org", actor, allowlist) is None
        await block_actor(session, actor)
        why = await refusal(session, "other.example.org", actor, allowlist)
        assert why == "the actor is blocked here"
        assert await refusal(session, "other.example.org", f"{actor}2", allowlist) is None


async def test_blocked_actor_is_refused(app: Quart, client: Client, scene: dict[str, int]) -> None:
    async with resources_of(app).sessionmaker() as session:
        await block_actor(session, ALICE)
    status, _ = await post(client, fixture("mastodon/follow.json"))
    assert status == 403
    assert await count(app, InboxItem) == 0


@pytest.fixture
def allowlist_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url, instance={"base_url": BASE}, federation={"mode": "allowlist"}
    )


async def test_allowlist_mode(allowlist_settings: Settings) -> None:
    from server.web.app import create_app

    application = create_app(allowlist_settings)
    async with application.test_app() as test_app:
        app = test_app.app  # type: ignore[attr-defined]
        client = app.test_client()
        await make_scene(app)
        status, answer = await post(client, fixture("mastodon/follow.json"))
        assert status == 403 and "allowed" in answer["message"]
        async with resources_of(app).sessionmaker() as session:
            await set_domain_policy(session, "mastodon.example", DomainPolicyKind.ALLOW)
        status, _ = await post(client, fixture("mastodon/follow.json"))
        assert status == 202


async def test_unknown_types_are_recorded_and_ignored(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    odd = {"id": f"{ALICE}#odd/1", "type": "Arrive", "actor": ALICE, "object": ALICE}
    assert (await post(client, odd))[0] == 202
    assert await process(app) == [InboxState.IGNORED]
    async with resources_of(app).sessionmaker() as session:
        item = await session.scalar(select(InboxItem))
    assert item is not None and "not handled" in (item.result or "")


async def test_actor_documents_and_outbox(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    ap = {"Accept": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'}
    actor = await (await client.get("/artists/the_quiet_hours", headers=ap)).get_json()
    assert actor["id"] == f"{BASE}/artists/the_quiet_hours"
    assert actor["type"] == "Person"
    assert actor["publicKey"]["owner"] == actor["id"]
    assert "BEGIN PUBLIC KEY" in actor["publicKey"]["publicKeyPem"]
    assert actor["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
    again = await (await client.get("/artists/the_quiet_hours", headers=ap)).get_json()
    assert again["publicKey"] == actor["publicKey"]  # made once, then kept

    html = await client.get("/artists/the_quiet_hours", headers={"Accept": "text/html"})
    assert html.headers["Content-Type"].startswith("text/html")
    assert "@the_quiet_hours@music.example" in await html.get_data(as_text=True)

    # a release published before anyone followed is in the outbox as its Create
    outbox = await (await client.get("/artists/the_quiet_hours/outbox", headers=ap)).get_json()
    assert outbox["totalItems"] == 1
    page = await (await client.get("/artists/the_quiet_hours/outbox?page=1", headers=ap)).get_json()
    [create] = page["orderedItems"]
    assert create["type"] == "Create" and create["object"]["release"] == f"{BASE}/releases/1/album"

    # the shared page is the Note; the album object has an id of its own (issue 14)
    note = await (await client.get("/releases/1", headers=ap)).get_json()
    assert note["id"] == f"{BASE}/releases/1/note" and note["type"] == "Note"
    release = await (await client.get("/releases/1/album", headers=ap)).get_json()
    assert release["id"] == f"{BASE}/releases/1/album" and release["type"] == "OrderedCollection"
    missing = await client.get("/artists/nobody", headers=ap)
    assert missing.status_code == 404
    bad_page = await client.get("/artists/the_quiet_hours/outbox?page=x", headers=ap)
    assert bad_page.status_code == 400


async def test_publishing_delivers_once_per_shared_inbox(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    """Two followers on one server and one elsewhere: two deliveries."""
    from server.services.activitypub.publish import run_published

    async with resources_of(app).sessionmaker() as session:
        artist_name = "the_quiet_hours"
        for index, (host, shared) in enumerate(
            [("mastodon.example", True), ("mastodon.example", True), ("other.example", False)]
        ):
            uri = f"https://{host}/users/u{index}"
            actor = RemoteActor(
                uri=uri,
                domain=host,
                type="Person",
                inbox=f"{uri}/inbox",
                shared_inbox=f"https://{host}/inbox" if shared else None,
            )
            session.add(actor)
            await session.flush()
            session.add(
                Follow(
                    activity_uri=f"{uri}#follow",
                    follower_actor_id=actor.id,
                    followed_name=artist_name,
                    state=FollowState.ACCEPTED,
                )
            )
        await session.commit()

    job = ClaimedJob(1, PUBLISHED_JOB, {}, 1, 3, "lease")
    context = JobContext(job, resources_of(app))
    for _ in range(2):  # a job that runs twice sends once
        await run_published(context, {"release": scene["release"]})
    async with resources_of(app).sessionmaker() as session:
        inboxes = sorted((await session.scalars(select(Delivery.inbox))).all())
        creates = await session.scalar(
            select(func.count())
            .select_from(OutboundActivity)
            .where(OutboundActivity.type == "Create")
        )
    assert inboxes == ["https://mastodon.example/inbox", "https://other.example/users/u2/inbox"]
    assert creates == 1


async def test_release_visibility_limits_what_is_served(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    async with resources_of(app).sessionmaker() as session:
        release = await session.get_one(Release, scene["release"])
        release.visibility = Visibility.DRAFT
        await session.commit()
    ap = {"Accept": ACTIVITY_TYPE}
    assert (await client.get("/releases/1", headers=ap)).status_code == 404
    assert (await client.get("/releases/1/note", headers=ap)).status_code == 404
    assert (await client.get("/releases/1/album", headers=ap)).status_code == 404


async def test_reply_edits_are_applied(app: Quart, client: Client, scene: dict[str, int]) -> None:
    reply = fixture("mastodon/create_note_reply.json")
    assert (await post(client, reply))[0] == 202
    edited = copy.deepcopy(reply["object"])
    edited["content"] = "<p>Edited: still <em>lovely</em><script>x()</script></p>"
    update = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{edited['id']}#updates/1",
        "type": "Update",
        "actor": ALICE,
        "object": edited,
    }
    assert (await post(client, update))[0] == 202
    assert await process(app) == [InboxState.DONE, InboxState.DONE]
    async with resources_of(app).sessionmaker() as session:
        stored = await session.scalar(select(Interaction))
    assert stored is not None
    assert "Edited: still <em>lovely</em>" in stored.content_html
    assert "script" not in stored.content_html


async def test_a_label_announces_its_artists_releases(
    app: Quart, client: Client, scene: dict[str, int]
) -> None:
    """The label's followers get an Announce of the release's Note; the label's outbox
    lists it too."""
    from server.services.activitypub.publish import run_published
    from server.services.catalogue import create_label

    async with resources_of(app).sessionmaker() as session:
        owner = await session.scalar(select(User).where(User.username == "owner"))
        assert owner is not None
        label = await create_label(session, "tidal_records", owner)
        release = await session.get_one(Release, scene["release"])
        release.label_id = label.id
        fan = RemoteActor(
            uri="https://other.example/users/fan", domain="other.example", type="Person",
            inbox="https://other.example/users/fan/inbox",
        )  # fmt: skip
        session.add(fan)
        await session.flush()
        session.add(
            Follow(
                activity_uri="https://other.example/follows/1",
                follower_actor_id=fan.id,
                followed_name="tidal_records",
                state=FollowState.ACCEPTED,
            )
        )
        await session.commit()

    context = JobContext(ClaimedJob(1, PUBLISHED_JOB, {}, 1, 3, "lease"), resources_of(app))
    await run_published(context, {"release": scene["release"]})
    async with resources_of(app).sessionmaker() as session:
        announce = await session.scalar(
            select(OutboundActivity).where(OutboundActivity.type == "Announce")
        )
        assert announce is not None
        inboxes = (
            await session.scalars(select(Delivery.inbox).where(Delivery.activity_id == announce.id))
        ).all()
    assert announce.document["actor"] == f"{BASE}/labels/tidal_records"
    assert announce.document["object"] == f"{BASE}/releases/{scene['release']}/note"
    assert list(inboxes) == ["https://other.example/users/fan/inbox"]
    ap = {"Accept": ACTIVITY_TYPE}
    page = await (await client.get("/labels/tidal_records/outbox?page=1", headers=ap)).get_json()
    assert [item["type"] for item in page["orderedItems"]] == ["Announce"]
