"""One stream-to-own over every track here, local or a partner's (issue 13): one parser
for durations, one claim code, one API, one decision for the stream."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.parse import duration_ms, parse_note
from models import migrate
from models.base import utcnow
from models.catalogue import FileRole, MediaFile, Release, Track, TrackStatus, Visibility
from models.database import DatabaseOptions, create_engine, create_sessionmaker
from models.federation import RemoteActor
from models.ledger import LedgerTransaction
from models.plays import Play, PlaySession
from models.remote_plays import RemoteListenerTrack, RemotePlay, RemotePlaySession, RemoteTrack
from models.users import Role
from server.runtime.resources import Resources
from server.services import plays
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.services.media.access import may_stream
from server.services.media.storage import LocalStorage
from server.services.money import issue_vouchers, redeem_voucher
from server.services.origins import origins
from server.services.plays import new_track_id
from server.services.remote_plays import parse_release_tracks
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, make_account
from tests.money_invariants import check_money_invariants


def _partner_track(duration: Any) -> int:
    release = {
        "id": "https://music.example/releases/1", "type": "OrderedCollection", "name": "R",
        "orderedItems": [{"type": "Audio", "id": "https://music.example/tracks/1", "name": "T",
                          "attributedTo": "https://music.example/artists/a",
                          "duration": duration}],
    }  # fmt: skip
    [track] = parse_release_tracks(release)[2]
    return track.duration_ms


def _note(duration: Any) -> int | None:
    return parse_note(
        {
            "id": "https://music.example/notes/1",
            "type": "Audio",
            "attributedTo": "https://music.example/artists/a",
            "duration": duration,
        }
    ).duration_seconds


@pytest.mark.parametrize(
    ("duration", "milliseconds"),
    [
        ("PT3M21S", 201_000),
        ("P1DT2S", 86_402_000),  # a partner's track had 0 here: days were not read
        ("201", 201_000),  # and 0 here: nor numbers written as text
        ("PT2.6S", 2_600),
        (2.3, 2_300),  # not 2299, as float arithmetic made it
        (" PT1H ", 3_600_000),
        ("PT", None),
        ("P1Y", None),
        (-5, None),
        (True, None),
        (1e308, None),
    ],
)
def test_a_duration_reads_the_same_in_a_note_and_on_a_partners_track(
    duration: Any, milliseconds: int | None
) -> None:
    assert duration_ms(duration) == milliseconds
    assert _partner_track(duration) == (milliseconds or 0)
    seconds = _note(duration)
    assert (seconds is None) == (milliseconds is None)
    if milliseconds is not None:
        assert seconds == round(milliseconds / 1000)


# -- one id space ---------------------------------------------------------------------------


async def _local_track(session: AsyncSession, name: str) -> int:
    owner = await create_user(session, f"o{name}", "a long password", Role.ARTIST)
    artist = await create_artist(session, name, owner)
    release = Release(artist_id=artist.id, title="R", slug="r", visibility=Visibility.PUBLIC)
    session.add(release)
    await session.flush()
    track = Track(release_id=release.id, artist_id=artist.id, title="T", slug="t",
                  duration_ms=180_000, status=TrackStatus.READY)  # fmt: skip
    session.add(track)
    await session.flush()
    return track.id


def _payee(session: AsyncSession, host: str = "partner.example") -> RemoteActor:
    actor = RemoteActor(uri=f"https://{host}/actor", domain=host, type="Application",
                        inbox=f"https://{host}/inbox", preferred_username=host)  # fmt: skip
    session.add(actor)
    return actor


async def test_partner_tracks_known_before_get_ids_no_local_track_has(
    empty_database_url: str,
) -> None:
    """Before this release a partner's track was numbered on its own (remote track 1 and
    local track 1 both existed); the migration gives every partner's track an id from the
    tracks' sequence, and its counts, sessions and plays follow it."""
    url = empty_database_url
    await migrate.upgrade(url, "273c42ab2c42")
    engine = create_engine(DatabaseOptions(url=url))
    make = create_sessionmaker(engine)
    try:
        async with make() as session:
            local = await _local_track(session, "aurora")
            listener = await create_user(session, "lena", "a long password", Role.LISTENER)
            payee = _payee(session)
            await session.flush()
            remote = RemoteTrack(uri="https://partner.example/tracks/1", payee_id=payee.id,
                                 artist_uri="https://partner.example/artists/a", title="Ebb",
                                 release_uri="https://partner.example/releases/1",
                                 stream_url="https://partner.example/tracks/1/stream")  # fmt: skip
            session.add(remote)
            await session.flush()
            assert remote.id == local  # the two id spaces of before
            session.add(RemoteListenerTrack(user_id=listener.id, remote_track_id=remote.id,
                                            paid_plays=3))  # fmt: skip
            session.add(RemotePlaySession(token="t1", user_id=listener.id,
                                          remote_track_id=remote.id))  # fmt: skip
            session.add(RemotePlay(listen_uri="https://here.example/listens/1",
                                   user_id=listener.id, remote_track_id=remote.id,
                                   payee_id=payee.id, tokens=8, paid_number=3,
                                   listener="x"))  # fmt: skip
            await session.commit()
            old = remote.id
        await migrate.upgrade(url)
        async with make() as session:
            [moved] = (await session.scalars(select(RemoteTrack))).all()
            assert (moved.uri, moved.title) == ("https://partner.example/tracks/1", "Ebb")
            assert moved.id not in {local, old}
            for model in (RemoteListenerTrack, RemotePlaySession, RemotePlay):
                assert (await session.scalars(select(model.remote_track_id))).all() == [moved.id]
            assert (await session.get(RemoteListenerTrack, (listener.id, moved.id))).paid_plays == 3  # type: ignore[union-attr]
            # the next ids, local or a partner's, are new to both
            later_local = await _local_track(session, "boreal")
            later_remote = await new_track_id(session)
            await session.commit()
            assert len({local, moved.id, later_local, later_remote}) == 4
            assert later_local > moved.id and later_remote > later_local
    finally:
        await engine.dispose()


async def test_a_partners_track_never_gets_a_local_tracks_id(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        first = await new_track_id(session)  # before any local track: SQLite has no entry yet
        ids = [first]
        for name in ("aurora", "boreal"):
            ids.append(await _local_track(session, name))
            ids.append(await new_track_id(session))
        await session.commit()
    assert ids == sorted(ids) and len(set(ids)) == 5


# -- one API, one claim code, one decision for the stream -------------------------------------


@dataclass
class Two:
    """A local track and a partner's track known here, each with a short MP3 to stream,
    and a listener with 2044 tokens: enough to own both."""

    app: Quart
    client: Client
    local: int
    partner: int
    listener: Account
    other: Account

    @property
    def resources(self) -> Resources:
        return resources_of(self.app)

    def ids(self) -> list[tuple[int, str]]:
        return [(self.local, "local"), (self.partner, "partner")]

    async def heard(self, token: str) -> None:
        """Move the session's start into the past, whichever table it is in."""
        async with self.resources.sessionmaker() as session:
            for model in (PlaySession, RemotePlaySession):
                await session.execute(
                    update(model)
                    .where(model.token == token)
                    .values(started_at=utcnow() - timedelta(seconds=60))
                )
            await session.commit()


def _store(resources: Resources, content: bytes, key: str) -> None:
    storage = LocalStorage(resources.settings.media_dir)
    temporary = storage.temporary_file()
    temporary.write_bytes(content)
    storage.put(temporary, key)


@pytest.fixture
async def two(app: Quart, client: Client, tmp_path: Path) -> Two:
    resources = resources_of(app)
    audio = make_audio(tmp_path / "tone.mp3", "mp3", seconds=3).read_bytes()
    digest = hashlib.sha256(audio).hexdigest()
    _store(resources, audio, f"streams/{digest}.mp3")
    _store(resources, audio, f"remote/{digest[:2]}/{digest}")
    async with resources.sessionmaker() as session:
        local = await _local_track(session, "aurora")
        session.add(MediaFile(track_id=local, role=FileRole.STREAM_MP3, format="mp3",
                              storage_key=f"streams/{digest}.mp3", mime_type="audio/mpeg",
                              size_bytes=len(audio), sha256=digest))  # fmt: skip
        payee = _payee(session)
        await session.flush()
        partner = RemoteTrack(
            id=await new_track_id(session), uri="https://partner.example/tracks/9",
            payee_id=payee.id, artist_uri="https://partner.example/artists/tide", title="Ebb",
            duration_ms=180_000, release_uri="https://partner.example/releases/3",
            release_title="Tide Tables", stream_url="https://partner.example/tracks/9/stream",
            preview_url="https://partner.example/tracks/9/preview",
            cache_key=f"remote/{digest[:2]}/{digest}", cache_bytes=len(audio),
            cache_sha256=digest, cache_type="audio/mpeg", cached_at=utcnow(),
        )  # fmt: skip
        session.add(partner)
        await session.commit()
        partner_id = partner.id
    listener = await make_account(app, "lena", Role.LISTENER)
    other = await make_account(app, "omar", Role.LISTENER)
    async with resources.sessionmaker() as session:
        [code] = await issue_vouchers(session, 2044, 1, None)
        await redeem_voucher(session, listener.user_id, code)
    return Two(app, client, local, partner_id, listener, other)


async def test_a_local_and_a_partners_track_go_through_the_same_routes(two: Two) -> None:
    """/api/v1/tracks/{id}, its price, plays and buy, and /api/v1/plays/{session}/claim,
    for a track of this instance and for a partner's: the same answers, the ledger as it
    always was for each (kinds, references), and every money invariant."""
    client, lena = two.client, two.listener.headers
    base = two.resources.settings.instance.base_url
    assert two.local != two.partner
    tokens = {}
    for track_id, kind in two.ids():
        shown = await client.get(f"/api/v1/tracks/{track_id}", headers=lena)
        body = await shown.get_json()
        assert shown.status_code == 200, body
        assert body["id"] == track_id and body["api_url"] == f"{base}/api/v1/tracks/{track_id}"
        assert body["origin"]["kind"] == kind
        assert body["listener"] == {"next_play_price": 2, "plays_until_owned": 9, "owned": False}
        opened = await client.post(f"/api/v1/tracks/{track_id}/plays", headers=lena)
        play = await opened.get_json()
        assert opened.status_code == 201, play
        token = tokens[kind] = play["session"]
        assert play["mode"] == "full"
        assert play["stream_url"] == f"{base}/tracks/{track_id}/stream?session={token}"
        assert play["claim_url"] == f"{base}/api/v1/plays/{token}/claim"
        claim_url = f"/api/v1/plays/{token}/claim"
        assert (await client.post(claim_url, headers=lena)).status_code == 425
        assert (await client.post(claim_url, headers=two.other.headers)).status_code == 404
        await two.heard(token)
        for _ in range(2):  # the same claim twice is one play
            claimed = await client.post(claim_url, headers=lena)
            assert claimed.status_code == 200, await claimed.get_data()
            balance = 2044 - 2 - (1022 if kind == "partner" else 0)
            assert await claimed.get_json() == {"outcome": "charged", "tokens": 2,
                                                "paid_number": 1, "owned": False,
                                                "balance": balance}  # fmt: skip
        price = await (
            await client.get(f"/api/v1/tracks/{track_id}/price", headers=lena)
        ).get_json()
        assert (price["price"], price["paid_plays"], price["owned"]) == (4, 1, False)
        bought = await client.post(f"/api/v1/tracks/{track_id}/buy", headers=lena)
        assert bought.status_code == 200, await bought.get_data()
        assert (await bought.get_json())["tokens"] == 1020
        assert (
            await client.post(f"/api/v1/tracks/{track_id}/buy", headers=lena)
        ).status_code == 409
        shown = await (await client.get(f"/api/v1/tracks/{track_id}", headers=lena)).get_json()
        assert shown["listener"]["owned"] is True

    partner_origin = (await (await client.get(f"/api/v1/tracks/{two.partner}")).get_json())[
        "origin"
    ]
    assert partner_origin == {"kind": "partner", "host": "partner.example",
                              "actor": "https://partner.example/actor"}  # fmt: skip
    local_origin = (await (await client.get(f"/api/v1/tracks/{two.local}")).get_json())["origin"]
    assert local_origin == {"kind": "local", "host": base.split("://", 1)[1],
                            "actor": f"{base}/actor"}  # fmt: skip
    wallet = await (await client.get("/api/v1/me/wallet", headers=lena)).get_json()
    assert wallet["owned_track_ids"] == sorted([two.local, two.partner])
    uid = two.listener.user_id
    async with two.resources.sessionmaker() as session:
        moved = set(
            (
                await session.execute(
                    select(LedgerTransaction.kind, LedgerTransaction.reference).where(
                        LedgerTransaction.kind.in_(["play", "buy", "remote-play"])
                    )
                )
            ).all()
        )
        assert moved == {
            ("play", f"play:{tokens['local']}"),
            ("buy", f"buy:{uid}:{two.local}"),
            ("remote-play", f"remote-play:{tokens['partner']}"),
            ("remote-play", f"remote-buy:{uid}:{two.partner}"),
        }
        assert (await session.scalars(select(Play.tokens))).all() == [2]
        # the purchase is reported to the partner as the remaining paid plays
        reported = (await session.execute(select(RemotePlay.paid_number, RemotePlay.tokens))).all()
        assert sorted(reported) == [(n, 1 << n) for n in range(1, 10)]
        await check_money_invariants(session, two.resources.settings.money.artist_share_bp)


async def test_one_claim_code_for_both_origins(two: Two, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim route and the stream's charge run one function for every origin; the
    origins only say where their rows are and what they record."""
    calls: list[str] = []
    real = plays.charge_session

    async def spy(session: AsyncSession, here: Any, token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return await real(session, here, token, *args, **kwargs)

    monkeypatch.setattr(plays, "charge_session", spy)
    adapter = two.app.url_map.bind("localhost")
    tokens = []
    for track_id, _kind in two.ids():
        play = await (
            await two.client.post(f"/api/v1/tracks/{track_id}/plays", headers=two.listener.headers)
        ).get_json()
        tokens.append(play["session"])
        endpoint, _ = adapter.match(f"/api/v1/plays/{play['session']}/claim", method="POST")
        assert endpoint == "plays_api.claim_play"
        await two.heard(play["session"])
        claimed = await two.client.post(play["claim_url"], headers=two.listener.headers)
        assert claimed.status_code == 200
    assert calls == tokens
    for origin in origins(two.resources):
        assert not hasattr(origin, "claim") and not hasattr(origin, "charge_session")
        assert not hasattr(origin, "buy") and not hasattr(origin, "quote")


async def test_the_old_partner_routes_move_to_the_track_routes(two: Two) -> None:
    """For one release: 308 to the same request on the one track route, and only for a
    partner's track, so an old client never lands on a local track by its number. The old
    API routes ask for the token the new ones ask for (nothing is told without one)."""
    client, lena = two.client, two.listener.headers
    for method, old, new in [
        ("GET", "/api/v1/remote-tracks/{id}/price", "/api/v1/tracks/{id}/price"),
        ("POST", "/api/v1/remote-tracks/{id}/plays", "/api/v1/tracks/{id}/plays"),
        ("POST", "/api/v1/remote-tracks/{id}/buy", "/api/v1/tracks/{id}/buy"),
        ("GET", "/remote-tracks/{id}/stream?session=abc", "/tracks/{id}/stream?session=abc"),
    ]:
        moved = await client.open(old.format(id=two.partner), method=method, headers=lena)
        assert moved.status_code == 308, old
        assert moved.headers["Location"].endswith(new.format(id=two.partner))
        local = await client.open(old.format(id=two.local), method=method, headers=lena)
        assert local.status_code == 404
        if old.startswith("/api/"):
            anonymous = await client.open(old.format(id=two.partner), method=method)
            assert anonymous.status_code == 401, old
    play = await (
        await client.post(f"/api/v1/tracks/{two.partner}/plays", headers=two.listener.headers)
    ).get_json()
    moved = await client.post(f"/api/v1/remote-plays/{play['session']}/claim", headers=lena)
    assert moved.status_code == 308
    assert moved.headers["Location"].endswith(f"/api/v1/plays/{play['session']}/claim")
    local = await (
        await client.post(f"/api/v1/tracks/{two.local}/plays", headers=two.listener.headers)
    ).get_json()
    old_claim = f"/api/v1/remote-plays/{local['session']}/claim"
    assert (await client.post(old_claim, headers=lena)).status_code == 404
    assert (await client.post(old_claim)).status_code == 401


async def test_one_decision_for_the_stream_of_either_origin(two: Two) -> None:
    """/tracks/{id}/stream serves both by the one rule: nothing without a session, the
    session's URL for its listener only, the free part until the play is charged; and a
    partner instance's signed request gets only our own tracks in full, never another
    partner's that we cache."""
    client, lena = two.client, two.listener.headers
    for track_id, _kind in two.ids():
        assert (await client.get(f"/tracks/{track_id}/stream")).status_code == 403
        play = await (
            await client.post(f"/api/v1/tracks/{track_id}/plays", headers=lena)
        ).get_json()
        url = play["stream_url"] + "&format=mp3"
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, headers=two.other.headers)).status_code == 403
        part = await client.get(url, headers={"Range": "bytes=0-99", **lena})
        assert part.status_code == 206 and part.headers["Content-Type"] == "audio/mpeg"
        assert len(await part.get_data()) == 100
        assert part.headers["Cache-Control"] == "private, no-store"
    resources = two.resources
    here = origins(resources)
    async with resources.read_sessionmaker() as session:
        for track_id, lent in ((two.local, True), (two.partner, False)):
            track = await plays.find(session, here, track_id, None)
            decision = await may_stream(
                session, track, None, token=None, signed_by_partner=True, now=utcnow(),
                lifetime=resources.settings.money.play_session_lifetime,
            )  # fmt: skip
            assert decision.allowed is lent and not decision.gated


async def test_the_openapi_document_shows_one_track_api(client: Client) -> None:
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    paths = document["paths"]
    for path, method in [
        ("/api/v1/remote-tracks/{track_id}/price", "get"),
        ("/api/v1/remote-tracks/{track_id}/plays", "post"),
        ("/api/v1/remote-tracks/{track_id}/buy", "post"),
        ("/api/v1/remote-plays/{token}/claim", "post"),
    ]:
        assert paths[path][method]["deprecated"] is True, path
    assert "deprecated" not in paths["/api/v1/tracks/{track_id}/plays"]["post"]
    track = document["components"]["schemas"]["Track"]
    assert "origin" in track["required"]
    assert document["components"]["schemas"]["TrackOrigin"]["properties"].keys() == {
        "kind",
        "host",
        "actor",
    }
