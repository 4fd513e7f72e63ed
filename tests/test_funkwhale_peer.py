"""A Funkwhale-shaped peer (tests/funkwhale_peer.py, a real server of its own on another
loopback address) subscribes to a playfair artist over real HTTP: WebFinger, actor fetch,
the channel check, a signed Follow, our Accept. The artist publishes a release of three
tracks; the peer files one ``Create{Audio}`` per track by Funkwhale's rules, fetches each
one's album and plays its audio. A Mastodon-shaped follower of the same artist gets the
release's Note and none of the uploads."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models.federation import Delivery, OutboundActivity
from tests.audio import make_audio
from tests.funkwhale_peer import check_audio
from tests.instances import Instance, database_of, free_port, make_instance
from tests.processes import PlayfairProcess

pytestmark = pytest.mark.slow
ACTIVITY = {"Accept": "application/activity+json"}


class Peer:
    def __init__(self, host: str, mode: str) -> None:
        self.base = f"http://{host}:{free_port(host)}"
        port = self.base.rsplit(":", 1)[1]
        argv = [sys.executable, "-m", "tests.funkwhale_peer", host, port, mode]
        self.process = PlayfairProcess([], {}, argv=argv)
        self.process.wait_for(r"peer listening at ")

    def subscribe(self, handle: str) -> dict[str, Any]:
        answer = httpx.post(f"{self.base}/_peer/subscribe", json={"handle": handle}, timeout=60)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.base}/_peer/state", timeout=30).json()
        return result


@pytest.fixture
def ours(tmp_path: Path, database_url: str) -> Iterator[Instance]:
    instance = make_instance(tmp_path / "ours", "127.0.0.3", database_url)
    yield instance
    if instance.process is not None:
        output = instance.stop()
        assert "Traceback" not in output, output


async def test_funkwhale_subscribes_and_files_each_track(ours: Instance, tmp_path: Path) -> None:
    ours.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    ours.cli("artist", "add", "aurora", "--owner", "mira", "--band")
    ours.start()
    funkwhale, mastodon = Peer("127.0.0.6", "funkwhale"), Peer("127.0.0.7", "mastodon")
    try:
        host = ours.base.split("://", 1)[1]
        artist = f"{ours.base}/artists/aurora"
        subscribed = funkwhale.subscribe(f"@aurora@{host}")
        assert subscribed["channel"] == f"{artist}/feed.rss"  # a channel to Funkwhale
        funkwhale.process.wait_for(rf"follow accepted: {artist}")
        mastodon.subscribe(f"@aurora@{host}")
        mastodon.process.wait_for(rf"follow accepted: {artist}")

        folder = tmp_path / "Tide Tables"
        folder.mkdir()
        for number, (title, seconds) in enumerate([("Ebb", 2), ("Flow", 3), ("Slack", 4)], 1):
            make_audio(folder / f"0{number} - {title}.mp3", "mp3", seconds=seconds)
        ours.cli("import", str(folder), "--artist", "aurora")
        ours.wait_for(r"release \d+ sent to Funkwhale channels: 3 deliveries queued")
        funkwhale.process.wait_for_count(r"upload filed: ", 3)
        mastodon.process.wait_for(r"received Create\{Note\}")

        state = funkwhale.state()
        assert state["refused"] == [], state["refused"]
        uploads = sorted(state["uploads"], key=lambda u: u["position"])
        assert [u["name"] for u in uploads] == ["Ebb", "Flow", "Slack"]
        assert [u["position"] for u in uploads] == [1, 2, 3]
        assert [u["duration"] for u in uploads] == [2, 3, 4]
        assert all(u["disc"] == 1 and u["attributedTo"] == artist for u in uploads)
        assert all("license" not in u for u in uploads)  # all rights reserved: no URL
        [album] = {u["album"] for u in uploads}
        assert state["albums"] == {  # fetched and taken as the channel's album
            album: {"id": album, "name": "Tide Tables", "published": uploads[0]["published"]}
        }
        audio = state["audio"]
        for upload in uploads:
            assert upload["source"].endswith("/preview")  # the public preview, never a stream
            played = audio[upload["source"]]
            assert played["status"] == 200 and played["type"].startswith("audio/mpeg")
            assert played["looks_like_mp3"] and played["bytes"] > 1000

        # every id resolves: the Create, and the Audio at its id (Funkwhale's rules too)
        async with httpx.AsyncClient(timeout=30, headers=ACTIVITY) as http:
            for upload in uploads:
                create = await http.get(f"{upload['id']}/create")
                assert create.status_code == 200, create.text
                assert create.json()["object"]["id"] == upload["id"]
                audio_object = await http.get(upload["id"])
                assert audio_object.status_code == 200
                assert check_audio(audio_object.json())["source"] == upload["source"]
            assert (await http.get(f"{ours.base}/tracks/999/audio/create")).status_code == 404

        # the Mastodon follower: the Note, none of the Audio creates
        async with database_of(ours) as session:
            sent = (
                await session.execute(
                    select(Delivery.inbox, OutboundActivity.uri, OutboundActivity.document).join(
                        OutboundActivity, OutboundActivity.id == Delivery.activity_id
                    )
                )
            ).all()
        to_mastodon = [doc["object"]["type"] for inbox, _, doc in sent if "127.0.0.7" in inbox
                       and doc["type"] == "Create"]  # fmt: skip
        to_funkwhale = [doc["object"]["type"] for inbox, _, doc in sent if "127.0.0.6" in inbox
                        and doc["type"] == "Create"]  # fmt: skip
        assert to_mastodon == ["Note"]
        assert sorted(to_funkwhale) == ["Audio", "Audio", "Audio", "Note"]
        assert "Create{Audio}" not in mastodon.state()["received"]
    finally:
        for peer in (funkwhale, mastodon):
            peer.process.stop()
