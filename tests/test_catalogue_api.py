"""Search and browsing through the API, on both databases, with catalogue rows made
directly (no audio needed to test what is found and in which order)."""

from __future__ import annotations

from datetime import timedelta

from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import insert, select, text

from models import search as search_model
from models.base import utcnow
from models.catalogue import (
    Artist,
    ArtistKind,
    Favourite,
    Release,
    ReleaseKind,
    Track,
    TrackStatus,
)
from models.search import DocumentKind, SearchDocument
from models.users import Role, User
from server.services.account_rules import create_user
from server.services.catalogue import create_artist, create_label, publish_release, set_tags
from server.web.current import resources_of


async def seed(app: Quart) -> dict[str, int]:
    """Three artists, four releases (one a draft), tracks; returns ids by name."""
    ids: dict[str, int] = {}
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "owner", "a long password", Role.ARTIST)
        emile = await create_artist(session, "emile", owner, display_name="Émile Sauvage")
        aurora = await create_artist(session, "aurora", owner, display_name="Aurora Lane")
        band = await create_artist(
            session, "brownout", owner, display_name="Brownout Collective", kind=ArtistKind.BAND
        )
        band.featured = True
        label = await create_label(session, "nightlabel", owner, display_name="Night Label")
        ids.update(emile=emile.id, aurora=aurora.id, band=band.id, label=label.id)
        releases = [
            ("chansons", emile, "Chansons du Soir", ["chanson"], ["Les Lampes Éteintes"]),
            ("tides", aurora, "Tidal Hours", ["ambient"], ["Night Swim", "Low Water"]),
            ("swimmer", band, "Night Swimmer", ["techno", "ambient"], ["Generator Hum"]),
            ("draft", aurora, "Secret Night", ["ambient"], ["Hidden Night"]),
        ]
        for index, (key, artist, title, tags, tracks) in enumerate(releases):
            release = Release(artist_id=artist.id, title=title, slug=key, kind=ReleaseKind.ALBUM)
            session.add(release)
            await session.flush()
            await set_tags(session, release, tags)
            for position, track_title in enumerate(tracks, start=1):
                session.add(
                    Track(release_id=release.id, artist_id=artist.id, title=track_title,
                          slug=track_title.lower(), position=position, duration_ms=60000,
                          status=TrackStatus.READY)
                )  # fmt: skip
            await session.flush()
            if key != "draft":
                await publish_release(session, release.id)
                release.published_at = utcnow() - timedelta(days=10 - index)
            ids[key] = release.id
        ids["staff_pick"] = ids["tides"]
        (await session.get(Release, ids["tides"])).staff_pick = True  # type: ignore[union-attr]
        await session.commit()
    return ids


async def search(client: Client, query: str, **params: str) -> list[tuple[str, str]]:
    response = await client.get("/api/v1/search", query_string={"q": query, **params})
    assert response.status_code == 200, await response.get_data(as_text=True)
    found = []
    for item in (await response.get_json())["items"]:
        thing = item[item["kind"]]
        found.append((item["kind"], thing.get("title") or thing.get("display_name")))
    return found


async def test_search_folds_accents_and_matches_prefixes(app: Quart, client: Client) -> None:
    await seed(app)
    assert ("artist", "Émile Sauvage") in await search(client, "emile")
    assert ("artist", "Émile Sauvage") in await search(client, "ÉMILE")
    assert ("track", "Les Lampes Éteintes") in await search(client, "eteint")
    assert ("artist", "Aurora Lane") in await search(client, "aur")
    assert ("label", "Night Label") in await search(client, "night lab")
    assert await search(client, "zzzz") == []


async def test_search_ranks_titles_first_and_hides_drafts(app: Quart, client: Client) -> None:
    await seed(app)
    results = await search(client, "night swim")
    assert ("release", "Night Swimmer") in results
    assert ("track", "Night Swim") in results
    assert all("Secret" not in title and "Hidden" not in title for _kind, title in results)
    # a title match outranks a match in the body only
    releases = await search(client, "aurora", kind="release")
    assert releases == [("release", "Tidal Hours")]
    tracks = await search(client, "night", kind="track")
    assert tracks[0] == ("track", "Night Swim")


async def test_search_input_errors(client: Client) -> None:
    for params in ({"q": ""}, {"q": "x" * 201}, {"q": "a", "kind": "song"},
                   {"q": "a", "limit": "0"}, {"q": "a", "limit": "lots"}):  # fmt: skip
        response = await client.get("/api/v1/search", query_string=params)
        assert response.status_code == 400, params
        assert (await response.get_json())["reason"]
    punctuation = await client.get("/api/v1/search", query_string={"q": '*"()'})
    assert punctuation.status_code == 200
    assert (await punctuation.get_json())["items"] == []


async def test_browse_new_releases_tags_and_paging(app: Quart, client: Client) -> None:
    ids = await seed(app)
    page = await (await client.get("/api/v1/releases?limit=2")).get_json()
    assert page["total"] == 3
    assert [item["title"] for item in page["items"]] == ["Night Swimmer", "Tidal Hours"]
    assert page["next"].endswith("/api/v1/releases?limit=2&offset=2")
    rest = await (await client.get("/api/v1/releases?limit=2&offset=2")).get_json()
    assert [item["title"] for item in rest["items"]] == ["Chansons du Soir"]
    assert rest["next"] is None

    ambient = await (await client.get("/api/v1/releases?tag=ambient")).get_json()
    assert {item["title"] for item in ambient["items"]} == {"Night Swimmer", "Tidal Hours"}

    picks = await (await client.get("/api/v1/browse/staff-picks")).get_json()
    assert [item["id"] for item in picks["items"]] == [ids["staff_pick"]]
    featured = await (await client.get("/api/v1/browse/featured-artists")).get_json()
    assert [item["name"] for item in featured["items"]] == ["brownout"]
    assert featured["items"][0]["kind"] == "band"


async def test_artist_label_release_and_track(app: Quart, client: Client) -> None:
    ids = await seed(app)
    artist = await (await client.get("/api/v1/artists/Aurora")).get_json()
    assert artist["display_name"] == "Aurora Lane"
    releases = await (await client.get("/api/v1/artists/aurora/releases")).get_json()
    assert [item["title"] for item in releases["items"]] == ["Tidal Hours"]

    async with resources_of(app).sessionmaker() as session:
        fan = await create_user(session, "fan", "a long password", Role.LISTENER)
        low_water = await session.scalar(select(Track).where(Track.title == "Low Water"))
        assert low_water is not None
        session.add(Favourite(user_id=fan.id, track_id=low_water.id))
        await session.commit()
    top = await (await client.get("/api/v1/artists/aurora/top-tracks")).get_json()
    assert [item["title"] for item in top["items"]] == ["Low Water", "Night Swim"]

    release = await (await client.get(f"/api/v1/releases/{ids['tides']}")).get_json()
    assert [t["title"] for t in release["tracks"]] == ["Night Swim", "Low Water"]
    assert release["tags"] == ["ambient"]
    track = release["tracks"][0]
    assert track["stream_url"].endswith(f"/tracks/{track['id']}/stream")
    assert (await client.get(f"/api/v1/tracks/{track['id']}")).status_code == 200

    label = await (await client.get("/api/v1/labels/nightlabel")).get_json()
    assert label["display_name"] == "Night Label"

    for missing in ("/api/v1/artists/nobody", "/api/v1/labels/nobody",
                    f"/api/v1/releases/{ids['draft']}", "/api/v1/releases/999999",
                    "/api/v1/tracks/999999"):  # fmt: skip
        response = await client.get(missing)
        assert response.status_code == 404, missing
        assert (await response.get_json())["reason"]


async def test_names_are_one_namespace(app: Quart) -> None:
    import pytest

    from models.handles import NameTaken

    async with resources_of(app).sessionmaker() as session:
        user = await create_user(session, "mira", "a long password", Role.ARTIST)
        with pytest.raises(NameTaken):
            await create_artist(session, "Mira", user)
        await session.rollback()
    async with resources_of(app).sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == "mira"))
        assert user is not None
        await create_artist(session, "sol", user)
        await session.commit()
        with pytest.raises(NameTaken):
            await create_user(session, "SOL", "a long password", Role.LISTENER)
        assert len((await session.scalars(select(Artist))).all()) == 1


async def test_openapi_document_lists_the_core_routes(client: Client) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = await response.get_json()
    for path in ("/api/v1/search", "/api/v1/artists/{name}", "/api/v1/releases/{release_id}",
                 "/api/v1/tracks/{track_id}", "/api/v1/uploads"):  # fmt: skip
        assert path in document["paths"], path
    assert document["info"]["title"] == "playfair API"
    search_params = {p["name"] for p in document["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert {"q", "kind", "limit", "offset"} <= search_params


async def test_search_ranks_a_whole_word_first_when_a_prefix_matches_many(app: Quart) -> None:
    """Only a bounded set of candidates is ranked (models.search.CANDIDATES): the one
    title that is the query word itself still comes first when more documents than that
    match it as a prefix, and a kind filter still finds its rarer kind."""
    many = search_model.CANDIDATES * 2 + 1
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            insert(SearchDocument),
            [{"kind": DocumentKind.TRACK, "object_id": n, "title": f"nightfall {n}", "body": ""}
             for n in range(1, many + 1)],
        )  # fmt: skip
        await search_model.index_document(session, DocumentKind.TRACK, many + 1, "Night")
        await search_model.index_document(session, DocumentKind.ARTIST, 1, "Nightingale")
        await session.commit()
    async with resources_of(app).read_sessionmaker() as session:
        hits = await search_model.search(session, "night", kinds=(DocumentKind.TRACK,))
        artists = await search_model.search(session, "night", kinds=(DocumentKind.ARTIST,))
        past_the_cap = await search_model.search(
            session, "nightfall", kinds=(DocumentKind.TRACK,), limit=5, offset=many - 3
        )
    assert (hits[0].kind, hits[0].object_id) == (DocumentKind.TRACK, many + 1)
    assert len(hits) == 20
    assert [(hit.kind, hit.object_id) for hit in artists] == [(DocumentKind.ARTIST, 1)]
    assert len(past_the_cap) == 3  # paging past the cap still reaches the last matches


async def test_a_word_shorter_than_the_prefix_minimum_matches_only_whole(app: Quart) -> None:
    """One- and two-letter words are whole words ("u2", "la"), not prefixes of much of the
    catalogue; from PREFIX_MINIMUM letters on, a word is a prefix again."""
    titles = {1: "Yo La Tengo", 2: "Lakeside", 3: "U2", 4: "U2000", 5: "Lap Steel"}
    async with resources_of(app).sessionmaker() as session:
        for object_id, title in titles.items():
            await search_model.index_document(session, DocumentKind.ARTIST, object_id, title)
        await session.commit()
    async with resources_of(app).read_sessionmaker() as session:

        async def found(query: str) -> set[str]:
            hits = await search_model.search(session, query, kinds=(DocumentKind.ARTIST,))
            return {titles[hit.object_id] for hit in hits}

        assert await found("la") == {"Yo La Tengo"}
        assert await found("u2") == {"U2"}
        assert await found("yo la") == {"Yo La Tengo"}
        assert await found("lak") == {"Lakeside"}
        assert await found("la") != await found("lap")
        assert await found("lap") == {"Lap Steel"}
        assert await found("u20") == {"U2000"}


async def test_each_database_keeps_an_index_that_answers_prefixes(app: Quart) -> None:
    """SQLite's FTS5 table has its three- and four-letter prefix indexes (the migration
    that makes them rebuilds the table); PostgreSQL answers prefixes from the GIN index on
    the stored tsvector."""
    async with resources_of(app).read_sessionmaker() as session:
        if session.get_bind().dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE name = 'search_fts'"
            expected = "prefix='3 4'"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_search_documents_vector'"
            expected = "USING gin (search_vector)"
        definition = await session.scalar(text(query))
    assert expected in (definition or "")
