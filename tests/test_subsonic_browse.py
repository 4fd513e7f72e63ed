"""Subsonic browsing and search (server/web/subsonic/browse.py) over the app, on both
databases, with a catalogue made by real uploads of real audio: the shapes apps read in
XML and JSON, paging, every album list, search, cover art, drafts and bad ids."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import event, func, select, update

from models.base import utcnow
from models.catalogue import (
    Artist,
    Favourite,
    FileRole,
    MediaFile,
    Release,
    Tag,
    Track,
    release_tags,
)
from models.federation import RemoteActor
from models.library import AlbumStar
from models.plays import Play, PlayOutcome
from models.remote_plays import RemotePlay, RemoteTrack
from models.users import Role
from server.services.plays import new_track_id
from server.web.current import resources_of
from tests.audio import make_audio, make_cover
from tests.catalogue_fixtures import Account, make_account, run_worker, upload
from tests.test_profiles import api_upload
from tests.test_profiles import picture as make_picture

NS = "{http://subsonic.org/restapi}"


@dataclass
class Library:
    listener: Account
    mira: Account  # artist "aurora" (Aurora)
    bea: Account  # artist "beyonce" (Beyoncé), with a draft
    tracks: dict[str, int]  # title → track id
    releases: dict[str, int]  # title → release id
    artists: dict[str, int]  # name → artist id


async def _upload(
    client: Client, account: Account, tmp_path: Path, title: str, album: str, *,
    genre: str, year: int, position: int, publish: bool = True, cover: bool = False,
) -> dict[str, Any]:  # fmt: skip
    path = make_audio(
        tmp_path / f"{title}.flac", "flac", seconds=2,
        tags={"title": title, "album": album, "genre": genre, "date": f"{year}-05-01",
              "track": str(position)},
        cover=make_cover(tmp_path / f"{title}.png") if cover else None,
    )  # fmt: skip
    answer = await upload(client, account, path, query="?publish=1" if publish else "")
    assert answer.status_code == 202, await answer.get_data(as_text=True)
    track: dict[str, Any] = (await answer.get_json())["track"]
    return track


async def library(app: Quart, client: Client, tmp_path: Path) -> Library:
    mira = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    bea = await make_account(app, "bea", Role.ARTIST, artist="beyonce")
    listener = await make_account(app, "lena", Role.LISTENER, scopes="read")
    await _upload(client, mira, tmp_path, "Morning", "Dawn", genre="Folk", year=2019,
                  position=1, cover=True)  # fmt: skip
    await _upload(client, mira, tmp_path, "Noon", "Dawn", genre="Folk", year=2019, position=2,
                  cover=True)  # fmt: skip
    await _upload(client, mira, tmp_path, "Owl", "Night", genre="Jazz", year=2021, position=1)
    await _upload(client, bea, tmp_path, "Shine", "Éclat", genre="Pop", year=2020, position=1)
    await _upload(client, bea, tmp_path, "Hidden", "Secret", genre="Folk", year=2022,
                  position=1, publish=False, cover=True)  # fmt: skip
    await run_worker(app)
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(Artist).where(Artist.name == "beyonce").values(display_name="Beyoncé",
                summary="Sings <b>loud</b> &amp; clear.")
        )  # fmt: skip
        tracks = dict((await session.execute(select(Track.title, Track.id))).all())
        releases = dict((await session.execute(select(Release.title, Release.id))).all())
        artists = dict((await session.execute(select(Artist.name, Artist.id))).all())
        await session.commit()
    return Library(listener, mira, bea, tracks, releases, artists)


async def call(client: Client, account: Account, method: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(
        f"/rest/{method}", query_string={"apiKey": account.token, "f": "json", **params}
    )
    assert answer.status_code == 200, (method, await answer.get_data(as_text=True))
    body: dict[str, Any] = (await answer.get_json())["subsonic-response"]
    return body


async def ok(client: Client, account: Account, method: str, **params: Any) -> dict[str, Any]:
    body = await call(client, account, method, **params)
    assert body["status"] == "ok", (method, params, body)
    return body


async def xml(client: Client, account: Account, method: str, **params: Any) -> ET.Element:
    answer = await client.get(
        f"/rest/{method}.view", query_string={"apiKey": account.token, **params}
    )
    root = ET.fromstring(await answer.get_data(as_text=True))  # noqa: S314  # our own answer
    assert root.get("status") == "ok", ET.tostring(root)
    return root


def tags_of(element: ET.Element) -> list[str]:
    return [child.tag.removeprefix(NS) for child in element]


async def test_folders_indexes_artists_albums_songs_in_xml_and_json(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    lib = await library(app, client, tmp_path)
    me = lib.listener
    folders = (await ok(client, me, "getMusicFolders"))["musicFolders"]["musicFolder"]
    assert [f["id"] for f in folders] == [1, 2]

    indexes = (await ok(client, me, "getIndexes"))["indexes"]
    assert indexes["ignoredArticles"].startswith("The") and indexes["lastModified"] > 0
    assert [i["name"] for i in indexes["index"]] == ["A", "B"]
    assert indexes["index"][1]["artist"][0]["name"] == "Beyoncé"
    later = await ok(client, me, "getIndexes", ifModifiedSince=indexes["lastModified"])
    assert "index" not in later["indexes"]  # nothing changed since

    artists = (await ok(client, me, "getArtists"))["artists"]
    aurora = artists["index"][0]["artist"][0]
    assert aurora == aurora | {"id": f"ar-{lib.artists['aurora']}", "name": "Aurora",
                               "albumCount": 2}  # fmt: skip
    root = await xml(client, me, "getArtists")
    (index_list,) = root
    assert tags_of(index_list) == ["index", "index"] and tags_of(index_list[0]) == ["artist"]

    artist = (await ok(client, me, "getArtist", id=aurora["id"]))["artist"]
    assert sorted(a["name"] for a in artist["album"]) == ["Dawn", "Night"]

    dawn = f"al-{lib.releases['Dawn']}"
    album = (await ok(client, me, "getAlbum", id=dawn))["album"]
    assert album["songCount"] == 2 and album["year"] == 2019 and album["coverArt"] == dawn
    assert [s["title"] for s in album["song"]] == ["Morning", "Noon"]
    assert album["song"][0]["albumId"] == dawn and album["song"][0]["suffix"] == "mp3"
    assert album["genre"].lower() == "folk" and album["artistId"] == aurora["id"]
    root = await xml(client, me, "getAlbum", id=dawn)
    (element,) = root
    assert element.tag == f"{NS}album" and tags_of(element)[-2:] == ["song", "song"]

    song = (await ok(client, me, "getSong", id=f"tr-{lib.tracks['Owl']}"))["song"]
    assert song["title"] == "Owl" and song["album"] == "Night" and song["isDir"] is False

    directory = (await ok(client, me, "getMusicDirectory", id=aurora["id"]))["directory"]
    assert directory["name"] == "Aurora"
    assert {c["title"] for c in directory["child"]} == {"Dawn", "Night"}
    assert all(c["isDir"] is True for c in directory["child"])
    directory = (await ok(client, me, "getMusicDirectory", id=dawn))["directory"]
    assert [c["title"] for c in directory["child"]] == ["Morning", "Noon"]
    assert directory["parent"] == aurora["id"]
    root = await xml(client, me, "getMusicDirectory", id=dawn)
    assert tags_of(root[0]) == ["child", "child"]

    # batched: an album of two songs takes no more queries than an album of one
    async def queries(method: str, **params: Any) -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        engines = [resources_of(app).read_engine.sync_engine, resources_of(app).engine.sync_engine]
        for engine in engines:
            event.listen(engine, "before_cursor_execute", count)
        try:
            await ok(client, me, method, **params)
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    night = f"al-{lib.releases['Night']}"
    assert await queries("getAlbum", id=dawn) == await queries("getAlbum", id=night)
    one = await queries("getAlbumList2", type="newest", size=1)
    assert one > 5  # the listener hears of them: counting works
    assert await queries("getAlbumList2", type="newest", size=3) == one


async def test_album_lists_of_every_type_with_paging(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    lib = await library(app, client, tmp_path)
    me = lib.listener
    now = utcnow()
    async with resources_of(app).sessionmaker() as session:
        session.add(Favourite(user_id=me.user_id, track_id=lib.tracks["Shine"]))
        # a starred album is a star of its own; a favourite track does not star its album
        session.add(AlbumStar(user_id=me.user_id, release_id=lib.releases["Éclat"]))
        session.add(Favourite(user_id=lib.mira.user_id, track_id=lib.tracks["Shine"]))
        session.add(Favourite(user_id=lib.mira.user_id, track_id=lib.tracks["Owl"]))
        for minutes, title in ((30, "Owl"), (20, "Owl"), (10, "Morning")):
            at = now - timedelta(minutes=minutes)
            session.add(
                Play(user_id=me.user_id, track_id=lib.tracks[title], at=at,
                     outcome=PlayOutcome.FREE)
            )  # fmt: skip
        await session.commit()

    async def names(kind: str, **params: Any) -> list[str]:
        body = await ok(client, me, "getAlbumList2", type=kind, **params)
        return [a["name"] for a in body["albumList2"]["album"]]

    assert await names("alphabeticalByName") == ["Dawn", "Éclat", "Night"]  # folded: É with E
    assert await names("alphabeticalByName", size=1, offset=1) == ["Éclat"]
    assert await names("alphabeticalByArtist") == ["Dawn", "Night", "Éclat"]
    assert sorted(await names("newest")) == ["Dawn", "Night", "Éclat"]
    assert sorted(await names("random")) == ["Dawn", "Night", "Éclat"]
    assert await names("recent") == ["Dawn", "Night"]
    assert await names("frequent") == ["Night", "Dawn"]
    assert await names("starred") == ["Éclat"]
    assert await names("highest") == ["Éclat", "Night"]
    assert await names("byGenre", genre="folk") == ["Dawn"]
    assert await names("byYear", fromYear=2019, toYear=2020) == ["Dawn", "Éclat"]
    assert await names("byYear", fromYear=2021, toYear=2019) == ["Night", "Éclat", "Dawn"]
    assert await names("newest", musicFolderId=2) == []
    starred = (await ok(client, me, "getAlbumList2", type="starred"))["albumList2"]["album"]
    assert starred[0]["starred"]
    recent = (await ok(client, me, "getAlbumList2", type="frequent"))["albumList2"]["album"]
    assert recent[0]["playCount"] == 2

    old = (await ok(client, me, "getAlbumList", type="alphabeticalByName"))["albumList"]
    assert [a["title"] for a in old["album"]] == ["Dawn", "Éclat", "Night"]
    assert all(a["isDir"] is True for a in old["album"])
    root = await xml(client, me, "getAlbumList2", type="newest")
    assert tags_of(root[0]) == ["album"] * 3

    for params, code in (
        ({"type": "nonsense"}, 0),
        ({}, 10),
        ({"type": "byGenre"}, 10),
        ({"type": "byYear", "fromYear": 2000}, 10),
        ({"type": "newest", "size": "many"}, 0),
        ({"type": "newest", "musicFolderId": 7}, 70),
    ):
        body = await call(client, me, "getAlbumList2", **params)
        assert body["status"] == "failed" and body["error"]["code"] == code, (params, body)


async def test_search_folds_accents_pages_and_lists_everything_on_an_empty_query(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    lib = await library(app, client, tmp_path)
    me = lib.listener
    found = (await ok(client, me, "search3", query="beyonce"))["searchResult3"]
    assert [a["name"] for a in found["artist"]] == ["Beyoncé"]
    found = (await ok(client, me, "search3", query="eclat"))["searchResult3"]
    assert [a["name"] for a in found["album"]] == ["Éclat"]
    found = (await ok(client, me, "search3", query="owl"))["searchResult3"]
    assert [s["title"] for s in found["song"]] == ["Owl"] and found["artist"] == []

    for empty in ("", '""'):
        everything = (await ok(client, me, "search3", query=empty, songCount=500))["searchResult3"]
        assert {s["title"] for s in everything["song"]} == {"Morning", "Noon", "Owl", "Shine"}
        assert [a["name"] for a in everything["album"]] == ["Dawn", "Éclat", "Night"]
        assert [a["name"] for a in everything["artist"]] == ["Aurora", "Beyoncé"]
    pages = []
    for offset in range(0, 6, 2):
        page = await ok(client, me, "search3", query="", songCount=2, songOffset=offset,
                        artistCount=0, albumCount=0)  # fmt: skip
        assert page["searchResult3"]["artist"] == [] and page["searchResult3"]["album"] == []
        pages.append([s["id"] for s in page["searchResult3"]["song"]])
    assert [len(p) for p in pages] == [2, 2, 0]
    assert len(set(pages[0] + pages[1])) == 4

    old = (await ok(client, me, "search2", query="dawn"))["searchResult2"]
    assert [a["title"] for a in old["album"]] == ["Dawn"] and old["album"][0]["isDir"] is True
    root = await xml(client, me, "search3", query="")
    assert tags_of(root[0]) == ["artist"] * 2 + ["album"] * 3 + ["song"] * 4


async def test_genres_random_songs_top_and_similar_songs_and_infos(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    lib = await library(app, client, tmp_path)
    me = lib.listener
    genres = (await ok(client, me, "getGenres"))["genres"]["genre"]
    counts = {g["value"].lower(): (g["songCount"], g["albumCount"]) for g in genres}
    assert counts == {"folk": (2, 1), "jazz": (1, 1), "pop": (1, 1)}  # the draft's Folk: not
    root = await xml(client, me, "getGenres")
    assert root[0][0].text and root[0][0].get("songCount")

    by_genre = (await ok(client, me, "getSongsByGenre", genre="Folk"))["songsByGenre"]["song"]
    assert [s["title"] for s in by_genre] == ["Morning", "Noon"]
    paged = await ok(client, me, "getSongsByGenre", genre="Folk", count=1, offset=1)
    assert [s["title"] for s in paged["songsByGenre"]["song"]] == ["Noon"]

    randomly = (await ok(client, me, "getRandomSongs", size=10))["randomSongs"]["song"]
    assert sorted(s["title"] for s in randomly) == ["Morning", "Noon", "Owl", "Shine"]
    of_year = await ok(client, me, "getRandomSongs", fromYear=2020, toYear=2021)
    assert sorted(s["title"] for s in of_year["randomSongs"]["song"]) == ["Owl", "Shine"]
    jazz = await ok(client, me, "getRandomSongs", genre="jazz")
    assert [s["title"] for s in jazz["randomSongs"]["song"]] == ["Owl"]

    async with resources_of(app).sessionmaker() as session:
        session.add(Favourite(user_id=me.user_id, track_id=lib.tracks["Noon"]))
        # Dawn and Éclat share a tag: that is what makes them similar
        tag = Tag(name="sunny")
        session.add(tag)
        await session.flush()
        for title in ("Dawn", "Éclat"):
            await session.execute(
                release_tags.insert().values(release_id=lib.releases[title], tag_id=tag.id)
            )
        await session.commit()
    # Noon is a favourite now, which does not star its album
    listed = await ok(client, me, "getAlbumList2", type="starred")
    assert listed["albumList2"] == {"album": []}
    top = (await ok(client, me, "getTopSongs", artist="aurora"))["topSongs"]["song"]
    assert [s["title"] for s in top][:1] == ["Noon"] and len(top) == 3
    assert (await ok(client, me, "getTopSongs", artist="nobody"))["topSongs"] == {"song": []}

    similar = await ok(client, me, "getSimilarSongs2", id=f"al-{lib.releases['Dawn']}")
    assert [s["title"] for s in similar["similarSongs2"]["song"]] == ["Shine"]

    bea = f"ar-{lib.artists['beyonce']}"
    info = (await ok(client, me, "getArtistInfo2", id=bea))["artistInfo2"]
    assert info["biography"].startswith("Sings loud & clear.")  # markup gone
    assert info["biography"].endswith("/artists/beyonce")
    assert [a["name"] for a in info["similarArtist"]] == ["Aurora"]
    info = (await ok(client, me, "getArtistInfo", id=bea))["artistInfo"]
    assert info["similarArtist"][0]["id"] == f"ar-{lib.artists['aurora']}"
    root = await xml(client, me, "getArtistInfo2", id=bea)
    assert tags_of(root[0]) == ["biography", "similarArtist"]

    dawn = lib.releases["Dawn"]
    album_info = (await ok(client, me, "getAlbumInfo2", id=f"al-{dawn}"))["albumInfo"]
    assert album_info["notes"].endswith(f"/releases/{dawn}")
    assert album_info["largeImageUrl"].endswith(f"/releases/{dawn}/cover")
    assert "notes" in (await ok(client, me, "getAlbumInfo", id=f"al-{dawn}"))["albumInfo"]

    # every method in XML: its element, and the children apps read, in the XSD's order
    aurora, owl = f"ar-{lib.artists['aurora']}", f"tr-{lib.tracks['Owl']}"
    shapes: dict[str, tuple[dict[str, Any], str, list[str]]] = {
        "getMusicFolders": ({}, "musicFolders", ["musicFolder"] * 2),
        "getIndexes": ({}, "indexes", ["index"] * 2),
        "getArtist": ({"id": aurora}, "artist", ["album"] * 2),
        "getSong": ({"id": owl}, "song", []),
        "getAlbumList": ({"type": "newest"}, "albumList", ["album"] * 3),
        "getRandomSongs": ({"genre": "Jazz"}, "randomSongs", ["song"]),
        "getSongsByGenre": ({"genre": "Jazz"}, "songsByGenre", ["song"]),
        "search2": ({"query": "owl"}, "searchResult2", ["song"]),
        "getArtistInfo": ({"id": bea}, "artistInfo", ["biography", "similarArtist"]),
        "getAlbumInfo": ({"id": f"al-{dawn}"}, "albumInfo", ["notes", "smallImageUrl",
                         "mediumImageUrl", "largeImageUrl"]),
        "getTopSongs": ({"artist": "Aurora"}, "topSongs", ["song"] * 3),
        "getSimilarSongs2": ({"id": f"al-{dawn}"}, "similarSongs2", ["song"]),
        "getSimilarSongs": ({"id": f"al-{dawn}"}, "similarSongs", ["song"]),
    }  # fmt: skip
    for method, (params, element, children) in shapes.items():
        root = await xml(client, me, method, **params)
        (answer,) = root
        assert answer.tag == f"{NS}{element}", method
        listed = [tag for tag in tags_of(answer) if tag in set(children)]
        assert listed == children, (method, tags_of(answer))


async def test_cover_art_at_the_asked_size_and_avatars(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    lib = await library(app, client, tmp_path)
    me = lib.listener
    dawn = f"al-{lib.releases['Dawn']}"
    whole = await client.get("/rest/getCoverArt", query_string={"apiKey": me.token, "id": dawn})
    assert whole.status_code == 200 and whole.content_type.startswith("image/")
    with Image.open(io.BytesIO(await whole.get_data())) as picture:
        assert picture.size == (64, 64)  # as uploaded
    for ref in (dawn, f"tr-{lib.tracks['Noon']}"):
        small = await client.get(
            "/rest/getCoverArt", query_string={"apiKey": me.token, "id": ref, "size": 32}
        )
        assert small.status_code == 200 and small.headers["Cache-Control"].startswith("public")
        with Image.open(io.BytesIO(await small.get_data())) as picture:
            assert picture.size == (32, 32)
    again = await client.get(
        "/rest/getCoverArt",
        query_string={"apiKey": me.token, "id": dawn, "size": 32},
        headers={"If-None-Match": small.headers["ETag"]},
    )
    assert again.status_code == 304
    for ref in (f"al-{lib.releases['Night']}", f"ar-{lib.artists['aurora']}", "tr-999999",
                f"al-{lib.releases['Secret']}", "pl-5"):  # fmt: skip
        body = await call(client, me, "getCoverArt", id=ref)
        assert body["error"]["code"] == 70, ref
    assert (await call(client, me, "getCoverArt"))["error"]["code"] == 10
    assert (await call(client, me, "getAvatar", username="mira"))["error"]["code"] == 70
    assert (await call(client, me, "getAvatar", username="nobody"))["error"]["code"] == 70

    # an artist's avatar: her picture in getAvatar, the artist's cover art, its image URL
    sent = await api_upload(client, lib.mira, "aurora", "avatar", make_picture("PNG", (900, 600)))
    assert sent.status_code == 202, await sent.get_data(as_text=True)
    await run_worker(app)
    avatar = await client.get(
        "/rest/getAvatar", query_string={"apiKey": me.token, "username": "mira"}
    )
    assert avatar.status_code == 200
    with Image.open(io.BytesIO(await avatar.get_data())) as shown:
        assert shown.size == (400, 400)
    aurora = f"ar-{lib.artists['aurora']}"
    face = await client.get(
        "/rest/getCoverArt", query_string={"apiKey": me.token, "id": aurora, "size": 50}
    )
    with Image.open(io.BytesIO(await face.get_data())) as shown:
        assert shown.size == (64, 64)  # 50 is made at its step: 64
    (listed, *_rest) = (await ok(client, me, "getArtists"))["artists"]["index"][0]["artist"]
    assert listed["coverArt"] == aurora and listed["artistImageUrl"].endswith(".jpg")
    info = (await ok(client, me, "getArtistInfo2", id=aurora))["artistInfo2"]
    assert info["largeImageUrl"] == listed["artistImageUrl"]
    # the draft's cover is its artist's to see, and no shared cache keeps it
    secret = await client.get(
        "/rest/getCoverArt",
        query_string={"apiKey": lib.bea.token, "id": f"al-{lib.releases['Secret']}", "size": 16},
    )
    assert secret.status_code == 200 and secret.headers["Cache-Control"] == "private, no-store"
    with Image.open(io.BytesIO(await secret.get_data())) as picture:
        assert picture.size == (16, 16)


async def test_drafts_are_their_artists_alone(app: Quart, client: Client, tmp_path: Path) -> None:
    lib = await library(app, client, tmp_path)
    secret = f"al-{lib.releases['Secret']}"
    hidden = f"tr-{lib.tracks['Hidden']}"
    bea = f"ar-{lib.artists['beyonce']}"
    for who in (lib.listener, lib.mira):
        for method, ref in (("getAlbum", secret), ("getSong", hidden),
                            ("getMusicDirectory", secret), ("getAlbumInfo2", secret)):  # fmt: skip
            body = await call(client, who, method, id=ref)
            assert body["error"]["code"] == 70, (method, body)
        albums = (await ok(client, who, "getArtist", id=bea))["artist"]["album"]
        assert [a["name"] for a in albums] == ["Éclat"]
        listed = await ok(client, who, "getAlbumList2", type="alphabeticalByName", size=500)
        assert "Secret" not in {a["name"] for a in listed["albumList2"]["album"]}
        everything = await ok(client, who, "search3", query="", songCount=500)
        assert "Hidden" not in {s["title"] for s in everything["searchResult3"]["song"]}
        genre = await ok(client, who, "getSongsByGenre", genre="Folk")
        assert "Hidden" not in {s["title"] for s in genre["songsByGenre"]["song"]}
    own = (await ok(client, lib.bea, "getAlbum", id=secret))["album"]
    assert [s["title"] for s in own["song"]] == ["Hidden"]
    listed = await ok(client, lib.bea, "getAlbumList2", type="alphabeticalByName")
    assert "Secret" in {a["name"] for a in listed["albumList2"]["album"]}


async def test_bad_and_missing_ids_are_subsonic_errors(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    me = await make_account(app, "lena", Role.LISTENER, scopes="read")
    methods = ("getArtist", "getAlbum", "getSong", "getMusicDirectory", "getArtistInfo2",
               "getAlbumInfo2", "getSimilarSongs2", "getCoverArt")  # fmt: skip
    for method in methods:
        assert (await call(client, me, method))["error"]["code"] == 10, method
        for ref in ("ar-x", "tr-0", "al-999999", "ar-999999", "tr-999999", "pal-3", "par-3",
                    "ptr-3", "nonsense", "al--1", "al-01"):  # fmt: skip
            body = await call(client, me, method, id=ref)
            assert body["status"] == "failed" and body["error"]["code"] == 70, (method, ref)
    for method in ("getSongsByGenre", "getTopSongs", "getAvatar"):
        assert (await call(client, me, method))["error"]["code"] == 10, method
    odd = {
        "getAlbumList2": {"type": "newest", "offset": 10**20, "size": 10**9},
        "search3": {"query": "!!!", "songOffset": 10**30, "artistCount": -1},
        "getRandomSongs": {"fromYear": 0},
        "getIndexes": {"ifModifiedSince": "yesterday"},
        "getSongsByGenre": {"genre": "x" * 5000, "offset": 10**25},
        "getCoverArt": {"id": "al-1", "size": 0},
        "getArtists": {"musicFolderId": "one"},
    }
    for method, params in odd.items():
        body = await call(client, me, method, **params)  # asserts a 200, never a 500
        assert body["status"] in ("ok", "failed"), (method, body)
    codes = {
        method: (await call(client, me, method, **params)).get("error", {}).get("code")
        for method, params in odd.items()
    }
    assert codes == {"getAlbumList2": None, "search3": 0, "getRandomSongs": 0,
                     "getIndexes": 0, "getSongsByGenre": None, "getCoverArt": 0,
                     "getArtists": 0}  # fmt: skip


async def test_partners_tracks_are_the_second_folder(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    me = await make_account(app, "lena", Role.LISTENER, scopes="read")
    async with resources_of(app).sessionmaker() as session:
        payee = RemoteActor(uri="https://far.example/actor", domain="far.example",
                            type="Application", inbox="https://far.example/inbox")  # fmt: skip
        session.add(payee)
        session.add(RemoteActor(uri="https://far.example/artists/zed", domain="far.example",
                                type="Person", name="Zed", inbox="https://far.example/i",
                                summary_html="<p>From <i>far</i> away</p>"))  # fmt: skip
        await session.flush()
        for position, title in ((2, "Two"), (1, "One")):
            session.add(RemoteTrack(  # numbered as resolve_release numbers them
                id=await new_track_id(session),
                uri=f"https://far.example/tracks/{position}", payee_id=payee.id,
                artist_uri="https://far.example/artists/zed", title=title, duration_ms=60_000,
                position=position, release_uri="https://far.example/releases/9",
                release_title="Faraway", stream_url=f"https://far.example/s/{position}",
            ))  # fmt: skip
        await session.flush()
        first = min(await session.scalars(select(RemoteTrack.id)))
        two = await session.scalar(select(RemoteTrack.id).where(RemoteTrack.title == "Two"))
        assert two is not None
        session.add(
            RemotePlay(listen_uri="https://here.example/listens/1", user_id=me.user_id,
                       remote_track_id=two, payee_id=payee.id, listener="p1")
        )  # fmt: skip
        await session.commit()
    artists = (await ok(client, me, "getArtists", musicFolderId=2))["artists"]["index"]
    zed = artists[0]["artist"][0]
    assert zed["name"] == "Zed" and zed["id"] == f"par-{first}"
    assert (await ok(client, me, "getArtists", musicFolderId=1))["artists"]["index"] == []
    artist = (await ok(client, me, "getArtist", id=zed["id"]))["artist"]
    (album,) = artist["album"]
    assert album["name"] == "Faraway" and album["id"] == f"pal-{first}"
    whole = (await ok(client, me, "getAlbum", id=album["id"]))["album"]
    assert [s["title"] for s in whole["song"]] == ["One", "Two"]
    assert all(s["id"].startswith("tr-") and s["albumId"] == album["id"] for s in whole["song"])
    song = (await ok(client, me, "getSong", id=whole["song"][0]["id"]))["song"]
    assert song["title"] == "One" and song["artistId"] == zed["id"]
    # any of the release's tracks names it; the id shown is always the same
    other = (await ok(client, me, "getAlbum", id=f"pal-{first + 1}"))["album"]
    assert other["id"] == album["id"]
    listed = await ok(client, me, "getAlbumList2", type="alphabeticalByName")
    assert [a["id"] for a in listed["albumList2"]["album"]] == [album["id"]]
    recent = (await ok(client, me, "getAlbumList2", type="recent"))["albumList2"]["album"]
    assert [a["id"] for a in recent] == [album["id"]] and recent[0]["playCount"] == 1
    assert [(s["title"], s.get("playCount")) for s in whole["song"]] == [("One", None), ("Two", 1)]
    info = (await ok(client, me, "getArtistInfo2", id=zed["id"]))["artistInfo2"]
    assert info["biography"] == "From far away"
    everything = await ok(client, me, "search3", query="")
    assert len(everything["searchResult3"]["song"]) == 2
    assert (await call(client, me, "getAlbum", id=f"tr-{first}"))["error"]["code"] == 70
    # the partner folder has no years: byYear lists none there
    by_year = await ok(client, me, "getAlbumList2", type="byYear", fromYear=1900,
                       toYear=2999)  # fmt: skip
    assert by_year["albumList2"]["album"] == []


async def test_found_in_review_odd_input_and_races(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    """Each of these was a 500: years past 9999, a cover gone from the media store, and
    two apps starring the same song at once (an insert race on PostgreSQL)."""
    lib = await library(app, client, tmp_path)
    me = lib.listener
    for params in ({"type": "byYear", "fromYear": 20000, "toYear": 30000},
                   {"type": "byYear", "fromYear": 1, "toYear": 10000}):  # fmt: skip
        assert (await call(client, me, "getAlbumList2", **params))["status"] == "ok", params
    assert (await call(client, me, "getRandomSongs", fromYear=10000))["status"] == "ok"
    song = f"tr-{lib.tracks['Shine']}"
    fan = await make_account(app, "fan", Role.LISTENER, scopes="read write")
    answers = await asyncio.gather(*(call(client, fan, "star", id=song) for _ in range(8)))
    assert {answer["status"] for answer in answers} == {"ok"}
    async with resources_of(app).sessionmaker() as session:
        stars = await session.scalar(
            select(func.count()).select_from(Favourite).where(Favourite.user_id == fan.user_id)
        )
        cover = await session.scalar(select(MediaFile).where(MediaFile.role == FileRole.COVER))
    assert stars == 1 and cover is not None
    (resources_of(app).settings.media_dir / cover.storage_key).unlink()
    gone = await call(client, me, "getCoverArt", id=f"al-{cover.release_id}", size=40)
    assert gone["error"]["code"] == 70
