"""A real playfair instance and a Mastodon-shaped peer (tests/mastodon_peer.py), each its
own process on a loopback address: the pasted release and track URLs resolve to posts
Mastodon can show, a Mastodon user follows the artist (our Accept passes Mastodon's
rule), the artist publishes, the peer verifies the Create{Note} as Mastodon does and
dereferences every id in what it received."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio import make_audio, make_cover
from tests.instances import Instance, free_port, make_instance
from tests.processes import ROOT, PlayfairProcess

pytestmark = [pytest.mark.mixed_databases, pytest.mark.slow]
PEER_HOST = "127.0.0.6"
AP_ACCEPT = "application/activity+json"


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[Instance, str, PlayfairProcess]]:
    ours = make_instance(tmp_path / "ours", "127.0.0.2", database_url)
    port = free_port(PEER_HOST)
    peer = PlayfairProcess(
        [], {}, argv=[sys.executable, "-m", "tests.mastodon_peer", PEER_HOST, str(port)], cwd=ROOT
    )
    try:
        peer.wait_for(r"Running on")
        yield ours, f"http://{PEER_HOST}:{port}", peer
    finally:
        peer.stop()
        if ours.process is not None:
            output = ours.stop()
            assert "Traceback" not in output, output
    assert "Traceback" not in peer.output, peer.output


def _album(folder: Path, title: str, tracks: int, genre: str) -> Path:
    album = folder / title
    album.mkdir()
    cover = make_cover(folder / f"{title}.png")
    for n in range(1, tracks + 1):
        make_audio(album / f"0{n} - Part {n}.mp3", "mp3", seconds=2, frequency=300 + 110 * n,
                   tags={"genre": genre, "album": title}, cover=cover)  # fmt: skip
    return album


def _ids(document: Any) -> set[str]:
    """Every URL a received document names, where an id or a link is expected."""
    keys = ("id", "actor", "object", "attributedTo", "release", "track", "partOf", "href")
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key in keys and isinstance(value, str):
                found.add(value)
            if key in ("to", "cc") and isinstance(value, list):
                found |= {v for v in value if isinstance(v, str)}
            found |= _ids(value)
    elif isinstance(document, list):
        for item in document:
            found |= _ids(item)
    return found


def test_mastodon_resolves_follows_receives_and_dereferences(
    world: tuple[Instance, str, PlayfairProcess], tmp_path: Path
) -> None:
    ours, peer_base, peer = world
    ours.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    ours.cli("artist", "add", "aurora", "--owner", "mira", "--display-name", "Aurora Lane")
    ours.cli("import", str(_album(tmp_path, "Tide Tables", 2, "Sea Shanty")), "--artist", "aurora")
    ours.start()
    release = int(ours.wait_for(r"release (\d+) announced").group(1))
    host = ours.base.split("://", 1)[1]

    with httpx.Client(timeout=60) as http:

        def control(path: str, **params: str) -> Any:
            answer = http.get(f"{peer_base}/_control/{path}", params=params)
            assert answer.status_code == 200, answer.text
            return answer.json()

        # pasting the release's URL: the page answers the Note (another id), fetched
        # again by that id, once; a Note is a status Mastodon shows as it is
        page = f"{ours.base}/releases/{release}"
        found = control("resolve", url=page)
        assert found["found"] == "status", found
        assert found["fetched"] == [page, f"{page}/note"]
        note = found["object"]
        assert note["type"] == "Note" and note["url"] == page
        assert note["attributedTo"] == f"{ours.base}/artists/aurora"
        assert note["release"] == f"{page}/album"
        album = control("fetch", url=note["release"])["document"]
        assert album["type"] == "OrderedCollection" and album["totalItems"] == 2

        # and a track's URL: a Note with one audio attachment, the cover as its poster
        track_page = album["orderedItems"][0]["url"][0]["href"]
        assert track_page.startswith(f"{ours.base}/tracks/")
        found = control("resolve", url=track_page)
        assert found["found"] == "status", found
        assert found["fetched"] == [track_page, f"{track_page}/note"]
        track_note = found["object"]
        [audio] = track_note["attachment"]
        assert audio["mediaType"].startswith("audio/") and audio["icon"]["url"].endswith("/cover")
        assert track_note["track"] == album["orderedItems"][0]["id"] == f"{track_page}/audio"
        # nothing there is a status: a URL that answers no document resolves to nothing
        assert control("resolve", url=f"{ours.base}/releases/999999")["found"] is None

        # the Mastodon user follows the artist; our Accept passes Mastodon's rule
        made = http.post(f"{peer_base}/_control/follow", json={"account": f"@aurora@{host}"})
        assert made.status_code == 200 and made.json()["status"] == 202, made.text
        peer.wait_for(r"follow accepted by .*/artists/aurora")
        assert control("received")["following"] == [f"{ours.base}/artists/aurora"]

        # the artist publishes: the Create{Note} arrives signed as Mastodon requires
        ours.cli("import", str(_album(tmp_path, "Low Water", 3, "drone")), "--artist", "aurora")
        peer.wait_for(r"inbox: verified Create from .*/artists/aurora")
        [create] = [
            r["activity"] for r in control("received")["received"]
            if r["activity"]["type"] == "Create"
        ]  # fmt: skip
        assert create["object"]["type"] == "Note"
        assert "Low Water" in create["object"]["content"]
        # Mastodon's rule for its player: exactly one attachment, audio, the cover its poster
        [sampler] = create["object"]["attachment"]
        assert sampler["mediaType"] == "audio/mpeg" and sampler["url"].endswith("/sampler")
        assert sampler["icon"]["url"].endswith("/cover")

        # every id in it resolves; media with a plain GET, the rest as Mastodon fetches
        actor = control("fetch", url=create["actor"])["document"]
        wanted = _ids(create) | {actor[k] for k in ("inbox", "outbox", "followers", "following")}
        media = {sampler["url"], sampler["icon"]["url"]}
        wanted |= media
        wanted.discard("https://www.w3.org/ns/activitystreams#Public")
        assert all(uri.startswith(ours.base) for uri in wanted), wanted
        assert {create["id"], create["object"]["id"], f"{ours.base}/tags/drone"} <= wanted
        for uri in sorted(wanted):
            if uri in media:
                got = http.get(uri)
                assert got.status_code == 200, uri
                assert got.headers["content-type"].split("/")[0] in ("audio", "image"), uri
                continue
            answer = control("fetch", url=uri)
            if uri.endswith("/inbox"):  # POST only, and it says so
                assert answer["status"] == 405 and "POST" in answer["allow"], (uri, answer)
                continue
            assert answer["status"] == 200, (uri, answer)
            assert answer["content_type"].startswith(AP_ACCEPT), (uri, answer)
            assert answer["document"]["id"] in (uri, uri.split("#", 1)[0]), (uri, answer)


def test_the_peer_refuses_what_mastodon_refuses(
    world: tuple[Instance, str, PlayfairProcess],
) -> None:
    """The peer's checks are real: an unsigned, a wrongly typed and a tampered POST to
    its inbox are all refused (so its "verified" above means something)."""
    _ours, peer_base, peer = world
    inbox = f"{peer_base}/users/ada/inbox"
    body = b'{"type": "Create", "actor": "http://127.0.0.2/artists/x"}'
    unsigned = httpx.post(inbox, content=body, headers={"Content-Type": AP_ACCEPT}, timeout=30)
    assert unsigned.status_code == 401
    peer.wait_for(r"inbox: refused: Request not signed")
    wrong = httpx.post(inbox, content=body, headers={"Content-Type": "text/plain"}, timeout=30)
    assert wrong.status_code == 401
    peer.wait_for(r"inbox: refused: unsupported content type")
    forged = {
        "Content-Type": AP_ACCEPT,
        "Date": "Mon, 01 Jan 2024 00:00:00 GMT",
        "Digest": "SHA-256=AAAA",
        "Signature": 'keyId="http://127.0.0.2/artists/x#main-key",algorithm="rsa-sha256",'
        'headers="(request-target) host date digest",signature="AAAA"',
    }
    stale = httpx.post(inbox, content=body, headers=forged, timeout=30)
    assert stale.status_code == 401
    peer.wait_for(r"inbox: refused: Signed request date outside acceptable time window")
    assert httpx.get(f"{peer_base}/_control/received", timeout=30).json()["received"] == []
