"""Inbox: signed activities accepted per second (parse, domain policy, signature check,
store, 202) through the real HTTP route of `playfair serve` on loopback, with 32
concurrent senders, on the default SQLite database and on PostgreSQL. References in the
same run: the raw RSA-2048 PKCS#1 v1.5 SHA-256 verification rate of one core, and GET
/healthz through the same server at the same concurrency.

A few hundred remote actors are cached beforehand with keys we hold (no fetch happens);
every request is a distinct ``Like`` signed before the clock starts, since signing is the
sender's cost, not ours."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from httpsig.utils import build_signature_template
from sqlalchemy import func, select

from bench.setup import init_instance, instance_env, on_both_databases
from bench.statements import Counts, counting
from federation.parse import parse_actor
from federation.signatures import digest_header, http_date, sign_request
from models.database import create_engine, create_sessionmaker
from models.federation import InboxItem
from server.runtime.config import Settings, load_settings
from server.runtime.resources import database_options
from server.services.activitypub.remote import store_actor
from server.web.app import create_app
from server.web.current import resources_of
from tests.processes import ROOT, PlayfairProcess

SENDERS = 32
ACTIVITIES = 3000
COUNTED = 50  # more activities, received in-process to count their SQL
ACTORS = 256
KEYS = 32  # actors share keys round-robin; each actor still has its own key id
VERIFY_SECONDS = 2.0
ACTOR_DOCUMENT = ROOT / "tests" / "fixtures" / "fediverse" / "mastodon" / "actor.json"
ACTIVITY_TYPE = "application/activity+json"
SIGNED_NAMES = ["(request-target)", "host", "date", "digest"]


@dataclass(frozen=True)
class Sender:
    actor: str
    key_id: str
    key: rsa.RSAPrivateKey


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def actor_document(template: dict[str, Any], number: int, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The Mastodon fixture, moved to its own host ``s{number}.example``."""
    host = f"s{number}.example"
    actor = f"https://{host}/users/u{number}"
    document = copy.deepcopy(template)
    document.update(
        id=actor,
        following=f"{actor}/following",
        followers=f"{actor}/followers",
        inbox=f"{actor}/inbox",
        outbox=f"{actor}/outbox",
        preferredUsername=f"u{number}",
        url=f"https://{host}/@u{number}",
        endpoints={"sharedInbox": f"https://{host}/inbox"},
    )
    document["publicKey"] = {
        "id": f"{actor}#main-key",
        "owner": actor,
        "publicKeyPem": public_pem(key),
    }
    return document


def sign_fast(
    url_host: str, path: str, body: bytes, sender: Sender, now: datetime
) -> dict[str, str]:
    """What ``sign_request`` answers, without its per-call key import (checked equal to it
    once per run: PKCS#1 v1.5 signatures are deterministic)."""
    headers = {"Host": url_host, "Date": http_date(now), "Digest": digest_header(body)}
    message = "\n".join(
        [
            f"(request-target): post {path}",
            f"host: {headers['Host']}",
            f"date: {headers['Date']}",
            f"digest: {headers['Digest']}",
        ]
    ).encode("ascii")
    signature = base64.b64encode(
        sender.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    template = build_signature_template(sender.key_id, "rsa-sha256", SIGNED_NAMES, "signature")
    return {**headers, "Signature": template % signature}


def presign(base: str, senders: list[Sender]) -> list[tuple[bytes, dict[str, str]]]:
    host = base.split("://", 1)[1]
    now = datetime.now(UTC)
    requests = []
    for number in range(ACTIVITIES + COUNTED):
        sender = senders[number % len(senders)]
        activity = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{sender.actor}#likes/{number}",
            "type": "Like",
            "actor": sender.actor,
            "object": f"{base}/notes/does-not-exist-{number}",
        }
        body = json.dumps(activity).encode()
        headers = sign_fast(host, "/inbox", body, sender, now)
        if number == 0:
            reference = sign_request("POST", f"{base}/inbox", body, sender.key_id, sender.key, now)
            if reference != headers:
                raise RuntimeError(f"the bench's signer differs from sign_request: {headers}")
        headers["Content-Type"] = ACTIVITY_TYPE
        requests.append((body, headers))
    return requests


async def _seed(
    env: dict[str, str], keys: list[rsa.RSAPrivateKey]
) -> tuple[Settings, list[Sender]]:
    settings = init_instance(env)
    engine = create_engine(database_options(settings))
    template = json.loads(ACTOR_DOCUMENT.read_text())
    senders = []
    try:
        async with create_sessionmaker(engine)() as session:
            for number in range(ACTORS):
                key = keys[number % len(keys)]
                parsed = parse_actor(actor_document(template, number, key))
                await store_actor(session, parsed)
                assert parsed.key is not None
                senders.append(Sender(parsed.id, parsed.key.id, key))
            await session.commit()
    finally:
        await engine.dispose()
    return settings, senders


async def _inbox_rows(settings: Settings) -> int:
    engine = create_engine(database_options(settings))
    try:
        async with create_sessionmaker(engine)() as session:
            return await session.scalar(select(func.count()).select_from(InboxItem)) or 0
    finally:
        await engine.dispose()


async def _send(
    base: str, requests: list[tuple[bytes, dict[str, str]]]
) -> tuple[float, Counter[int]]:
    statuses: Counter[int] = Counter()
    refusals: list[str] = []
    queue = iter(requests)
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        (await client.get("/healthz")).raise_for_status()  # warm up

        async def sender() -> None:
            for body, headers in queue:
                response = await client.post("/inbox", content=body, headers=headers)
                statuses[response.status_code] += 1
                if response.status_code != 202 and len(refusals) < 3:
                    refusals.append(f"{response.status_code} {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        elapsed = time.perf_counter() - started
    if refusals:
        raise RuntimeError(f"not every activity was accepted: {dict(statuses)}; {refusals}")
    return len(requests) / elapsed, statuses


async def _statements(env: dict[str, str], requests: list[tuple[bytes, dict[str, str]]]) -> Counts:
    """The SQL of receiving ``requests``, in-process on the same database (a server in
    another process cannot be counted from here)."""
    app = create_app(load_settings(None, environ=env))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        resources = resources_of(app)
        with counting(resources.engine, resources.read_engine) as counts:
            for body, headers in requests:
                response = await client.post("/inbox", data=body, headers=headers)
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code} {await response.get_data()!r}")
    return counts


async def _healthz(base: str) -> float:
    """The floor cost of one request through the same server, at the same concurrency."""
    queue = iter(range(ACTIVITIES))
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def sender() -> None:
            for _ in queue:
                (await client.get("/healthz")).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        return ACTIVITIES / (time.perf_counter() - started)


def raw_verifications_per_second(key: rsa.RSAPrivateKey) -> float:
    """One core, the primitive alone: RSA-2048 PKCS#1 v1.5 SHA-256 verify of a
    signing-string-sized message."""
    message = b"(request-target): post /inbox\nhost: 127.0.0.1\ndate: x\ndigest: " + b"y" * 52
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < VERIFY_SECONDS:
        for _ in range(200):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        done += 200
    return done / elapsed


async def _measure(url: str, folder: Path, keys: list[rsa.RSAPrivateKey]) -> list[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = instance_env(folder / "data", url)
    env["PLAYFAIR_INSTANCE__BASE_URL"] = base
    env["PLAYFAIR_FEDERATION__ALLOW_PRIVATE_ADDRESSES"] = "true"
    settings, senders = await _seed(env, keys)
    requests = presign(base, senders)
    requests, counted = requests[:ACTIVITIES], requests[ACTIVITIES:]
    server = PlayfairProcess(["serve", "--bind", f"127.0.0.1:{port}"], env)
    try:
        server.address()
        accepted, statuses = await _send(base, requests)
        healthz = await _healthz(base)
    finally:
        server.stop()
    if "Traceback" in server.output:
        raise RuntimeError(f"the server logged an error:\n{server.output}")
    rows = await _inbox_rows(settings)
    if statuses != Counter({202: ACTIVITIES}) or rows != ACTIVITIES:
        raise RuntimeError(f"sent {ACTIVITIES}, answers {dict(statuses)}, {rows} inbox rows stored")
    database = await _statements(env, counted)
    raw = raw_verifications_per_second(keys[0])
    return [
        f"inbox accepted: {accepted:7.1f} activities/s ({ACTIVITIES} signed Likes from "
        f"{ACTORS} cached actors, {SENDERS} senders; all 202, {rows} rows stored)",
        f"reference, raw RSA-2048 verifications on one core: {raw:7.0f} /s",
        f"inbox / raw verification: {accepted / raw:.3f}",
        f"reference, GET /healthz at the same concurrency: {healthz:7.1f} req/s",
        f"inbox / healthz: {accepted / healthz:.2f}",
        f"database: {database.per(len(counted), 'activity received')}",
    ]


async def run() -> list[str]:
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(KEYS)]

    async def measure(url: str, folder: Path) -> list[str]:
        return await _measure(url, folder, keys)

    return await on_both_databases("inbox_bench", measure)
