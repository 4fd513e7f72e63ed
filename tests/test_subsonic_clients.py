"""Two independent Subsonic clients against a real `playfair run` over loopback, used as
apps use them: py-sonic (PyPI) and the TypeScript `subsonic-api` (npm, run by Debian's
node from tests/node/). Each authenticates both ways (an app password as u + t + s, and
an API key), browses, searches, stars a song, makes a playlist with it, and plays a paid
track ten times to the end with scrobbles: exactly 2 + 4 + … + 512 = 1022 tokens leave
the wallet and the track is owned. A listener without balance is streamed the preview; a
wrong password, a revoked app password and a bad salt are refused with code 40.

The paid track is three seconds long, so that its threshold (min(45 s, length)) is the
whole track and each play takes about three seconds: the free part is paced at
listening speed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import libsonic
import pytest

from tests.audio import make_audio
from tests.conftest import fresh_database
from tests.instances import Instance, make_instance
from tests.subsonic_contract import call_both_over_http

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"
PAID_TITLE = "Tone"
PAID_SECONDS = 1  # short: a play counts after min(45 s, length), heard in real time
FREE_TITLE = "Open Air"
ARTIST = "Aurora"
COST_OF_OWNING = sum(2**n for n in range(1, 10))  # 2 + 4 + … + 512
HOSTS = {"sqlite": "127.0.0.21", "postgres": "127.0.0.22"}


@dataclass
class Site:
    instance: Instance
    paid_track: int  # the paid track's id in /api/v1
    preview: bytes  # its public preview, as anybody hears it


@pytest.fixture(scope="module")
def site(
    database_kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp(f"subsonic-clients-{database_kind}")
    with fresh_database(database_kind, request, folder) as url:
        instance = make_instance(folder / "data", HOSTS[database_kind], url, init=False)
        # listeners start empty: what leaves a wallet is exactly what a voucher put in
        instance.env["PLAYFAIR_MONEY__STARTER_BALANCE"] = "0"
        instance.start()
        try:
            instance.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
            instance.cli("artist", "add", "aurora", "--owner", "mira", "--display-name", ARTIST)
            album = folder / "Tides"
            album.mkdir()
            make_audio(album / "01 - Tone.flac", "flac", seconds=PAID_SECONDS,
                       tags={"title": PAID_TITLE, "album": "Tides", "genre": "Folk"})  # fmt: skip
            make_audio(album / "02 - Open Air.flac", "flac", seconds=2, frequency=550,
                       tags={"title": FREE_TITLE, "album": "Tides", "genre": "Folk"})  # fmt: skip
            instance.cli("import", str(album), "--artist", "aurora")
            instance.wait_for(r"release (\d+) announced", timeout=120)
            with httpx.Client(base_url=instance.base, timeout=30) as http:
                found = http.get("/api/v1/search", params={"q": PAID_TITLE, "kind": "track"})
                hits = [hit["track"] for hit in found.json()["items"]]
                [paid] = [track for track in hits if track["title"] == PAID_TITLE]
                preview = http.get(f"/tracks/{paid['id']}/preview")
                assert preview.status_code == 200, preview.text
            yield Site(instance, paid["id"], preview.content)
        finally:
            output = instance.stop()
        assert "Traceback" not in output, output


@dataclass
class Listener:
    name: str
    api_key: str  # a personal access token: OpenSubsonic's apiKey
    app_password: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def listener(site: Site, name: str, tokens: int, app: str) -> Listener:
    """An account with ``tokens`` in its wallet (a voucher, redeemed through the API),
    an API key and an app password for ``app``."""
    instance = site.instance
    instance.cli("user", "add", name, stdin="a long password\n")
    key = instance.cli("token", "issue", name, "--scopes", "read write play")
    password = instance.cli("app-password", "add", name, "--name", app)
    made = Listener(name, key, password)
    if tokens:
        [code] = instance.cli("voucher", "issue", "--tokens", str(tokens)).split()
        with httpx.Client(base_url=instance.base, timeout=30) as http:
            redeemed = http.post("/api/v1/me/vouchers", json={"code": code}, headers=made.headers)
            assert redeemed.status_code == 200, redeemed.text
    assert wallet(site, made)["balance"] == tokens
    return made


def wallet(site: Site, who: Listener) -> dict[str, Any]:
    with httpx.Client(base_url=site.instance.base, timeout=30) as http:
        answer = http.get("/api/v1/me/wallet", headers=who.headers)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def assert_owned_after_ten_plays(site: Site, who: Listener) -> None:
    after = wallet(site, who)
    assert after["balance"] == 0, after  # all of COST_OF_OWNING left, nothing more
    assert site.paid_track in after["owned_track_ids"], after
    plays = [play for play in after["plays"] if play["track_id"] == site.paid_track]
    paid = sorted(play["tokens"] for play in plays if play["paid_number"] is not None)
    assert paid == [2**n for n in range(1, 10)], after
    assert sum(paid) == COST_OF_OWNING
    # and no play after the ninth cost anything (the tenth is free: the track is owned)
    assert all(play["tokens"] == 0 for play in plays if play["paid_number"] is None), after


# --- py-sonic -------------------------------------------------------------------------


class ApiKeyConnection(libsonic.Connection):  # type: ignore[misc]
    """py-sonic knows only u + t + s (or p): an app that has OpenSubsonic's apiKey sends
    it in their place. py-sonic builds every call's credentials in ``_getBaseQdict``."""

    api_key: ClassVar[str] = ""

    def __init__(self, base: str, port: int, api_key: str) -> None:
        # the constructor insists on some credentials; these are never sent
        super().__init__(base, "unused", port=port, salt="unused", token="unused",
                         appName="py-sonic-test")  # fmt: skip
        self._api_key = api_key

    def _getBaseQdict(self) -> dict[str, str]:  # py-sonic's name
        return {"f": "json", "v": self._apiVersion, "c": self._appName, "apiKey": self._api_key}


def _split(base: str) -> tuple[str, int]:
    scheme_host, port = base.rsplit(":", 1)
    return scheme_host, int(port)


def _read_all(
    connection: libsonic.Connection, song: str, seconds: float = 0
) -> tuple[int, int, bytes]:
    """A stream heard to the end: status, the promised length, the bytes. A player plays
    what it fetched, so it asks for the song again only once its length (``seconds``) has
    passed: the server takes a request from the start within that time for the same
    listening (docs/decisions.md, "one listening, one play session")."""
    began = time.monotonic()
    answer = connection.stream(song)
    body = answer.read()
    time.sleep(max(0.0, began + seconds - time.monotonic()))  # the listener, listening
    return answer.status, int(answer.headers["Content-Length"]), body


def _songs(found: dict[str, Any], key: str = "song") -> list[dict[str, Any]]:
    items = found.get(key, [])
    return items if isinstance(items, list) else [items]


def test_py_sonic(site: Site) -> None:
    lena = listener(site, "lena", COST_OF_OWNING, "py-sonic")
    nils = listener(site, "nils", 0, "py-sonic")
    base, port = _split(site.instance.base)
    by_password = libsonic.Connection(base, "lena", lena.app_password, port=port,
                                      appName="py-sonic-test")  # fmt: skip
    by_key = ApiKeyConnection(base, port, lena.api_key)
    assert by_password.ping() and by_key.ping()

    artists = by_password.getArtists()["artists"]
    assert by_key.getArtists()["artists"] == artists
    [aurora] = [a for index in artists["index"] for a in index["artist"] if a["name"] == ARTIST]
    artist = by_password.getArtist(aurora["id"])["artist"]
    [album] = artist["album"]
    songs = {
        song["title"]: song["id"] for song in _songs(by_password.getAlbum(album["id"])["album"])
    }
    assert set(songs) == {PAID_TITLE, FREE_TITLE}
    song = songs[PAID_TITLE]
    newest = by_key.getAlbumList2("newest")["albumList2"]
    assert album["id"] in [item["id"] for item in newest["album"]]
    found = by_key.search3(PAID_TITLE)["searchResult3"]
    assert song in [item["id"] for item in _songs(found)]

    assert by_password.star(sids=[song])["status"] == "ok"
    assert [item["id"] for item in _songs(by_password.getStarred2()["starred2"])] == [song]
    made = by_password.createPlaylist(name="For the road", songIds=[song])
    playlists = by_password.getPlaylists()["playlists"]["playlist"]
    assert "For the road" in [item["name"] for item in playlists]
    entries = _songs(by_password.getPlaylist(made["playlist"]["id"])["playlist"], "entry")
    assert [entry["id"] for entry in entries] == [song]

    # ten plays heard to the end, each scrobbled, the two kinds of credentials in turn
    for number in range(10):
        connection = by_password if number % 2 == 0 else by_key
        status, promised, body = _read_all(connection, song, seconds=PAID_SECONDS)
        assert status == 200 and len(body) == promised > 0, (number, status, promised)
        assert connection.scrobble(song, submission=True)["status"] == "ok"
    assert_owned_after_ten_plays(site, lena)

    # a listener whose balance covers no play hears the preview, and pays nothing
    broke = libsonic.Connection(base, "nils", nils.app_password, port=port)
    status, _promised, body = _read_all(broke, song)
    assert status == 200 and body == site.preview
    after = wallet(site, nils)
    assert (after["balance"], after["plays"], after["owned_track_ids"]) == (0, [], [])

    # refusals, each code 40 (py-sonic raises CredentialError for it)
    wrong = libsonic.Connection(base, "lena", lena.app_password + "x", port=port)
    with pytest.raises(libsonic.errors.CredentialError):
        wrong.ping()
    salt = "0123456789ab"
    token = hashlib.md5((lena.app_password + salt).encode(), usedforsecurity=False).hexdigest()
    assert libsonic.Connection(base, "lena", salt=salt, token=token, port=port).ping()
    bad_salt = libsonic.Connection(base, "lena", salt=salt[::-1], token=token, port=port)
    with pytest.raises(libsonic.errors.CredentialError):
        bad_salt.ping()
    site.instance.cli("app-password", "revoke", "lena", "py-sonic")
    with pytest.raises(libsonic.errors.CredentialError):
        by_password.ping()
    assert by_key.ping()  # the API key is not the app password: it still works


# --- the npm subsonic-api client under node -----------------------------------------


def _node(phase: str, config: dict[str, str]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is missing: `make install` installs Debian's nodejs"
    assert (NODE_DIR / "node_modules" / "subsonic-api").is_dir(), (
        "tests/node/node_modules is missing: `make install` runs npm ci there"
    )
    ran = subprocess.run(
        [node, "scenario.mjs", phase, json.dumps(config)],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    result: dict[str, Any] = json.loads(ran.stdout)
    return result


def test_subsonic_api_under_node(site: Site) -> None:
    omar = listener(site, "omar", COST_OF_OWNING, "subsonic-api")
    ines = listener(site, "ines", 0, "subsonic-api")
    config = {
        "url": site.instance.base, "username": "omar", "password": omar.app_password,
        "apiKey": omar.api_key, "broke": ines.api_key, "artistName": ARTIST,
        "paidTitle": PAID_TITLE,
    }  # fmt: skip
    out = _node("main", config)
    assert out["ping"] == ["ok", "ok"]
    assert out["sameArtistsBothWays"] is True
    song = out["songId"]
    assert {item["title"] for item in out["songs"]} == {PAID_TITLE, FREE_TITLE}
    assert out["albumIds"][0] in out["newestAlbumIds"]
    assert song in out["searchSongIds"]
    assert out["starredSongIds"] == [song]
    assert "For the road" in out["playlistNames"]
    assert out["playlistSongIds"] == [song]
    assert len(out["plays"]) == 10
    for play in out["plays"]:
        assert play["status"] == 200 and play["contentType"].startswith("audio/"), play
        assert play["bytes"] == play["contentLength"] > 0, play
        assert play["scrobble"] == "ok"
    assert_owned_after_ten_plays(site, omar)
    assert out["preview"]["sha256"] == hashlib.sha256(site.preview).hexdigest(), out["preview"]
    assert wallet(site, ines)["plays"] == []

    old = omar.app_password
    current = site.instance.cli("app-password", "add", "omar", "--name", "second phone")
    site.instance.cli("app-password", "revoke", "omar", "subsonic-api")
    refused = _node("refused", {**config, "password": old, "current": current})
    assert refused == {"wrongPassword": 40, "revoked": 40, "badSalt": 40, "current": "ok"}


def test_the_contract_over_http(site: Site) -> None:
    """What the clients read, valid in both formats as a running instance sends it (the
    in-process cases of tests/test_subsonic_contract.py cover every method)."""
    vera = listener(site, "vera", 0, "contract")
    key = {"apiKey": vera.api_key}
    classic = {"u": "vera", "p": vera.app_password}
    with httpx.Client(base_url=site.instance.base, timeout=30) as http:
        for credentials in (key, classic):
            _, body = call_both_over_http(http, "ping", {}, credentials)
            assert body["status"] == "ok", body
        _, body = call_both_over_http(http, "search3", {"query": PAID_TITLE}, key)
        [song] = [s for s in body["searchResult3"]["song"] if s["title"] == PAID_TITLE]
        calls = [("getArtists", {}), ("getAlbumList2", {"type": "newest"}),
                 ("getSong", {"id": song["id"]}), ("getAlbum", {"id": song["albumId"]}),
                 ("getArtist", {"id": song["artistId"]})]  # fmt: skip
        for method, params in calls:
            _, body = call_both_over_http(http, method, params, key)
            assert body["status"] == "ok", (method, body)
        _, body = call_both_over_http(http, "getAlbum", {"id": "al-999999"}, classic)
        assert body["error"]["code"] == 70, body


def test_the_node_client_is_installed_from_the_lock_file() -> None:
    """`make install` runs `npm ci`: the client's version is the one the lock file pins."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/subsonic-api"]["version"]
    installed = json.loads(
        (NODE_DIR / "node_modules" / "subsonic-api" / "package.json").read_text()
    )["version"]
    assert installed == pinned
