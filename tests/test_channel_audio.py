"""A playfair artist as a Funkwhale channel: the actor's ``url`` list, the ``Create{Audio}``
per track, the ``Album`` and the ``Audio`` at its id, each held to the rules Funkwhale's
serializers apply (tests/funkwhale_peer.py), and which followers get the uploads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from federation.objects import (
    PUBLIC,
    ActorInfo,
    ReleaseInfo,
    TrackInfo,
    actor_id,
    channel_album,
    channel_album_id,
    create_audio,
    license_url,
    local_actor,
    track_id,
    track_object,
)
from federation.urls import preview_url
from models.catalogue import Artist, Release, Visibility
from models.federation import Delivery, Follow, FollowState, OutboundActivity, RemoteActor
from models.users import Role
from server.services.activitypub.channels import (
    funkwhale_inboxes,
    is_funkwhale_actor,
    send_channel_uploads,
)
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.funkwhale_peer import Invalid, channel_feed, check_album, check_audio, check_upload

BASE = "https://music.example"
ARTIST = f"{BASE}/artists/the-band"
PUBLISHED = datetime(2024, 3, 1, 18, 30, 5, tzinfo=UTC)
PEM = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"


def _track(
    number: int,
    *,
    preview: str | None = "audio/mpeg",
    license: str = "CC-BY-4.0",
    artist: str = "the-band",
) -> TrackInfo:
    return TrackInfo(
        id=100 + number,
        title=f"Track {number}",
        position=number,
        duration_ms=61_500 * number,
        license=license,
        price_model="pay-per-play",
        artist_name=artist,
        preview_type=preview,
        disc=2,
    )


def _release(*tracks: TrackInfo, release: int = 42, artist: str = "the-band") -> ReleaseInfo:
    return ReleaseInfo(
        id=release,
        title="Tide Tables",
        artist_name=artist,
        artist_display_name="The Band",
        label_name=None,
        description="Recorded by the sea.",
        license="CC-BY-4.0",
        published=PUBLISHED,
        updated=None,
        cover_type="image/jpeg",
        tags=(),
        tracks=tracks or tuple(_track(n) for n in (1, 2, 3)),
    )


@pytest.mark.parametrize(
    ("code", "url"),
    [
        ("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/"),
        ("cc-by-nc-sa-4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
        ("CC-BY-ND-3.0", "https://creativecommons.org/licenses/by-nd/3.0/"),
        ("CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
        ("all-rights-reserved", None),
        ("CC-BY-XX-4.0", None),
        ("", None),
    ],
)
def test_licence_codes_become_creative_commons_urls(code: str, url: str | None) -> None:
    assert license_url(code) == url


# --- the actor --------------------------------------------------------------------------------


def _actor(kind: str) -> dict[str, Any]:
    info = ActorInfo(kind, "the-band", "The Band", "Loud.", "Group", PEM)
    return local_actor(BASE, info)


def _mastodon_url(value: Any) -> Any:
    """Mastodon's ``url_to_href(value, 'text/html')``: the first Link whose ``mimeType``
    (Mastodon's key; blank counts as text/html) is text/html."""
    links = [value] if isinstance(value, dict) else value
    if isinstance(links, list) and links and not isinstance(links[0], str):
        found = next(
            (link for link in links if (link.get("mimeType") or "text/html") == "text/html"), None
        )
        return found and found["href"]
    return links[0] if isinstance(links, list) else links


def _first_href(value: Any) -> Any:
    """Misskey's ``getOneApHrefNullable``, Pleroma's ``get_actor_url`` and GoToSocial's
    ``GetURL(...)[0]``: the first entry, a string or a Link's ``href``."""
    first = value[0] if isinstance(value, list) else value
    return first if isinstance(first, str) else first.get("href")


def test_an_artist_is_a_channel_to_funkwhale_and_a_profile_link_to_the_rest() -> None:
    document = _actor("artists")
    assert channel_feed(document) == f"{ARTIST}/feed.rss"
    for read in (_mastodon_url, _first_href):
        assert read(document["url"]) == ARTIST


def test_a_label_is_no_channel() -> None:
    document = _actor("labels")
    assert channel_feed(document) is None  # it sends no uploads, so it offers none
    assert _first_href(document["url"]) == f"{BASE}/labels/the-band"


def test_the_channel_check_refuses_an_actor_without_a_key() -> None:
    document = _actor("artists")
    del document["publicKey"]
    with pytest.raises(Invalid, match="publicKey"):
        channel_feed(document)


# --- the uploads ------------------------------------------------------------------------------


def test_each_track_is_an_upload_funkwhale_files() -> None:
    release = _release()
    for track in release.tracks:
        document = create_audio(BASE, release, track)
        filed = check_upload(document, channel=ARTIST)
        assert document["id"] == f"{track_id(BASE, track.id)}/create"
        assert document["object"]["id"] == track_id(BASE, track.id)
        assert document["to"] == [PUBLIC] and document["cc"] == [f"{ARTIST}/followers"]
        assert filed["source"] == preview_url(BASE, track.id)  # never the stream
        assert filed["mimetype"] == "audio/mpeg"
        assert filed["duration"] == 61 * track.position + track.position // 2
        assert isinstance(document["object"]["duration"], int)
        assert filed["position"] == track.position and filed["disc"] == 2
        assert filed["license"] == "https://creativecommons.org/licenses/by/4.0/"
        assert filed["album"] == channel_album_id(BASE, release.id)
        assert filed["image"] == f"{BASE}/releases/42/cover"
        assert "library" not in document["object"]


def test_the_audio_at_its_id_passes_too() -> None:
    release = _release()
    filed = check_audio(track_object(BASE, release, release.tracks[0]))
    assert filed["id"] == track_id(BASE, release.tracks[0].id)


def test_a_licence_without_url_is_left_out() -> None:
    track = _track(1, license="all-rights-reserved")
    document = create_audio(BASE, _release(track), track)
    assert "license" not in document["object"]
    assert "license" not in check_upload(document, channel=ARTIST)


def _upload() -> dict[str, Any]:
    release = _release()
    return create_audio(BASE, release, release.tracks[0])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["object"].update(duration="PT1M1S"), "duration must be an integer"),
        (lambda d: d["object"].update(license="CC-BY-4.0"), "license is not a valid URL"),
        (lambda d: d["object"].update(library=f"{BASE}/library"), "library upload"),
        (lambda d: d["object"].update(url=d["object"]["url"][:1]), "no Link with an audio"),
        (lambda d: d["object"].update(position=-1), "position must be at least 0"),
        (lambda d: d["object"].update(disc=0), "disc must be at least 1"),
        (lambda d: d.update(actor=f"{BASE}/artists/someone-else"), "not the channel"),
        (lambda d: (d.pop("to"), d.pop("cc")), "no recipient"),
        (lambda d: d.update({"@context": [*d["@context"], {"@protected": True}]}), "@protected"),
    ],
)
def test_funkwhale_would_refuse_these(change: Any, reason: str) -> None:
    document = _upload()
    check_upload(document, channel=ARTIST)
    change(document)
    with pytest.raises(Invalid, match=reason):
        check_upload(document, channel=ARTIST)


def test_a_track_without_preview_is_no_upload() -> None:
    track = _track(1, preview=None)
    with pytest.raises(Invalid, match="no Link with an audio"):
        check_audio(track_object(BASE, _release(track), track))


def test_the_album_is_the_channels() -> None:
    document = channel_album(BASE, _release(), "Group")
    assert document["id"] == channel_album_id(BASE, 42)
    album = check_album(document, channel=ARTIST)
    assert album["name"] == "Tide Tables"
    assert album["cover"] == f"{BASE}/releases/42/cover"
    assert document["artists"] == [{"type": "Group", "id": ARTIST}]
    document["artists"] = [{"type": "Artist", "id": ARTIST}]
    with pytest.raises(Invalid, match="not an actor"):
        check_album(document, channel=ARTIST)


# --- who gets them ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "funkwhale"),
    [
        ("https://tanukitunes.com/federation/actors/dana", True),
        ("http://127.0.0.6:8000/federation/actors/dana", True),
        ("https://mastodon.social/users/dana", False),
        ("https://misskey.io/users/9abc", False),
        ("https://funk.example/federation/actors/", False),
        ("https://funk.example/federation/actors/dana/followers", False),
        ("https://other.example/x/federation/actors/dana", False),
    ],
)
def test_funkwhale_actors_by_their_ids(uri: str, funkwhale: bool) -> None:
    assert is_funkwhale_actor(uri) is funkwhale


async def test_only_accepted_funkwhale_followers_get_the_uploads(app: Quart) -> None:
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    base = resources_of(app).settings.instance.base_url
    async with resources_of(app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == "aurora"))
        assert artist is not None
        release_row = Release(
            artist_id=artist.id,
            title="Tide Tables",
            slug="tide-tables",
            visibility=Visibility.PUBLIC,
            published_at=PUBLISHED,
        )
        session.add(release_row)
        await session.flush()
        tracks = (
            _track(1, artist="aurora"),
            _track(2, preview=None, artist="aurora"),  # not transcoded yet: nothing to play
            _track(3, artist="aurora"),
        )
        release = _release(*tracks, release=release_row.id, artist="aurora")
        assert await send_channel_uploads(session, base, release) == 0  # nobody on Funkwhale
        assert (await session.scalars(select(OutboundActivity))).all() == []

        followers = {
            "https://funk.example/federation/actors/dana": FollowState.ACCEPTED,
            "https://funk.example/federation/actors/eli": FollowState.ACCEPTED,  # same server
            "https://funk2.example/federation/actors/flo": FollowState.PENDING,
            "https://mastodon.example/users/max": FollowState.ACCEPTED,
        }
        for number, (uri, follow_state) in enumerate(followers.items()):
            host = uri.split("/")[2]
            actor = RemoteActor(
                uri=uri,
                domain=host,
                type="Person",
                inbox=f"{uri}/inbox",
                shared_inbox=f"https://{host}/inbox",
            )
            session.add(actor)
            await session.flush()
            session.add(
                Follow(
                    activity_uri=f"https://{host}/follows/{number}",
                    follower_actor_id=actor.id,
                    followed_name="aurora",
                    state=follow_state,
                )
            )
        await session.flush()
        assert await funkwhale_inboxes(session, "aurora") == ["https://funk.example/inbox"]

        assert await send_channel_uploads(session, base, release) == 2
        assert await send_channel_uploads(session, base, release) == 0  # sent once
        await session.commit()
        rows = (await session.scalars(select(OutboundActivity))).all()
        assert sorted(row.uri for row in rows) == [
            f"{track_id(base, 101)}/create",
            f"{track_id(base, 103)}/create",
        ]
        assert all(row.public and row.release_id == release_row.id for row in rows)
        assert all(row.document["actor"] == actor_id(base, "artists", "aurora") for row in rows)
        inboxes = (await session.scalars(select(Delivery.inbox))).all()
        assert sorted(inboxes) == ["https://funk.example/inbox"] * 2


async def test_a_draft_has_no_channel_album_and_no_uploads(app: Quart) -> None:
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    async with resources_of(app).sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == "aurora"))
        assert artist is not None
        draft = Release(artist_id=artist.id, title="Unfinished", slug="unfinished")
        session.add(draft)
        await session.commit()
        assert draft.visibility is Visibility.DRAFT
    client = app.test_client()
    headers = {"Accept": "application/activity+json"}
    for path in (f"/releases/{draft.id}/channel-album", "/releases/999/channel-album",
                 "/tracks/999/audio/create", "/releases/x/channel-album"):  # fmt: skip
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 404, path
