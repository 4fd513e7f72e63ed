"""The tag page our hashtags link to (`/tags/{tag}`): the public releases with the tag,
newest first, paged, as HTML and as an ActivityPub collection of their Notes; tags are
case-insensitive, drafts never show, bad input is a 4xx."""

from __future__ import annotations

from datetime import timedelta

from quart import Quart
from quart.typing import TestClientProtocol as Client

from federation.objects import PAGE_SIZE
from models.base import utcnow
from models.catalogue import Release, ReleaseKind, Visibility
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist, set_tags
from server.web.current import resources_of

AP = {"Accept": "application/activity+json"}


async def _releases(app: Quart, count: int, tags: list[str], *, draft: bool = False) -> list[int]:
    """``count`` public releases (or drafts) with these tags, the last one newest."""
    async with resources_of(app).sessionmaker() as session:
        user = await create_user(
            session, f"owner{count}{int(draft)}", "a long password", Role.ARTIST
        )
        artist = await create_artist(session, f"band{count}{int(draft)}", user)
        ids = []
        start = utcnow() - timedelta(days=count + 1)
        for n in range(count):
            release = Release(
                artist_id=artist.id, title=f"Record {n}", slug=f"record-{n}",
                kind=ReleaseKind.ALBUM,
                visibility=Visibility.DRAFT if draft else Visibility.PUBLIC,
                published_at=None if draft else start + timedelta(days=n),
            )  # fmt: skip
            session.add(release)
            await session.flush()
            await set_tags(session, release, tags)
            ids.append(release.id)
        await session.commit()
    return ids


async def test_tag_page_lists_public_releases_newest_first(app: Quart, client: Client) -> None:
    ids = await _releases(app, 3, ["Post-Punk", "drone"])
    await _releases(app, 1, ["post-punk"], draft=True)
    page = await client.get("/tags/post-punk", headers={"Accept": "text/html"})
    assert page.status_code == 200
    text = await page.get_data(as_text=True)
    assert "#post-punk" in text
    links = [f'href="/releases/{i}"' for i in reversed(ids)]
    positions = [text.index(link) for link in links]
    assert positions == sorted(positions), "newest first"
    assert text.count('href="/releases/') == 3, "the draft is not shown"
    # any case leads to the same tag
    upper = await client.get("/tags/POST-Punk", headers={"Accept": "text/html"})
    assert upper.status_code == 200
    assert await upper.get_data(as_text=True) == text


async def test_tag_collection_for_activitypub(app: Quart, client: Client) -> None:
    ids = await _releases(app, PAGE_SIZE + 2, ["ambient"])
    answer = await client.get("/tags/Ambient", headers=AP)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/activity+json"
    collection = await answer.get_json()
    base = resources_of(app).settings.instance.base_url
    assert collection["id"] == f"{base}/tags/ambient"
    assert collection["type"] == "OrderedCollection"
    assert collection["totalItems"] == PAGE_SIZE + 2
    first = await (await client.get("/tags/ambient?page=1", headers=AP)).get_json()
    assert first["type"] == "OrderedCollectionPage"
    assert len(first["orderedItems"]) == PAGE_SIZE
    assert {item["type"] for item in first["orderedItems"]} == {"Note"}
    assert first["orderedItems"][0]["id"] == f"{base}/releases/{ids[-1]}/note"
    assert first["next"] == f"{base}/tags/ambient?page=2"
    second = await (await client.get("/tags/ambient?page=2", headers=AP)).get_json()
    assert [n["id"] for n in second["orderedItems"]] == [
        f"{base}/releases/{i}/note" for i in reversed(ids[:2])
    ]
    html_second = await (await client.get("/tags/ambient?page=2")).get_data(as_text=True)
    assert 'rel="prev"' in html_second and 'rel="next"' not in html_second


async def test_unknown_tags_and_bad_pages_are_refused(app: Quart, client: Client) -> None:
    await _releases(app, 1, ["jazz"])
    assert (await client.get("/tags/never-used")).status_code == 404
    assert (await client.get("/tags/never-used", headers=AP)).status_code == 404
    assert (await client.get("/tags/%20")).status_code == 404
    for bad in ("0", "-1", "x", "99999999999999999999"):
        assert (await client.get(f"/tags/jazz?page={bad}")).status_code == 400, bad
    # a tag used only on a draft exists but shows nothing
    await _releases(app, 2, ["secret"], draft=True)
    hidden = await client.get("/tags/secret", headers=AP)
    assert (await hidden.get_json())["totalItems"] == 0


async def test_release_page_links_its_tags(app: Quart, client: Client) -> None:
    [release] = await _releases(app, 1, ["musique concrète"])
    page = await client.get(f"/releases/{release}")
    text = await page.get_data(as_text=True)
    base = resources_of(app).settings.instance.base_url
    # the page names its Note, where Mastodon looks when a pasted URL answers HTML
    assert page.headers["Link"] == (
        f'<{base}/releases/{release}/note>; rel="alternate"; type="application/activity+json"'
    )
    note = await (await client.get(f"/releases/{release}", headers=AP)).get_json()
    assert note["type"] == "Note" and note["id"] == f"{base}/releases/{release}/note"
    assert note["tag"][0]["href"] == f"{base}/tags/musique-concr%C3%A8te"
    assert 'href="/tags/musique-concr%C3%A8te"' in text
    followed = await client.get("/tags/musique-concr%C3%A8te")
    assert followed.status_code == 200
    assert f'href="/releases/{release}"' in await followed.get_data(as_text=True)
