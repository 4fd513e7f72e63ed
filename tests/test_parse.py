"""The parsers for incoming ActivityPub JSON and the HTML sanitiser, against payloads shaped
like Mastodon 4.x and Funkwhale 1.4 send them (tests/fixtures/fediverse/) and one negative
case per rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.parse import (
    AUDIO_TYPES,
    NOTE_TYPES,
    PUBLIC,
    InvalidObject,
    ParsedActivity,
    as_list,
    id_of,
    parse_activity,
    parse_actor,
    parse_note,
    same_origin,
)
from federation.sanitize import MAX_HTML_CHARS, MAX_TAGS, plain_text, sanitize_html

FIXTURES = Path(__file__).parent / "fixtures" / "fediverse"
ALICE = "https://mastodon.example/users/alice"
CHANNEL = "https://funkwhale.example/federation/actors/night-drives"
REL = 'rel="nofollow noopener noreferrer"'


def load(name: str) -> dict[str, Any]:
    document = json.loads((FIXTURES / name).read_text())
    assert isinstance(document, dict)
    return document


def rsa_2048(pem: str) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    return isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048


# --- Mastodon -----------------------------------------------------------------------------


def test_mastodon_actor() -> None:
    actor = parse_actor(load("mastodon/actor.json"))
    assert actor.id == ALICE
    assert actor.type == "Person"
    assert actor.preferred_username == "alice"
    assert actor.name == "Alice :vinyl:"
    assert actor.inbox == f"{ALICE}/inbox"
    assert actor.shared_inbox == "https://mastodon.example/inbox"
    assert actor.outbox == f"{ALICE}/outbox"
    assert actor.followers == f"{ALICE}/followers"
    assert actor.url == "https://mastodon.example/@alice"
    assert actor.icon_url is not None
    assert actor.icon_url.startswith("https://mastodon.example/system/accounts/avatars/")
    assert actor.manually_approves_followers is False
    assert actor.key is not None
    assert actor.key.id == f"{ALICE}#main-key"
    assert actor.key.owner == ALICE
    assert rsa_2048(actor.key.pem)
    assert actor.summary_html.startswith("<p>Records, tapes")
    assert 'class="mention hashtag"' in actor.summary_html
    assert REL in actor.summary_html


def test_mastodon_follow_and_undo() -> None:
    follow = parse_activity(load("mastodon/follow.json"))
    assert follow.type == "Follow"
    assert follow.actor == ALICE
    assert follow.object_id == "https://music.example/artists/the_quiet_hours"
    assert follow.object is None

    undo = parse_activity(load("mastodon/undo_follow.json"))
    assert undo.type == "Undo"
    assert undo.object_id == follow.id
    assert undo.object is not None
    assert undo.object["type"] == "Follow"
    assert undo.raw["id"] == f"{ALICE}#follows/318457/undo"


def test_mastodon_create_reply() -> None:
    activity = parse_activity(load("mastodon/create_note_reply.json"))
    assert activity.type == "Create"
    assert activity.to == (PUBLIC,)
    assert activity.cc == (f"{ALICE}/followers", "https://music.example/artists/the_quiet_hours")
    assert activity.object is not None

    note = parse_note(activity.object)
    assert note.id == activity.object_id == f"{ALICE}/statuses/112233445566778899"
    assert note.type == "Note"
    assert note.type in NOTE_TYPES
    assert note.attributed_to == ALICE
    assert note.in_reply_to == "https://music.example/releases/1"
    assert note.url == "https://mastodon.example/@alice/112233445566778899"
    assert note.published == datetime(2024, 3, 14, 18, 22, 5, tzinfo=UTC)
    assert note.summary is None
    assert note.name is None
    assert note.duration_seconds is None
    assert note.release is None
    assert note.to == (PUBLIC,)
    # sanitised: the mention and the hashtag survive as links, the script is gone entirely
    assert "<script" not in note.content_html
    assert "fetch(" not in note.content_html
    assert "document.cookie" not in note.content_html
    assert (
        '<a href="https://music.example/artists/the_quiet_hours" class="u-url mention" '
        f'{REL} target="_blank">'
    ) in note.content_html
    assert '<span class="h-card">' in note.content_html
    assert 'class="mention hashtag"' in note.content_html
    assert "translate=" not in note.content_html
    [attachment] = note.attachments
    assert attachment.kind == "image"
    assert attachment.media_type == "image/png"
    assert attachment.name == "The record sleeve on a wooden table"
    assert attachment.url.endswith("/original/d4c1f0e9a8b7c6d5.png")


def test_mastodon_like_and_announce() -> None:
    like = parse_activity(load("mastodon/like.json"))
    assert (like.type, like.object_id) == ("Like", "https://music.example/releases/1")
    announce = parse_activity(load("mastodon/announce.json"))
    assert announce.type == "Announce"
    assert announce.object_id == "https://music.example/releases/1"
    assert announce.to == (PUBLIC,)


def test_mastodon_delete_actor() -> None:
    delete = parse_activity(load("mastodon/delete_actor.json"))
    assert delete.type == "Delete"
    assert delete.object_id == delete.actor == ALICE
    assert delete.object is None
    assert delete.to == (PUBLIC,)


def test_mastodon_update_actor_with_new_key() -> None:
    old = parse_actor(load("mastodon/actor.json"))
    update = parse_activity(load("mastodon/update_actor.json"))
    assert update.type == "Update"
    assert update.object_id == ALICE
    actor = parse_actor(update.object)
    assert actor.name == "Alice (on tour) :vinyl:"
    assert actor.key is not None
    assert old.key is not None
    assert actor.key.id == old.key.id
    assert actor.key.pem != old.key.pem
    assert rsa_2048(actor.key.pem)


def test_mastodon_flag() -> None:
    flag = parse_activity(load("mastodon/flag.json"))
    assert flag.type == "Flag"
    assert flag.actor == "https://mastodon.example/actor"
    assert flag.object_id == "https://music.example/artists/cheap-followers"
    assert as_list(flag.raw["object"])[1] == "https://music.example/releases/77"


# --- Funkwhale ----------------------------------------------------------------------------


def test_funkwhale_channel_actor() -> None:
    actor = parse_actor(load("funkwhale/channel_actor.json"))
    assert actor.id == CHANNEL
    assert actor.type == "Person"
    assert actor.name == "Night Drives"
    assert actor.preferred_username == "night-drives"
    assert actor.inbox == f"{CHANNEL}/inbox"
    assert actor.shared_inbox == "https://funkwhale.example/federation/shared/inbox"
    # url is a list: the text/html link wins over the RSS feed
    assert actor.url == "https://funkwhale.example/channels/night-drives"
    assert actor.icon_url is not None
    assert actor.icon_url.endswith("/proxy?next=original")
    assert actor.key is not None
    assert actor.key.owner == CHANNEL
    assert rsa_2048(actor.key.pem)


def test_funkwhale_create_audio() -> None:
    activity = parse_activity(load("funkwhale/create_audio.json"))
    assert activity.type == "Create"
    assert activity.actor == CHANNEL
    assert activity.to == (f"{CHANNEL}/followers",)
    audio = parse_note(activity.object)
    assert audio.type == "Audio"
    assert audio.type in AUDIO_TYPES
    assert audio.name == "Coastal Road, 3 a.m."
    assert audio.attributed_to == CHANNEL
    assert audio.duration_seconds == 201
    assert audio.url == "https://funkwhale.example/library/tracks/1287"
    assert audio.published == datetime(2024, 2, 24, 23, 58, 12, 394820, tzinfo=UTC)
    assert audio.content_html == "<p>Recorded in one take on a borrowed Juno-106.</p>"
    assert audio.to == (PUBLIC,)
    [track] = audio.attachments
    assert track.kind == "audio"
    assert track.media_type == "audio/mpeg"
    assert track.url.startswith("https://funkwhale.example/api/v1/listen/")
    assert track.name == "Coastal Road, 3 a.m."


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("PT3M21S", 201),
        ("PT1H", 3600),
        ("P1DT2S", 86402),
        ("PT2.6S", 3),
        (201, 201),
        ("201", 201),
        ("PT", None),
        ("3 minutes", None),
        (-5, None),
        (True, None),
        (None, None),
    ],
)
def test_durations(duration: Any, seconds: int | None) -> None:
    audio = load("funkwhale/create_audio.json")["object"]
    audio["duration"] = duration
    assert parse_note(audio).duration_seconds == seconds


def test_playfair_release_property_and_audio_document() -> None:
    note = {
        "id": "https://other.example/notes/1",
        "type": "Note",
        "attributedTo": {"id": "https://other.example/artists/x", "type": "Person"},
        "content": "<p>New release</p>",
        "release": "https://other.example/releases/9",
        "attachment": [
            {"type": "Document", "mediaType": "audio/ogg", "url": "https://other.example/c.ogg"},
            {"type": "Video", "url": {"type": "Link", "href": "https://other.example/v"}},
            {"type": "Document", "url": "https://other.example/x.pdf"},
            {"type": "Document", "url": "javascript:alert(1)"},
        ],
        "published": "2024-05-01T10:00:00",
    }
    parsed = parse_note(note)
    assert parsed.release == "https://other.example/releases/9"
    assert [a.kind for a in parsed.attachments] == ["audio", "video", "other"]
    assert parsed.published == datetime(2024, 5, 1, 10, tzinfo=UTC)


# --- helpers ------------------------------------------------------------------------------


def test_helpers() -> None:
    assert as_list(None) == []
    assert as_list("a") == ["a"]
    assert as_list(["a", "b"]) == ["a", "b"]
    assert id_of("https://a.example/1") == "https://a.example/1"
    assert id_of({"id": "https://a.example/1"}) == "https://a.example/1"
    assert id_of({"type": "Note"}) is None
    assert id_of(3) is None
    assert same_origin("https://A.example/x", "https://a.example:443/y")
    assert not same_origin("https://a.example/x", "http://a.example/x")
    assert not same_origin("https://a.example/x", "https://a.example:8443/x")
    assert not same_origin("https://a.example/x", "https://b.example/x")
    assert not same_origin("not a url", "not a url")


def test_public_aliases_and_single_string_addresses() -> None:
    follow = load("mastodon/follow.json")
    follow["to"] = "as:Public"
    follow["cc"] = ["Public", PUBLIC, f"{ALICE}/followers"]
    activity = parse_activity(follow)
    assert activity.to == (PUBLIC,)
    assert activity.cc == (PUBLIC, f"{ALICE}/followers")


def test_type_list_takes_first_known() -> None:
    follow = load("mastodon/follow.json")
    follow["type"] = ["https://example.org/ns#Thing", "Follow"]
    assert parse_activity(follow).type == "Follow"


def test_announce_may_embed_an_object_from_elsewhere() -> None:
    announce = load("mastodon/announce.json")
    announce["object"] = {"id": "https://music.example/releases/1", "type": "Note"}
    assert parse_activity(announce).object_id == "https://music.example/releases/1"


def test_accept_may_embed_our_follow() -> None:
    accept = {
        "id": f"{ALICE}#accepts/follows/55",
        "type": "Accept",
        "actor": ALICE,
        "object": {
            "id": "https://music.example/follows/abc",
            "type": "Follow",
            "actor": "https://music.example/artists/the_quiet_hours",
            "object": ALICE,
        },
    }
    parsed: ParsedActivity = parse_activity(accept)
    assert parsed.object_id == "https://music.example/follows/abc"


def test_actor_name_falls_back_to_username() -> None:
    actor = load("mastodon/actor.json")
    del actor["name"]
    assert parse_actor(actor).name == "alice"


def test_actor_public_key_list() -> None:
    actor = load("mastodon/actor.json")
    mine = actor["publicKey"]
    other = {**mine, "id": f"{ALICE}#other", "owner": "https://mastodon.example/users/bob"}
    actor["publicKey"] = [other, mine]
    key = parse_actor(actor).key
    assert key is not None
    assert key.id == f"{ALICE}#main-key"


# --- negative cases, one per rule ---------------------------------------------------------


@pytest.mark.parametrize("document", [["a list"], "a string", None, 42])
@pytest.mark.parametrize("parser", [parse_activity, parse_actor, parse_note])
def test_not_an_object(parser: Any, document: Any) -> None:
    with pytest.raises(InvalidObject, match="must be a JSON object"):
        parser(document)


def test_missing_id() -> None:
    follow = load("mastodon/follow.json")
    del follow["id"]
    with pytest.raises(InvalidObject, match="activity id is missing"):
        parse_activity(follow)


@pytest.mark.parametrize(
    "bad_id",
    [
        "/users/alice/follows/1",
        "mastodon.example/follows/1",
        "ftp://mastodon.example/follows/1",
        "https:///nohost",
        "https://user@mastodon.example/follows/1",
        "https://mastodon.example/" + "x" * 2048,
        42,
    ],
)
def test_relative_or_bad_id(bad_id: Any) -> None:
    follow = load("mastodon/follow.json")
    follow["id"] = bad_id
    with pytest.raises(InvalidObject, match="activity id"):
        parse_activity(follow)


def test_missing_actor() -> None:
    follow = load("mastodon/follow.json")
    del follow["actor"]
    with pytest.raises(InvalidObject, match="no actor"):
        parse_activity(follow)


def test_relative_actor() -> None:
    follow = load("mastodon/follow.json")
    follow["actor"] = "/users/alice"
    with pytest.raises(InvalidObject, match="actor must be an absolute"):
        parse_activity(follow)


def test_create_object_on_another_host() -> None:
    create = load("mastodon/create_note_reply.json")
    create["object"]["id"] = "https://evil.example/statuses/1"
    with pytest.raises(InvalidObject, match="different host than its actor"):
        parse_activity(create)


def test_delete_of_an_object_on_another_host() -> None:
    delete = load("mastodon/delete_actor.json")
    delete["object"] = "https://music.example/releases/1"
    with pytest.raises(InvalidObject, match="different host than its actor"):
        parse_activity(delete)


def test_activity_id_on_another_host() -> None:
    like = load("mastodon/like.json")
    like["id"] = "https://evil.example/likes/1"
    with pytest.raises(InvalidObject, match="activity id is not on the same host"):
        parse_activity(like)


@pytest.mark.parametrize("activity", ["mastodon/follow.json", "mastodon/like.json"])
def test_missing_object(activity: str) -> None:
    document = load(activity)
    del document["object"]
    with pytest.raises(InvalidObject, match="needs an object"):
        parse_activity(document)


def test_create_object_without_id() -> None:
    create = load("mastodon/create_note_reply.json")
    del create["object"]["id"]
    with pytest.raises(InvalidObject, match="has no id"):
        parse_activity(create)


def test_undo_of_someone_elses_activity() -> None:
    undo = load("mastodon/undo_follow.json")
    undo["object"]["actor"] = "https://mastodon.example/users/bob"
    with pytest.raises(InvalidObject, match="own activity"):
        parse_activity(undo)


def test_update_of_another_actor() -> None:
    update = load("mastodon/update_actor.json")
    update["object"]["id"] = "https://mastodon.example/users/bob"
    with pytest.raises(InvalidObject, match="only update itself"):
        parse_activity(update)


def test_attributed_to_on_another_host() -> None:
    note = load("mastodon/create_note_reply.json")["object"]
    note["attributedTo"] = "https://evil.example/users/alice"
    with pytest.raises(InvalidObject, match="attributedTo is on a different host"):
        parse_note(note)


def test_note_without_attributed_to() -> None:
    note = load("mastodon/create_note_reply.json")["object"]
    del note["attributedTo"]
    with pytest.raises(InvalidObject, match="no attributedTo"):
        parse_note(note)


def test_note_of_the_wrong_type() -> None:
    with pytest.raises(InvalidObject, match="not a post"):
        parse_note(load("mastodon/actor.json"))


def test_actor_without_inbox() -> None:
    actor = load("mastodon/actor.json")
    del actor["inbox"]
    with pytest.raises(InvalidObject, match="inbox is missing"):
        parse_actor(actor)


def test_actor_of_the_wrong_type() -> None:
    with pytest.raises(InvalidObject, match="not an actor"):
        parse_actor(load("mastodon/create_note_reply.json")["object"])


def test_key_owner_is_not_the_actor() -> None:
    actor = load("mastodon/actor.json")
    actor["publicKey"]["owner"] = "https://mastodon.example/users/bob"
    with pytest.raises(InvalidObject, match="owner is not the actor"):
        parse_actor(actor)


def test_key_id_on_another_host() -> None:
    actor = load("mastodon/actor.json")
    actor["publicKey"]["id"] = "https://evil.example/keys/1"
    with pytest.raises(InvalidObject, match="key id is not on the same host"):
        parse_actor(actor)


def test_key_without_pem() -> None:
    actor = load("mastodon/actor.json")
    del actor["publicKey"]["publicKeyPem"]
    with pytest.raises(InvalidObject, match="no publicKeyPem"):
        parse_actor(actor)


def test_actor_without_key() -> None:
    actor = load("mastodon/actor.json")
    del actor["publicKey"]
    assert parse_actor(actor).key is None


# --- sanitising ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", " JaVaScRiPt:alert(1)", "data:text/html,x", "/relative"]
)
def test_unsafe_href_removed(href: str) -> None:
    cleaned = sanitize_html(f'<a href="{href}" onclick="x()">link</a>')
    assert "href" not in cleaned
    assert "onclick" not in cleaned
    assert cleaned == f'<a {REL} target="_blank">link</a>'


def test_safe_links_get_rel_and_target() -> None:
    cleaned = sanitize_html(
        '<a href="https://a.example/" rel="me" target="_self" class="u-url x">a</a>'
        '<a href="mailto:someone@a.example">m</a>'
    )
    assert cleaned == (
        f'<a href="https://a.example/" class="u-url" {REL} target="_blank">a</a>'
        f'<a href="mailto:someone@a.example" {REL} target="_blank">m</a>'
    )


def test_script_and_style_content_removed() -> None:
    cleaned = sanitize_html(
        "<p>before<script>alert('x')</script><style>p{color:red}</style>"
        "<svg><script>svg()</script><text>hidden</text></svg>after</p>"
    )
    assert cleaned == "<p>beforeafter</p>"


def test_other_markup_stripped_and_classes_filtered() -> None:
    cleaned = sanitize_html(
        '<div onclick="x"><img src="https://a.example/i.png" onerror="x"><!-- hi -->'
        '<span class="invisible bad">https://</span><span class="bad">t</span>'
        "<strong>s</strong><em>e</em><ul><li>l</li></ul><pre><code>1 &lt; 2</code></pre></div>"
    )
    assert "img" not in cleaned
    assert "onerror" not in cleaned
    assert "<!--" not in cleaned
    assert '<span class="invisible">https://</span><span>t</span>' in cleaned
    assert "<strong>s</strong><em>e</em><ul><li>l</li></ul>" in cleaned
    assert "<pre><code>1 &lt; 2</code></pre>" in cleaned


def test_plain_text() -> None:
    assert plain_text("<p>Rock &amp; <b>roll</b></p><p>again\n\n  now</p>") == (
        "Rock & roll again now"
    )
    assert plain_text("a<script>b()</script>c") == "ac"
    assert plain_text("&lt;b&gt;") == "<b>"


def test_oversize_html_is_cut_before_parsing() -> None:
    huge = "<p>" + "a" * (MAX_HTML_CHARS * 5) + "</p>"
    assert len(sanitize_html(huge)) <= MAX_HTML_CHARS + 10
    assert len(plain_text(huge)) <= MAX_HTML_CHARS


def test_oversize_content_is_rejected() -> None:
    note = load("mastodon/create_note_reply.json")["object"]
    note["content"] = "<p>" + "a" * MAX_HTML_CHARS + "</p>"
    with pytest.raises(InvalidObject, match="longer than"):
        parse_note(note)


def test_oversize_names_are_truncated() -> None:
    actor = load("mastodon/actor.json")
    actor["name"] = "N" * 5000
    assert parse_actor(actor).name == "N" * 500
    audio = load("funkwhale/create_audio.json")["object"]
    audio["name"] = "<b>T</b>" * 1000
    assert parse_note(audio).name == "T" * 500


def test_deeply_nested_markup_is_reduced_to_text() -> None:
    cleaned = sanitize_html("<b>" * (MAX_TAGS + 1) + "deep <script>x()</script>&amp; done")
    assert cleaned == "<p>deep &amp; done</p>"
