"""Stream-to-own through the Subsonic API (``stream``, ``download``, ``scrobble``), in
process on both databases with real audio: the same rule as the web player, one charge
per listening however an app re-requests, seeks or opens a track twice, the preview for
a thin wallet, downloads only of what the listener owns, scrobbles that claim only once
enough has been heard, and never a byte past the free part without a charge.

The pacing of the free part runs on the app's clock, which these tests move on as soon as
it is asked to wait (``FastClock``, as tests/test_stream_gate.py does); the time a
listening takes on the wall clock (what the play sessions' starts are compared with) is
played by moving the sessions' start back.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from models import ledger
from models.base import utcnow
from models.catalogue import Artist, FileRole, MediaFile, Track
from models.federation import RemoteActor
from models.ledger import AccountKind, LedgerTransaction
from models.plays import ListenerTrack, Play, PlaySession
from models.remote_plays import RemotePlay, RemotePlaySession, RemoteTrack
from models.stream_gate import FreePart, free_part
from models.tokens import AccessToken, new_token, token_digest
from models.users import Role
from server.services import plays
from server.services.media.gated import StreamCut
from server.services.media.storage import LocalStorage
from server.services.media.timeline import timeline_of
from server.services.money import grant_starter_balance, issue_vouchers, redeem_voucher
from server.services.origins import origins
from server.services.subsonic.playing import (
    Rendition,
    continues,
    download_refusal,
    listening,
    wants_mp3,
)
from server.services.subsonic.songs import preview_reason
from server.web.current import resources_of
from tests import test_money_races as races
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, make_account, run_worker, upload
from tests.money_invariants import check_money_invariants
from tests.test_money_races import albums, site  # noqa: F401 (the race's instance)
from tests.test_stream_gate import FastClock

TRACK_SECONDS = 56
CURVE = [2 << n for n in range(9)]  # 2, 4 … 512


class Scene:
    def __init__(self, app: Quart, client: Client, paid: int, free: int, artist: Account,
                 listener: Account) -> None:  # fmt: skip
        self.app, self.client = app, client
        self.paid, self.free = paid, free
        self.artist, self.listener = artist, listener
        self.clock = FastClock()
        resources_of(app).clock = self.clock

    async def rest(
        self, method: str, account: Account | None = None, *, params: Sequence[tuple[str, str]]
        = (), headers: dict[str, str] | None = None,
    ) -> Any:  # fmt: skip
        who = account or self.listener
        query = urlencode([("apiKey", who.token), ("f", "json"), ("c", "test"), *params])
        return await self.client.get(f"/rest/{method}?{query}", headers=headers or {})

    async def stream(self, account: Account | None = None, *, track: int | None = None,
                     range_: str | None = None, **params: str) -> Any:  # fmt: skip
        track_id = self.paid if track is None else track
        return await self.rest(
            "stream", account, params=[("id", f"tr-{track_id}"), *params.items()],
            headers={"Range": range_} if range_ else None,
        )  # fmt: skip

    async def scrobble(self, submission: bool = True, account: Account | None = None) -> Any:
        flag = "true" if submission else "false"
        params = [("id", f"tr-{self.paid}"), ("submission", flag)]
        answer = await self.rest("scrobble", account, params=params)
        assert (await answer.get_json())["subsonic-response"]["status"] == "ok"
        return answer

    async def file(self, role: FileRole, track: int | None = None) -> bytes:
        async with resources_of(self.app).sessionmaker() as session:
            file = await session.scalar(
                select(MediaFile).where(MediaFile.track_id == (track or self.paid),
                                        MediaFile.role == role)
            )  # fmt: skip
        assert file is not None
        return (resources_of(self.app).settings.media_dir / file.storage_key).read_bytes()

    async def balance(self, key: str | None = None) -> int:
        async with resources_of(self.app).sessionmaker() as session:
            return await ledger.balance(session, key or ledger.wallet_key(self.listener.user_id))

    async def count(self, model: type, account: Account | None = None) -> int:
        who = account or self.listener
        async with resources_of(self.app).sessionmaker() as session:
            return (
                await session.scalar(
                    select(func.count()).select_from(model).where(model.user_id == who.user_id)  # type: ignore[attr-defined]
                )
                or 0
            )

    async def age_sessions(self, seconds: float = TRACK_SECONDS + 60) -> None:
        """The wall clock moves on as a listening takes its time."""
        async with resources_of(self.app).sessionmaker() as session:
            for row in await session.scalars(select(PlaySession)):
                row.started_at -= timedelta(seconds=seconds)
            await session.commit()

    async def invariants(self) -> None:
        resources = resources_of(self.app)
        async with resources.sessionmaker() as session:
            await check_money_invariants(session, resources.settings.money.artist_share_bp)


async def give(app: Quart, account: Account, tokens: int) -> None:
    async with resources_of(app).sessionmaker() as session:
        [code] = await issue_vouchers(session, tokens, 1, None)
        await redeem_voucher(session, account.user_id, code)


@pytest.fixture
async def scene(app: Quart, client: Client, tmp_path: Path) -> Scene:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    long = make_audio(tmp_path / "long.flac", "flac", seconds=TRACK_SECONDS,
                      tags={"title": "Long Tone"})  # fmt: skip
    short = make_audio(tmp_path / "free.flac", "flac", seconds=3, frequency=550,
                       tags={"title": "Free Tone"})  # fmt: skip
    paid = await (await upload(client, artist, long, query="?publish=1")).get_json()
    free = await (await upload(client, artist, short, query="?publish=1&free=1")).get_json()
    await run_worker(app)
    listener = await make_account(app, "lina", Role.LISTENER)
    await give(app, listener, 1100)
    return Scene(app, client, int(paid["track"]["id"]), int(free["track"]["id"]), artist,
                 listener)  # fmt: skip


async def audio_of(answer: Any) -> bytes:
    body = await answer.get_data()
    assert answer.status_code in (200, 206), body[:300]
    assert answer.content_type.startswith("audio/"), answer.content_type
    return bytes(body)


def mp3_free_part(content: bytes) -> FreePart:
    return free_part(timeline_of(content, "audio/mpeg"))


async def test_free_owned_and_own_tracks_stream_in_full(scene: Scene) -> None:
    mp3 = await scene.file(FileRole.STREAM_MP3)
    # the artist's own track, a free track, and (once bought) an owned one: the whole
    # file at once, nothing charged, nothing paced
    assert await audio_of(await scene.stream(scene.artist)) == mp3
    free_mp3 = await scene.file(FileRole.STREAM_MP3, scene.free)
    assert await audio_of(await scene.stream(track=scene.free)) == free_mp3
    bought = await scene.client.post(f"/api/v1/tracks/{scene.paid}/buy",
                                     headers=scene.listener.headers)  # fmt: skip
    assert bought.status_code == 200
    before = await scene.balance()
    assert await audio_of(await scene.stream()) == mp3
    assert await audio_of(await scene.stream(range_="bytes=1000-")) == mp3[1000:]
    assert await scene.balance() == before == 1100 - 1022
    assert scene.clock.waited == 0
    assert await scene.count(Play) == 0
    await scene.invariants()


async def test_a_paid_stream_gives_the_free_part_then_charges_once(scene: Scene) -> None:
    mp3 = await scene.file(FileRole.STREAM_MP3)
    async with resources_of(scene.app).sessionmaker() as session:
        artist_id = await session.scalar(select(Artist.id).where(Artist.name == "aurora"))
    artist_key = ledger.artist_key(int(artist_id or 0))
    answer = await scene.stream()
    assert answer.headers["Content-Length"] == str(len(mp3))
    assert answer.headers["Cache-Control"] == "private, no-store"
    assert await audio_of(answer) == mp3
    # the free part took listening time; past it the play was charged, once
    assert scene.clock.waited >= 45 - 0.5
    assert await scene.balance() == 1100 - 2
    assert (await scene.balance(artist_key), await scene.balance("instance")) == (1, 1)
    assert await scene.count(Play) == 1
    # the app continues or seeks (Range), or asks for the start again mid-listening: the
    # same listening, nothing more to pay
    waited = scene.clock.waited
    assert await audio_of(await scene.stream(range_="bytes=5000-")) == mp3[5000:]
    assert await audio_of(await scene.stream(range_="bytes=0-")) == mp3
    assert await audio_of(await scene.stream()) == mp3
    assert scene.clock.waited == waited
    assert (await scene.balance(), await scene.count(Play)) == (1100 - 2, 1)
    assert await scene.count(PlaySession) == 1
    # a new listening, from byte 0 once the last one has had its time: the next play
    await scene.age_sessions()
    assert await audio_of(await scene.stream()) == mp3
    assert (await scene.balance(), await scene.count(Play)) == (1100 - 2 - 4, 2)
    await scene.invariants()


async def test_concurrent_opens_and_range_continuations_charge_once(scene: Scene) -> None:
    mp3 = await scene.file(FileRole.STREAM_MP3)
    free = mp3_free_part(mp3)
    # an app opens the track twice at once and prefetches from several offsets
    ranges = [None, "bytes=0-", "bytes=0-1", None] + [
        f"bytes={free.mark + step * 1999}-" for step in range(8)
    ]
    answers = await asyncio.gather(*(scene.stream(range_=r) for r in ranges))
    for answer, asked in zip(answers, ranges, strict=True):
        body = await audio_of(answer)
        start = int(asked.split("=")[1].split("-")[0]) if asked else 0
        assert body == mp3[start : start + len(body)]
    assert await scene.count(PlaySession) == 1, "one listening, one session"
    assert (await scene.balance(), await scene.count(Play)) == (1100 - 2, 1)
    await scene.invariants()


async def test_ten_listenings_own_the_track_and_the_eleventh_is_free(scene: Scene) -> None:
    mp3 = await scene.file(FileRole.STREAM_MP3)
    for number in range(10):
        assert await audio_of(await scene.stream()) == mp3
        await scene.age_sessions()
        await scene.scrobble()  # the app's claim too: never a second charge
        paid = min(number + 1, 9)
        assert await scene.balance() == 1100 - sum(CURVE[:paid]), number
    assert await scene.balance() == 1100 - 1022
    async with resources_of(scene.app).sessionmaker() as session:
        state = await session.get(ListenerTrack, (scene.listener.user_id, scene.paid))
        assert state is not None and state.owned_at is not None and state.paid_plays == 9
        tokens = list(await session.scalars(select(Play.tokens).order_by(Play.id)))
    assert tokens == [*CURVE, 0]  # the tenth, owned, is a free play (claimed by its scrobble)
    waited = scene.clock.waited
    assert await audio_of(await scene.stream()) == mp3  # owned: at once, for nothing
    assert scene.clock.waited == waited
    assert await scene.balance() == 1100 - 1022
    await scene.invariants()


async def test_a_thin_wallet_gets_the_preview_and_no_charge(scene: Scene, app: Quart) -> None:
    thin = await make_account(app, "omar", Role.LISTENER)
    await give(app, thin, 1)
    preview = await scene.file(FileRole.PREVIEW_MP3)
    mp3 = await scene.file(FileRole.STREAM_MP3)
    answer = await scene.stream(thin)
    assert answer.status_code == 200 and answer.content_type == "audio/mpeg"
    assert await audio_of(answer) == preview != mp3[: len(preview)]
    # a player's probe and its continuation: ranges of the same preview
    probe = await scene.stream(thin, range_="bytes=0-1")
    assert probe.status_code == 206
    assert probe.headers["Content-Range"] == f"bytes 0-1/{len(preview)}"
    assert await audio_of(await scene.stream(thin, range_="bytes=100-")) == preview[100:]
    assert (await scene.count(PlaySession, thin), await scene.count(Play, thin)) == (0, 0)
    async with resources_of(app).sessionmaker() as session:
        assert await ledger.balance(session, ledger.wallet_key(thin.user_id)) == 1


async def test_download_only_what_the_listener_owns(scene: Scene) -> None:
    answer = await scene.rest("download", params=[("id", f"tr-{scene.paid}")])
    error = (await answer.get_json())["subsonic-response"]["error"]
    assert error["code"] == 50
    assert "own this track first: 1022 tokens" in error["message"]
    free_mp3 = await scene.file(FileRole.STREAM_MP3, scene.free)
    answer = await scene.rest("download", params=[("id", f"tr-{scene.free}")])
    assert await audio_of(answer) == free_mp3
    assert answer.headers["Content-Disposition"] == (
        "attachment; filename=\"Free Tone.mp3\"; filename*=UTF-8''Free%20Tone.mp3"
    )
    bought = await scene.client.post(f"/api/v1/tracks/{scene.paid}/buy",
                                     headers=scene.listener.headers)  # fmt: skip
    assert bought.status_code == 200
    mp3 = await scene.file(FileRole.STREAM_MP3)
    answer = await scene.rest("download", params=[("id", f"tr-{scene.paid}")])
    assert await audio_of(answer) == mp3  # the best we have: MP3 at 192k over Opus at 128k
    assert await scene.balance() == 1100 - 1022
    assert await scene.count(PlaySession) == 0  # downloads open no play


async def test_scrobble_claims_only_after_the_threshold_and_once(scene: Scene) -> None:
    nothing = await scene.scrobble()  # no session yet: nothing to claim, and ok
    assert (await nothing.get_json())["subsonic-response"]["status"] == "ok"
    assert await scene.count(PlaySession) == 0
    await audio_of(await scene.stream(range_="bytes=0-99"))  # the listening starts
    await scene.scrobble()  # too early by the server's clock: nothing charged
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)
    await scene.age_sessions(46)
    await scene.scrobble(submission=False)  # "now playing" charges nothing
    assert await scene.balance() == 1100
    for _ in range(3):
        await scene.scrobble()
    assert (await scene.balance(), await scene.count(Play)) == (1100 - 2, 1)
    # the stream of the same listening is paid: the rest comes at once
    waited = scene.clock.waited
    mp3 = await scene.file(FileRole.STREAM_MP3)
    assert await audio_of(await scene.stream(range_="bytes=100-")) == mp3[100:]
    assert scene.clock.waited == waited
    assert await scene.balance() == 1100 - 2
    await scene.invariants()


async def test_a_late_scrobble_charges_nothing(scene: Scene) -> None:
    # Found in review: apps queue scrobbles while offline and send them in a batch; one
    # that comes long after a listening that was skipped early must not charge it.
    await audio_of(await scene.stream(range_="bytes=0-99"))  # ten seconds, then a skip
    await scene.age_sessions(TRACK_SECONDS + 3 * 60)  # the app comes back online
    await scene.scrobble()
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)
    await scene.invariants()


async def test_a_scrobble_that_charges_needs_the_play_scope(scene: Scene, app: Quart) -> None:
    # Found in review: a token for syncing stars (write, not play) could charge a play.
    await audio_of(await scene.stream(range_="bytes=0-99"))
    await scene.age_sessions(46)
    token = new_token()
    async with resources_of(app).sessionmaker() as session:
        session.add(AccessToken(user_id=scene.listener.user_id, digest=token_digest(token),
                                scopes="read write"))  # fmt: skip
        await session.commit()
    syncer = Account(scene.listener.user_id, token)
    params = [("id", f"tr-{scene.paid}"), ("submission", "true")]
    refused = await (await scene.rest("scrobble", syncer, params=params)).get_json()
    assert refused["subsonic-response"]["error"]["code"] == 50
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)
    # "now playing" changes no money: write is enough for it
    await scene.scrobble(submission=False, account=syncer)
    assert await scene.balance() == 1100


async def test_another_listeners_credentials_never_reach_a_session(
    scene: Scene, app: Quart
) -> None:
    mp3 = await scene.file(FileRole.STREAM_MP3)
    free = mp3_free_part(mp3)
    await audio_of(await scene.stream(range_="bytes=0-99"))  # lina's listening, uncharged
    await scene.age_sessions(46)
    omar = await make_account(app, "omar", Role.LISTENER)
    # omar's scrobble finds no session of his: lina's stays unclaimed
    await scene.scrobble(account=omar)
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)
    # his stream, even a seek past the free part, is never lina's session: with no
    # balance he gets the preview, and lina pays nothing
    preview = await scene.file(FileRole.PREVIEW_MP3)
    answer = await scene.stream(omar, range_=f"bytes={free.mark}-")
    if free.mark < len(preview):
        assert await audio_of(answer) == preview[free.mark :]
    else:  # the preview is shorter than the free part: nothing there
        assert answer.status_code == 416
        assert answer.headers["Content-Range"] == f"bytes */{len(preview)}"
    assert await audio_of(await scene.stream(omar)) == preview
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)
    # with a balance of his own, his seek charges him, in a session of his own
    await give(app, omar, 10)
    assert (
        await audio_of(await scene.stream(omar, range_=f"bytes={free.mark}-")) == mp3[free.mark :]
    )
    async with resources_of(app).sessionmaker() as session:
        assert await ledger.balance(session, ledger.wallet_key(omar.user_id)) == 8
        owners = list(await session.scalars(select(PlaySession.user_id).order_by(PlaySession.id)))
    assert owners == [scene.listener.user_id, omar.user_id]
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)
    # and an apiKey without the play scope streams nothing
    reader = await make_account(app, "rhea", Role.LISTENER, scopes="read")
    refused = await (await scene.stream(reader)).get_json()
    assert refused["subsonic-response"]["error"]["code"] == 50
    await scene.invariants()


async def test_nothing_past_the_free_part_without_a_charge(scene: Scene) -> None:
    """The session opened while the balance covered the play; the wallet is emptied
    before the mark. A client reading the whole file as fast as it can and one that asks
    for many ranges at random offsets never get a byte at or past the free part's mark;
    a new request from byte 0 gets the preview."""
    mp3 = await scene.file(FileRole.STREAM_MP3)
    free = mp3_free_part(mp3)
    assert 0 < free.mark < len(mp3)
    fast = bytearray()
    query = urlencode([("apiKey", scene.listener.token), ("id", f"tr-{scene.paid}")])

    async def read_fast() -> None:
        async with scene.client.request(f"/rest/stream?{query}") as http:
            await http.send_complete()
            fast.extend(await http.receive())
            await empty_wallet(scene)
            while len(fast) < free.mark:
                fast.extend(await http.receive())

    with pytest.raises(StreamCut):  # the connection is cut short of its Content-Length
        await read_fast()
    assert bytes(fast) == mp3[: free.mark]
    assert (await scene.count(Play), await scene.balance()) == (0, 0)
    seed = random.randrange(10**6)  # noqa: S311 (offsets, not a secret)
    print("seed", seed)
    chance = random.Random(seed)  # noqa: S311
    received: set[int] = set()
    for _ in range(40):
        start = chance.randrange(1, len(mp3))
        end = chance.choice([None, start + chance.randrange(1, 200_000)])
        answer = await scene.stream(range_=f"bytes={start}-{'' if end is None else end}")
        if answer.content_type.startswith("audio/"):
            body = await answer.get_data()
            assert answer.status_code == 206
            assert body == mp3[start : start + len(body)]
            received.update(range(start, start + len(body)))
        else:  # past the mark: the charge is refused, a Subsonic error and no audio
            error = (await answer.get_json())["subsonic-response"]["error"]
            assert start >= free.mark and "balance is too low" in error["message"]
    assert received and max(received) < free.mark
    preview = await scene.file(FileRole.PREVIEW_MP3)
    assert await audio_of(await scene.stream()) == preview
    assert (await scene.count(Play), await scene.balance()) == (0, 0)
    await scene.invariants()


async def empty_wallet(scene: Scene) -> None:
    """Spend the listener's balance elsewhere (a balanced ledger transaction)."""
    async with resources_of(scene.app).sessionmaker() as session:
        wallet = await ledger.account(session, ledger.wallet_key(scene.listener.user_id),
                                      AccountKind.WALLET, scene.listener.user_id)  # fmt: skip
        grants = await ledger.account(session, "grants", AccountKind.GRANTS)
        tokens = wallet.balance
        await ledger.post(session, "test", "spent", [(wallet, -tokens), (grants, tokens)])
        await session.commit()


def test_which_rendition_a_request_gets() -> None:
    both = [Rendition(FileRole.STREAM_MP3, 192_000), Rendition(FileRole.STREAM_OPUS, 128_000)]
    assert wants_mp3(both, None, None) and wants_mp3(both, "mp3", 64)
    assert not wants_mp3(both, "opus", None) and not wants_mp3(both, "ogg", None)
    assert wants_mp3(both, "raw", None) and wants_mp3(both, "flac", None)
    assert not wants_mp3(both, None, 160)  # only Opus fits 160 kbps
    assert wants_mp3(both, None, 320) and wants_mp3(both, None, 0)
    assert wants_mp3(both, None, 96)  # nothing fits: the default
    assert wants_mp3([], "opus", None) is False and wants_mp3([], None, None)


def test_which_requests_continue_a_listening() -> None:
    assert not continues(None) and not continues("bytes=0-") and not continues("bytes=0-1")
    assert continues("bytes=1-") and continues("bytes=5000-6000") and continues("bytes=-500")
    assert not continues("items=5-") and not continues("bytes=abc-")


def test_the_reasons_a_listener_is_given() -> None:
    short = plays.Quote(price=8, paid_plays=2, plays_until_owned=7, owned=False, free=False,
                        balance=3)  # fmt: skip
    assert preview_reason(short.price, short.balance).startswith(
        "Preview only: the next play costs 8 tokens and your wallet holds 3."
    )
    assert download_refusal(short) == (
        "own this track first: 1016 tokens buy it now, or 7 more paid plays make it yours"
    )
    assert download_refusal(plays.Quote(0, 9, 0, True, False, 0)) is None


async def test_a_partners_track_plays_through_the_same_calls(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    """A partner's track (cached here): its stream is gated and charged like ours, in its
    own tables with a Listen for the partner; a thin wallet is sent to its preview."""
    resources = resources_of(app)
    audio = make_audio(tmp_path / "tone.mp3", "mp3", seconds=3).read_bytes()
    digest = hashlib.sha256(audio).hexdigest()
    storage = LocalStorage(resources.settings.media_dir)
    temporary = storage.temporary_file()
    temporary.write_bytes(audio)
    storage.put(temporary, f"remote/{digest[:2]}/{digest}")
    async with resources.sessionmaker() as session:
        payee = RemoteActor(uri="https://partner.example/actor", domain="partner.example",
                            type="Application", inbox="https://partner.example/inbox",
                            preferred_username="partner.example")  # fmt: skip
        session.add(payee)
        await session.flush()
        remote = RemoteTrack(
            id=await plays.new_track_id(session), uri="https://partner.example/tracks/9",
            payee_id=payee.id, artist_uri="https://partner.example/artists/tide", title="Ebb",
            duration_ms=3000, release_uri="https://partner.example/releases/3",
            release_title="Tide Tables", stream_url="https://partner.example/tracks/9/stream",
            preview_url="https://partner.example/tracks/9/preview",
            cache_key=f"remote/{digest[:2]}/{digest}", cache_bytes=len(audio),
            cache_sha256=digest, cache_type="audio/mpeg", cached_at=utcnow(),
        )  # fmt: skip
        session.add(remote)
        await session.commit()
        track_id = remote.id
    listener = await make_account(app, "lena", Role.LISTENER)
    await give(app, listener, 10)
    thin = await make_account(app, "omar", Role.LISTENER)
    clock = FastClock()
    resources.clock = clock

    async def stream(who: Account, range_: str | None = None) -> Any:
        query = urlencode([("apiKey", who.token), ("id", f"tr-{track_id}"), ("f", "json")])
        return await client.get(f"/rest/stream?{query}",
                                headers={"Range": range_} if range_ else {})  # fmt: skip

    assert await audio_of(await stream(listener)) == audio
    assert await audio_of(await stream(listener, "bytes=100-")) == audio[100:]
    assert clock.waited > 2  # the free part at listening speed
    preview = await stream(thin)
    assert preview.status_code == 302
    assert preview.headers["Location"] == "https://partner.example/tracks/9/preview"
    async with resources.sessionmaker() as session:
        assert await ledger.balance(session, ledger.wallet_key(listener.user_id)) == 8
        sessions = list(await session.scalars(select(RemotePlaySession.user_id)))
        played = list(await session.scalars(select(RemotePlay.tokens)))
        kinds = select(LedgerTransaction.kind).where(LedgerTransaction.kind == "remote-play")
        postings = list(await session.scalars(kinds))
        assert (sessions, played, postings) == ([listener.user_id], [2], ["remote-play"])
        await check_money_invariants(session, resources.settings.money.artist_share_bp)
    refused = await client.get(f"/rest/download?f=json&apiKey={listener.token}&id=tr-{track_id}")
    assert (await refused.get_json())["subsonic-response"]["error"]["code"] == 50


# -- the race, over real HTTP against real server processes -----------------------------------

RACE_ROUNDS = 11


async def _race_stream(http: httpx.AsyncClient, url: str, range_: str | None) -> tuple[str, bytes]:
    """One app's stream: ``audio`` (the body came whole) or ``cut`` (closed at the free
    part: the play could not be charged), with the bytes received."""
    received = bytearray()
    try:
        async with http.stream("GET", url, headers={"Range": range_} if range_ else {}) as got:
            assert got.status_code in (200, 206), (got.status_code, await got.aread())
            assert got.headers["content-type"].startswith("audio/"), got.headers
            async for chunk in got.aiter_raw():
                received.extend(chunk)
    except httpx.RemoteProtocolError:
        return "cut", bytes(received)
    return "audio", bytes(received)


@pytest.mark.slow
async def test_fifty_apps_streaming_and_scrobbling_at_once(site: races.Site) -> None:  # noqa: F811
    """Rounds of 50 Subsonic calls at once (two server processes on PostgreSQL), streams
    from byte 0 and continued with Range and scrobbles, by one listener who can pay for
    every play, one who can pay for three and five who can pay for four, of one paid
    track: every answer is audio (the whole track, its preview, or a stream cut at the
    free part) or an ok scrobble; afterwards the ledger holds every money invariant, each
    wallet moved exactly the curve's prices of its paid plays, and the first listener owns
    the track after exactly nine."""
    track = site.tracks[3]
    artist = await _artist_of(site, track)
    rich, thin, *several = await races.add_listeners(site, 7, 0)
    start = {rich[0]: 1022 + 50, thin[0]: 14, **{uid: 30 for uid, _h in several}}
    async with races.database_of(site.instance) as session:
        for uid, tokens in start.items():
            await grant_starter_balance(session, uid, tokens)
        await session.commit()
    async with races.http_client() as http:
        full = (await http.get(f"{site.base(0)}/tracks/{track}/stream?format=mp3",
                               headers=artist, follow_redirects=True)).content  # fmt: skip
        preview = (await http.get(f"{site.base(0)}/tracks/{track}/preview")).content
        mark = mp3_free_part(full).mark
        calls = [(rich, 30), (thin, 10), *((listener, 2) for listener in several)]
        outcomes: list[tuple[str, str | None, bytes]] = []
        for _round in range(RACE_ROUNDS):
            jobs = []
            client = 0
            for (_uid, headers), count in calls:
                key = headers["Authorization"].split(" ", 1)[1]
                for number in range(count):
                    client += 1
                    base = site.base(client)
                    query = urlencode([("apiKey", key), ("id", f"tr-{track}"), ("c", "race")])
                    if number % 6 == 5:
                        jobs.append(_race_scrobble(http, f"{base}/rest/scrobble?f=json&{query}"))
                        continue
                    range_ = "bytes=300-" if number % 6 == 4 else None
                    jobs.append(_tagged(range_, _race_stream(http, f"{base}/rest/stream?{query}",
                                                             range_)))  # fmt: skip
            outcomes += [o for o in await asyncio.gather(*jobs) if o is not None]
            await _listened(site)
    assert len(outcomes) >= 40 * RACE_ROUNDS
    assert any(range_ is None and body == preview for _k, range_, body in outcomes), "no preview"
    for kind, range_, body in outcomes:
        offset = int(range_.split("=")[1].rstrip("-")) if range_ else 0
        end = offset + len(body)
        if kind == "cut":  # nothing past the free part without a charge
            assert body == full[offset:end] and end <= mark
        elif body != preview[offset:]:
            # the whole rest (charged, or charged on the way), or a ranged answer that
            # stopped before the mark (a 206 shorter than asked: the play is not charged)
            assert body == full[offset:end], (kind, range_, len(body))
            assert end == len(full) or (range_ is not None and end == mark), (range_, end)
    async with races.database_of(site.instance) as session:
        await check_money_invariants(session)
        for uid, tokens in start.items():
            state = await session.get(ListenerTrack, (uid, track))
            paid = state.paid_plays if state else 0
            charged = await session.scalar(
                select(func.count()).where(Play.user_id == uid, Play.tokens > 0)
            )
            balance = await ledger.balance(session, ledger.wallet_key(uid))
            assert charged == paid and balance == tokens - sum(CURVE[:paid]) >= 0, uid
            if uid == rich[0]:
                assert paid == 9 and state is not None and state.owned_at is not None
                assert state.owned_via == "plays" and balance == 50
            else:
                assert state is None or state.owned_at is None
        assert (await session.get(ListenerTrack, (thin[0], track))).paid_plays == 3  # type: ignore[union-attr]


async def _tagged(range_: str | None, streaming: Any) -> tuple[str, str | None, bytes]:
    kind, body = await streaming
    return kind, range_, body


async def _race_scrobble(http: httpx.AsyncClient, url: str) -> None:
    answer = await http.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["subsonic-response"]["status"] == "ok", answer.text


async def _listened(where: races.Site) -> None:
    """The wall clock moves on between rounds: each round is a new listening."""
    async with races.database_of(where.instance) as session:
        for row in await session.scalars(select(PlaySession)):
            row.started_at -= timedelta(seconds=60)
        await session.commit()


async def _artist_of(where: races.Site, track: int) -> dict[str, str]:
    """The artist who owns the track, with an apiKey of their own: they hear it in full."""
    async with races.database_of(where.instance) as session:
        owner = await session.scalar(
            select(Artist.owner_id).join(Track, Track.artist_id == Artist.id)
            .where(Track.id == track)
        )  # fmt: skip
        token = new_token()
        session.add(AccessToken(user_id=owner, digest=token_digest(token), scopes="read"))
        await session.commit()
    return {"Authorization": f"Bearer {token}"}


async def test_bad_input_is_a_subsonic_error_and_changes_nothing(scene: Scene) -> None:
    cases: list[tuple[str, list[tuple[str, str]], int]] = [
        ("stream", [], 10),
        ("stream", [("id", "ar-1")], 70),
        ("stream", [("id", "tr-0")], 70),
        ("stream", [("id", "tr-999999")], 70),
        ("stream", [("id", f"tr-{scene.paid}"), ("maxBitRate", "fast")], 0),
        ("stream", [("id", f"tr-{scene.paid}"), ("maxBitRate", "-5")], 0),
        ("stream", [("id", f"tr-{scene.paid}"), ("estimateContentLength", "maybe")], 0),
        ("download", [("id", "al-1")], 70),
        ("scrobble", [], 10),
        ("scrobble", [("id", "tr-999999")], 70),
        ("scrobble", [("id", f"tr-{scene.paid}"), ("time", "yesterday")], 0),
        ("scrobble", [("id", f"tr-{scene.paid}"), ("submission", "perhaps")], 0),
        # found in review: each of these was a 500
        ("stream", [("id", "tr-99999999999999999999")], 70),
        ("scrobble", [("id", f"tr-{scene.paid}"), ("time", "²")], 0),
        ("stream", [("id", f"tr-{scene.paid}"), ("maxBitRate", "9" * 30)], 0),
    ]
    for method, params, code in cases:
        answer = await scene.rest(method, params=params)
        assert answer.status_code == 200, (method, params)
        body = (await answer.get_json())["subsonic-response"]
        assert (body["status"], body["error"]["code"]) == ("failed", code), (method, params, body)
    malformed = await scene.stream(range_="bytes=9999999999-")
    assert malformed.status_code == 416
    odd = await scene.stream(range_="bytes=²-")  # not a continuation, not a 500
    assert odd.status_code in (200, 206, 416), odd.status_code
    assert (await scene.balance(), await scene.count(Play)) == (1100, 0)


async def test_requests_of_one_listening_at_once_open_one_session(scene: Scene) -> None:
    """The decision itself, raced: requests from byte 0 at once, each in a transaction of
    its own that has begun before any decides, find or open one session between them (on
    SQLite the writing transactions take turns anyway: nothing to interleave there)."""
    resources = resources_of(scene.app)
    async with resources.read_sessionmaker() as session:
        track = await plays.find(session, origins(resources), scene.paid, None)
    postgres = resources.engine.dialect.name == "postgresql"
    count = 8 if postgres else 4
    begun = asyncio.Barrier(count if postgres else 1)

    async def decide() -> str | None:
        async with resources.sessionmaker() as session:
            await session.execute(select(1))  # its connection and transaction are open
            await begun.wait()
            return await listening(
                session, track, scene.listener.user_id, continuing=False, affordable=True,
                now=utcnow(), lifetime=timedelta(hours=2),
            )  # fmt: skip

    tokens = await asyncio.gather(*(decide() for _ in range(count)))
    assert len(set(tokens)) == 1 and None not in tokens
    assert await scene.count(PlaySession) == 1


async def test_a_time_offset_starts_at_the_frame_and_a_late_one_charges_first(
    scene: Scene, app: Quart
) -> None:
    """OpenSubsonic's transcodeOffset: ``timeOffset`` seconds in, the MP3 from the frame
    playing then; past the free part it is a seek, charged before any byte."""
    mp3 = await scene.file(FileRole.STREAM_MP3)
    timeline = timeline_of(mp3, "audio/mpeg")
    free = free_part(timeline)
    at_10, at_52 = timeline.offset_at(10_000), timeline.offset_at(52_000)
    assert 0 < at_10 < free.mark <= at_52
    own = await scene.stream(scene.artist, timeOffset="10")
    assert own.status_code == 200 and own.headers["Content-Length"] == str(len(mp3) - at_10)
    assert await audio_of(own) == mp3[at_10:]
    ranged = await scene.stream(scene.artist, timeOffset="10", range_="bytes=0-99")
    assert ranged.headers["Content-Range"] == f"bytes 0-99/{len(mp3) - at_10}"
    assert await audio_of(ranged) == mp3[at_10 : at_10 + 100]
    # a listener seeking past the free part: charged first, at once
    assert await audio_of(await scene.stream(timeOffset="52", format="opus")) == mp3[at_52:]
    assert (await scene.balance(), await scene.count(Play), scene.clock.waited) == (1098, 1, 0)
    # another starting inside it: the free part at listening speed, then the charge
    omar = await make_account(app, "omar", Role.LISTENER)
    await give(app, omar, 2)
    assert await audio_of(await scene.stream(omar, timeOffset="10")) == mp3[at_10:]
    assert scene.clock.waited >= 45 - 10 - 0.5
    async with resources_of(app).sessionmaker() as session:
        assert await ledger.balance(session, ledger.wallet_key(omar.user_id)) == 0
    await scene.invariants()
