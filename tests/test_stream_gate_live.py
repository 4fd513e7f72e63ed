"""Stream-to-own over real HTTP, against a real `playfair run` (Hypercorn) on both
databases: players that hang up inside the free part (as they do on every skip) pay
nothing and leave the instance writing; a stream whose play cannot be charged ends at the
free part with the connection closed, so the player knows the body is incomplete; a
session's URL serves nobody but its listener."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models.stream_gate import free_part
from server.services.media.timeline import timeline_of
from tests.audio import make_audio
from tests.instances import Instance, make_instance

SECONDS = 56
HANG_UPS = 24


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Iterator[Instance]:
    made = make_instance(tmp_path / "data", "127.0.0.6", database_url)
    made.env["PLAYFAIR_MONEY__STARTER_BALANCE"] = "2"  # one first play, no more
    made.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    made.cli("artist", "add", "aurora", "--owner", "mira")
    folder = tmp_path / "Tides"
    folder.mkdir()
    make_audio(folder / "01 - Long Tide.flac", "flac", seconds=SECONDS)
    make_audio(folder / "02 - Short Tide.flac", "flac", seconds=2, frequency=550)
    made.cli("import", str(folder), "--artist", "aurora")
    made.start()
    made.wait_for(r"release (\d+) announced", timeout=120)
    yield made
    output = made.stop()
    assert "Traceback" not in output, output


def bearer(instance: Instance, name: str) -> dict[str, str]:
    instance.cli("user", "add", name, stdin="a long password\n")
    token = instance.cli("token", "issue", name, "--scopes", "read write play")
    return {"Authorization": f"Bearer {token}"}


async def test_hang_ups_cost_nothing_and_a_thin_wallet_stream_is_cut(instance: Instance) -> None:
    base = instance.base
    mira = {"Authorization": f"Bearer {instance.cli('token', 'issue', 'mira', '--scopes', 'read')}"}
    omar = bearer(instance, "omar")
    lena = bearer(instance, "lena")
    seed = random.randrange(10**6)  # noqa: S311 (where the players hang up, not a secret)
    print("seed", seed)
    chance = random.Random(seed)  # noqa: S311
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        track = (await http.get("/api/v1/tracks/1")).json()
        # the artist hears their own track in full: the bytes the test measures against
        whole = await http.get("/tracks/1/stream?format=mp3", headers=mira, follow_redirects=True)
        assert whole.url.path.startswith("/audio/")  # the artist's own: a signed link
        content = whole.content
        free = free_part(timeline_of(content, "audio/mpeg"))
        assert track["title"] == "Long Tide"

        async def hang_up(headers: dict[str, str]) -> int:
            opened = (await http.post("/api/v1/tracks/1/plays", headers=headers)).json()
            url = opened["stream_url"].split(base, 1)[-1] + "&format=mp3"
            wanted = chance.randrange(1, free.mark // 2)  # well inside the free part
            received = 0
            async with http.stream("GET", url, headers=headers) as answer:
                assert answer.status_code == 200
                async for chunk in answer.aiter_raw():
                    received += len(chunk)
                    if received >= wanted:
                        break  # the player skips: it closes the connection
            return received

        # one listener skipping through many plays at once, each its own session
        got = await asyncio.gather(*(hang_up(omar) for _ in range(HANG_UPS)))
        assert all(count < free.mark for count in got)
        wallet = (await http.get("/api/v1/me/wallet", headers=omar)).json()
        assert (wallet["balance"], wallet["plays"]) == (2, [])  # nobody paid
        assert (await http.get("/healthz")).status_code == 200

        # lena can pay for one play; she opens two (each affordable when it opens)
        first = (await http.post("/api/v1/tracks/1/plays", headers=lena)).json()
        second = (await http.post("/api/v1/tracks/1/plays", headers=lena)).json()
        short = (await http.post("/api/v1/tracks/2/plays", headers=lena)).json()
        assert first["mode"] == second["mode"] == short["mode"] == "full"
        seek = {**lena, "Range": f"bytes={free.mark}-"}
        charged = await http.get(local(first, base), headers=seek)
        assert charged.status_code == 206
        assert charged.content == content[free.mark :]
        assert (await http.get("/api/v1/me/wallet", headers=lena)).json()["balance"] == 0
        # the second session, as a browser asks: the free bytes in a short 206, then the
        # rest, which cannot be charged
        near = await http.get(
            local(second, base), headers={**lena, "Range": f"bytes={free.mark - 1000}-"}
        )
        assert near.status_code == 206
        assert (
            near.headers["content-range"]
            == f"bytes {free.mark - 1000}-{free.mark - 1}/{len(content)}"
        )
        assert near.content == content[free.mark - 1000 : free.mark]
        assert (await http.get(local(second, base), headers=seek)).status_code == 402
        # a client that asks for the whole file (no Range): the free part, at listening
        # speed, then the connection closes short of the Content-Length it was promised
        short_content = (
            await http.get("/tracks/2/stream?format=mp3", headers=mira, follow_redirects=True)
        ).content
        short_free = free_part(timeline_of(short_content, "audio/mpeg"))
        received = bytearray()

        async def read_all() -> None:
            async with http.stream("GET", local(short, base), headers=lena) as answer:
                assert answer.status_code == 200
                assert answer.headers["content-length"] == str(len(short_content))
                async for chunk in answer.aiter_raw():
                    received.extend(chunk)

        with pytest.raises(httpx.RemoteProtocolError):
            await read_all()
        assert bytes(received) == short_content[: short_free.mark]
        wallet = (await http.get("/api/v1/me/wallet", headers=lena)).json()
        assert (wallet["balance"], len(wallet["plays"])) == (0, 1)
        # someone else's URL, and no credentials at all
        assert (await http.get(local(second, base), headers=omar)).status_code == 403
        assert (await http.get(local(second, base))).status_code == 401


def local(opened: dict[str, str], base: str) -> str:
    """The session's stream URL on the test's client, as the web player asks for it."""
    return opened["stream_url"].split(base, 1)[-1] + "&format=mp3"
