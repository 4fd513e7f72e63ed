"""ActivityStreams builders (federation/objects.py) against the shapes of
docs/architecture.md#federation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest

from federation.objects import (
    PAGE_SIZE,
    PUBLIC,
    ActorInfo,
    ReleaseInfo,
    SamplerInfo,
    TrackInfo,
    announce_release,
    collection_page,
    create_release,
    delete_release,
    iso_duration,
    local_actor,
    ordered_collection,
    paragraphs,
    release_note,
    release_object,
    track_note,
    track_object,
    update_release,
)

BASES = ["https://music.example", "http://127.0.0.2:8123"]
PEM = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"
PUBLISHED = datetime(2024, 3, 1, 18, 30, 5, tzinfo=UTC)
TITLE = "Noise <b>& Signal"
# keys whose string values are our own URLs
URL_KEYS = {
    "id",
    "url",
    "href",
    "inbox",
    "outbox",
    "followers",
    "following",
    "sharedInbox",
    "owner",
    "attributedTo",
    "partOf",
    "preview",
    "release",
    "actor",
    "first",
    "last",
    "next",
    "prev",
}


@pytest.fixture(params=BASES)
def base(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _track(
    number: int, *, preview: str | None = "audio/mpeg", duration_ms: int = 61_000
) -> TrackInfo:
    return TrackInfo(
        id=100 + number,
        title=f"Track {number} <i>",
        position=number,
        duration_ms=duration_ms,
        license="CC-BY-SA-4.0",
        price_model="pay-per-play",
        artist_name="the-band",
        preview_type=preview,
    )


def _release(
    tracks: tuple[TrackInfo, ...] | None = None,
    *,
    cover: str | None = "image/jpeg",
    tags: tuple[str, ...] = ("post-punk", "musique-concrète"),
    updated: datetime | None = None,
    title: str = TITLE,
) -> ReleaseInfo:
    if tracks is None:
        tracks = tuple(
            _track(n, preview="audio/ogg" if n % 2 else "audio/mpeg") for n in range(1, 7)
        )
    return ReleaseInfo(
        id=42,
        title=title,
        artist_name="the-band",
        artist_display_name="The <Band> & Co",
        label_name="a-label",
        description="First line\nsecond line\n\nSecond <paragraph>",
        license="CC-BY-SA-4.0",
        published=PUBLISHED,
        updated=updated,
        cover_type=cover,
        tags=tags,
        tracks=tracks,
    )


def _actor(**changes: Any) -> ActorInfo:
    fields: dict[str, Any] = {
        "kind": "artists",
        "name": "the-band",
        "display_name": "The Band",
        "summary": "We play <script>alert(1)</script> loud & fast",
        "as_type": "Group",
        "public_pem": PEM,
    }
    fields.update(changes)
    return ActorInfo(**fields)


def _urls(document: Any, key: str | None = None) -> Iterator[tuple[str, str]]:
    """Every (key, value) pair of the document whose value should be one of our URLs."""
    if isinstance(document, dict):
        for child_key, value in document.items():
            if child_key == "@context":
                continue
            yield from _urls(value, child_key)
    elif isinstance(document, list):
        for item in document:
            yield from _urls(item, key)
    elif isinstance(document, str) and key in URL_KEYS:
        yield key, document


def _assert_ids_under(document: dict[str, Any], base: str) -> None:
    found = list(_urls(document))
    assert found
    for key, value in found:
        assert value.startswith(base + "/"), (key, value)


def _assert_json(document: dict[str, Any]) -> None:
    # no datetimes, tuples or other objects left inside
    assert json.loads(json.dumps(document)) == document


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def _anchors(content: str) -> list[dict[str, str | None]]:
    parser = _Anchors()
    parser.feed(content)
    parser.close()
    return parser.anchors


# --- small helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milliseconds", "expected"),
    [
        (0, "PT0S"),
        (999, "PT0S"),
        (59_999, "PT59S"),
        (60_000, "PT1M0S"),
        (61_000, "PT1M1S"),
        (3_723_000, "PT1H2M3S"),
        (3_600_000, "PT1H0S"),
        (36_000_000 + 5_000, "PT10H5S"),
        (-5, "PT0S"),
    ],
)
def test_iso_duration(milliseconds: int, expected: str) -> None:
    assert iso_duration(milliseconds) == expected


def test_paragraphs_escape_and_split() -> None:
    assert paragraphs("") == ""
    assert paragraphs("\n\n  \n\n") == ""
    assert paragraphs("one") == "<p>one</p>"
    assert paragraphs("a\nb\n\nc") == "<p>a<br>b</p><p>c</p>"
    assert paragraphs("a\r\n\r\nb") == "<p>a</p><p>b</p>"
    assert paragraphs('<script>x</script> & "q"') == (
        "<p>&lt;script&gt;x&lt;/script&gt; &amp; &quot;q&quot;</p>"
    )


# --- actors --------------------------------------------------------------------------------


def test_local_actor_has_every_field(base: str) -> None:
    document = local_actor(base, _actor())
    uri = f"{base}/artists/the-band"
    assert document["id"] == uri
    assert document["type"] == "Group"
    assert document["preferredUsername"] == "the-band"
    assert document["name"] == "The Band"
    # the page first (what Mastodon, Misskey, Pleroma and GoToSocial show), then the RSS
    # feed that makes Funkwhale take the artist for a channel
    assert document["url"] == [
        {"type": "Link", "mediaType": "text/html", "href": uri},
        {"type": "Link", "mediaType": "application/rss+xml", "href": f"{uri}/feed.rss"},
    ]
    assert document["inbox"] == f"{uri}/inbox"
    assert document["outbox"] == f"{uri}/outbox"
    assert document["followers"] == f"{uri}/followers"
    assert document["following"] == f"{uri}/following"
    assert document["endpoints"] == {"sharedInbox": f"{base}/inbox"}
    key = document["publicKey"]
    assert key["owner"] == document["id"]
    assert key["id"].startswith(uri + "#")
    assert key["publicKeyPem"] == PEM
    assert document["manuallyApprovesFollowers"] is False
    assert document["discoverable"] is True
    assert document["indexable"] is True
    assert document["attachment"] == []
    assert "https://www.w3.org/ns/activitystreams" in document["@context"]
    _assert_ids_under(document, base)
    _assert_json(document)


def test_local_actor_summary_is_escaped() -> None:
    summary = local_actor(BASES[0], _actor())["summary"]
    assert "<script" not in summary
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in summary
    assert "&amp; fast" in summary
    assert summary.startswith("<p>")


@pytest.mark.parametrize(
    ("kind", "as_type"), [("artists", "Person"), ("artists", "Group"), ("labels", "Organization")]
)
def test_local_actor_type_is_passed_through(kind: str, as_type: str) -> None:
    document = local_actor(BASES[0], _actor(kind=kind, as_type=as_type))
    assert document["type"] == as_type
    assert document["id"] == f"{BASES[0]}/{kind}/the-band"


def test_listener_is_not_discoverable_and_may_lock() -> None:
    document = local_actor(BASES[0], _actor(kind="users", as_type="Person", manually_approves=True))
    assert document["discoverable"] is False
    assert document["indexable"] is False
    assert document["manuallyApprovesFollowers"] is True


def test_local_actor_icon_and_published(base: str) -> None:
    document = local_actor(
        base,
        _actor(
            icon_url=f"{base}/artists/the-band/avatar",
            icon_type="image/png",
            published=PUBLISHED,
        ),
    )
    assert document["icon"] == {
        "type": "Image",
        "mediaType": "image/png",
        "url": f"{base}/artists/the-band/avatar",
    }
    assert document["published"] == "2024-03-01T18:30:05Z"
    _assert_ids_under(document, base)
    _assert_json(document)


def test_local_actor_published_is_utc() -> None:
    moment = datetime(2024, 3, 1, 20, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    document = local_actor(BASES[0], _actor(published=moment))
    assert document["published"] == "2024-03-01T18:30:05Z"


# --- the Note ------------------------------------------------------------------------------


def test_release_note_shape(base: str) -> None:
    release = _release()
    note = release_note(base, release)
    page = f"{base}/releases/42"
    artist = local_actor(base, _actor())
    assert note["type"] == "Note"
    assert note["attributedTo"] == artist["id"]
    assert note["to"] == [PUBLIC]
    assert note["cc"] == [artist["followers"]]
    assert note["release"] == f"{page}/album"  # the album object, for playfair peers
    assert note["url"] == page
    assert note["id"] == f"{page}/note"
    assert note["published"] == "2024-03-01T18:30:05Z"
    assert "updated" not in note
    _assert_ids_under(note, base)
    _assert_json(note)


def test_release_note_has_one_audio_attachment_with_the_cover_as_its_icon(base: str) -> None:
    # the cover is never an attachment of its own: Mastodon draws its player only for
    # exactly one attachment that is audio (docs/decisions.md, issue 14)
    release = replace(_release(), sampler=SamplerInfo(6, 58_500), cover_blurhash="LEHV6nWB2yk8")
    [attachment] = release_note(base, release)["attachment"]
    assert attachment["type"] == "Document"
    assert attachment["mediaType"] == "audio/mpeg"
    assert attachment["url"] == f"{base}/releases/42/sampler"
    assert attachment["duration"] == "PT58S"
    assert attachment["icon"] == {
        "type": "Image",
        "mediaType": "image/jpeg",
        "url": f"{base}/releases/42/cover",
    }
    assert attachment["blurhash"] == "LEHV6nWB2yk8"


def test_release_note_without_a_sampler_plays_the_first_preview(base: str) -> None:
    tracks = (
        _track(1, preview=None),
        _track(2),
        _track(3, preview=None),
        _track(4, preview="audio/ogg"),
    )
    [attachment] = release_note(base, _release(tracks, cover=None))["attachment"]
    assert attachment["url"] == f"{base}/tracks/{tracks[1].id}/preview"
    assert attachment["mediaType"] == "audio/mpeg"
    assert "icon" not in attachment and "blurhash" not in attachment
    assert attachment["name"] == f"Preview of «{tracks[1].title}» from «{TITLE}» by The <Band> & Co"


def test_release_note_lists_the_tracks_escaped() -> None:
    content = release_note(BASES[0], _release())["content"]
    assert "1. Track 1 &lt;i&gt;<br>2. Track 2 &lt;i&gt;" in content
    assert "<i>" not in content
    single = release_note(BASES[0], _release((_track(1),)))["content"]
    assert "1. Track 1" not in single


def test_release_note_track_list_is_short() -> None:
    tracks = tuple(_track(n) for n in range(1, 21))
    content = release_note(BASES[0], _release(tracks))["content"]
    assert "12. Track 12" in content and "13. Track 13" not in content
    assert "… and 8 more" in content


def test_release_note_without_previews_or_cover_has_no_attachments() -> None:
    tracks = (_track(1, preview=None),)
    assert release_note(BASES[0], _release(tracks, cover=None))["attachment"] == []


def test_release_note_content_links_the_release_and_escapes(base: str) -> None:
    content = release_note(base, _release())["content"]
    assert f'<a href="{base}/releases/42">' in content
    assert "Noise &lt;b&gt;&amp; Signal" in content
    assert "<b>" not in content
    assert "The &lt;Band&gt; &amp; Co" in content
    assert "Second &lt;paragraph&gt;" in content
    assert "First line<br>second line" in content
    hrefs = [anchor["href"] for anchor in _anchors(content)]
    assert f"{base}/releases/42" in hrefs
    assert f"{base}/tags/post-punk" in hrefs


def test_release_note_hashtags(base: str) -> None:
    note = release_note(base, _release())
    assert note["tag"] == [
        {"type": "Hashtag", "name": "#post-punk", "href": f"{base}/tags/post-punk"},
        {
            "type": "Hashtag",
            "name": "#musique-concrète",
            "href": f"{base}/tags/musique-concr%C3%A8te",
        },
    ]
    assert "#<span>post-punk</span>" in note["content"]
    assert release_note(base, _release(tags=()))["tag"] == []


def test_release_note_hashtag_href_is_escaped() -> None:
    content = release_note(BASES[0], _release(tags=('x"onmouseover="alert(1)',)))["content"]
    for anchor in _anchors(content):
        assert set(anchor) <= {"href", "class", "rel"}


def test_release_note_updated() -> None:
    moment = PUBLISHED + timedelta(days=2)
    note = release_note(BASES[0], _release(updated=moment))
    assert note["updated"] == "2024-03-03T18:30:05Z"
    _assert_json(note)


# --- activities ----------------------------------------------------------------------------


def test_create_release_wraps_the_note(base: str) -> None:
    release = _release()
    note = release_note(base, release)
    create = create_release(base, release)
    assert create["type"] == "Create"
    assert create["object"] == note
    assert create["actor"] == note["attributedTo"] == f"{base}/artists/the-band"
    assert create["to"] == note["to"] == [PUBLIC]
    assert create["cc"] == note["cc"]
    assert create["id"] != note["id"]
    assert create["id"].startswith(note["id"] + "/")
    assert create["published"] == note["published"]
    assert "@context" in create
    _assert_ids_under(create, base)
    _assert_json(create)


def test_update_release_ids_differ_per_version(base: str) -> None:
    release = _release()
    first_version = PUBLISHED + timedelta(hours=1)
    second_version = PUBLISHED + timedelta(days=1)
    first = update_release(base, release, first_version)
    second = update_release(base, release, second_version)
    create = create_release(base, release)
    note_uri = release_note(base, release)["id"]
    assert first["type"] == second["type"] == "Update"
    assert len({first["id"], second["id"], create["id"], note_uri}) == 4
    assert first["object"]["id"] == second["object"]["id"] == note_uri
    assert first["object"]["updated"] == "2024-03-01T19:30:05Z"
    assert second["object"]["updated"] == "2024-03-02T18:30:05Z"
    assert first["to"] == [PUBLIC]
    assert first["cc"] == [f"{base}/artists/the-band/followers"]
    # building the update does not change what the next build returns
    assert "updated" not in release_note(base, release)
    _assert_ids_under(second, base)
    _assert_json(second)


def test_update_release_ids_differ_for_sub_second_versions() -> None:
    release = _release()
    version = PUBLISHED + timedelta(hours=1)
    first = update_release(BASES[0], release, version)
    second = update_release(BASES[0], release, version + timedelta(milliseconds=400))
    assert first["id"] != second["id"]


def test_delete_release_is_a_tombstone(base: str) -> None:
    when = PUBLISHED + timedelta(days=10)
    document = delete_release(base, 42, "the-band", when)
    note_uri = release_note(base, _release())["id"]
    assert document["type"] == "Delete"
    assert document["actor"] == f"{base}/artists/the-band"
    tombstone = document["object"]
    assert tombstone["type"] == "Tombstone"
    assert tombstone["id"] == note_uri
    assert tombstone["formerType"] == "Note"
    assert tombstone["deleted"] == "2024-03-11T18:30:05Z"
    assert document["to"] == [PUBLIC]
    assert document["cc"] == [f"{base}/artists/the-band/followers"]
    assert document["id"] not in (note_uri, create_release(base, _release())["id"])
    _assert_ids_under(document, base)
    _assert_json(document)


def test_announce_release_by_the_label(base: str) -> None:
    document = announce_release(base, "a-label", 42, "the-band", PUBLISHED)
    label = f"{base}/labels/a-label"
    assert document["type"] == "Announce"
    assert document["actor"] == label
    assert document["object"] == release_note(base, _release())["id"]
    assert document["to"] == [PUBLIC]
    assert f"{label}/followers" in document["cc"]
    assert f"{base}/artists/the-band" in document["cc"]
    assert document["published"] == "2024-03-01T18:30:05Z"
    _assert_ids_under(document, base)
    _assert_json(document)


# --- the release and its tracks ------------------------------------------------------------


def test_release_object_shape(base: str) -> None:
    tracks = (
        _track(1, duration_ms=0),
        _track(2, preview=None, duration_ms=59_999),
        _track(3, duration_ms=3_723_000),
    )
    release = _release(tracks, updated=PUBLISHED + timedelta(days=1))
    document = release_object(base, release)
    assert document["id"] == f"{base}/releases/42/album"
    assert document["url"] == f"{base}/releases/42"
    assert document["type"] == "OrderedCollection"
    assert document["name"] == TITLE  # a plain-text property, not HTML
    assert document["attributedTo"] == f"{base}/artists/the-band"
    assert document["totalItems"] == 3
    assert document["license"] == "CC-BY-SA-4.0"
    assert "<paragraph>" not in document["content"]
    assert document["updated"] == "2024-03-02T18:30:05Z"
    assert document["image"]["url"] == f"{base}/releases/42/cover"
    items = document["orderedItems"]
    assert [item["type"] for item in items] == ["Audio"] * 3
    assert [item["duration"] for item in items] == [0, 59, 3723]  # seconds, as Funkwhale reads
    assert [item["position"] for item in items] == [1, 2, 3]
    assert all(item["partOf"] == document["id"] for item in items)
    assert all(
        item["license"] == "https://creativecommons.org/licenses/by-sa/4.0/" for item in items
    )
    assert all(item["priceModel"] == "pay-per-play" for item in items)
    _assert_ids_under(document, base)
    _assert_json(document)


def test_release_object_without_cover_or_update() -> None:
    document = release_object(BASES[0], _release(cover=None))
    assert "image" not in document
    assert "updated" not in document


def test_track_object_with_preview(base: str) -> None:
    track = _track(3, preview="audio/ogg")
    document = track_object(base, _release(), track)
    uri = f"{base}/tracks/103"  # the page; the Audio object has an id of its own
    assert document["id"] == f"{uri}/audio"
    assert document["type"] == "Audio"
    assert document["name"] == track.title
    assert document["duration"] == 61
    assert document["attributedTo"] == f"{base}/artists/the-band"
    assert document["position"] == 3
    assert document["preview"] == f"{uri}/preview"
    previews = [link for link in document["url"] if link.get("rel") == "preview"]
    assert previews == [
        {"type": "Link", "rel": "preview", "mediaType": "audio/ogg", "href": f"{uri}/preview"}
    ]
    assert {"type": "Link", "mediaType": "text/html", "href": uri} in document["url"]
    _assert_ids_under(document, base)
    _assert_json(document)


def test_track_object_without_preview() -> None:
    document = track_object(BASES[0], _release(), _track(1, preview=None))
    assert "preview" not in document
    assert all("rel" not in link for link in document["url"])
    assert all(link["mediaType"] for link in document["url"])


# --- collections ---------------------------------------------------------------------------


@pytest.mark.parametrize(("total", "last"), [(0, 1), (1, 1), (20, 1), (21, 2), (40, 2), (41, 3)])
def test_ordered_collection_last_page(total: int, last: int) -> None:
    assert PAGE_SIZE == 20
    uri = f"{BASES[1]}/artists/the-band/followers"
    document = ordered_collection(uri, total)
    assert document["type"] == "OrderedCollection"
    assert document["totalItems"] == total
    assert document["first"] == f"{uri}?page=1"
    assert document["last"] == f"{uri}?page={last}"
    _assert_ids_under(document, BASES[1])
    _assert_json(document)


@pytest.mark.parametrize(
    ("page", "total", "has_next", "has_prev"),
    [
        (1, 0, False, False),
        (1, 19, False, False),
        (1, 20, False, False),
        (1, 21, True, False),
        (2, 21, False, True),
        (2, 40, False, True),
        (2, 41, True, True),
        (3, 41, False, True),
    ],
)
def test_collection_page_links(page: int, total: int, has_next: bool, has_prev: bool) -> None:
    uri = f"{BASES[0]}/artists/the-band/outbox"
    start = (page - 1) * PAGE_SIZE
    items = [f"{BASES[0]}/notes/{n}" for n in range(start, min(total, start + PAGE_SIZE))]
    document = collection_page(uri, page, total, items)
    assert document["id"] == f"{uri}?page={page}"
    assert document["type"] == "OrderedCollectionPage"
    assert document["partOf"] == uri
    assert document["totalItems"] == total
    assert document["orderedItems"] == items
    assert ("next" in document) is has_next
    assert ("prev" in document) is has_prev
    if has_next:
        assert document["next"] == f"{uri}?page={page + 1}"
    if has_prev:
        assert document["prev"] == f"{uri}?page={page - 1}"
    _assert_ids_under(document, BASES[0])
    _assert_json(document)


def test_collection_page_items_are_a_list() -> None:
    document = collection_page(f"{BASES[0]}/x", 1, 2, ("a", "b"))
    assert document["orderedItems"] == ["a", "b"]
    _assert_json(document)


# --- the track's Note (what a pasted track URL resolves to) --------------------------------


def test_track_note_shape(base: str) -> None:
    release = _release()
    track = release.tracks[2]
    note = track_note(base, release, track)
    page = f"{base}/tracks/{track.id}"
    assert note["type"] == "Note"  # one of the two types Mastodon takes as they are
    assert note["id"] == f"{page}/note"
    assert note["url"] == page
    assert note["track"] == f"{page}/audio"
    assert note["release"] == f"{base}/releases/42/album"
    assert note["attributedTo"] == f"{base}/artists/the-band"
    assert note["to"] == [PUBLIC]
    [audio] = note["attachment"]  # exactly one, audio: Mastodon draws its player
    assert audio["type"] == "Document"
    assert audio["mediaType"] == track.preview_type
    assert audio["url"] == f"{page}/preview"
    assert audio["icon"]["url"] == f"{base}/releases/42/cover"  # the player's poster
    assert f'<a href="{page}">' in note["content"]
    assert f'<a href="{base}/releases/42">' in note["content"]
    _assert_ids_under(note, base)
    _assert_json(note)


def test_track_note_without_preview_or_cover() -> None:
    release = _release(cover=None)
    assert track_note(BASES[0], release, _track(1, preview=None))["attachment"] == []
    [audio] = track_note(BASES[0], release, _track(2))["attachment"]
    assert "icon" not in audio


def test_track_note_escapes_titles() -> None:
    content = track_note(BASES[0], _release(), _track(1))["content"]
    assert "Track 1 &lt;i&gt;" in content and "<i>" not in content
    assert "Noise &lt;b&gt;&amp; Signal" in content
