"""The release post as it goes out (golden documents of the Note and its Create), and as
Mastodon's web interface shows it: its rules applied here as its own code applies them.

Mastodon (read in glitch-soc, which merges it):

* ``app/lib/activitypub/activity/create.rb`` ``process_attachments``: an attachment with
  an ``href`` is a link (a preview card), not media; one without a URL is skipped; at most
  ``Status::MEDIA_ATTACHMENTS_LIMIT`` (4) are kept, in order; a media type Mastodon does
  not support is kept but never downloaded, so its type stays ``unknown``;
* ``app/lib/activitypub/parser/media_attachment_parser.rb``: ``url`` (a string, or the
  first link's ``href``), ``icon`` as the thumbnail, ``summary`` else ``name`` as the
  description, ``mediaType`` else the link's, ``blurhash`` only with at most 5 components
  a side;
* ``app/models/media_attachment.rb``: the type is ``video``, ``audio`` or ``image`` by the
  file's content type (``AUDIO_MIME_TYPES`` …);
* ``app/serializers/rest/media_attachment_serializer.rb``: ``preview_url`` is the
  thumbnail;
* ``app/javascript/mastodon/components/status.jsx``: a gallery (``MediaGallery``, no
  player) if the first attachment is an image, gifv or unknown or there are several;
  else for ``audio`` the ``Audio`` player with ``poster`` = the attachment's
  ``preview_url`` or else the author's avatar.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image

from federation.objects import (
    CONTEXT,
    ReleaseInfo,
    SamplerInfo,
    TrackInfo,
    create_release,
    release_note,
)
from federation.parse import parse_note
from server.services.media.images import blurhash_of, clean_image

BASE = "https://music.example"
PUBLISHED = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
BLURHASH = "UEHV6nWB2yk8pyo0adR*.7kCMdnjS#M|%1%2"
AVATAR = "https://mastodon.example/avatars/original/missing.png"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
FOLLOWERS = f"{BASE}/artists/aurora/followers"
TITLES = ("Tide", "Undertow", "Kelp & <Weed>", "Lantern", "Swell")


def _track(track_id: int, title: str, position: int, preview: bool = True) -> TrackInfo:
    return TrackInfo(
        track_id, title, position, 201_000, "CC-BY-4.0", "stream2own", "aurora",
        "audio/mpeg" if preview else None, preview_duration_ms=45_000 if preview else None,
    )  # fmt: skip


def _release(
    release_id: int,
    title: str,
    tracks: tuple[TrackInfo, ...],
    *,
    cover: bool,
    sampler: SamplerInfo | None = None,
    blurhash: str | None = BLURHASH,
) -> ReleaseInfo:
    return ReleaseInfo(
        release_id, title, "aurora", "Aurora", None, "Recorded by the sea.", "CC-BY-4.0",
        PUBLISHED, None, "image/jpeg" if cover else None, ("ambient",), tracks, sampler,
        blurhash if cover else None,
    )  # fmt: skip


def single() -> ReleaseInfo:
    return _release(7, "Lighthouse", (_track(70, "Lighthouse", 1),), cover=True)


def album() -> ReleaseInfo:
    tracks = tuple(_track(80 + n, title, n) for n, title in enumerate(TITLES, 1))
    return _release(8, "Shoreline", tracks, cover=True, sampler=SamplerInfo(5, 59_870))


def without_cover() -> ReleaseInfo:
    tracks = tuple(_track(90 + n, title, n) for n, title in enumerate(TITLES[:3], 1))
    return _release(9, "Fog", tracks, cover=False, sampler=SamplerInfo(3, 52_000))


def _hashtag_paragraph() -> str:
    return (
        f'<p><a href="{BASE}/tags/ambient" class="mention hashtag" rel="tag">'
        "#<span>ambient</span></a></p>"
    )


def _note(release_id: int, title: str, content_tail: str, attachment: list[Any]) -> Any:
    return {
        "id": f"{BASE}/releases/{release_id}/note",
        "type": "Note",
        "attributedTo": f"{BASE}/artists/aurora",
        "content": (
            f'<p>New release by Aurora: <a href="{BASE}/releases/{release_id}">{title}</a></p>'
            "<p>Recorded by the sea.</p>" + content_tail + _hashtag_paragraph()
        ),
        "url": f"{BASE}/releases/{release_id}",
        "published": "2026-12-01T18:00:00Z",
        "to": [PUBLIC],
        "cc": [FOLLOWERS],
        "attachment": attachment,
        "tag": [{"type": "Hashtag", "name": "#ambient", "href": f"{BASE}/tags/ambient"}],
        "release": f"{BASE}/releases/{release_id}/album",
        "sensitive": False,
    }


GOLDEN_NOTES: dict[str, Any] = {
    "single": _note(7, "Lighthouse", "", [
        {
            "type": "Document",
            "mediaType": "audio/mpeg",
            "url": f"{BASE}/tracks/70/preview",
            "name": "Preview of «Lighthouse» by Aurora",
            "duration": "PT45S",
            "icon": {"type": "Image", "mediaType": "image/jpeg", "url": f"{BASE}/releases/7/cover"},
            "blurhash": BLURHASH,
        }
    ]),
    "album": _note(
        8, "Shoreline",
        "<p>1. Tide<br>2. Undertow<br>3. Kelp &amp; &lt;Weed&gt;<br>4. Lantern<br>5. Swell</p>",
        [
            {
                "type": "Document",
                "mediaType": "audio/mpeg",
                "url": f"{BASE}/releases/8/sampler",
                "name": "Preview of «Shoreline» by Aurora: excerpts of 5 tracks",
                "duration": "PT59S",
                "icon": {
                    "type": "Image", "mediaType": "image/jpeg", "url": f"{BASE}/releases/8/cover",
                },
                "blurhash": BLURHASH,
            }
        ],
    ),
    "without_cover": _note(
        9, "Fog", "<p>1. Tide<br>2. Undertow<br>3. Kelp &amp; &lt;Weed&gt;</p>",
        [
            {
                "type": "Document",
                "mediaType": "audio/mpeg",
                "url": f"{BASE}/releases/9/sampler",
                "name": "Preview of «Fog» by Aurora: excerpts of 3 tracks",
                "duration": "PT52S",
            }
        ],
    ),
}  # fmt: skip
RELEASES = {"single": single, "album": album, "without_cover": without_cover}


@pytest.mark.parametrize("case", sorted(RELEASES))
def test_the_note_is_the_golden_one(case: str) -> None:
    note = release_note(BASE, RELEASES[case]())
    assert note == GOLDEN_NOTES[case]
    json.dumps(note)  # plain JSON all through


@pytest.mark.parametrize("case", sorted(RELEASES))
def test_the_create_is_the_golden_one(case: str) -> None:
    release = RELEASES[case]()
    assert create_release(BASE, release) == {
        "@context": CONTEXT,
        "id": f"{BASE}/releases/{release.id}/note/create",
        "type": "Create",
        "actor": f"{BASE}/artists/aurora",
        "object": GOLDEN_NOTES[case],
        "to": [PUBLIC],
        "cc": [FOLLOWERS],
        "published": "2026-12-01T18:00:00Z",
    }


def test_the_context_defines_blurhash_as_mastodon_does() -> None:
    extra = next(part for part in CONTEXT if isinstance(part, dict))
    assert extra["toot"] == "http://joinmastodon.org/ns#"
    assert extra["blurhash"] == "toot:blurhash"


def test_a_release_with_no_preview_yet_has_no_attachment() -> None:
    tracks = (_track(1, "Tide", 1, preview=False), _track(2, "Undertow", 2, preview=False))
    note = release_note(BASE, _release(3, "Early", tracks, cover=True))
    assert note["attachment"] == []


# --- Mastodon's rules --------------------------------------------------------------------

# app/models/media_attachment.rb
IMAGE_MIME_TYPES = {"image/jpeg", "image/png", "image/gif", "image/heic", "image/heif",
                    "image/webp", "image/avif"}  # fmt: skip
VIDEO_MIME_TYPES = {"video/webm", "video/mp4", "video/quicktime", "video/ogg"}
AUDIO_MIME_TYPES = {"audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave",
                    "audio/vnd.wave", "audio/ogg", "audio/vorbis", "audio/mpeg", "audio/mp3",
                    "audio/webm", "audio/flac", "audio/aac", "audio/m4a", "audio/x-m4a",
                    "audio/mp4", "audio/3gpp", "video/x-ms-asf"}  # fmt: skip
MEDIA_ATTACHMENTS_LIMIT = 4  # app/models/status.rb
BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
BLURHASH_CHARS = re.compile(r"^[\w#$%*+,\-.:;=?@\[\]^{|}~]+$")


@dataclass(frozen=True)
class Kept:
    """A MediaAttachment row as Mastodon makes it of a remote attachment."""

    type: str
    remote_url: str
    preview_url: str | None
    description: str | None
    blurhash: str | None


@dataclass(frozen=True)
class Drawn:
    kind: str  # "none", "gallery", "audio", "video"
    poster: str | None = None
    blurhash: str | None = None
    description: str | None = None


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _url_to_href(value: Any) -> str | None:
    first = _as_list(value)[0] if _as_list(value) else None
    if isinstance(first, dict):
        return first.get("href")
    return first if isinstance(first, str) else None


def _blurhash_components(value: str) -> tuple[int, int]:
    size_flag = BASE83.index(value[0])
    return size_flag % 9 + 1, size_flag // 9 + 1


def mastodon_keeps(note: dict[str, Any]) -> list[Kept]:
    """create.rb ``process_attachments`` with media_attachment_parser.rb."""
    kept: list[Kept] = []
    for attachment in _as_list(note.get("attachment")):
        if attachment.get("href"):
            continue  # a link: a preview card
        remote_url = _url_to_href(attachment.get("url"))
        if not remote_url or len(kept) >= MEDIA_ATTACHMENTS_LIMIT:
            continue
        links = _as_list(attachment.get("url"))
        link_type = links[0].get("mediaType") if isinstance(links[0], dict) else None
        content_type = attachment.get("mediaType") or link_type
        icon = attachment.get("icon")
        thumbnail = icon.get("url") if isinstance(icon, dict) else icon
        description = attachment.get("summary") or attachment.get("name")
        blurhash = attachment.get("blurhash")
        if not (
            isinstance(blurhash, str)
            and BLURHASH_CHARS.match(blurhash)
            and max(_blurhash_components(blurhash)) <= 5
        ):
            blurhash = None
        if content_type not in IMAGE_MIME_TYPES | VIDEO_MIME_TYPES | AUDIO_MIME_TYPES:
            kind = "unknown"  # never downloaded: a link tile
        elif content_type in VIDEO_MIME_TYPES:
            kind = "video"
        elif content_type in AUDIO_MIME_TYPES:
            kind = "audio"
        else:
            kind = "image"
        kept.append(Kept(kind, remote_url, thumbnail, description, blurhash))
    return kept


def mastodon_draws(note: dict[str, Any], avatar: str = AVATAR) -> Drawn:
    """status.jsx: what the web interface draws for the status."""
    media = mastodon_keeps(note)
    if not media:
        return Drawn("none")
    first = media[0]
    if first.type in ("image", "gifv", "unknown") or len(media) > 1:
        return Drawn("gallery")
    if first.type == "audio":
        return Drawn("audio", first.preview_url or avatar, first.blurhash, first.description)
    return Drawn("video")


def _real_blurhash() -> str:
    picture = io.BytesIO()
    Image.new("RGB", (300, 300), (40, 90, 160)).save(picture, "PNG")
    return blurhash_of(clean_image(picture.getvalue()).data)


@pytest.mark.parametrize("case", sorted(RELEASES))
def test_mastodon_draws_its_player_with_a_poster(case: str) -> None:
    release = RELEASES[case]()
    if release.cover_type:
        release = _release(
            release.id, release.title, release.tracks, cover=True,
            sampler=release.sampler, blurhash=_real_blurhash(),
        )  # fmt: skip
    drawn = mastodon_draws(create_release(BASE, release)["object"])
    assert drawn.kind == "audio"
    assert drawn.description and release.title in drawn.description
    if release.cover_type:
        assert drawn.poster == f"{BASE}/releases/{release.id}/cover"
        assert drawn.blurhash == release.cover_blurhash
    else:
        assert drawn.poster == AVATAR  # Mastodon's own fall-back: the artist's avatar
        assert drawn.blurhash is None


def test_the_old_note_got_no_player() -> None:
    """The rule applied to what we sent before issue 14 (four previews and the cover):
    a gallery, so the rule above can tell the two apart."""
    old = {
        "attachment": [
            *(
                {"type": "Document", "mediaType": "audio/mpeg", "url": f"{BASE}/tracks/{n}/preview"}
                for n in range(1, 5)
            ),
            {"type": "Document", "mediaType": "image/jpeg", "url": f"{BASE}/releases/1/cover"},
        ]
    }
    assert mastodon_draws(old).kind == "gallery"
    assert len(mastodon_keeps(old)) == 4  # the cover is dropped
    opus = {"attachment": [{"type": "Document", "mediaType": "audio/opus", "url": "x:/a"}]}
    assert mastodon_draws(opus).kind == "gallery"  # not a type Mastodon takes: a link tile


def test_a_playfair_peer_reads_the_preview_and_its_cover() -> None:
    """Our own parser (what a playfair peer keeps of the post for its listeners' feed)
    finds the one preview and, from its ``icon``, the cover."""
    parsed = parse_note(release_note(BASE, album()))
    assert [(a.kind, a.url, a.media_type) for a in parsed.attachments] == [
        ("audio", f"{BASE}/releases/8/sampler", "audio/mpeg"),
        ("image", f"{BASE}/releases/8/cover", "image/jpeg"),
    ]
    bare = parse_note(release_note(BASE, without_cover()))
    assert [a.kind for a in bare.attachments] == ["audio"]
    # an icon is read only as the poster of audio or video
    note = release_note(BASE, without_cover())
    note["attachment"] = [
        {"type": "Document", "mediaType": "image/png", "url": f"{BASE}/a.png",
         "icon": {"type": "Image", "url": f"{BASE}/b.png"}},
    ]  # fmt: skip
    assert [a.url for a in parse_note(note).attachments] == [f"{BASE}/a.png"]
