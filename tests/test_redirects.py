"""Redirects to a target someone else chose stay on this site: ``?next=`` after log-in
and the referrer a form came from (on both databases), and the rule itself."""

from __future__ import annotations

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.catalogue import Release, Track
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.web.current import resources_of
from server.web.redirects import local_target
from tests.test_account_pages import PASSWORD, csrf, log_in

BASE = "http://127.0.0.1:8080"
# Each of these makes some browser leave the site (or did, in some browser or proxy).
ELSEWHERE = [
    "//evil.example", "/\\evil.example", "\\\\evil.example", "/%5Cevil.example",
    "/%5C%5Cevil.example", "%2F%2Fevil.example", "/%2F%2Fevil.example", "/%2Fevil.example",
    "/%252F%252Fevil.example", "/%255Cevil.example", "https:evil.example",
    "https://evil.example", "http:/evil.example", "javascript:alert(1)", "/\t/evil.example",
    "/%09/evil.example", "/%0d%0aLocation:%20https://evil.example", " //evil.example",
    "evil.example", f"{BASE}.evil.example/", f"{BASE}@evil.example/", f"{BASE}//evil.example",
    "/" + "a" * 3000,
]  # fmt: skip
HERE = ["/", "/library", "/search?q=salt%20light", "/tracks/3#top", f"{BASE}/wallet",
        "/oauth/authorize?client_id=x&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"]  # fmt: skip


@pytest.mark.parametrize("target", ELSEWHERE)
def test_targets_that_lead_elsewhere_are_dropped(target: str) -> None:
    assert local_target(target, BASE) is None


@pytest.mark.parametrize("target", HERE)
def test_paths_on_this_site_are_kept(target: str) -> None:
    assert local_target(target, BASE) == target.removeprefix(BASE)


def test_nothing_is_nothing() -> None:
    assert local_target(None, BASE) is None
    assert local_target("", BASE) is None


async def test_log_in_never_sends_anyone_elsewhere(app: Quart, client: Client) -> None:
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "lina", PASSWORD, Role.LISTENER)
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": "lina", "password": PASSWORD}
    # raw query strings, as a link would carry them: %5C arrives as a backslash
    # (every form is tried on the rule itself above; log-in hashes, so only a few here)
    for raw in ("/%5Cevil.example", "//evil.example", "https:evil.example",
                "/%255Cevil.example"):  # fmt: skip
        response = await client.post(f"/login?next={raw}", form=form)
        assert response.status_code == 303
        assert response.headers["Location"] == "/", raw
    kept = await client.post("/login?next=/library%3Fx%3D1", form=form)
    assert kept.headers["Location"] == "/library?x=1"


async def test_forms_go_back_only_to_this_site(app: Quart, client: Client) -> None:
    """After a form, the browser goes back where it came from: its referrer, if that is a
    page here, else the form's own page."""
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "mira", PASSWORD, Role.ARTIST)
        artist = await create_artist(session, "aurora", owner)
        release = Release(artist_id=artist.id, title="R", slug="r")
        session.add(release)
        await session.flush()
        track = Track(release_id=release.id, artist_id=artist.id, title="T", slug="t")
        session.add(track)
        await session.commit()
        track_id = track.id
    assert (await log_in(client, "mira")).status_code == 303
    token = await csrf(client, "/settings")
    base = resources_of(app).settings.instance.base_url

    async def favourite(referrer: str) -> str:
        response = await client.post(
            f"/tracks/{track_id}/favourite", form={"csrf_token": token},
            headers={"Referer": referrer},
        )  # fmt: skip
        assert response.status_code == 302
        return str(response.headers["Location"])

    for referrer in (f"{base}//evil.example/x", f"{base}/\\evil.example", "https://evil.example/",
                     "//evil.example", f"{base}.evil.example/", "/%5Cevil.example"):  # fmt: skip
        assert await favourite(referrer) == f"/tracks/{track_id}", referrer
    assert await favourite(f"{base}/library") == "/library"
