"""The embedded SQLite under clients that hang up: a real `playfair run` on a SQLite file,
many clients that abort their requests mid-query and mid-response (pages, the API, the
audio stream, writes), and then the instance still writes at once, and so does a second
process on the same file."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from models.search import DocumentKind, SearchDocument
from models.tokens import AccessToken, new_token, token_digest
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.services.money import issue_vouchers
from tests.audio import make_audio
from tests.instances import Instance, database_of, make_instance

CLIENTS = 60
SEARCH_DOCUMENTS = 20_000
REQUESTS_EACH = 12
PASSWORD = "a long password 1"


@dataclass
class Seeded:
    token: str
    vouchers: list[str]
    spare: str


async def seed(instance: Instance) -> Seeded:
    """Accounts, a token and vouchers, straight into the instance's database."""
    async with database_of(instance) as session:
        mira = await create_user(session, "mira", PASSWORD, Role.ARTIST)
        await create_artist(session, "aurora", mira, display_name="Aurora Lane")
        lena = await create_user(session, "lena", PASSWORD, Role.LISTENER)
        token = new_token()
        session.add(AccessToken(user_id=lena.id, digest=token_digest(token), scopes="read write"))
        vouchers = await issue_vouchers(session, 5, 40, None)
        [spare] = await issue_vouchers(session, 7, 1, None)
        # a catalogue big enough that a search for "harbour" is a slow page to rank
        await session.execute(
            insert(SearchDocument),
            [
                {"kind": DocumentKind.TRACK, "object_id": 100_000 + n,
                 "title": f"Harbour song {n}", "body": "harbour tide ebb"}
                for n in range(SEARCH_DOCUMENTS)
            ],
        )  # fmt: skip
        await session.commit()
    return Seeded(token, vouchers, spare)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[Instance, Seeded]]:
    made = make_instance(tmp_path / "data", "127.0.0.6", f"sqlite+aiosqlite:///{tmp_path}/s.db")
    # a lock held by a lost connection would show within seconds, not the default 10
    made.env["PLAYFAIR_DATABASE__BUSY_TIMEOUT"] = "3s"
    seeded = asyncio.run(seed(made))
    album = tmp_path / "Harbour Songs"
    album.mkdir()
    make_audio(album / "01 - Low Water.mp3", "mp3", seconds=10)
    made.cli("import", str(album), "--artist", "aurora", "--free")
    made.start()
    made.wait_for(r"release \d+ announced")
    yield made, seeded
    output = made.stop()
    for bad in ("Traceback", "NestedSessionError", "database is locked", "cannot claim jobs"):
        assert bad not in output, output


def request_bytes(host: str, method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def hang_up(host: str, port: int, payload: bytes, read_before: int) -> None:
    """Send a request and close the socket after ``read_before`` bytes of the answer
    (0: at once, while the server is still querying)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        if read_before:
            await reader.read(read_before)
    finally:
        writer.transport.abort()  # a reset, as a player skipping a track does


async def storm(instance: Instance, token: str, vouchers: list[str]) -> tuple[int, str]:
    """CLIENTS clients hanging up on requests, for as long as a second process on the
    same file takes to make a write (and at least REQUESTS_EACH requests each)."""
    host, port_text = instance.base.split("://", 1)[1].split(":")
    port = int(port_text)
    reads = [
        "/", "/search?q=harbour", "/search?q=harbour", "/api/v1/search?q=harbour",
        "/artists/aurora", "/releases/1", "/tracks/1", "/api/v1/releases", "/api/v1/me/wallet",
        "/tracks/1/stream", "/tracks/1/preview", "/healthz",
    ]  # fmt: skip
    # the second process: it fails if it cannot have the write lock within 3 s
    beside = asyncio.ensure_future(
        asyncio.to_thread(instance.cli, "voucher", "issue", "--tokens", "1")
    )
    done = 0

    async def client(number: int) -> None:
        nonlocal done
        step = 0
        while step < REQUESTS_EACH or not beside.done():
            which = (number + step) % (len(reads) + 1)
            if which == len(reads):  # a write, cut off before or after it commits
                code = vouchers[(number * REQUESTS_EACH + step) % len(vouchers)]
                body = json.dumps({"code": code}).encode()
                payload = request_bytes(host, "POST", "/api/v1/me/vouchers", token, body)
            else:
                payload = request_bytes(host, "GET", reads[which], token)
            await hang_up(host, port, payload, read_before=(0, 1, 200, 5000)[step % 4])
            step += 1
            done += 1

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return done, await beside


def test_clients_that_hang_up_leave_the_instance_writing(
    instance: tuple[Instance, Seeded],
) -> None:
    server, seeded = instance
    done, code = asyncio.run(storm(server, seeded.token, seeded.vouchers))
    assert done >= CLIENTS * REQUESTS_EACH
    assert code  # the second process's voucher, written while the storm went on

    with httpx.Client(base_url=server.base, timeout=10) as http:
        started = time.monotonic()
        assert http.get("/healthz").status_code == 200
        wallet = http.post(
            "/api/v1/me/vouchers",
            json={"code": seeded.spare},
            headers={"Authorization": f"Bearer {seeded.token}"},
        )
        assert wallet.status_code == 200, wallet.text
        page = http.get("/signup").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        form = {"csrf_token": csrf.group(1), "username": "omar", "password": PASSWORD,
                "password_again": PASSWORD}  # fmt: skip
        signed_up = http.post("/signup", data=form)
        assert signed_up.status_code == 303, signed_up.text
        assert time.monotonic() - started < 3  # promptly: nobody waits on a lock
    # and another process on the same file writes too, within the busy timeout
    assert server.cli("voucher", "issue", "--tokens", "1")
