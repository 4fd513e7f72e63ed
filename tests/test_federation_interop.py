"""Two real playfair instances on loopback addresses talking over real HTTP.

A listener on A follows an artist on B by handle; B accepts; the artist publishes; the
release arrives in the listener's feed with a playable preview; the listener's reply and
like come back and show on B's release page; unfollowing reaches B. Waiting is done on
the processes' own log lines, never on sleeps. B runs on each test database, A on SQLite.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.signatures import sign_request
from tests.audio import make_audio
from tests.instances import Instance, instance_keys, make_instance

# A on SQLite, B on the last test database: one run covers both kinds.
pytestmark = pytest.mark.mixed_databases


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[tuple[Instance, Instance]]:
    a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")
    b = make_instance(tmp_path / "b", "127.0.0.3", database_url)
    yield a, b
    for instance in (a, b):
        if instance.process is not None:
            output = instance.stop()
            assert "Traceback" not in output, output


def test_follow_publish_reply_like_across_instances(
    pair: tuple[Instance, Instance], tmp_path: Path
) -> None:
    a, b = pair
    b.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "aurora", "--owner", "mira", "--band")
    a.cli("user", "add", "lena", stdin="a long password\n")
    lena = {"Authorization": f"Bearer {a.cli('token', 'issue', 'lena', '--scopes', 'read write')}"}
    a.start()
    b.start()
    host_b = b.base.split("://", 1)[1]

    with httpx.Client(timeout=30) as http:
        # the listener follows the artist by handle: WebFinger, signed fetch, Follow
        made = http.post(
            f"{a.base}/api/v1/follows", json={"account": f"@aurora@{host_b}"}, headers=lena
        )
        assert made.status_code == 201, made.text
        assert made.json()["state"] == "pending"
        b.wait_for(r"inbox item \d+ \(Follow from .*/users/lena\): done: Accept")
        a.wait_for(r"inbox item \d+ \(Accept from .*/artists/aurora\): done")
        follows = http.get(f"{a.base}/api/v1/follows", headers=lena).json()["items"]
        assert [(f["handle"], f["state"]) for f in follows] == [(f"@aurora@{host_b}", "accepted")]
        followers = http.get(
            f"{b.base}/artists/aurora/followers?page=1",
            headers={"Accept": "application/activity+json"},
        ).json()
        assert followers["orderedItems"] == [f"{a.base}/users/lena"]

        # the artist publishes; the worker transcodes, then the Create goes out
        folder = tmp_path / "Night Ferry"
        folder.mkdir()
        make_audio(folder / "01 - Harbour Lights.flac", "flac", seconds=2)
        b.cli("import", str(folder), "--artist", "aurora")
        b.wait_for(r"delivery \d+ of Create to .*: delivered")
        a.wait_for(r"inbox item \d+ \(Create from .*/artists/aurora\): done")

        [item] = http.get(f"{a.base}/api/v1/feed", headers=lena).json()["items"]
        assert item["author_handle"] == f"@aurora@{host_b}"
        assert "Night Ferry" in item["content_html"]
        [preview] = item["previews"]
        assert preview["media_type"] == "audio/mpeg"
        audio = http.get(preview["url"])
        assert audio.status_code == 200
        assert audio.headers["content-type"].startswith("audio/mpeg")
        assert audio.content[:3] == b"ID3" or audio.content[:2] == b"\xff\xfb"

        # a reply and a like come back to the artist's instance
        liked = http.post(f"{a.base}/api/v1/feed/like", json={"uri": item["uri"]}, headers=lena)
        assert liked.status_code == 201, liked.text
        replied = http.post(
            f"{a.base}/api/v1/feed/reply",
            json={"uri": item["uri"], "content": "Lovely <b>tune</b>!"},
            headers=lena,
        )
        assert replied.status_code == 201, replied.text
        b.wait_for(r"inbox item \d+ \(Like from .*/users/lena\): done")
        b.wait_for(r"inbox item \d+ \(Create from .*/users/lena\): done: reply")
        release_url = item["url"]
        release_id = int(release_url.rsplit("/", 1)[1])
        conversation = http.get(f"{b.base}/api/v1/releases/{release_id}/conversation").json()
        assert conversation["likes"] == 1
        [reply] = conversation["replies"]
        assert "Lovely &lt;b&gt;tune&lt;/b&gt;!" in reply["content_html"]  # text, not markup
        page = http.get(release_url, headers={"Accept": "text/html"}).text
        assert "Lovely" in page and "1 like" in page

        # "follow from your fediverse account" on B's artist page sends a visitor to
        # their own server's follow page, found through its WebFinger
        sent = http.post(
            f"{b.base}/artists/aurora/remote-follow", data={"account": f"@lena@{a.base[7:]}"}
        )
        # a page that moves on by itself (form answers may not redirect off-site: CSP)
        assert sent.status_code == 200
        onward = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', sent.text)
        assert onward, sent.text
        location = html.unescape(onward.group(1))
        assert location.startswith(f"{a.base}/authorize_interaction?uri=")
        assert "artists%2Faurora" in location
        assert f'href="{onward.group(1)}"' in sent.text, "and a link for when it does not"
        there = http.get(location)  # signed out on A: log in first
        assert there.status_code == 303 and "/login?next=" in there.headers["location"]
        nowhere = http.post(
            f"{b.base}/artists/aurora/remote-follow", data={"account": "not a handle"}
        )
        assert nowhere.status_code == 302 and "remote_error=" in nowhere.headers["location"]

        # unfollowing reaches the artist's instance
        gone = http.delete(f"{a.base}/api/v1/follows/{follows[0]['id']}", headers=lena)
        assert gone.status_code == 204
        b.wait_for(r"inbox item \d+ \(Undo from .*/users/lena\): done")
        followers = http.get(
            f"{b.base}/artists/aurora/followers", headers={"Accept": "application/activity+json"}
        ).json()
        assert followers["totalItems"] == 0


async def test_partners_fetch_full_audio(pair: tuple[Instance, Instance], tmp_path: Path) -> None:
    """A asks B for a partnership, B's admin accepts, and A's signed GET gets B's full
    audio; unsigned or non-partner requests get none, and refusing ends it."""
    a, b = pair
    b.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    b.cli("artist", "add", "aurora", "--owner", "mira")
    folder = tmp_path / "Tide Tables"
    folder.mkdir()
    make_audio(folder / "01 - Ebb.mp3", "mp3", seconds=2)
    b.cli("import", str(folder), "--artist", "aurora")
    a.start()
    b.start()
    b.wait_for(r"release \d+ announced")
    host_b = b.base.split("://", 1)[1]
    stream = f"{b.base}/tracks/1/stream?format=mp3"
    keys = await instance_keys(a)
    key_id, key = f"{a.base}/actor#{keys.rsa_name}", keys.rsa

    def signed_get() -> httpx.Response:
        headers = sign_request("GET", stream, None, key_id, key)
        return httpx.get(stream, headers=headers, timeout=30)

    assert "asked" in a.cli("partners", "request", host_b)
    b.wait_for(r"inbox item \d+ \(Follow from .*/actor\): done: .*waiting for an admin")
    assert signed_get().status_code == 403  # asked is not accepted
    [line] = b.cli("partners", "list").splitlines()
    assert "they follow: pending" in line
    b.cli("partners", "accept", line.split("\t", 1)[0])
    a.wait_for(r"inbox item \d+ \(Accept from .*/actor\): done: Accept of our partnership")
    assert "we follow: accepted" in a.cli("partners", "list")

    full = signed_get()
    assert full.status_code == 200, full.text
    assert full.headers["content-type"].startswith("audio/mpeg")
    preview = httpx.get(f"{b.base}/tracks/1/preview", timeout=30)
    assert len(full.content) > len(preview.content) * 0.9  # the whole 2 s, not a clip

    assert httpx.get(stream, timeout=30).status_code == 403  # unsigned: no
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sign_request("GET", stream, None, key_id, stranger)  # A's key id, wrong key
    assert httpx.get(stream, headers=forged, timeout=30).status_code == 403

    b.cli("partners", "refuse", line.split("\t", 1)[0])
    assert signed_get().status_code == 403
