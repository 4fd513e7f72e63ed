"""The actor documents as other servers read them, pinned as golden JSON
(tests/fixtures/actors/): an artist with avatar, header, links and aliases that moved,
a label, a listener, and the instance actor. A change to a document shows as a diff of
its file; write them anew with ``PLAYFAIR_WRITE_GOLDEN=1`` and read the diff.

Then the same documents as the app serves them, built from the database: an actor's
profile choices and pictures reach its document and nothing else does."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from federation.discovery import instance_actor
from federation.objects import (
    ActorInfo,
    ProfileLink,
    image_object,
    local_actor,
    move_actor,
    profile_image_url,
)
from models.profiles import INSTANCE_ACTOR, ActorImage, ActorProfile, ImageRole, ImageState
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist, create_label
from server.web.current import resources_of

GOLDEN = Path(__file__).parent / "fixtures" / "actors"
BASE = "https://music.example"
PEM = "-----BEGIN PUBLIC KEY-----\nMIIB…\n-----END PUBLIC KEY-----\n"
CREATED = datetime(2026, 3, 1, 18, 30, 5, tzinfo=UTC)
AS_JSON = {"Accept": "application/activity+json"}


def artist_info() -> ActorInfo:
    return ActorInfo(
        "artists",
        "aurora",
        "Aurora & the Tides",
        "Songs from the harbour.\n\nLive <every> Friday.",
        "Group",
        PEM,
        icon_url=profile_image_url(BASE, "artists", "aurora", "avatar", 12),
        icon_type="image/jpeg",
        image_url=profile_image_url(BASE, "artists", "aurora", "header", 13),
        image_type="image/jpeg",
        published=CREATED,
        discoverable=True,
        indexable=False,
        links=(
            ProfileLink("Bandcamp", "https://aurora.bandcamp.com/"),
            ProfileLink("Site", "https://aurora.example/tour?year=2026&city=<all>"),
        ),
        also_known_as=("https://old.example/users/aurora",),
        moved_to="https://new.example/@aurora",
    )


def documents() -> dict[str, dict[str, Any]]:
    label = ActorInfo(
        "labels", "tidewater", "Tidewater Records", "", "Organization", PEM, published=CREATED
    )
    listener = ActorInfo("users", "lena", "lena", "", "Person", PEM, published=CREATED)
    return {
        "artist": local_actor(BASE, artist_info()),
        "label": local_actor(BASE, label),
        "listener": local_actor(BASE, listener),
        "instance": instance_actor(
            BASE,
            "Harbour Music Co-op",
            PEM,
            "main-key",
            bytes(32),
            "ed25519-key",
            icon=image_object(profile_image_url(BASE, None, INSTANCE_ACTOR, "avatar", 3), None),
            image=image_object(
                profile_image_url(BASE, None, INSTANCE_ACTOR, "header", 4), "image/jpeg"
            ),
        ),
        "move": move_actor(BASE, "artists", "aurora", "https://new.example/users/aurora", CREATED),
    }


@pytest.mark.parametrize("name", ["artist", "label", "listener", "instance", "move"])
def test_golden_documents(name: str) -> None:
    document = documents()[name]
    path = GOLDEN / f"{name}.json"
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("PLAYFAIR_WRITE_GOLDEN"):
        path.write_text(text)
    assert json.loads(path.read_text()) == document, f"{path} differs: see the docstring"


def test_what_mastodon_reads_from_the_artist() -> None:
    """The fields Mastodon's account processing reads (icon, image, attachment of
    PropertyValue, discoverable, indexable, alsoKnownAs, movedTo), in its shapes."""
    document = local_actor(BASE, artist_info())
    assert document["icon"]["url"].endswith("/artists/aurora/avatar/12.jpg")
    assert document["image"]["url"].endswith("/artists/aurora/header/13.jpg")
    assert [field["type"] for field in document["attachment"]] == ["PropertyValue"] * 2
    value = document["attachment"][1]["value"]
    assert value.startswith('<a href="https://aurora.example/tour?year=2026&amp;city=&lt;all&gt;"')
    assert 'rel="me nofollow noopener" target="_blank"' in value
    assert "<all>" not in value
    assert document["discoverable"] is True and document["indexable"] is False
    assert document["alsoKnownAs"] == ["https://old.example/users/aurora"]
    assert document["movedTo"] == "https://new.example/@aurora"
    context = document["@context"][2]  # alsoKnownAs is the ActivityStreams context's own
    for term in ("indexable", "PropertyValue", "value", "movedTo", "discoverable"):
        assert term in context


def test_a_listener_shows_no_profile_by_default() -> None:
    document = documents()["listener"]
    assert document["discoverable"] is False and document["indexable"] is False
    assert document["attachment"] == []
    for absent in ("icon", "image", "alsoKnownAs", "movedTo"):
        assert absent not in document


async def test_served_documents_follow_the_database(app: Quart, client: Client) -> None:
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "mira", "a long password", Role.ARTIST)
        await create_artist(session, "aurora", owner, display_name="Aurora")
        await create_label(session, "tidewater", owner, display_name="Tidewater Records")
        session.add(
            ActorProfile(
                actor="aurora",
                discoverable=False,
                indexable=False,
                links=[{"name": "Bandcamp", "url": "https://aurora.bandcamp.com/"}],
                also_known_as=["https://old.example/users/aurora"],
                moved_to=None,
            )
        )
        # a pending picture is not shown; a ready one is
        session.add(ActorImage(actor="aurora", role=ImageRole.AVATAR, source_key="x.png"))
        session.add(
            ActorImage(
                actor=INSTANCE_ACTOR,
                role=ImageRole.AVATAR,
                state=ImageState.READY,
                storage_key="profiles/actor/avatar-1.jpg",
                sha256="0" * 64,
            )
        )
        await session.commit()
    base = resources_of(app).settings.instance.base_url
    artist = await (await client.get("/artists/aurora", headers=AS_JSON)).get_json()
    assert artist["discoverable"] is False and artist["indexable"] is False
    assert artist["alsoKnownAs"] == ["https://old.example/users/aurora"]
    assert [field["name"] for field in artist["attachment"]] == ["Bandcamp"]
    assert "icon" not in artist and "movedTo" not in artist
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", artist["published"])
    label = await (await client.get("/labels/tidewater", headers=AS_JSON)).get_json()
    assert label["discoverable"] is True and label["indexable"] is True
    assert label["attachment"] == [] and "alsoKnownAs" not in label
    instance = await (await client.get("/actor", headers=AS_JSON)).get_json()
    assert instance["icon"]["type"] == "Image"
    assert instance["icon"]["mediaType"] == "image/jpeg"
    assert re.fullmatch(rf"{re.escape(base)}/actor/avatar/\d+\.jpg", instance["icon"]["url"])
    assert "image" not in instance
