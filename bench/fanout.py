"""Fan-out: one release published to 10,000 followers on 1,000 simulated instances
(10 followers each, one shared inbox per instance), delivered by the worker at its
default concurrency through the guarded client, on SQLite and on PostgreSQL. Reference
in the same run: the same httpx client POSTing the same body to the same receiver,
without the delivery machinery, at the same concurrency.

The instances are one local Hypercorn app on loopback answering 202 for any Host and
counting requests per Host header; the guarded client's resolver maps ``*.fanout.test``
to 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select

from bench.setup import init_instance, instance_env, on_both_databases
from bench.statements import counting
from federation.fetch import FetchPolicy, GuardedClient
from federation.signatures import sign_request
from models.base import utcnow
from models.catalogue import ReleaseKind, Visibility
from models.database import create_engine, create_sessionmaker
from models.federation import (
    Delivery,
    DeliveryState,
    Follow,
    FollowState,
    OutboundActivity,
    RemoteActor,
)
from models.jobs import ClaimedJob
from models.users import Role
from server.runtime.config import Settings
from server.runtime.resources import Resources, database_options, open_resources
from server.runtime.worker import JobContext
from server.services.account_rules import create_user
from server.services.activitypub.context import federation_of
from server.services.activitypub.local import signing_key
from server.services.activitypub.publish import run_published
from server.services.catalogue import create_artist, find_or_create_release
from server.services.events import PUBLISHED_JOB
from server.services.jobs import build_worker

INSTANCES = 1000
FOLLOWERS_PER_INSTANCE = 10
ARTIST = "fanout_band"
DOMAIN = "fanout.test"
REFERENCE_POSTS = 1000
SIGNATURES = 50

RECEIVER = """
import json
from collections import Counter

hosts = Counter()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        hosts[dict(scope["headers"]).get(b"host", b"").decode()] += 1
        status, body = 202, b""
    else:
        status, body = 200, json.dumps(hosts).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


class Receiver:
    """The Hypercorn app standing in for a thousand instances."""

    def __init__(self, folder: Path) -> None:
        (folder / "fanout_receiver.py").write_text(RECEIVER)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "--bind", "127.0.0.1:0", "fanout_receiver:app"],
            cwd=folder, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "Running on " not in line:
            self.stop()
            raise RuntimeError(f"the receiver did not start: {line}")
        self.address = line.rsplit("Running on ", 1)[1].split()[0]
        self.port = int(self.address.rsplit(":", 1)[1])

    async def counts(self) -> dict[str, int]:
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"{self.address}/counts")
            response.raise_for_status()
            counts: dict[str, int] = response.json()
            return counts

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


async def _seed(settings: Settings, port: int) -> int:
    """The artist, a public release, and 10,000 remote followers; returns the release id."""
    engine = create_engine(database_options(settings))
    try:
        async with create_sessionmaker(engine)() as session:
            owner = await create_user(session, "fanout_owner", "a long password", Role.ARTIST)
            artist = await create_artist(session, ARTIST, owner)
            release, _ = await find_or_create_release(
                session, artist, "Ten Thousand Ears", kind=ReleaseKind.ALBUM
            )
            release.visibility = Visibility.PUBLIC
            release.published_at = utcnow()
            release_id = release.id
            actors = []
            for host_number in range(INSTANCES):
                host = f"i{host_number}.{DOMAIN}"
                for user_number in range(FOLLOWERS_PER_INSTANCE):
                    uri = f"http://{host}:{port}/users/u{user_number}"
                    actors.append(
                        {
                            "uri": uri,
                            "domain": host,
                            "type": "Person",
                            "inbox": f"{uri}/inbox",
                            "shared_inbox": f"http://{host}:{port}/inbox",
                            "key_id": f"{uri}#main-key",
                        }
                    )
            await session.execute(insert(RemoteActor), actors)
            ids = (await session.scalars(select(RemoteActor.id))).all()
            follows = [
                {
                    "activity_uri": f"http://follower.{DOMAIN}/follows/{actor_id}",
                    "follower_actor_id": actor_id,
                    "followed_name": ARTIST,
                    "state": FollowState.ACCEPTED,
                    "accepted_at": utcnow(),
                }
                for actor_id in ids
            ]
            await session.execute(insert(Follow), follows)
            await session.commit()
            return release_id
    finally:
        await engine.dispose()


def guarded_fetcher(resources: Resources) -> GuardedClient:
    async def resolve(host: str, port: int) -> list[str]:
        if host.endswith(f".{DOMAIN}"):
            return ["127.0.0.1"]
        raise OSError(f"{host} is not part of the benchmark")

    federation = resources.settings.federation
    policy = FetchPolicy(
        allow_private=True,
        max_bytes=federation.max_fetch_bytes,
        deadline_seconds=federation.fetch_timeout.total_seconds() * 3,
    )
    return GuardedClient(resources.http, policy, resolver=resolve)


async def _reference(
    resources: Resources, receiver: Receiver, body: bytes, concurrency: int
) -> float:
    """The same client POSTing the same body, no signing, guard, or database."""
    posts = iter(range(REFERENCE_POSTS))
    headers = {"Content-Type": "application/activity+json"}

    async def poster() -> None:
        for number in posts:
            host = f"i{number % INSTANCES}.{DOMAIN}:{receiver.port}"
            response = await resources.http.post(
                f"{receiver.address}/inbox", content=body, headers={**headers, "Host": host}
            )
            if response.status_code != 202:
                raise RuntimeError(f"the receiver answered {response.status_code}")

    started = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(concurrency)))
    return REFERENCE_POSTS / (time.perf_counter() - started)


async def _signing_cost(resources: Resources, body: bytes, inbox: str) -> float:
    """Milliseconds of one ``sign_request`` with the artist's key, as a delivery pays it."""
    fed = federation_of(resources)
    async with fed.sessionmaker() as session:
        key = await signing_key(session, fed.base_url, ARTIST, fed.secret, fed.key_cache)
    started = time.perf_counter()
    for _ in range(SIGNATURES):
        sign_request("POST", inbox, body, key.key_id, key.private)
    return (time.perf_counter() - started) / SIGNATURES * 1000


async def _measure(url: str, folder: Path) -> list[str]:
    env = instance_env(folder / "data", url)
    env["PLAYFAIR_INSTANCE__BASE_URL"] = "https://music.example"
    env["PLAYFAIR_FEDERATION__ALLOW_PRIVATE_ADDRESSES"] = "true"
    settings = init_instance(env)
    receiver = Receiver(folder)
    try:
        release_id = await _seed(settings, receiver.port)
        resources = await open_resources(settings)
        try:
            resources.fetcher = guarded_fetcher(resources)
            worker = build_worker(resources)
            context = JobContext(ClaimedJob(1, PUBLISHED_JOB, {}, 1, 3, "bench"), resources)
            started = time.perf_counter()
            await run_published(context, {"release": release_id})
            queued = time.perf_counter()
            with counting(resources.engine, resources.read_engine) as database:
                jobs_run = await worker.run_until_idle()
            finished = time.perf_counter()
            counts = await receiver.counts()
            async with resources.sessionmaker() as session:
                states = dict(
                    (
                        await session.execute(
                            select(Delivery.state, func.count()).group_by(Delivery.state)
                        )
                    ).all()
                )
                document = await session.scalar(
                    select(OutboundActivity.document).where(OutboundActivity.type == "Create")
                )
            received = sum(counts.values())
            if (
                received != INSTANCES
                or len(counts) != INSTANCES
                or states != {DeliveryState.DELIVERED: INSTANCES}
            ):
                raise RuntimeError(
                    f"expected {INSTANCES} deliveries, one per shared inbox: the receiver got "
                    f"{received} from {len(counts)} hosts; delivery states {states}"
                )
            body = json.dumps(document, separators=(",", ":")).encode()
            concurrency = worker.options.concurrency
            federation = settings.federation
            raw = await _reference(
                resources, receiver, body, concurrency * federation.delivery_concurrency
            )
            signing = await _signing_cost(
                resources, body, f"http://i0.{DOMAIN}:{receiver.port}/inbox"
            )
        finally:
            await resources.close()
    finally:
        receiver.stop()
    delivering = finished - queued
    return [
        f"HTTP deliveries received: {received} (one per shared inbox; "
        f"{INSTANCES * FOLLOWERS_PER_INSTANCE} followers on {INSTANCES} instances; "
        f"{jobs_run} jobs)",
        f"deliveries: {received / delivering:7.1f} /s (worker concurrency {concurrency}, "
        f"{federation.delivery_concurrency} POSTs at a time per job)",
        f"database: {database.per(received, 'delivery')}",
        f"from publishing until all delivered: {finished - started:6.1f} s "
        f"(queueing the deliveries: {queued - started:5.2f} s)",
        f"reference, the same client POSTing the same {len(body)}-byte body, "
        f"{concurrency * federation.delivery_concurrency} at a time: {raw:7.1f} /s",
        f"of which signing: sign_request takes {signing:5.1f} ms of CPU per delivery "
        f"({1000 / signing:5.1f} /s on one core)",
    ]


async def run() -> list[str]:
    return await on_both_databases("fanout_bench", _measure)
