"""The RSS and Atom feeds, parsed back with feedparser: titles, links, enclosures that
are fetchable over the app with the length they claim, dates, conditional GETs; drafts
never appear and unknown actors are 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import feedparser
import pytest
from quart import Quart
from sqlalchemy import update

from federation.urls import feed_url
from models.catalogue import Release
from server.runtime.config import Settings
from server.web.current import resources_of
from tests.conftest import make_settings
from tests.sharing_fixtures import BASE, Catalogue, make_catalogue

FEEDS = [
    ("artists", "aurora"),
    ("labels", "tidewater"),
    (None, None),
]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url, instance={"base_url": BASE, "name": "Harbour Co-op"}
    )


@pytest.fixture
async def catalogue(app: Quart, client: Any, tmp_path: Path) -> Catalogue:
    return await make_catalogue(app, client, tmp_path)


def path_of(url: str) -> str:
    assert url.startswith(BASE), url
    return url.removeprefix(BASE)


async def fetch_feed(client: Any, kind: str | None, name: str | None, fmt: str) -> Any:
    response = await client.get(path_of(feed_url(BASE, kind, name, fmt)))
    assert response.status_code == 200, await response.get_data(as_text=True)
    expected = "application/rss+xml" if fmt == "rss" else "application/atom+xml"
    assert response.mimetype == expected
    parsed = feedparser.parse(await response.get_data())
    assert not parsed.bozo, parsed.bozo_exception
    return parsed


@pytest.mark.parametrize("fmt", ["rss", "atom"])
async def test_feeds_list_the_published_tracks_with_playable_enclosures(
    client: Any, catalogue: Catalogue, fmt: str
) -> None:
    for kind, name in FEEDS:
        parsed = await fetch_feed(client, kind, name, fmt)
        assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
        titles = [entry.title for entry in parsed.entries]
        assert titles == ["Low Water · Harbour Songs", "Salt Light · Harbour Songs"], (kind, titles)
        assert not any("Secret Demo" in t or "Unheard" in t for t in titles)
        self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
        assert self_links == [feed_url(BASE, kind, name, fmt)]
        for entry, track_id in zip(parsed.entries, catalogue.track_ids, strict=True):
            assert entry.link == f"{BASE}/tracks/{track_id}"
            assert entry.id == f"{BASE}/tracks/{track_id}"
            assert entry.published_parsed is not None
            assert entry.author == "Aurora"
            [enclosure] = entry.enclosures
            assert enclosure.type == "audio/mpeg"
            audio = await client.get(path_of(enclosure.href))
            assert audio.status_code == 200
            assert audio.mimetype == "audio/mpeg"
            assert int(enclosure.length) == len(await audio.get_data()) > 0
        if fmt == "rss":
            entry = parsed.entries[0]
            assert entry.guidislink is False
            assert entry.itunes_duration.startswith("00:00:0")
            assert entry.image.href == f"{BASE}/releases/{catalogue.release_id}/cover"
            cover = await client.get(path_of(entry.image.href))
            assert cover.status_code == 200 and cover.mimetype.startswith("image/")
            assert parsed.feed.image.href == entry.image.href


async def test_channel_names_the_source(client: Any, catalogue: Catalogue) -> None:
    artist = await fetch_feed(client, "artists", "aurora", "rss")
    assert artist.feed.title == "Aurora"
    assert artist.feed.link == f"{BASE}/artists/aurora"
    assert artist.feed.author == "Aurora"
    label = await fetch_feed(client, "labels", "tidewater", "atom")
    assert label.feed.title == "Tidewater Records"
    home = await fetch_feed(client, None, None, "rss")
    assert home.feed.title == "Harbour Co-op"
    assert home.feed.link == f"{BASE}/"


async def test_a_withdrawn_release_leaves_every_feed(
    app: Quart, client: Any, catalogue: Catalogue
) -> None:
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(Release).where(Release.id == catalogue.release_id).values(visibility="draft")
        )
        await session.commit()
    for kind, name in FEEDS:
        for fmt in ("rss", "atom"):
            parsed = await fetch_feed(client, kind, name, fmt)
            assert parsed.entries == [], (kind, fmt)


async def test_conditional_get_and_caching(client: Any, catalogue: Catalogue) -> None:
    first = await client.get("/artists/aurora/feed.rss")
    etag = first.headers["ETag"]
    assert first.headers["Last-Modified"].endswith("GMT")
    assert "max-age" in first.headers["Cache-Control"]
    again = await client.get("/artists/aurora/feed.rss", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert await again.get_data() == b""
    other = await client.get("/artists/aurora/feed.rss", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert (await client.get("/artists/aurora/feed.atom")).headers["ETag"] != etag


async def test_an_edit_changes_the_etag(app: Quart, client: Any, catalogue: Catalogue) -> None:
    before = (await client.get("/feed.atom")).headers["ETag"]
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(Release).where(Release.id == catalogue.release_id).values(title="Harbour")
        )
        await session.commit()
    after = await client.get("/feed.atom", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert "Low Water · Harbour" in (await after.get_data(as_text=True))


async def test_unknown_or_wrong_feeds_are_404(client: Any, catalogue: Catalogue) -> None:
    for path in (
        "/artists/nobody/feed.rss",
        "/labels/nobody/feed.atom",
        "/labels/aurora/feed.rss",  # an artist is not a label
        "/artists/tidewater/feed.rss",
        "/users/mira/feed.rss",
        "/artists/aurora/feed.json",
        "/feed.xml",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path


async def test_an_empty_instance_has_valid_empty_feeds(client: Any) -> None:
    for fmt in ("rss", "atom"):
        parsed = await fetch_feed(client, None, None, fmt)
        assert parsed.entries == []


async def test_control_characters_in_titles_do_not_break_the_feed(
    app: Quart, client: Any, catalogue: Catalogue
) -> None:
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(Release)
            .where(Release.id == catalogue.release_id)
            .values(title="Bell\x07 & <Tide>", description="one\x1btwo")
        )
        await session.commit()
    for fmt in ("rss", "atom"):
        parsed = await fetch_feed(client, "artists", "aurora", fmt)
        assert parsed.entries[0].title == "Low Water · Bell & <Tide>"
        assert parsed.entries[0].summary == "onetwo"


def test_feed_url_shapes() -> None:
    assert feed_url(BASE, "artists", "aurora", "rss") == f"{BASE}/artists/aurora/feed.rss"
    assert feed_url(BASE, "labels", "tide", "atom") == f"{BASE}/labels/tide/feed.atom"
    assert feed_url(BASE, None, None, "atom") == f"{BASE}/feed.atom"
    for bad in (("users", "x", "rss"), ("artists", "x", "json"), ("artists", None, "rss")):
        with pytest.raises(ValueError, match="feed"):
            feed_url(BASE, *bad)
