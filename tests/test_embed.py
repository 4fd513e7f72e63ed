"""The embeddable player, oEmbed and robots.txt: the embed plays exactly what an anonymous
visitor may hear, sets no cookie, and is the only thing other sites may frame."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from quart import Quart

from server.runtime.config import Settings
from tests.conftest import make_settings
from tests.sharing_fixtures import BASE, Catalogue, make_catalogue


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url, instance={"base_url": BASE, "name": "Harbour Co-op"}
    )


@pytest.fixture
async def catalogue(app: Quart, client: Any, tmp_path: Path) -> Catalogue:
    return await make_catalogue(app, client, tmp_path)


def frame_ancestors(response: Any) -> str:
    policy = response.headers["Content-Security-Policy"]
    [directive] = [d.strip() for d in policy.split(";") if d.strip().startswith("frame-ancestors")]
    return directive


async def test_the_embed_plays_what_a_visitor_may_hear(client: Any, catalogue: Catalogue) -> None:
    paid, free = catalogue.track_ids
    response = await client.get(f"/embed/releases/{catalogue.release_id}")
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    sources = re.findall(r'<audio[^>]* src="([^"]+)"', page)
    assert sources == [f"/tracks/{paid}/preview", f"/tracks/{free}/stream?format=mp3"]
    for source in sources:
        audio = await client.get(source.replace("&amp;", "&"), follow_redirects=True)
        assert audio.status_code == 200, source
        assert audio.mimetype == "audio/mpeg"
    # the stream-to-own track is not whole for a visitor, embed or no embed
    whole = await client.get(f"/tracks/{paid}/stream?format=mp3")
    assert whole.status_code == 403
    assert "Harbour Songs" in page and "Aurora" in page
    assert f"/releases/{catalogue.release_id}/cover" in page
    assert "csrf" not in page.lower() and "<header" not in page and "<script" not in page
    single = await client.get(f"/embed/tracks/{free}")
    assert single.status_code == 200
    assert re.findall(r'<audio[^>]* src="([^"]+)"', await single.get_data(as_text=True)) == [
        f"/tracks/{free}/stream?format=mp3"
    ]


async def test_only_the_embed_may_be_framed(client: Any, catalogue: Catalogue) -> None:
    for path in (f"/embed/releases/{catalogue.release_id}",
                 f"/embed/tracks/{catalogue.track_ids[0]}"):  # fmt: skip
        response = await client.get(path)
        assert frame_ancestors(response) == "frame-ancestors *"
        assert "X-Frame-Options" not in response.headers
        assert "Set-Cookie" not in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "public" in response.headers["Cache-Control"]
    for path in ("/", f"/releases/{catalogue.release_id}", f"/tracks/{catalogue.track_ids[0]}",
                 "/artists/aurora", "/signup", "/feed.rss", "/robots.txt",
                 f"/oembed?url={BASE}/releases/{catalogue.release_id}",
                 f"/embed/releases/{catalogue.draft_id}", "/embed/releases/999999",
                 f"/embed/tracks/{catalogue.draft_track_id}"):  # fmt: skip
        response = await client.get(path)
        assert frame_ancestors(response) == "frame-ancestors 'none'", path
        assert response.headers["X-Frame-Options"] == "DENY", path


async def test_drafts_and_unknowns_have_no_embed(client: Any, catalogue: Catalogue) -> None:
    for path in (f"/embed/releases/{catalogue.draft_id}", "/embed/releases/999999",
                 f"/embed/tracks/{catalogue.draft_track_id}", "/embed/tracks/999999",
                 "/embed/artists/aurora", "/embed/releases/abc"):  # fmt: skip
        assert (await client.get(path)).status_code == 404, path


async def oembed(client: Any, **params: str) -> Any:
    return await client.get(f"/oembed?{urlencode(params)}")


async def test_oembed_of_a_release_and_a_track(client: Any, catalogue: Catalogue) -> None:
    release = f"{BASE}/releases/{catalogue.release_id}"
    response = await oembed(client, url=release, format="json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    document = await response.get_json()
    assert document["version"] == "1.0" and document["type"] == "rich"
    assert document["title"] == "Harbour Songs"
    assert document["author_name"] == "Aurora"
    assert document["author_url"] == f"{BASE}/artists/aurora"
    assert document["provider_name"] == "Harbour Co-op"
    assert (document["width"], document["height"]) == (480, 360)
    embed = f"{BASE}/embed/releases/{catalogue.release_id}"
    assert f'<iframe src="{embed}" width="480" height="360"' in document["html"]
    assert document["thumbnail_url"] == f"{release}/cover"
    assert (document["thumbnail_width"], document["thumbnail_height"]) == (64, 64)

    smaller = await (await oembed(client, url=release, maxwidth="300", maxheight="200")).get_json()
    assert (smaller["width"], smaller["height"]) == (300, 200)
    assert 'width="300" height="200"' in smaller["html"]
    larger = await (await oembed(client, url=release, maxwidth="2000")).get_json()
    assert larger["width"] == 480

    track = await oembed(client, url=f"{BASE}/tracks/{catalogue.track_ids[0]}")
    assert track.status_code == 200
    document = await track.get_json()
    assert document["title"] == "Low Water"
    assert f"{BASE}/embed/tracks/{catalogue.track_ids[0]}" in document["html"]


async def test_oembed_refuses_what_is_not_ours_or_not_public(
    client: Any, catalogue: Catalogue
) -> None:
    for url in (
        f"https://elsewhere.example/releases/{catalogue.release_id}",
        f"http://music.example/releases/{catalogue.release_id}",  # not our scheme
        f"{BASE}/releases/{catalogue.draft_id}",
        f"{BASE}/tracks/{catalogue.draft_track_id}",
        f"{BASE}/releases/999999",
        f"{BASE}/artists/aurora",
        f"{BASE}/releases/{catalogue.release_id}/cover",
        "not a url at all",
        "https://[::1/releases/1",
    ):
        response = await oembed(client, url=url)
        assert response.status_code == 404, url
    assert (await oembed(client)).status_code == 400
    xml = await oembed(client, url=f"{BASE}/releases/{catalogue.release_id}", format="xml")
    assert xml.status_code == 501
    for bad in ("abc", "0", "-5", "1e3"):
        response = await oembed(client, url=f"{BASE}/releases/{catalogue.release_id}", maxwidth=bad)
        assert response.status_code == 400, bad


async def test_robots_txt(client: Any) -> None:
    response = await client.get("/robots.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    lines = (await response.get_data(as_text=True)).splitlines()
    assert lines[0] == "User-agent: *" and "Allow: /" in lines
    for private in ("/api/", "/settings", "/admin", "/dashboard", "/oauth", "/login",
                    "/wallet", "/library"):  # fmt: skip
        assert f"Disallow: {private}" in lines, private
    for public in ("/artists", "/releases", "/labels", "/tracks/", "/embed"):
        assert f"Disallow: {public}" not in lines
    assert f"Sitemap: {BASE}/feed.rss" in lines
