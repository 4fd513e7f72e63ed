"""Paid plays: claims per second through the real HTTP API (`playfair serve`), with 32
concurrent listeners each opening a play session and claiming it, on the default SQLite
database and on PostgreSQL. Reference in the same run: GET /healthz at the same
concurrency, the floor cost of one request through the same server.

Tracks are made one millisecond long, so a claim is due as soon as its session is open
(the rule is min(45 s, length)); every claim moves tokens, a play and a count."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from bench.setup import init_instance, instance_env, on_both_databases
from bench.statements import Counts, counting
from models.catalogue import Release, Track, TrackStatus, Visibility
from models.database import create_engine, create_sessionmaker
from models.tokens import AccessToken, new_token, token_digest
from models.users import Role
from server.runtime.config import load_settings
from server.runtime.resources import database_options
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.services.money import issue_vouchers, redeem_voucher
from server.web.app import create_app
from server.web.current import resources_of
from tests.processes import PlayfairProcess

LISTENERS = 32
TRACKS = 10
SECONDS = 10.0


async def _prepare(env: dict[str, str]) -> tuple[list[str], list[int]]:
    settings = init_instance(env)
    engine = create_engine(database_options(settings))
    tokens, track_ids = [], []
    try:
        async with create_sessionmaker(engine)() as session:
            owner = await create_user(session, "bench_artist", "a long password", Role.ARTIST)
            artist = await create_artist(session, "bench_band", owner)
            release = Release(
                artist_id=artist.id, title="B", slug="b", visibility=Visibility.PUBLIC
            )
            session.add(release)
            await session.flush()
            for number in range(TRACKS):
                track = Track(
                    release_id=release.id,
                    artist_id=artist.id,
                    title=f"T{number}",
                    slug="t",
                    duration_ms=1,
                    status=TrackStatus.READY,
                )
                session.add(track)
                await session.flush()
                track_ids.append(track.id)
            codes = await issue_vouchers(session, 1_000_000, LISTENERS, None)
            for number, code in enumerate(codes):
                user = await create_user(
                    session, f"bench_listener{number}", "a long password", Role.LISTENER
                )
                await redeem_voucher(session, user.id, code)
                token = new_token()
                session.add(
                    AccessToken(user_id=user.id, digest=token_digest(token), scopes="read play")
                )
                tokens.append(token)
            await session.commit()
    finally:
        await engine.dispose()
    return tokens, track_ids


async def _listener(
    client: httpx.AsyncClient, token: str, tracks: list[int], deadline: float
) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    claims = 0
    index = 0
    while time.perf_counter() < deadline:
        track = tracks[index % len(tracks)]
        index += 1
        started = await client.post(f"/api/v1/tracks/{track}/plays", headers=headers)
        body = started.json()
        claim = await client.post(f"/api/v1/plays/{body['session']}/claim", headers=headers)
        if claim.status_code != 200:
            raise RuntimeError(f"claim failed: {claim.status_code} {claim.text}")
        claims += 1
    return claims


async def _healthz(client: httpx.AsyncClient, deadline: float) -> int:
    done = 0
    while time.perf_counter() < deadline:
        (await client.get("/healthz")).raise_for_status()
        done += 1
    return done


async def _statements(env: dict[str, str], token: str, track: int) -> tuple[Counts, Counts]:
    """One more play, in-process on the same database: the SQL its open and its claim
    cost (a server in another process cannot be counted from here)."""
    app = create_app(load_settings(None, environ=env))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        resources = resources_of(app)
        headers = {"Authorization": f"Bearer {token}"}
        with counting(resources.engine, resources.read_engine) as opening:
            started = await client.post(f"/api/v1/tracks/{track}/plays", headers=headers)
        session = (await started.get_json())["session"]
        with counting(resources.engine, resources.read_engine) as claiming:
            claim = await client.post(f"/api/v1/plays/{session}/claim", headers=headers)
        if claim.status_code != 200:
            raise RuntimeError(f"claim failed: {claim.status_code}")
    return opening, claiming


async def _measure(url: str, folder: Path) -> list[str]:
    env = instance_env(folder / "data", url)
    tokens, tracks = await _prepare(env)
    server = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], env)
    try:
        address = server.address()
        limits = httpx.Limits(max_connections=LISTENERS)
        async with httpx.AsyncClient(base_url=address, timeout=60, limits=limits) as client:
            deadline = time.perf_counter() + SECONDS
            started = time.perf_counter()
            claims = sum(
                await asyncio.gather(
                    *(_listener(client, token, tracks, deadline) for token in tokens)
                )
            )
            claim_rate = claims / (time.perf_counter() - started)
            deadline = time.perf_counter() + SECONDS / 2
            started = time.perf_counter()
            checks = sum(await asyncio.gather(*(_healthz(client, deadline) for _ in tokens)))
            health_rate = checks / (time.perf_counter() - started)
    finally:
        server.stop()
    opening, claiming = await _statements(env, tokens[0], tracks[0])
    return [
        f"paid plays claimed: {claim_rate:7.1f} /s ({LISTENERS} listeners; each play is two "
        f"requests: open a session, claim it)",
        f"reference, GET /healthz at the same concurrency: {health_rate:7.1f} req/s",
        f"database: {opening.per(1, 'open')}, {claiming.per(1, 'claim')} (the bearer "
        f"token's read included in each)",
    ]


async def run() -> list[str]:
    return await on_both_databases("plays_bench", _measure)
