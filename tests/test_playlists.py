"""Playlists over the API (both databases): the owner makes and fills them; public ones
are readable by anybody, private ones by nobody else; nobody edits another's."""

from __future__ import annotations

from typing import Any

from quart import Quart

from models.catalogue import Release, ReleaseKind, Track, TrackStatus, Visibility
from models.users import Role, User
from server.services.catalogue import create_artist, find_or_create_release
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account


async def ready_track(app: Quart, title: str = "Low Water", public: bool = True) -> int:
    owner = await make_account(app, f"owner_{title.replace(' ', '_').lower()}", Role.ARTIST)
    async with resources_of(app).sessionmaker() as session:
        user = await session.get_one(User, owner.user_id)
        artist = await create_artist(session, f"a_{title.replace(' ', '_').lower()}", user)
        release, _ = await find_or_create_release(session, artist, "Tides", kind=ReleaseKind.ALBUM)
        release.visibility = Visibility.PUBLIC if public else Visibility.DRAFT
        track = Track(
            release_id=release.id, artist_id=artist.id, title=title, slug="t",
            duration_ms=90_000, status=TrackStatus.READY,
        )  # fmt: skip
        session.add(track)
        await session.commit()
        assert isinstance(release, Release)
        return track.id


async def test_playlists(app: Quart, client: Any) -> None:
    lena = await make_account(app, "lena", Role.LISTENER, scopes="read write")
    omar = await make_account(app, "omar", Role.LISTENER, scopes="read write")
    track = await ready_track(app)
    hidden = await ready_track(app, "Draft Song", public=False)

    made = await client.post(
        "/api/v1/me/playlists", json={"title": "Evening"}, headers=lena.headers
    )
    assert made.status_code == 201
    playlist = (await made.get_json())["id"]
    empty = await client.post("/api/v1/me/playlists", json={"title": ""}, headers=lena.headers)
    assert empty.status_code in (400, 422)

    added = await client.post(
        f"/api/v1/playlists/{playlist}/items", json={"track_id": track}, headers=lena.headers
    )
    assert added.status_code == 201
    assert [i["title"] for i in (await added.get_json())["items"]] == ["Low Water"]
    for missing in (hidden, 999_999):
        refused = await client.post(
            f"/api/v1/playlists/{playlist}/items", json={"track_id": missing}, headers=lena.headers
        )
        assert refused.status_code == 404
    theirs = await client.post(
        f"/api/v1/playlists/{playlist}/items", json={"track_id": track}, headers=omar.headers
    )
    assert theirs.status_code == 404  # not omar's: as if it did not exist

    # private: the owner sees it, nobody else does
    assert (
        await client.get(f"/api/v1/playlists/{playlist}", headers=lena.headers)
    ).status_code == 200
    assert (await client.get(f"/api/v1/playlists/{playlist}")).status_code == 404
    mine = await (await client.get("/api/v1/me/playlists", headers=lena.headers)).get_json()
    assert [p["title"] for p in mine["items"]] == ["Evening"]
    assert (await (await client.get("/api/v1/me/playlists", headers=omar.headers)).get_json())[
        "items"
    ] == []

    public = await client.post(
        "/api/v1/me/playlists", json={"title": "Shared", "public": True}, headers=lena.headers
    )
    shared = (await public.get_json())["id"]
    assert (await client.get(f"/api/v1/playlists/{shared}")).status_code == 200

    gone = await client.delete(f"/api/v1/playlists/{playlist}/items/1", headers=lena.headers)
    assert gone.status_code == 204
    again = await client.delete(f"/api/v1/playlists/{playlist}/items/1", headers=lena.headers)
    assert again.status_code == 404
    assert (
        await client.delete(f"/api/v1/playlists/{playlist}", headers=omar.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/playlists/{playlist}", headers=lena.headers)
    ).status_code == 204
    assert (
        await client.get(f"/api/v1/playlists/{playlist}", headers=lena.headers)
    ).status_code == 404
