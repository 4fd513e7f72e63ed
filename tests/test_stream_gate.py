"""Stream-to-own enforced on the audio itself, through the HTTP API on both databases: a
play session's stream gives the free part at listening speed and the rest only once the
play is charged, whether the player ever claims it or not; its URL serves the listener
who opened it and nobody else.

The pacing runs on the app's clock; these tests give it one that moves on as soon as it
is asked to wait (``FastClock``), so the 45-second rule on a 70-second track takes
milliseconds, and the time the stream took is read off that clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select, update

from models import ledger
from models.base import utcnow
from models.catalogue import FileRole, MediaFile
from models.ledger import AccountKind, LedgerTransaction
from models.plays import Play, PlaySession
from models.stream_gate import Timeline, free_part
from models.users import Role
from server.services.media.timeline import timeline_of
from server.services.money import issue_vouchers, redeem_voucher
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, make_account, run_worker, upload
from tests.test_money import ledger_sums_to_zero

TRACK_SECONDS = 56


class FastClock:
    """Monotonic time that passes only when someone waits on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waited = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.waited += seconds
        await asyncio.sleep(0)


class Scene:
    def __init__(self, app: Quart, client: Client, track_id: int, listener: Account) -> None:
        self.app, self.client, self.track_id, self.listener = app, client, track_id, listener
        self.clock = FastClock()
        resources_of(app).clock = self.clock

    async def open(self, account: Account | None = None) -> str:
        who = account or self.listener
        started = await self.client.post(f"/api/v1/tracks/{self.track_id}/plays",
                                         headers=who.headers)  # fmt: skip
        body = await started.get_json()
        assert started.status_code == 201, body
        assert body["mode"] == "full"
        return str(body["session"])

    def url(self, session: str, fmt: str = "mp3") -> str:
        return f"/tracks/{self.track_id}/stream?session={session}&format={fmt}"

    async def file(self, fmt: str = "mp3") -> tuple[MediaFile, bytes]:
        role = FileRole.STREAM_MP3 if fmt == "mp3" else FileRole.STREAM_OPUS
        async with resources_of(self.app).sessionmaker() as session:
            file = await session.scalar(
                select(MediaFile).where(MediaFile.track_id == self.track_id,
                                        MediaFile.role == role)
            )  # fmt: skip
        assert file is not None
        path = resources_of(self.app).settings.media_dir / file.storage_key
        return file, path.read_bytes()

    async def balance(self, account: Account | None = None) -> int:
        who = account or self.listener
        async with resources_of(self.app).sessionmaker() as session:
            return await ledger.balance(session, ledger.wallet_key(who.user_id))

    async def plays(self) -> int:
        async with resources_of(self.app).sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(Play)) or 0

    async def empty_wallet(self) -> None:
        """Spend the listener's balance elsewhere (a balanced ledger transaction)."""
        async with resources_of(self.app).sessionmaker() as session:
            wallet = await ledger.account(session, ledger.wallet_key(self.listener.user_id),
                                          AccountKind.WALLET, self.listener.user_id)  # fmt: skip
            grants = await ledger.account(session, "grants", AccountKind.GRANTS)
            tokens = wallet.balance
            await ledger.post(session, "test", "spent", [(wallet, -tokens), (grants, tokens)])
            await session.commit()


@pytest.fixture
async def scene(app: Quart, client: Client, tmp_path: Path) -> Scene:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    path = make_audio(tmp_path / "long.flac", "flac", seconds=TRACK_SECONDS,
                      tags={"title": "Long Tone"})  # fmt: skip
    body = await (await upload(client, artist, path, query="?publish=1")).get_json()
    await run_worker(app)
    listener = await make_account(app, "lina", Role.LISTENER)
    async with resources_of(app).sessionmaker() as session:
        [code] = await issue_vouchers(session, 100, 1, None)
        await redeem_voucher(session, listener.user_id, code)
    return Scene(app, client, int(body["track"]["id"]), listener)


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
async def test_a_session_streamed_to_the_end_without_a_claim_is_charged(
    scene: Scene, fmt: str
) -> None:
    """The player never claims: the bytes past the free part still cost the play, once."""
    _file, content = await scene.file(fmt)
    before = await scene.balance()
    session = await scene.open()
    answer = await scene.client.get(scene.url(session, fmt), headers=scene.listener.headers)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "private, no-store"
    assert await answer.get_data() == content
    assert await scene.balance() == before - 2
    assert await scene.plays() == 1
    # it took listening time: the stream reached the end of the free part no earlier
    # than the 45-second threshold
    assert scene.clock.waited >= 45 - 0.5, scene.clock.waited
    # the claim the player may still send finds the play charged: nothing more is taken
    claimed = await scene.client.post(f"/api/v1/plays/{session}/claim",
                                      headers=scene.listener.headers)  # fmt: skip
    assert (await claimed.get_json())["tokens"] == 2
    assert await scene.balance() == before - 2
    # once charged, the session streams at once, again and in ranges, for nothing more
    waited = scene.clock.waited
    again = await scene.client.get(scene.url(session, fmt), headers=scene.listener.headers)
    assert await again.get_data() == content
    assert scene.clock.waited == waited
    assert await scene.plays() == 1
    await ledger_sums_to_zero(resources_of(scene.app))


async def test_the_timeline_is_kept_with_the_rendition(scene: Scene) -> None:
    session = await scene.open()
    await scene.client.get(scene.url(session), headers={**scene.listener.headers,
                                                        "Range": "bytes=0-99"})  # fmt: skip
    file, content = await scene.file()
    assert file.timeline is not None
    timeline = Timeline.from_json(file.timeline)
    assert timeline.size == len(content)
    assert abs(timeline.duration_ms - TRACK_SECONDS * 1000) < 100


async def test_skipping_before_the_mark_is_free(scene: Scene) -> None:
    """A listener who hangs up inside the free part pays nothing, and got no byte past it."""
    _file, content = await scene.file()
    before = await scene.balance()
    session = await scene.open()
    free = free_part(timeline_of_bytes(content))
    received = bytearray()
    async with scene.client.request(scene.url(session), headers=scene.listener.headers) as http:
        await http.send_complete()
        while len(received) < free.mark // 2:
            received.extend(await http.receive())
        await http.disconnect()
    assert len(received) <= free.mark
    assert bytes(received) == content[: len(received)]
    assert await scene.balance() == before
    assert await scene.plays() == 0


async def test_the_url_serves_its_listener_and_nobody_else(scene: Scene, app: Quart) -> None:
    session = await scene.open()
    other = await make_account(app, "omar", Role.LISTENER)
    url = scene.url(session)
    refused = await scene.client.get(url, headers=other.headers)
    assert refused.status_code == 403
    assert "another listener" in (await refused.get_data(as_text=True))
    assert (await scene.client.get(url)).status_code == 401  # not signed in
    made_up = scene.url("made-up-session-token")
    assert (await scene.client.get(made_up, headers=scene.listener.headers)).status_code == 403
    # a session of another track does not open this one
    wrong = f"/tracks/{scene.track_id + 1000}/stream?session={session}"
    assert (await scene.client.get(wrong, headers=scene.listener.headers)).status_code == 404
    # and it expires
    async with resources_of(app).sessionmaker() as db:
        await db.execute(
            update(PlaySession)
            .where(PlaySession.token == session)
            .values(started_at=utcnow() - timedelta(hours=3))
        )
        await db.commit()
    assert (await scene.client.get(url, headers=scene.listener.headers)).status_code == 410
    assert await scene.plays() == 0


async def test_a_seek_past_the_free_part_charges_first(scene: Scene) -> None:
    _file, content = await scene.file()
    free = free_part(timeline_of_bytes(content))
    before = await scene.balance()
    session = await scene.open()
    seek = {**scene.listener.headers, "Range": f"bytes={free.mark + 1000}-"}
    answer = await scene.client.get(scene.url(session), headers=seek)
    assert answer.status_code == 206
    assert await answer.get_data() == content[free.mark + 1000 :]
    assert await scene.balance() == before - 2
    assert scene.clock.waited == 0  # charged at once, nothing to pace


async def test_a_thin_wallet_gets_the_free_part_and_no_more(scene: Scene) -> None:
    """The balance covered the play when the session opened and was spent meanwhile: a
    player's ranged request gets the free part (a 206 that stops before the mark, shorter
    than asked), and its request for the rest is refused with 402."""
    _file, content = await scene.file()
    free = free_part(timeline_of_bytes(content))
    session = await scene.open()
    await scene.empty_wallet()
    ranged = {**scene.listener.headers, "Range": "bytes=0-"}
    first = await scene.client.get(scene.url(session), headers=ranged)
    assert first.status_code == 206
    assert first.headers["Content-Range"] == f"bytes 0-{free.mark - 1}/{len(content)}"
    assert await first.get_data() == content[: free.mark]
    seek = {**scene.listener.headers, "Range": f"bytes={free.mark}-"}
    refused = await scene.client.get(scene.url(session), headers=seek)
    assert refused.status_code == 402
    assert "balance is too low" in await refused.get_data(as_text=True)
    assert await scene.plays() == 0
    assert await scene.balance() == 0
    await ledger_sums_to_zero(resources_of(scene.app))


async def test_a_ranged_stream_stops_before_the_mark_and_the_rest_charges(scene: Scene) -> None:
    """What a browser does: ``bytes=0-``, then (after the short answer) the rest."""
    _file, content = await scene.file()
    free = free_part(timeline_of_bytes(content))
    before = await scene.balance()
    session = await scene.open()
    ranged = {**scene.listener.headers, "Range": "bytes=0-"}
    first = await scene.client.get(scene.url(session), headers=ranged)
    assert await first.get_data() == content[: free.mark]
    assert await scene.balance() == before  # the free part is free
    assert scene.clock.waited >= 45 - 0.5  # and it took listening time
    rest = {**scene.listener.headers, "Range": f"bytes={free.mark}-"}
    second = await scene.client.get(scene.url(session), headers=rest)
    assert second.status_code == 206
    assert await second.get_data() == content[free.mark :]
    assert await scene.balance() == before - 2


async def test_the_ogg_tail_is_free_and_heads_cost_nothing(scene: Scene) -> None:
    """Browsers read an Ogg file's last page for its duration before they play: free.
    A HEAD gives no audio: free."""
    _file, content = await scene.file("opus")
    before = await scene.balance()
    session = await scene.open()
    tail = {**scene.listener.headers, "Range": f"bytes={len(content) - 65536}-"}
    answer = await scene.client.get(scene.url(session, "opus"), headers=tail)
    assert answer.status_code == 206
    assert await answer.get_data() == content[-65536:]
    head = await scene.client.head(scene.url(session, "opus"), headers=scene.listener.headers)
    assert head.status_code == 200
    assert await head.get_data() == b""
    assert await scene.balance() == before
    # the same request on the MP3 rendition is a seek past the free part
    _file, mp3 = await scene.file("mp3")
    seek = {**scene.listener.headers, "Range": f"bytes={len(mp3) - 65536}-"}
    assert (await scene.client.get(scene.url(session), headers=seek)).status_code == 206
    assert await scene.balance() == before - 2


async def test_concurrent_requests_of_one_session_charge_once(scene: Scene) -> None:
    _file, content = await scene.file()
    free = free_part(timeline_of_bytes(content))
    before = await scene.balance()
    session = await scene.open()
    ranges = [f"bytes={free.mark + step * 997}-" for step in range(12)] + ["bytes=0-"] * 4
    answers = await asyncio.gather(
        *(
            scene.client.get(scene.url(session), headers={**scene.listener.headers, "Range": r})
            for r in ranges
        )
    )
    assert {answer.status_code for answer in answers} <= {200, 206}
    assert await scene.balance() == before - 2
    async with resources_of(scene.app).sessionmaker() as db:
        charged = await db.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.reference == f"play:{session}")
        )
    assert charged == 1
    assert await scene.plays() == 1


def timeline_of_bytes(content: bytes) -> Timeline:
    return timeline_of(content, "audio/mpeg" if content[:4] != b"OggS" else "audio/ogg")
