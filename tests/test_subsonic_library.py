"""The listener's library over the Subsonic API, on both databases: stars (the web's
favourites), playlists (the web's own), the saved play queue and what is playing now;
each method in XML and JSON, other people's things refused, bad ids changing nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select, update

from models.base import utcnow
from models.catalogue import Favourite, Playlist, PlaylistItem, Track
from models.federation import RemoteActor
from models.library import AlbumStar, ArtistStar, PlayQueue
from models.library import NowPlaying as NowPlayingRow
from models.plays import PlaySession
from models.remote_plays import RemotePlaySession, RemoteTrack
from models.users import Role
from server.services import plays
from server.services.errors import NotFoundError
from server.services.subsonic import queue
from server.web.current import resources_of
from subsonic.envelope import NAMESPACE
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, count_rows, make_account, run_worker, upload

__all__ = ["artist"]
from tests.catalogue_fixtures import artist

NS = f"{{{NAMESPACE}}}"
Param = str | int | list[str]


def url(account: Account, method: str, fmt: str, params: dict[str, Param]) -> str:
    pairs: list[tuple[str, str]] = [("apiKey", account.token), ("c", "Tester"), ("f", fmt)]
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, str(item)))
    return f"/rest/{method}?{urlencode(pairs)}"


async def call(client: Client, account: Account, method: str, **params: Param) -> Any:
    """The JSON answer's ``subsonic-response``."""
    answer = await client.get(url(account, method, "json", params))
    assert answer.status_code == 200, method
    return (await answer.get_json())["subsonic-response"]


async def ok(client: Client, account: Account, method: str, **params: Param) -> Any:
    body = await call(client, account, method, **params)
    assert body["status"] == "ok", (method, params, body)
    return body


async def refused(client: Client, account: Account, code: int, method: str, **params: Param) -> str:
    body = await call(client, account, method, **params)
    assert body["status"] == "failed", (method, params, body)
    assert body["error"]["code"] == code, (method, params, body)
    return str(body["error"]["message"])


async def xml(client: Client, account: Account, method: str, **params: Param) -> Any:
    answer = await client.get(url(account, method, "xml", params))
    assert answer.content_type.startswith("text/xml")
    root = ElementTree.fromstring(await answer.get_data(as_text=True))  # noqa: S314 (our own answer)
    assert root.get("status") == "ok", ElementTree.tostring(root)
    return root


async def tracks(
    app: Quart, client: Client, account: Account, tmp_path: Path, count: int, query: str,
    album: str = "Tones",
) -> list[str]:  # fmt: skip
    """``count`` ready tracks of one album with real audio, as Subsonic ids."""
    found = []
    for number in range(count):
        path = make_audio(tmp_path / f"{album}-{number}.flac", "flac", seconds=3,
                          frequency=300 + 50 * number,
                          tags={"title": f"Tone {number}", "album": album})  # fmt: skip
        body = await (await upload(client, account, path, query=query)).get_json()
        found.append(f"tr-{body['track']['id']}")
    await run_worker(app)
    return found


async def partner_track(app: Quart) -> str:
    """A partner's track known here, with an id from the tracks' one id space."""
    async with resources_of(app).sessionmaker() as session:
        payee = RemoteActor(uri="https://partner.example/actor", domain="partner.example",
                            type="Application", inbox="https://partner.example/inbox")  # fmt: skip
        session.add(payee)
        await session.flush()
        remote = RemoteTrack(id=await plays.new_track_id(session),
                             uri="https://partner.example/tracks/1", payee_id=payee.id,
                             artist_uri="https://partner.example/artists/a", title="Ebb",
                             release_uri="https://partner.example/releases/1",
                             release_title="Tides", duration_ms=200_000,
                             stream_url="https://partner.example/tracks/1/stream")  # fmt: skip
        session.add(remote)
        await session.commit()
        return f"tr-{remote.id}"


async def album_of(app: Quart, song: str) -> tuple[str, str]:
    """The Subsonic ids of the song's album and artist."""
    async with resources_of(app).read_sessionmaker() as session:
        track = await session.get(Track, int(song[3:]))
        assert track is not None
        return f"al-{track.release_id}", f"ar-{track.artist_id}"


async def csrf(client: Client, path: str) -> str:
    page = await (await client.get(path)).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def log_in(client: Client, name: str) -> None:
    token = await csrf(client, "/login")
    answer = await client.post(
        "/login", form={"csrf_token": token, "username": name, "password": "a long password"}
    )
    assert answer.status_code == 303


async def test_stars_are_the_web_favourites_in_xml_and_json(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    first, second = await tracks(app, client, artist, tmp_path, 2, "?publish=1")
    lena = await make_account(app, "lena", Role.LISTENER)
    album, performer = await album_of(app, first)

    await xml(client, lena, "star", id=first, albumId=album, artistId=performer)
    await ok(client, lena, "star", id=first)  # twice is fine
    body = (await ok(client, lena, "getStarred2"))["starred2"]
    assert [song["id"] for song in body["song"]] == [first]
    assert body["song"][0]["starred"]
    assert [item["id"] for item in body["album"]] == [album]
    assert body["album"][0]["songCount"] == 2 and body["album"][0]["starred"]
    assert [item["id"] for item in body["artist"]] == [performer]
    assert body["artist"][0]["name"] == "Aurora" and body["artist"][0]["albumCount"] == 1
    root = await xml(client, lena, "getStarred")
    starred = root.find(f"{NS}starred")
    assert [e.get("id") for e in starred.findall(f"{NS}song")] == [first]
    assert [e.get("isDir") for e in starred.findall(f"{NS}album")] == ["true"]
    assert [e.get("id") for e in starred.findall(f"{NS}artist")] == [performer]
    assert await count_rows(app, AlbumStar) == 1 and await count_rows(app, ArtistStar) == 1

    # the very same favourite the web's library page lists
    web = app.test_client()
    await log_in(web, "lena")
    library = await (await web.get("/library")).get_data(as_text=True)
    favourites = library.split('id="favourites-heading"')[1].split("</section>")[0]
    assert "Tone 0" in favourites and "Tone 1" not in favourites

    # and the web's button stars it for the apps
    track_page = f"/tracks/{second[3:]}"
    token = await csrf(web, track_page)
    answer = await web.post(f"{track_page}/favourite", form={"csrf_token": token})
    assert answer.status_code == 302
    body = (await ok(client, lena, "getStarred2"))["starred2"]
    assert {song["id"] for song in body["song"]} == {first, second}

    await xml(client, lena, "unstar", id=[first, second], albumId=album, artistId=performer)
    await ok(client, lena, "unstar", id=first)  # not starred: fine
    body = (await ok(client, lena, "getStarred"))["starred"]
    assert body.get("song", []) == [] and body.get("album", []) == []
    assert body.get("artist", []) == []
    assert await count_rows(app, Favourite) == 0 and await count_rows(app, AlbumStar) == 0
    library = await (await web.get("/library")).get_data(as_text=True)
    assert "Tone 0" not in library.split('id="favourites-heading"')[1].split("</section>")[0]


async def test_bad_stars_change_nothing(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    (song,) = await tracks(app, client, artist, tmp_path, 1, "?publish=1")
    (draft,) = await tracks(app, client, artist, tmp_path, 1, "", album="Unreleased")
    partner = await partner_track(app)
    lena = await make_account(app, "lena", Role.LISTENER)
    reader = await make_account(app, "lena_reads", Role.LISTENER, scopes="read")

    for bad in ("tr-999999", "xyz", "tr-0", "pl-1", draft):
        await refused(client, lena, 70, "star", id=[song, bad])
    await refused(client, lena, 70, "star", id=song, albumId="al-999999")
    await refused(client, lena, 70, "star", artistId="ar-999999")
    await refused(client, lena, 70, "unstar", id=[song, "tr-999999"])
    message = await refused(client, lena, 0, "star", id=[song, partner])
    assert "partner" in message
    await ok(client, lena, "unstar", id=partner)  # never starred, so nothing to undo
    await refused(client, lena, 10, "star")
    await refused(client, reader, 50, "star", id=song)
    assert "ratings" in await refused(client, lena, 0, "setRating", id=song, rating=5)
    assert await count_rows(app, Favourite) == 0
    assert await count_rows(app, AlbumStar) == 0 and await count_rows(app, ArtistStar) == 0
    # the artist sees her own draft, so she may star it
    await ok(client, artist, "star", id=draft)
    assert await count_rows(app, Favourite) == 1


async def web_playlist(client: Client, account: Account, playlist: str) -> Any:
    answer = await client.get(f"/api/v1/playlists/{playlist[3:]}", headers=account.headers)
    return answer.status_code, await answer.get_json()


async def test_playlists_are_the_web_playlists(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    songs = await tracks(app, client, artist, tmp_path, 5, "?publish=1")
    lena = await make_account(app, "lena", Role.LISTENER)

    made = (await ok(client, lena, "createPlaylist", name="Morning", songId=songs[:3]))["playlist"]
    playlist = made["id"]
    assert made["name"] == "Morning" and made["owner"] == "lena" and made["public"] is False
    assert [entry["id"] for entry in made["entry"]] == songs[:3]
    assert made["songCount"] == 3 and made["duration"] == 9
    status, seen = await web_playlist(client, lena, playlist)
    assert status == 200 and seen["title"] == "Morning"
    assert [f"tr-{item['track_id']}" for item in seen["items"]] == songs[:3]

    # the web adds one, and removes the second: the apps see both
    items = f"/api/v1/playlists/{playlist[3:]}/items"
    answer = await client.post(items, headers=lena.headers, json={"track_id": int(songs[3][3:])})
    assert answer.status_code == 201
    answer = await client.delete(f"{items}/2", headers=lena.headers)
    assert answer.status_code == 204
    root = await xml(client, lena, "getPlaylist", id=playlist)
    shown = root.find(f"{NS}playlist")
    assert [e.get("id") for e in shown.findall(f"{NS}entry")] == [songs[0], songs[2], songs[3]]
    assert shown.get("songCount") == "3"
    changed = shown.get("changed")

    # indexes count what the app was shown (0, 1, 2 despite the gap at place 2)
    await ok(client, lena, "updatePlaylist", playlistId=playlist, name="Evening",
             comment="for later", public="true", songIndexToRemove=["0", "2"],
             songIdToAdd=[songs[4], songs[1]])  # fmt: skip
    body = (await ok(client, lena, "getPlaylist", id=playlist))["playlist"]
    assert [entry["id"] for entry in body["entry"]] == [songs[2], songs[4], songs[1]]
    assert body["name"] == "Evening" and body["comment"] == "for later" and body["public"]
    assert body["changed"] > changed
    status, seen = await web_playlist(client, lena, playlist)
    assert seen["title"] == "Evening" and seen["public"] is True
    assert [f"tr-{item['track_id']}" for item in seen["items"]] == [songs[2], songs[4], songs[1]]

    listed = (await ok(client, lena, "getPlaylists"))["playlists"]["playlist"]
    assert [(item["id"], item["songCount"]) for item in listed] == [(playlist, 3)]
    assert "entry" not in listed[0]
    root = await xml(client, lena, "getPlaylists")
    assert [e.get("name") for e in root.iter(f"{NS}playlist")] == ["Evening"]

    # createPlaylist with playlistId replaces the songs
    body = await ok(client, lena, "createPlaylist", playlistId=playlist, songId=[songs[0]])
    assert [entry["id"] for entry in body["playlist"]["entry"]] == [songs[0]]
    status, seen = await web_playlist(client, lena, playlist)
    assert [f"tr-{item['track_id']}" for item in seen["items"]] == [songs[0]]

    # a playlist made on the web is one the apps list; one made in XML, the web's too
    answer = await client.post("/api/v1/me/playlists", headers=lena.headers, json={"title": "Web"})
    assert answer.status_code == 201
    root = await xml(client, lena, "createPlaylist", name="Night", songId=songs[4])
    night = root.find(f"{NS}playlist")
    assert [e.get("id") for e in night.findall(f"{NS}entry")] == [songs[4]]
    status, seen = await web_playlist(client, lena, night.get("id"))
    assert status == 200 and seen["title"] == "Night"
    listed = (await ok(client, lena, "getPlaylists"))["playlists"]["playlist"]
    assert [item["name"] for item in listed] == ["Evening", "Web", "Night"]

    # read-only credentials change nothing
    reader = await make_account(app, "lena_reads", Role.LISTENER, scopes="read")
    await refused(client, reader, 50, "createPlaylist", name="No")
    await refused(client, reader, 50, "deletePlaylist", id=playlist)
    await refused(client, reader, 50, "savePlayQueue", id=songs[0])

    await xml(client, lena, "updatePlaylist", playlistId=night.get("id"), name="Late")
    assert (await web_playlist(client, lena, night.get("id")))[1]["title"] == "Late"
    await xml(client, lena, "deletePlaylist", id=night.get("id"))
    await ok(client, lena, "deletePlaylist", id=playlist)
    status, _ = await web_playlist(client, lena, playlist)
    assert status == 404
    await refused(client, lena, 70, "getPlaylist", id=playlist)


async def test_other_peoples_playlists_and_bad_changes(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    songs = await tracks(app, client, artist, tmp_path, 2, "?publish=1")
    partner = await partner_track(app)
    lena = await make_account(app, "lena", Role.LISTENER)
    omar = await make_account(app, "omar", Role.LISTENER)
    admin = await make_account(app, "admina", Role.ADMIN, scopes="read write admin")
    private = (await ok(client, lena, "createPlaylist", name="Mine", songId=songs[0]))["playlist"]
    public = (await ok(client, lena, "createPlaylist", name="Ours", songId=songs[0]))["playlist"]
    await ok(client, lena, "updatePlaylist", playlistId=public["id"], public="true")

    # another listener: the private one does not exist, the public one is read-only
    await refused(client, omar, 70, "getPlaylist", id=private["id"])
    await refused(client, omar, 70, "updatePlaylist", playlistId=private["id"], name="x")
    await refused(client, omar, 70, "deletePlaylist", id=private["id"])
    assert (await ok(client, omar, "getPlaylist", id=public["id"]))["playlist"]["name"] == "Ours"
    await refused(client, omar, 50, "updatePlaylist", playlistId=public["id"], name="Theirs")
    await refused(client, omar, 50, "deletePlaylist", id=public["id"])
    await refused(client, omar, 50, "createPlaylist", playlistId=public["id"], songId=songs[1])
    listed = (await ok(client, omar, "getPlaylists", username="lena"))["playlists"]
    assert [item["name"] for item in listed["playlist"]] == ["Ours"]
    assert (await ok(client, omar, "getPlaylists"))["playlists"].get("playlist", []) == []
    # a name nobody has answers as a user without public playlists: names stay untold
    nobody = (await ok(client, omar, "getPlaylists", username="nobody"))["playlists"]
    assert nobody.get("playlist", []) == []
    # an admin sees both, and changes neither
    listed = (await ok(client, admin, "getPlaylists", username="lena"))["playlists"]
    assert [item["name"] for item in listed["playlist"]] == ["Mine", "Ours"]
    await ok(client, admin, "getPlaylist", id=private["id"])
    await refused(client, admin, 50, "deletePlaylist", id=private["id"])

    # bad changes of her own change nothing
    before = await count_rows(app, PlaylistItem), await count_rows(app, Playlist)
    await refused(client, lena, 70, "createPlaylist", name="New", songId=[songs[1], "tr-999999"])
    assert "partner" in await refused(client, lena, 0, "createPlaylist", name="New",
                                      songId=[songs[1], partner])  # fmt: skip
    assert "partner" in await refused(client, lena, 0, "updatePlaylist",
                                      playlistId=private["id"], songIdToAdd=partner)  # fmt: skip
    await refused(client, lena, 70, "updatePlaylist", playlistId=private["id"], name="Renamed",
                  songIndexToRemove="1")  # fmt: skip
    await refused(client, lena, 0, "updatePlaylist", playlistId=private["id"],
                  songIndexToRemove="-1")  # fmt: skip
    await refused(
        client, lena, 0, "updatePlaylist", playlistId=private["id"], songIdToAdd=songs[0]
    )  # fmt: skip  (in it already)
    await refused(client, lena, 0, "createPlaylist", name="Twice", songId=[songs[1], songs[1]])
    await refused(client, lena, 70, "updatePlaylist", playlistId="pl-999999", name="x")
    await refused(client, lena, 70, "getPlaylist", id="al-1")
    await refused(client, lena, 10, "createPlaylist", songId=songs[0])
    assert (await count_rows(app, PlaylistItem), await count_rows(app, Playlist)) == before
    body = (await ok(client, lena, "getPlaylist", id=private["id"]))["playlist"]
    assert body["name"] == "Mine" and [e["id"] for e in body["entry"]] == [songs[0]]


async def test_play_queue_round_trip(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    songs = await tracks(app, client, artist, tmp_path, 2, "?publish=1")
    partner = await partner_track(app)
    lena = await make_account(app, "lena", Role.LISTENER)
    omar = await make_account(app, "omar", Role.LISTENER)

    assert "playQueue" not in await ok(client, lena, "getPlayQueue")
    queue = [songs[1], partner, songs[0], songs[1]]
    await ok(client, lena, "savePlayQueue", id=queue, current=partner, position=61_500)
    body = (await ok(client, lena, "getPlayQueue"))["playQueue"]
    assert [entry["id"] for entry in body["entry"]] == queue
    assert body["current"] == partner and body["position"] == 61_500
    assert body["username"] == "lena" and body["changedBy"] == "Tester" and body["changed"]
    root = await xml(client, lena, "getPlayQueue")
    saved = root.find(f"{NS}playQueue")
    assert saved.get("current") == partner and saved.get("position") == "61500"
    assert [e.get("title") for e in saved.findall(f"{NS}entry")] == [
        "Tone 1", "Ebb", "Tone 0", "Tone 1"
    ]  # fmt: skip
    assert "playQueue" not in await ok(client, omar, "getPlayQueue")  # each their own

    # unknown songs, a current song not in the queue, a bad position: nothing saved
    await refused(client, lena, 70, "savePlayQueue", id=[songs[0], "tr-999999"])
    await refused(client, lena, 70, "savePlayQueue", id=[songs[0], "pl-3"])
    await refused(client, lena, 0, "savePlayQueue", id=songs[0], current=songs[1])
    await refused(client, lena, 0, "savePlayQueue", id=songs[0], position=-5)
    async with resources_of(app).read_sessionmaker() as session:
        row = await session.get(PlayQueue, lena.user_id)
        assert row is not None and len(row.track_ids) == 4 and row.position_ms == 61_500

    await xml(client, lena, "savePlayQueue", id=songs[0])
    assert [e["id"] for e in (await ok(client, lena, "getPlayQueue"))["playQueue"]["entry"]] == [
        songs[0]
    ]  # fmt: skip
    await ok(client, lena, "savePlayQueue")  # no ids: forget it
    assert "playQueue" not in await ok(client, lena, "getPlayQueue")
    assert await count_rows(app, PlayQueue) == 0


async def test_now_playing_shows_only_ones_own_but_all_to_an_admin(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    (song,) = await tracks(app, client, artist, tmp_path, 1, "?publish=1")
    partner = await partner_track(app)
    lena = await make_account(app, "lena", Role.LISTENER)
    admin = await make_account(app, "admina", Role.ADMIN, scopes="read write admin")
    # the artist plays her own track (free to her): a play session opens
    answer = await client.post(f"/api/v1/tracks/{song[3:]}/plays", headers=artist.headers)
    assert (await answer.get_json())["mode"] == "full"
    async with resources_of(app).sessionmaker() as session:
        session.add(RemotePlaySession(token="lena-1", user_id=lena.user_id,
                                      remote_track_id=int(partner[3:])))  # fmt: skip
        await session.commit()

    body = (await ok(client, artist, "getNowPlaying"))["nowPlaying"]
    assert [(e["id"], e["username"]) for e in body["entry"]] == [(song, "mira")]
    assert body["entry"][0]["minutesAgo"] == 0 and body["entry"][0]["playerId"] == 0
    body = (await ok(client, lena, "getNowPlaying"))["nowPlaying"]
    assert [(e["id"], e["username"], e["title"]) for e in body["entry"]] == [
        (partner, "lena", "Ebb")
    ]  # fmt: skip
    root = await xml(client, admin, "getNowPlaying")
    assert sorted(e.get("username") for e in root.iter(f"{NS}entry")) == ["lena", "mira"]

    # a session older than its track is over
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(PlaySession).values(started_at=utcnow() - timedelta(seconds=30))
        )
        await session.commit()
        assert await session.scalar(select(func.count()).select_from(PlaySession)) == 1
    assert (await ok(client, artist, "getNowPlaying"))["nowPlaying"].get("entry", []) == []
    root = await xml(client, admin, "getNowPlaying")
    assert [e.get("username") for e in root.iter(f"{NS}entry")] == ["lena"]


async def test_what_an_app_says_it_plays_names_the_player(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    first, second = await tracks(app, client, artist, tmp_path, 2, "?publish=1")
    partner = await partner_track(app)
    lena = await make_account(app, "lena", Role.LISTENER)
    omar = await make_account(app, "omar", Role.LISTENER)
    async with resources_of(app).sessionmaker() as session:
        session.add(RemotePlaySession(token="lena-1", user_id=lena.user_id,
                                      remote_track_id=int(partner[3:])))  # fmt: skip
        await session.commit()
    async with resources_of(app).sessionmaker() as session:
        await queue.record_now_playing(session, lena.user_id, int(first[3:]), "DSub")
        await session.commit()
    async with resources_of(app).sessionmaker() as session:
        # the app moves on: the same player, a new song
        await queue.record_now_playing(session, lena.user_id, int(second[3:]), "DSub")
        await queue.record_now_playing(session, lena.user_id, int(partner[3:]), "Feishin")
        with pytest.raises(NotFoundError):
            await queue.record_now_playing(session, lena.user_id, 999_999, "DSub")
        await session.commit()
    assert await count_rows(app, NowPlayingRow) == 2

    # what the apps said is newer than the play session: the session is not shown
    body = (await ok(client, lena, "getNowPlaying"))["nowPlaying"]
    entries = sorted((e["id"], e["playerName"]) for e in body["entry"])
    assert entries == sorted([(second, "DSub"), (partner, "Feishin")])
    assert len({e["playerId"] for e in body["entry"]}) == 2
    assert all(e["playerId"] > 0 for e in body["entry"])
    assert (await ok(client, omar, "getNowPlaying"))["nowPlaying"].get("entry", []) == []

    # a report older than its track is over
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(NowPlayingRow)
            .where(NowPlayingRow.player == "DSub")
            .values(at=utcnow() - timedelta(seconds=30))
        )
        await session.commit()
    root = await xml(client, lena, "getNowPlaying")
    assert [e.get("playerName") for e in root.iter(f"{NS}entry")] == ["Feishin"]


async def test_a_now_playing_scrobble_shows_with_the_app_name(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    (song,) = await tracks(app, client, artist, tmp_path, 1, "?publish=1")
    lena = await make_account(app, "lena", Role.LISTENER)
    await ok(client, lena, "scrobble", id=song, submission="false")
    body = (await ok(client, lena, "getNowPlaying"))["nowPlaying"]
    assert [(e["id"], e["playerName"]) for e in body["entry"]] == [(song, "Tester")]
    # an unknown song is refused and recorded nowhere
    await refused(client, lena, 70, "scrobble", id="tr-999999", submission="false")
    assert await count_rows(app, NowPlayingRow) == 1
