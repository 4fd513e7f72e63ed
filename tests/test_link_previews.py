"""Link previews: every public page carries Open Graph and Twitter card tags and a
canonical URL, absolute and pointing at things that exist (covers, previews, the embed
player, feeds, oEmbed)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import update

from models.catalogue import Release
from server.runtime.config import Settings
from server.web.current import resources_of
from tests.conftest import make_settings
from tests.sharing_fixtures import BASE, Catalogue, make_catalogue

REQUIRED = ("og:title", "og:description", "og:url", "og:type", "og:site_name",
            "twitter:card", "twitter:title")  # fmt: skip


class Head(HTMLParser):
    """The <meta> and <link> tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "meta" and ("property" in found or "name" in found):
            key = found.get("property") or found["name"]
            self.meta.setdefault(key, []).append(found.get("content", ""))
        elif tag == "link":
            self.links.append(found)

    def one(self, key: str) -> str:
        [value] = self.meta[key]
        return value

    def link(self, rel: str, type_: str | None = None) -> list[str]:
        return [
            link["href"]
            for link in self.links
            if link.get("rel") == rel and (type_ is None or link.get("type") == type_)
        ]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url, instance={"base_url": BASE, "name": "Harbour Co-op"}
    )


@pytest.fixture
async def catalogue(app: Quart, client: Any, tmp_path: Path) -> Catalogue:
    return await make_catalogue(app, client, tmp_path)


async def head_of(client: Any, path: str) -> Head:
    response = await client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200, (path, response.status_code)
    parser = Head()
    parser.feed(await response.get_data(as_text=True))
    return parser


async def fetch(client: Any, url: str) -> Any:
    assert url.startswith(BASE + "/"), url
    return await client.get(url.removeprefix(BASE))


async def test_every_public_page_has_the_tags(client: Any, catalogue: Catalogue) -> None:
    release, (paid, free) = catalogue.release_id, catalogue.track_ids
    pages = {
        "/": "website",
        f"/releases/{release}": "music.album",
        f"/tracks/{paid}": "music.song",
        f"/tracks/{free}": "music.song",
        "/artists/aurora": "profile",
        "/labels/tidewater": "profile",
        "/users/mira": "profile",
        "/search?q=salt": "website",
        "/signup": "website",
        "/login": "website",
    }
    for path, og_type in pages.items():
        head = await head_of(client, path)
        missing = [key for key in REQUIRED if key not in head.meta]
        assert missing == [], (path, missing)
        assert head.one("og:type") == og_type, path
        [canonical] = head.link("canonical")
        assert canonical == head.one("og:url") == BASE + path.split("?")[0], path
        assert head.one("og:site_name") == "Harbour Co-op"
        assert head.one("og:title") and head.one("og:description"), path


async def test_release_and_track_previews_point_at_real_things(
    client: Any, catalogue: Catalogue
) -> None:
    release, (paid, _free) = catalogue.release_id, catalogue.track_ids
    for path, kind, key in ((f"/releases/{release}", "releases", release),
                            (f"/tracks/{paid}", "tracks", paid)):  # fmt: skip
        head = await head_of(client, path)
        assert head.one("og:image") == f"{BASE}/releases/{release}/cover"
        assert head.one("twitter:image") == head.one("og:image")
        image = await fetch(client, head.one("og:image"))
        assert image.status_code == 200 and image.mimetype.startswith("image/")
        assert head.one("og:audio:type") == "audio/mpeg"
        audio = await fetch(client, head.one("og:audio"))
        assert audio.status_code == 200 and audio.mimetype == "audio/mpeg"
        assert head.one("twitter:card") == "player"
        assert head.one("twitter:player") == f"{BASE}/embed/{kind}/{key}"
        assert int(head.one("twitter:player:width")) > 0
        player = await fetch(client, head.one("twitter:player"))
        assert player.status_code == 200
        [oembed] = head.link("alternate", "application/json+oembed")
        answer = await fetch(client, oembed)
        assert answer.status_code == 200
        document = await answer.get_json()
        assert document["type"] == "rich"
        assert head.one("twitter:player") in document["html"]


async def test_artist_label_and_home_pages_name_their_feeds(
    client: Any, catalogue: Catalogue
) -> None:
    pages = {"/artists/aurora": "/artists/aurora/feed",
             "/labels/tidewater": "/labels/tidewater/feed", "/": "/feed"}  # fmt: skip
    for path, feed in pages.items():
        head = await head_of(client, path)
        assert head.link("alternate", "application/rss+xml") == [f"{BASE}{feed}.rss"]
        assert head.link("alternate", "application/atom+xml") == [f"{BASE}{feed}.atom"]
        for url in head.link("alternate", "application/rss+xml") + head.link(
            "alternate", "application/atom+xml"
        ):
            assert (await fetch(client, url)).status_code == 200
        if path != "/":
            cover = f"{BASE}/releases/{catalogue.release_id}/cover"
            assert head.one("og:image") == cover, path
            assert head.one("twitter:card") == "summary_large_image"
        else:
            assert head.one("twitter:card") == "summary"
    listener = await head_of(client, "/users/mira")
    assert listener.link("alternate", "application/rss+xml") == []


async def test_text_in_the_tags_is_escaped_and_short(
    app: Quart, client: Any, catalogue: Catalogue
) -> None:
    hostile = '"><script>alert(1)</script> ' + "long words " * 60
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(Release).where(Release.id == catalogue.release_id).values(description=hostile)
        )
        await session.commit()
    response = await client.get(f"/releases/{catalogue.release_id}")
    page = await response.get_data(as_text=True)
    assert "<script>alert(1)" not in page
    head = Head()
    head.feed(page)
    description = head.one("og:description")
    assert description.startswith('"><script>alert(1)</script> long words')
    assert len(description) <= 200 and description.endswith("…")


async def test_a_draft_has_no_page_to_preview(client: Any, catalogue: Catalogue) -> None:
    assert (await client.get(f"/releases/{catalogue.draft_id}")).status_code == 404
    assert (await client.get(f"/tracks/{catalogue.draft_track_id}")).status_code == 404
