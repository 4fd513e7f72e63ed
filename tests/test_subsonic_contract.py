"""The Subsonic contract of every method issue 15 names, in XML and JSON: each XML answer
valid against the Subsonic 1.16.1 schema (tests/fixtures/subsonic/, OpenSubsonic's
additions marked there), each JSON answer with OpenSubsonic's envelope and the same
content as the XML (tests/subsonic_contract.py). Run against an instance with content: a
published release of real audio with a cover, a listener with an API key, a playlist."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models.catalogue import Artist
from models.users import Role
from server.web.current import resources_of
from server.web.subsonic.routes import methods
from tests.audio import make_audio, make_cover
from tests.catalogue_fixtures import Account, make_account, run_worker, upload
from tests.subsonic_contract import (
    NAMESPACE,
    assert_opensubsonic_json,
    assert_same_answer,
    assert_valid_xml,
    call_both,
)

# --- the envelope and the methods that exist since the core --------------------------


async def test_ping_in_both_formats(app: Quart, client: Client) -> None:
    lena = await make_account(app, "lena", Role.LISTENER, scopes="read")
    root, body = await call_both(client, "ping", credentials={"apiKey": lena.token})
    assert list(root) == [] and body["status"] == "ok"
    assert set(body) == {"status", "version", "type", "serverVersion", "openSubsonic"}


async def test_license_in_both_formats(app: Quart, client: Client) -> None:
    lena = await make_account(app, "lena", Role.LISTENER, scopes="read")
    root, body = await call_both(client, "getLicense", credentials={"apiKey": lena.token})
    assert root.find(f"{{{NAMESPACE}}}license") is not None
    assert body["license"]["valid"] is True


async def test_extensions_in_both_formats(client: Client) -> None:
    root, body = await call_both(client, "getOpenSubsonicExtensions")
    assert len(root.findall(f"{{{NAMESPACE}}}openSubsonicExtensions")) == len(
        body["openSubsonicExtensions"]
    )
    names = {item["name"] for item in body["openSubsonicExtensions"]}
    assert {"apiKeyAuthentication", "formPost"} <= names


@pytest.mark.parametrize(
    ("method", "query", "code"),
    [
        ("ping", "", 10),  # no credentials
        ("ping", "apiKey=pf_nothing", 44),  # an API key nobody has
        ("ping", "u=lena&t=0123456789abcdef0123456789abcdef&s=salt12", 40),
        ("ping", "u=lena&p=wrong", 40),
        ("noSuchMethod", "apiKey={key}", 70),
        ("ping", "apiKey={key}&u=lena", 43),  # both kinds of credentials
    ],
)
async def test_errors_in_both_formats(
    app: Quart, client: Client, method: str, query: str, code: int
) -> None:
    lena = await make_account(app, "lena", Role.LISTENER, scopes="read")
    query = query.format(key=lena.token)
    xml = await (await client.get(f"/rest/{method}.view?{query}")).get_data(as_text=True)
    text = await (await client.get(f"/rest/{method}?{query}&f=json")).get_data(as_text=True)
    body = assert_same_answer(xml, text)
    assert body["status"] == "failed" and body["error"]["code"] == code, body
    root = assert_valid_xml(xml)
    error = root.find(f"{{{NAMESPACE}}}error")
    assert error is not None and error.get("code") == str(code)


# --- the checks themselves refuse what breaks the contract ---------------------------

GOOD = (
    '<?xml version="1.0" encoding="UTF-8"?><subsonic-response xmlns="http://subsonic.org/restapi"'
    ' status="ok" version="1.16.1" type="playfair" serverVersion="1" openSubsonic="true">'
    '<album id="al-1" name="Tides" songCount="1" duration="3" created="2026-12-02T00:00:00.000Z">'
    '<genres name="Folk"/><song id="tr-1" isDir="false" title="Tone" duration="3"/></album>'
    "</subsonic-response>"
)
GOOD_JSON = {
    "subsonic-response": {
        "status": "ok", "version": "1.16.1", "type": "playfair", "serverVersion": "1",
        "openSubsonic": True,
        "album": {
            "id": "al-1", "name": "Tides", "songCount": 1, "duration": 3,
            "created": "2026-12-02T00:00:00.000Z", "genres": [{"name": "Folk"}],
            "song": [{"id": "tr-1", "isDir": False, "title": "Tone", "duration": 3}],
        },
    }
}  # fmt: skip


def test_a_good_answer_passes() -> None:
    assert assert_same_answer(GOOD, json.dumps(GOOD_JSON))["album"]["name"] == "Tides"


@pytest.mark.parametrize(
    "broken",
    [
        GOOD.replace(' songCount="1"', ""),  # a required attribute missing
        GOOD.replace('duration="3"', 'duration="three"'),  # not an xs:int
        GOOD.replace('isDir="false"', 'isDir="no"'),  # not an xs:boolean
        GOOD.replace("<album ", "<albums ").replace("</album>", "</albums>"),  # no such answer
        GOOD.replace("</subsonic-response>", ""),  # not XML at all
        # OpenSubsonic's elements come before the songs, not after
        GOOD.replace('<genres name="Folk"/>', "").replace("</album>", '<genres name="F"/></album>'),
        GOOD.replace(' openSubsonic="true"', ""),  # not OpenSubsonic
        GOOD.replace('version="1.16.1"', 'version="1.15.0"'),
        GOOD.replace('name="Folk"', 'title="Folk"'),  # an OpenSubsonic element checked too
    ],
)
def test_an_invalid_xml_answer_fails(broken: str) -> None:
    with pytest.raises(AssertionError):
        assert_valid_xml(broken)


def _changed(change: Callable[[dict[str, Any]], None]) -> str:
    document = json.loads(json.dumps(GOOD_JSON))
    change(document["subsonic-response"])
    return json.dumps(document)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["album"].update(songCount="1"),  # a number as a string
        lambda b: b["album"].update(song=b["album"]["song"][0]),  # a lone song, not an array
        lambda b: b["album"].update(genres={"name": "Folk"}),
        lambda b: b["album"].update(extra=1),  # a field the XML does not have
        lambda b: b["album"].pop("name"),
        lambda b: b.pop("serverVersion"),
        lambda b: b.update(openSubsonic="true"),
        lambda b: b.update(status="failed"),  # failed without an error
    ],
)
def test_a_json_answer_that_differs_fails(change: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(AssertionError):
        assert_same_answer(GOOD, _changed(change))


def test_an_error_needs_its_code_and_message() -> None:
    envelope = {"status": "failed", "version": "1.16.1", "type": "playfair",
                "serverVersion": "1", "openSubsonic": True}  # fmt: skip
    assert_opensubsonic_json(
        {"subsonic-response": {**envelope, "error": {"code": 70, "message": "no"}}}
    )
    for error in ({"code": "70", "message": "no"}, {"code": 70}, {"code": True, "message": "x"}):
        with pytest.raises(AssertionError):
            assert_opensubsonic_json({"subsonic-response": {**envelope, "error": error}})


# --- every method of the issue, against an instance with content ---------------------


@dataclass
class Content:
    """What the cases' parameters name: ids as Subsonic has them."""

    listener: Account
    track: str
    album: str
    artist: str
    artist_name: str
    playlist: str
    other_playlist: str
    username: str = "lena"
    genre: str = "Folk"
    title: str = "Tone"

    def fill(self, value: str) -> str:
        return value.format(**self.__dict__)


@dataclass(frozen=True)
class Case:
    method: str
    params: dict[str, str] = field(default_factory=dict)
    element: str | None = None  # the answer's element; None: an empty "ok"
    binary: str | None = None  # audio or image: the media type's start
    optional: bool = False  # a binary that may not exist (an avatar nobody set): code 70
    before: tuple[tuple[str, dict[str, str]], ...] = ()  # calls that set the scene
    check: Callable[[dict[str, Any], Content], bool] | None = None  # on the JSON answer
    # a call that makes or uses up a thing: the JSON call's own parameters, and what
    # differs between the two answers because each call made something anew
    json_params: dict[str, str] | None = None
    differ: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        shown = ",".join(f"{key}={value.strip('{}')}" for key, value in self.params.items())
        return f"{self.method}({shown})"


def _songs(found: list[dict[str, Any]] | None) -> set[str]:
    return {song["id"] for song in found or []}


CASES = [
    Case("ping"),
    Case("getLicense", element="license"),
    Case("getOpenSubsonicExtensions", element="openSubsonicExtensions"),
    Case("getMusicFolders", element="musicFolders",
         check=lambda b, c: len(b["musicFolders"]["musicFolder"]) >= 1),
    Case("getIndexes", element="indexes",
         check=lambda b, c: c.artist in {a["id"] for i in b["indexes"].get("index", [])
                                         for a in i["artist"]}),
    Case("getArtists", element="artists",
         check=lambda b, c: c.artist in {a["id"] for i in b["artists"].get("index", [])
                                         for a in i["artist"]}),
    Case("getArtist", {"id": "{artist}"}, "artist",
         check=lambda b, c: [a["id"] for a in b["artist"]["album"]] == [c.album]),
    Case("getAlbum", {"id": "{album}"}, "album",
         check=lambda b, c: _songs(b["album"]["song"]) == {c.track}),
    Case("getSong", {"id": "{track}"}, "song", check=lambda b, c: b["song"]["id"] == c.track),
    Case("getMusicDirectory", {"id": "{artist}"}, "directory",
         check=lambda b, c: c.album in {d["id"] for d in b["directory"].get("child", [])}),
    Case("getMusicDirectory", {"id": "{album}"}, "directory",
         check=lambda b, c: _songs(b["directory"].get("child")) == {c.track}),
    Case("getAlbumList", {"type": "newest"}, "albumList",
         check=lambda b, c: c.album in {a["id"] for a in b["albumList"]["album"]}),
    *(
        Case("getAlbumList2", {"type": kind, **extra}, "albumList2")
        for kind, extra in [
            ("newest", {}), ("random", {}), ("frequent", {}), ("recent", {}),
            ("starred", {}), ("alphabeticalByName", {}), ("byGenre", {"genre": "{genre}"}),
            ("byYear", {"fromYear": "2000", "toYear": "2100"}),
        ]
    ),
    Case("getRandomSongs", {"size": "5"}, "randomSongs",
         check=lambda b, c: _songs(b["randomSongs"].get("song")) == {c.track}),
    Case("getGenres", element="genres",
         check=lambda b, c: c.genre in {g["value"] for g in b["genres"]["genre"]}),
    Case("getSongsByGenre", {"genre": "{genre}"}, "songsByGenre",
         check=lambda b, c: _songs(b["songsByGenre"].get("song")) == {c.track}),
    Case("search2", {"query": "{title}"}, "searchResult2",
         check=lambda b, c: c.track in _songs(b["searchResult2"].get("song"))),
    Case("search3", {"query": "{title}"}, "searchResult3",
         check=lambda b, c: c.track in _songs(b["searchResult3"].get("song"))),
    Case("search3", {"query": ""}, "searchResult3",  # an empty query lists everything
         check=lambda b, c: c.track in _songs(b["searchResult3"].get("song"))),
    Case("getArtistInfo2", {"id": "{artist}"}, "artistInfo2"),
    Case("getAlbumInfo2", {"id": "{album}"}, "albumInfo"),
    Case("getTopSongs", {"artist": "{artist_name}"}, "topSongs"),
    Case("getCoverArt", {"id": "{album}"}, binary="image/"),
    Case("getCoverArt", {"id": "{album}", "size": "64"}, binary="image/"),
    Case("getAvatar", {"username": "{username}"}, binary="image/", optional=True),
    Case("star", {"id": "{track}"}),
    Case("unstar", {"id": "{track}"}, before=(("star", {"id": "{track}"}),)),
    Case("getStarred", element="starred", before=(("star", {"id": "{track}"}),),
         check=lambda b, c: _songs(b["starred"].get("song")) == {c.track}),
    Case("getStarred2", element="starred2", before=(("star", {"albumId": "{album}"}),),
         check=lambda b, c: [a["id"] for a in b["starred2"]["album"]] == [c.album]),
    Case("getPlaylists", element="playlists",
         check=lambda b, c: sorted(p["id"] for p in b["playlists"]["playlist"])
         == sorted([c.playlist, c.other_playlist])),
    Case("getPlaylist", {"id": "{playlist}"}, "playlist",
         check=lambda b, c: _songs(b["playlist"].get("entry")) == {c.track}),
    Case("createPlaylist", {"name": "Evening", "songId": "{track}"}, "playlist",
         check=lambda b, c: _songs(b["playlist"].get("entry")) == {c.track},
         differ=frozenset({"subsonic-response.playlist.id", "subsonic-response.playlist.created",
                           "subsonic-response.playlist.changed"})),
    Case("updatePlaylist", {"playlistId": "{playlist}", "name": "Renamed",
                            "songIndexToRemove": "0"},
         json_params={"playlistId": "{other_playlist}", "name": "Renamed",
                      "songIndexToRemove": "0"}),
    Case("deletePlaylist", {"id": "{playlist}"}, json_params={"id": "{other_playlist}"}),
    Case("savePlayQueue", {"id": "{track}", "current": "{track}", "position": "1000"}),
    Case("getPlayQueue", element="playQueue",
         before=(("savePlayQueue", {"id": "{track}", "current": "{track}"}),),
         check=lambda b, c: _songs(b["playQueue"].get("entry")) == {c.track}),
    Case("getNowPlaying", element="nowPlaying"),
    Case("getUser", {"username": "{username}"}, "user",
         check=lambda b, c: b["user"]["username"] == c.username),
    Case("stream", {"id": "{track}"}, binary="audio/"),
    Case("stream", {"id": "{track}", "format": "mp3", "maxBitRate": "128"}, binary="audio/"),
    Case("download", {"id": "{track}"}, binary="audio/"),
    Case("scrobble", {"id": "{track}", "submission": "true"}),
    Case("scrobble", {"id": "{track}", "submission": "false"}),
]  # fmt: skip


async def _content(app: Quart, client: Client, tmp_path: Path) -> Content:
    mira = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    cover = make_cover(tmp_path / "cover.png")
    path = make_audio(
        tmp_path / "tone.flac", "flac", seconds=2, cover=cover,
        tags={"title": "Tone", "album": "Tides", "genre": "Folk", "date": "2026"},
    )  # fmt: skip
    # a free track: download is for free and owned tracks (the paid rule has its own tests)
    answer = await upload(client, mira, path, query="?publish=1&free=1")
    assert answer.status_code == 202, await answer.get_data(as_text=True)
    body = await answer.get_json()
    assert await run_worker(app) > 0
    lena = await make_account(app, "lena", Role.LISTENER, scopes="read write play")
    track_id = body["track"]["id"]
    playlists = []
    for title in ("Morning", "Night"):
        made = await client.post("/api/v1/me/playlists", json={"title": title},
                                 headers=lena.headers)  # fmt: skip
        assert made.status_code == 201, await made.get_data(as_text=True)
        playlists.append(f"pl-{(await made.get_json())['id']}")
        added = await client.post(f"/api/v1/playlists/{playlists[-1][3:]}/items",
                                  json={"track_id": track_id}, headers=lena.headers)  # fmt: skip
        assert added.status_code == 201, await added.get_data(as_text=True)
    async with resources_of(app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == "aurora"))
        assert artist is not None
    return Content(
        listener=lena, track=f"tr-{body['track']['id']}", album=f"al-{body['release']['id']}",
        artist=f"ar-{artist.id}", artist_name=artist.display_name, playlist=playlists[0],
        other_playlist=playlists[1],
    )  # fmt: skip


async def test_every_method_contract(app: Quart, client: Client, tmp_path: Path) -> None:
    """Every case in turn, on one library (made once: each case's own would cost a
    transcode), in the table's order, which is also the order their changes build on
    (a playlist is listed before one is made, renamed before it is deleted). Each case's
    failure is collected with its name, so one run shows all of them."""
    # first, so that a missing method fails as one (and an optional picture's code 70
    # cannot be the "no such method" answer)
    missing = [
        needed
        for case in CASES
        for needed in (case.method, *(method for method, _ in case.before))
        if needed not in methods()
    ]
    assert missing == [], f"not Subsonic methods here yet: {missing}"
    content = await _content(app, client, tmp_path)
    failures = []
    for case in CASES:
        try:
            await _check_case(client, content, case)
        except AssertionError as failure:
            failures.append(f"{case.id}: {failure}")
    assert failures == [], "\n".join(failures)


async def _check_case(client: Client, content: Content, case: Case) -> None:
    credentials = {"apiKey": content.listener.token}
    for method, params in case.before:
        filled = {key: content.fill(value) for key, value in params.items()}
        _, body = await call_both(client, method, filled, credentials=credentials)
        assert body["status"] == "ok", (method, body)
    params = {key: content.fill(value) for key, value in case.params.items()}
    if case.binary is not None:
        await _binary(client, case, params, credentials)
        return
    json_params = None
    if case.json_params is not None:
        json_params = {key: content.fill(value) for key, value in case.json_params.items()}
    root, body = await call_both(client, case.method, params, credentials=credentials,
                                 json_params=json_params, differ=case.differ)  # fmt: skip
    assert body["status"] == "ok", body
    answers = {child.tag.removeprefix(f"{{{NAMESPACE}}}") for child in root}
    if case.element is None:
        assert answers == set(), answers
    else:
        assert answers == {case.element}, answers
        assert case.element in body, body
    if case.check is not None:
        assert case.check(body, content), body


async def _binary(client: Client, case: Case, params: dict[str, str],
                  credentials: dict[str, str]) -> None:  # fmt: skip
    """Audio and pictures: the bytes (or, for ``optional``, a code 70 in both formats);
    and the same call for something that does not exist is code 70 in both formats."""
    answer = await client.get(f"/rest/{case.method}", query_string={**params, **credentials})
    if case.optional and answer.content_type.startswith("text/xml"):
        _, body = await call_both(client, case.method, params, credentials=credentials)
        assert body["status"] == "failed" and body["error"]["code"] == 70, body
    else:
        assert answer.status_code == 200, await answer.get_data(as_text=True)
        assert answer.content_type.startswith(case.binary), answer.content_type
        assert len(await answer.get_data()) > 0
    # what names the thing is replaced by a name of nothing; the other parameters stay
    missing = {
        key: {"id": "tr-999999", "username": "nobody"}.get(key, value)
        for key, value in params.items()
    }
    _, body = await call_both(client, case.method, missing, credentials=credentials)
    assert body["status"] == "failed" and body["error"]["code"] == 70, body
