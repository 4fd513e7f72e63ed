"""Deliveries against a real HTTP server on loopback: signed as the artist, retried as
the answers say (Retry-After, back-off, give-up, one retry on 401), gone on 410, and
replayable by an admin. Also: resolving an actor whose fetch redirects to a loopback
address is refused."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from bench.statements import counting
from federation.fetch import FetchPolicy, GuardedClient
from federation.signatures import IncomingRequest, PublicKey, verify_request
from models.base import utcnow
from models.federation import (
    Delivery,
    DeliveryState,
    DomainPolicyKind,
    Follow,
    FollowState,
    OutboundActivity,
    RemoteActor,
)
from models.jobs import Job
from models.users import Role, User
from server.runtime.config import Settings
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import attempt_delivery, deliver, record_activity, replay
from server.services.activitypub.moderation import set_domain_policy
from server.services.activitypub.remote import ResolveError, resolve
from server.services.catalogue import create_artist
from server.services.jobs import build_worker
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.conftest import make_settings

BASE = "https://music.example"


@dataclass
class Receiver:
    """A scripted inbox: answers from ``script`` in turn (the last one repeats)."""

    script: list[tuple[int, dict[str, str]]]
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    by_path: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver([(202, {})])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append((self.command, self.path, dict(self.headers), body))
            status, headers = (
                state.by_path.get(self.path)
                or state.script[min(len(state.requests), len(state.script)) - 1]
            )
            if status in (301, 302):
                headers = {"Location": headers["Location"]}
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _answer

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # a fan-out's wave connects all at once

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        federation={
            "allow_private_addresses": True,
            "delivery_retry_base": "10s",
            "delivery_give_up_after": "1d",
        },
    )


async def queue_delivery(app: Quart, inbox: str, *more: str) -> int:
    """The artist 'aurora' sends a Create to one inbox (or more); returns the (first)
    delivery id."""
    owner = await make_account(app, "mira", Role.ARTIST)
    async with resources_of(app).sessionmaker() as session:
        user = await session.get_one(User, owner.user_id)
        await create_artist(session, "aurora", user)
        document = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{BASE}/releases/1/note/create",
            "type": "Create",
            "actor": f"{BASE}/artists/aurora",
            "object": {"id": f"{BASE}/releases/1/note", "type": "Note", "content": "hi"},
        }
        row, _ = await record_activity(session, document, "aurora")
        await deliver(session, row, [inbox, *more])
        await session.commit()
        return await session.scalar(select(Delivery.id).order_by(Delivery.id)) or 0


async def delivery(app: Quart, delivery_id: int) -> Delivery:
    async with resources_of(app).sessionmaker() as session:
        return await session.get_one(Delivery, delivery_id)


async def test_signed_delivery_waits_as_retry_after_says(
    app: Quart, receiver: Receiver, client: Any
) -> None:
    receiver.script = [(503, {"Retry-After": "120"}), (202, {})]
    delivery_id = await queue_delivery(app, f"{receiver.url}/inbox")
    fed = federation_of(resources_of(app))

    before = utcnow()
    assert (await attempt_delivery(fed, delivery_id)).value == "retry"  # type: ignore[union-attr]
    row = await delivery(app, delivery_id)
    assert row.state is DeliveryState.PENDING and row.last_status == 503
    waited = row.next_attempt_at - before
    assert timedelta(seconds=119) <= waited <= timedelta(seconds=125)
    async with resources_of(app).sessionmaker() as session:
        timers = (
            await session.scalars(select(Job).where(Job.unique_key == f"deliver:{delivery_id}:1"))
        ).all()
    assert [job.run_after for job in timers] == [row.next_attempt_at]

    assert (await attempt_delivery(fed, delivery_id)).value == "delivered"  # type: ignore[union-attr]
    row = await delivery(app, delivery_id)
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.DELIVERED, 2, 202)
    # a finished delivery is not sent again when its job runs twice
    assert await attempt_delivery(fed, delivery_id) is None
    assert len(receiver.requests) == 2

    # what arrived verifies against the artist's published key
    actor = await (
        await client.get("/artists/aurora", headers={"Accept": "application/activity+json"})
    ).get_json()
    method, path, headers, body = receiver.requests[-1]
    assert json.loads(body)["type"] == "Create"

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        key = actor["publicKey"]
        return (
            PublicKey(key["id"], key["owner"], key["publicKeyPem"]) if key_id == key["id"] else None
        )

    verified = await verify_request(
        IncomingRequest(method, path, headers, body), lookup, actor=actor["id"]
    )
    assert verified.owner == f"{BASE}/artists/aurora"


async def test_gone_inbox_marks_its_actors_gone(app: Quart, receiver: Receiver) -> None:
    receiver.script = [(410, {})]
    inbox = f"{receiver.url}/users/x/inbox"
    delivery_id = await queue_delivery(app, inbox)
    async with resources_of(app).sessionmaker() as session:
        session.add(
            RemoteActor(
                uri=f"{receiver.url}/users/x", domain="127.0.0.1", type="Person", inbox=inbox
            )
        )
        await session.commit()
    await attempt_delivery(federation_of(resources_of(app)), delivery_id)
    assert (await delivery(app, delivery_id)).state is DeliveryState.ABANDONED
    async with resources_of(app).sessionmaker() as session:
        actor = await session.scalar(select(RemoteActor))
    assert actor is not None and actor.gone_at is not None


async def test_unauthorised_is_retried_once(app: Quart, receiver: Receiver) -> None:
    receiver.script = [(401, {})]
    delivery_id = await queue_delivery(app, f"{receiver.url}/inbox")
    fed = federation_of(resources_of(app))
    await attempt_delivery(fed, delivery_id)
    row = await delivery(app, delivery_id)
    assert row.state is DeliveryState.PENDING and row.keys_refreshed
    await attempt_delivery(fed, delivery_id)
    row = await delivery(app, delivery_id)
    assert row.state is DeliveryState.ABANDONED and row.attempts == 2


@pytest.fixture
def impatient_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        federation={
            "allow_private_addresses": True,
            "delivery_retry_base": "1h",
            "delivery_give_up_after": "1m",
        },
    )


async def test_a_fan_out_is_claimed_and_recorded_by_the_wave(
    app: Quart, receiver: Receiver
) -> None:
    """A hundred inboxes cost the database a few statements per wave of concurrent POSTs,
    not several per delivery; in a wave with mixed answers each row is recorded as its
    own answer says."""
    inboxes = [f"{receiver.url}/inbox/{number}" for number in range(100)]
    receiver.by_path = {"/inbox/7": (503, {}), "/inbox/42": (503, {}), "/inbox/99": (410, {})}
    await queue_delivery(app, *inboxes)
    resources = resources_of(app)
    with counting(resources.engine, resources.read_engine) as counts:
        assert await build_worker(resources).run_until_idle() == 2  # 64 inboxes per job
    assert sorted(path for _method, path, _headers, _body in receiver.requests) == sorted(
        inbox.removeprefix(receiver.url) for inbox in inboxes
    )
    async with resources.sessionmaker() as session:
        rows = {
            inbox.removeprefix(receiver.url): (state, attempts, status)
            for inbox, state, attempts, status in await session.execute(
                select(Delivery.inbox, Delivery.state, Delivery.attempts, Delivery.last_status)
            )
        }
    assert rows.pop("/inbox/7") == rows.pop("/inbox/42") == (DeliveryState.PENDING, 1, 503)
    assert rows.pop("/inbox/99") == (DeliveryState.ABANDONED, 1, 410)
    assert set(rows.values()) == {(DeliveryState.DELIVERED, 1, 202)}
    assert counts.statements <= 50, counts.per(100, "delivery")  # was 11.7 per delivery
    assert counts.transactions <= 25, counts.per(100, "delivery")  # was 3.3


async def test_give_up_then_replay(impatient_settings: Settings, receiver: Receiver) -> None:
    from server.web.app import create_app

    receiver.script = [(500, {}), (202, {})]
    async with create_app(impatient_settings).test_app() as test_app:
        app = test_app.app  # type: ignore[attr-defined]
        delivery_id = await queue_delivery(app, f"{receiver.url}/inbox")
        fed = federation_of(resources_of(app))
        await attempt_delivery(fed, delivery_id)
        row = await delivery(app, delivery_id)
        assert row.state is DeliveryState.FAILED
        assert "gave up after 1 attempts" in (row.last_error or "")
        async with resources_of(app).sessionmaker() as session:
            assert await replay(session) == 1
        assert (await delivery(app, delivery_id)).state is DeliveryState.PENDING
        await attempt_delivery(fed, delivery_id)
        assert (await delivery(app, delivery_id)).state is DeliveryState.DELIVERED


async def test_no_answer_is_retried(app: Quart) -> None:
    delivery_id = await queue_delivery(app, "http://127.0.0.1:9/inbox")  # nothing listens
    await attempt_delivery(federation_of(resources_of(app)), delivery_id)
    row = await delivery(app, delivery_id)
    assert row.state is DeliveryState.PENDING and row.last_status is None
    assert row.last_error


async def test_blocking_a_domain_stops_its_deliveries(app: Quart, receiver: Receiver) -> None:
    delivery_id = await queue_delivery(app, "https://blocked.example/inbox")
    async with resources_of(app).sessionmaker() as session:
        session.add(
            RemoteActor(
                uri="https://blocked.example/u/1", domain="blocked.example", type="Person",
                inbox="https://blocked.example/u/1/inbox",
            )
        )  # fmt: skip
        await session.flush()
        actor_id = await session.scalar(select(RemoteActor.id))
        session.add(
            Follow(
                activity_uri="https://blocked.example/f/1",
                follower_actor_id=actor_id,
                followed_name="aurora",
                state=FollowState.ACCEPTED,
            )
        )
        await session.commit()
        await set_domain_policy(session, "blocked.example", DomainPolicyKind.BLOCK)
    row = await delivery(app, delivery_id)
    assert row.state is DeliveryState.ABANDONED
    async with resources_of(app).sessionmaker() as session:
        assert await session.scalar(select(Follow.id)) is None
    assert await attempt_delivery(federation_of(resources_of(app)), delivery_id) is None


@pytest.fixture
def guarded_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, instance={"base_url": BASE})


async def test_actor_fetch_redirected_to_loopback_is_refused(
    guarded_settings: Settings, receiver: Receiver
) -> None:
    """The lab network 127.0.0.2 is allowed; its redirect to 127.0.0.1 is not."""
    from server.web.app import create_app

    with ThreadingHTTPServer(("127.0.0.2", 0), _redirect_to(f"{receiver.url}/actor")) as lab:
        thread = threading.Thread(target=lab.serve_forever, daemon=True)
        thread.start()
        try:
            async with create_app(guarded_settings).test_app() as test_app:
                app = test_app.app  # type: ignore[attr-defined]
                resources = resources_of(app)
                policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
                resources.fetcher = GuardedClient(resources.http, policy)
                url = f"http://127.0.0.2:{lab.server_address[1]}/users/evil"
                with pytest.raises(ResolveError, match=r"127\.0\.0\.1"):
                    await resolve(federation_of(resources), url)
                async with resources.sessionmaker() as session:
                    assert await session.scalar(select(RemoteActor.id)) is None
                    assert await session.scalar(select(OutboundActivity.id)) is None
        finally:
            lab.shutdown()
    assert receiver.requests == []  # the loopback server never heard from us


def _redirect_to(location: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
