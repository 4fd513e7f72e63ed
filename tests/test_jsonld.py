"""Every term of every JSON-LD document we serve or send is defined by its ``@context``.

A JSON-LD processor (as some peers use: Funkwhale expands what it receives) drops a term
its context does not define, or, under the ActivityStreams context's ``"@vocab": "_:"``,
turns it into a blank-node property that means nothing. So each document is expanded with
pyld and compacted back with its own context, and every key of every node of the input
must come back, with no blank-node property or type on the way; the documents come from
the builders and, for the routes, from a running app (both databases). The contexts we
name are served by a document loader from tests/fixtures/jsonld/ (where they come from is
said there): no network. Our own terms must not redefine an ActivityStreams or security
term either, which a processor would allow and a peer would misread.

WebFinger (JRD) and NodeInfo are plain JSON, not JSON-LD: they carry no ``@context`` and
no processor expands them, so they are not checked here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from pyld import jsonld
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from federation import objects
from federation.discovery import AS_CONTEXT, MULTIKEY_CONTEXT, SECURITY_CONTEXT
from federation.objects import EXTRA_CONTEXT, PUBLIC, activity
from federation.proofs import sign_object
from federation.royalties import (
    DATA_INTEGRITY_CONTEXT,
    ROYALTY_TERMS,
    answer_document,
    listen_activity,
    settle,
    settlement_document,
    statement_create,
    statement_document,
)
from models.federation import OutboundActivity
from models.users import Role, User
from server.runtime.config import Settings
from server.services.catalogue import create_label
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import make_account, run_worker, upload
from tests.conftest import make_settings
from tests.test_objects import _actor, _release
from tests.test_royalties import HUB, TODAY, _statement, example_listens, example_statement

FIXTURES = Path(__file__).parent / "fixtures" / "jsonld"
LOCAL_CONTEXTS = {
    AS_CONTEXT: "activitystreams.jsonld",
    SECURITY_CONTEXT: "security-v1.jsonld",
    MULTIKEY_CONTEXT: "multikey-v1.jsonld",
    DATA_INTEGRITY_CONTEXT: "data-integrity-v1.jsonld",
}
BASE = "https://music.example"
WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@cache
def _context_file(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def load_document(url: str, options: Any = None) -> dict[str, Any]:
    """pyld's document loader: the contexts we keep, and nothing from the network."""
    name = LOCAL_CONTEXTS.get(url)
    if name is None:
        raise jsonld.JsonLdError(
            f"no local copy of {url}", "jsonld.LoadDocumentError", code="loading document failed"
        )
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": _context_file(name),
    }


OPTIONS = {"documentLoader": load_document}


def _blank_terms(expanded: Any, path: str = "$") -> Iterator[str]:
    """Properties and types that expanded to blank nodes: terms nothing defines."""
    if isinstance(expanded, list):
        for index, item in enumerate(expanded):
            yield from _blank_terms(item, f"{path}[{index}]")
    elif isinstance(expanded, dict):
        for key, value in expanded.items():
            if key.startswith("_:"):
                yield f"{path}: {key[2:]}"
            if key == "@type":
                for kind in value if isinstance(value, list) else [value]:
                    if isinstance(kind, str) and kind.startswith("_:"):
                        yield f"{path}: type {kind[2:]}"
            yield from _blank_terms(value, f"{path}.{key}")


def _lost_keys(original: Any, back: Any, path: str = "$") -> Iterator[str]:
    """Keys of the input's nodes that did not come back from expansion and compaction."""
    if isinstance(original, list):
        items = back if isinstance(back, list) else [back]
        if len(items) != len(original):
            yield f"{path}: {len(original)} items became {len(items)}"
            return
        for index, (mine, theirs) in enumerate(zip(original, items, strict=True)):
            yield from _lost_keys(mine, theirs, f"{path}[{index}]")
    elif isinstance(original, dict):
        keys = {key for key, value in original.items() if key != "@context" and value is not None}
        if isinstance(back, str) and keys <= {"id"}:
            return  # a node with only an id, compacted to the id
        if not isinstance(back, dict):
            yield f"{path}: an object became {type(back).__name__}"
            return
        came_back = set(back) - {"@context"}
        for key in sorted(keys - came_back):
            yield f"{path}: {key} was dropped"
        for key in sorted(came_back - keys):
            yield f"{path}: {key} appeared (a term that means the same as another)"
        for key in sorted(keys & came_back):
            yield from _lost_keys(original[key], back[key], f"{path}.{key}")


def problems(document: dict[str, Any]) -> list[str]:
    assert "@context" in document, "a JSON-LD document names its context"
    expanded = jsonld.expand(document, OPTIONS)
    found = list(_blank_terms(expanded))
    back = jsonld.compact(expanded, {"@context": document["@context"]}, OPTIONS)
    found += _lost_keys(document, back)
    return found


def assert_every_term_defined(document: dict[str, Any], what: str) -> None:
    assert problems(document) == [], f"{what} ({document.get('type')}): {problems(document)}"


# --- the check itself ---------------------------------------------------------------------


def test_the_check_finds_an_undefined_term_a_dropped_one_and_a_clash() -> None:
    note = {"@context": AS_CONTEXT, "id": f"{BASE}/n", "type": "Note", "content": "x"}
    assert problems(note) == []
    assert problems({**note, "sensitive": True}) == ["$[0]: sensitive"]
    nested = {**note, "tag": [{"type": "Hashtag", "name": "#a"}]}
    [found] = problems(nested)
    assert found.endswith("activitystreams#tag[0]: type Hashtag")
    strict = {
        "@context": [AS_CONTEXT, {"@vocab": None}],
        **{k: v for k, v in note.items() if k != "@context"},
    }
    assert problems({**strict, "blurhash": "x"}) == ["$: blurhash was dropped"]
    twice = {**note, "@context": [AS_CONTEXT, {"words": "as:content"}], "words": "y"}
    assert any("appeared" in problem or "dropped" in problem for problem in problems(twice))


def test_the_loader_has_no_network() -> None:
    with pytest.raises(jsonld.JsonLdError):
        jsonld.expand({"@context": "https://example.com/ns", "a": 1}, OPTIONS)


def _terms(context: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in context.items() if not key.startswith("@")}


@pytest.mark.parametrize(
    "ours", [EXTRA_CONTEXT, ROYALTY_TERMS], ids=["EXTRA_CONTEXT", "ROYALTY_TERMS"]
)
def test_our_terms_redefine_no_activitystreams_or_security_term(ours: dict[str, Any]) -> None:
    for url in (AS_CONTEXT, SECURITY_CONTEXT, DATA_INTEGRITY_CONTEXT, MULTIKEY_CONTEXT):
        published = _terms(_context_file(LOCAL_CONTEXTS[url])["@context"])
        clashes = sorted(set(published) & set(_terms(ours)))
        assert clashes == [], f"{url} already defines {clashes}"


def test_mastodon_extension_terms_mean_what_mastodon_means() -> None:
    """The terms Mastodon's own context adds (app/helpers/context_helper.rb), with the same
    IRIs, so that a document of ours and one of theirs say the same thing."""
    probe = {
        "@context": objects.CONTEXT,
        "id": f"{BASE}/x",
        "type": "Person",
        "sensitive": True,
        "manuallyApprovesFollowers": True,
        "discoverable": True,
        "indexable": True,
        "movedTo": f"{BASE}/y",
        "alsoKnownAs": [f"{BASE}/z"],
        "attachment": [{"type": "PropertyValue", "name": "n", "value": "v"}],
        "icon": {"type": "Image", "url": f"{BASE}/i", "blurhash": "b", "focalPoint": [0.5, 0.5]},
        "tag": [{"type": "Hashtag", "name": "#a", "href": f"{BASE}/tags/a"}],
    }
    assert problems(probe) == []
    [node] = jsonld.expand(probe, OPTIONS)
    expected = {
        "https://www.w3.org/ns/activitystreams#sensitive",
        "https://www.w3.org/ns/activitystreams#manuallyApprovesFollowers",
        "http://joinmastodon.org/ns#discoverable",
        "http://joinmastodon.org/ns#indexable",
        "https://www.w3.org/ns/activitystreams#movedTo",
        "https://www.w3.org/ns/activitystreams#alsoKnownAs",
    }
    assert expected <= set(node)
    [field] = node["https://www.w3.org/ns/activitystreams#attachment"]
    assert field["@type"] == ["http://schema.org#PropertyValue"]
    assert "http://schema.org#value" in field
    [icon] = node["https://www.w3.org/ns/activitystreams#icon"]
    assert {"http://joinmastodon.org/ns#blurhash", "http://joinmastodon.org/ns#focalPoint"} <= set(
        icon
    )
    [tag] = node["https://www.w3.org/ns/activitystreams#tag"]
    assert tag["@type"] == ["https://www.w3.org/ns/activitystreams#Hashtag"]


# --- the builders -------------------------------------------------------------------------


def _built() -> Iterator[tuple[str, dict[str, Any]]]:
    release = _release(updated=WHEN)
    note = objects.release_note("https://music.example", release)
    yield (
        "artist",
        objects.local_actor(
            BASE, _actor(icon_url=f"{BASE}/i", icon_type="image/png", published=WHEN)
        ),
    )
    yield "label", objects.local_actor(BASE, _actor(kind="labels", as_type="Organization"))
    yield (
        "listener",
        objects.local_actor(BASE, _actor(kind="users", as_type="Person", manually_approves=True)),
    )
    yield "release", objects.release_object(BASE, release)
    yield (
        "audio",
        {"@context": objects.CONTEXT, **objects.track_object(BASE, release, release.tracks[0])},
    )
    yield "note", {"@context": objects.CONTEXT, **note}
    yield "create", objects.create_release(BASE, release)
    yield "update", objects.update_release(BASE, release, WHEN)
    yield "delete", objects.delete_release(BASE, 42, "the-band", WHEN)
    yield "announce", objects.announce_release(BASE, "a-label", 42, "the-band", WHEN)
    user, artist = f"{BASE}/users/lena", f"{BASE}/artists/the-band"
    remote = "https://remote.example/users/alice"
    follow = activity(f"{user}/follows/1", "Follow", user, remote, to=[remote])
    yield "follow", follow
    inner = {k: v for k, v in follow.items() if k != "@context"}
    yield "undo", activity(f"{user}/follows/1/undo", "Undo", user, inner, to=[remote])
    theirs = {"id": f"{remote}#f/1", "type": "Follow", "actor": remote, "object": artist}
    for answer in ("Accept", "Reject"):
        yield (
            answer.lower(),
            activity(f"{artist}/answers/1/{answer.lower()}/x", answer, artist, theirs, to=[remote]),
        )
    yield "like", activity(f"{user}/likes/1", "Like", user, f"{remote}/notes/1", to=[remote])
    reply = {
        "id": f"{user}/notes/1",
        "type": "Note",
        "attributedTo": user,
        "inReplyTo": f"{remote}/notes/1",
        "content": "<p>hi</p>",
        "published": "2026-12-01T12:00:00Z",
        "to": [PUBLIC, remote],
        "cc": [f"{user}/followers"],
        "tag": [{"type": "Mention", "href": remote}],
    }
    yield "reply", activity(f"{user}/notes/1/create", "Create", user, reply, to=reply["to"])
    outbox = f"{artist}/outbox"
    yield "collection", objects.ordered_collection(outbox, 45)
    yield "page", objects.collection_page(outbox, 2, 45, [objects.create_release(BASE, release)])
    key = ed25519.Ed25519PrivateKey.generate()
    [record, *_] = example_listens()
    yield "listen", listen_activity(record, to=["https://b.example/actor"])
    statement = example_statement()
    signed = sign_object(
        statement_document(statement), key, f"{statement.payer}#ed25519", created=WHEN
    )
    yield "statement", signed
    yield "statement create", statement_create(statement, HUB)
    answer = answer_document(
        "Accept", statement.id, statement.payee, [], id=f"{statement.payee}/answers/1"
    )
    yield "statement answer", sign_object(answer, key, f"{statement.payee}#ed25519", created=WHEN)
    settlement = settle(TODAY, [_statement("https://a.example", "https://b.example", 3)])
    document = settlement_document(settlement, HUB, "https://hub.example/settlements/1")
    yield "settlement", sign_object(document, key, f"{HUB}#ed25519", created=WHEN)


@pytest.mark.parametrize(("what", "document"), list(_built()), ids=[what for what, _ in _built()])
def test_every_term_of_what_the_builders_make_is_defined(
    what: str, document: dict[str, Any]
) -> None:
    assert_every_term_defined(document, what)


# --- the routes of a running app ----------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        federation={"allow_private_addresses": True},
    )


AP = {"Accept": "application/activity+json"}


async def test_every_term_of_what_the_routes_serve_is_defined(
    app: Quart, client: Client, tmp_path: Path
) -> None:
    mira = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    await make_account(app, "lena", Role.LISTENER)
    async with resources_of(app).sessionmaker() as session:
        owner = await session.get_one(User, mira.user_id)
        await create_label(session, "tidewater", owner)
        await session.commit()
    path = tmp_path / "01 - Tide.flac"
    make_audio(path, "flac", seconds=2)
    response = await upload(client, mira, path, query="?publish=1&album=Shoreline")
    assert response.status_code == 202, await response.get_data(as_text=True)
    release = (await response.get_json())["release"]["id"]
    await run_worker(app)
    changed = await client.patch(
        f"/api/v1/releases/{release}", json={"tags": ["ambient"]}, headers=mira.headers
    )
    assert changed.status_code == 200
    await run_worker(app)

    paths = [
        "/artists/aurora", "/labels/tidewater", "/users/lena", "/actor",
        f"/releases/{release}", f"/releases/{release}/note", f"/releases/{release}/note/create",
        "/artists/aurora/outbox", "/artists/aurora/outbox?page=1",
        "/artists/aurora/followers", "/artists/aurora/following", "/actor/outbox",
    ]  # fmt: skip
    served = {}
    for path in paths:
        answer = await client.get(path, headers=AP)
        assert answer.status_code == 200, (path, answer.status_code)
        served[path] = await answer.get_json()
    album = served[f"/releases/{release}"]
    if album["type"] != "OrderedCollection":  # the album object moved to its own id
        answer = await client.get(f"/releases/{release}/album", headers=AP)
        album = served[f"/releases/{release}/album"] = await answer.get_json()
    tracks = [item["id"] for item in album["orderedItems"]]
    assert tracks, "the release has its track"
    for uri in tracks:
        answer = await client.get(uri.removeprefix(BASE), headers=AP)
        assert answer.status_code == 200, uri
        served[uri] = await answer.get_json()
    async with resources_of(app).sessionmaker() as session:
        sent = (await session.scalars(select(OutboundActivity))).all()
    assert {row.type for row in sent} >= {"Create", "Update"}
    for row in sent:
        served[f"sent {row.type} {row.uri}"] = row.document
    for what, document in served.items():
        assert_every_term_defined(document, what)
