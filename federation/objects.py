"""ActivityStreams documents for what we publish, as pure builders
(docs/architecture.md#federation).

Actors (artists, labels, listeners), releases (an ordered collection of ``Audio`` tracks),
the ``Note`` that carries a release to Mastodon with one playable preview, activities, and
paged ordered collections. Every id is an absolute URL under the instance's base URL.
Text that goes out as HTML is escaped here, so callers pass plain text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from federation.discovery import AS_CONTEXT, SECURITY_CONTEXT, host_of
from federation.urls import cover_url, feed_url, page_url, preview_url, sampler_url

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PLAYFAIR_NS = "https://playfair.coop/ns#"
FUNKWHALE_NS = "https://funkwhale.audio/ns#"
# The terms beyond the ActivityStreams and security contexts that our documents use or
# that peers put in documents like ours, so that JSON-LD processors expand them: the AS
# extensions and Mastodon's terms with Mastodon's own IRIs (app/helpers/context_helper.rb),
# schema.org's PropertyValue for profile fields, and our own under PLAYFAIR_NS. None
# redefines an AS or security term: a track's preview is AS's ``preview``
# (tests/test_jsonld.py checks every document we serve and send against this).
EXTRA_CONTEXT: dict[str, Any] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "movedTo": {"@id": "as:movedTo", "@type": "@id"},
    "toot": "http://joinmastodon.org/ns#",
    "discoverable": "toot:discoverable",
    "indexable": "toot:indexable",
    "blurhash": "toot:blurhash",
    "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "playfair": PLAYFAIR_NS,
    "release": {"@id": "playfair:release", "@type": "@id"},
    "track": {"@id": "playfair:track", "@type": "@id"},
    "position": "playfair:position",
    "priceModel": "playfair:priceModel",
    "license": {"@id": "playfair:license"},
    # Funkwhale's terms for what its channels read of an Audio and its album.
    "fw": FUNKWHALE_NS,
    "album": {"@id": "fw:album", "@type": "@id"},
    "disc": "fw:disc",
    "artists": {"@id": "fw:artists", "@type": "@id", "@container": "@list"},
    "released": "fw:released",
    "cover": {"@id": "fw:cover"},
}
CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, EXTRA_CONTEXT]
MAX_NOTE_TRACK_TITLES = 12  # the track list in a release post's text, then "and N more"
PAGE_SIZE = 20


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_duration(milliseconds: int) -> str:
    seconds = max(milliseconds, 0) // 1000
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return (
        "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + f"{seconds}S"
    )


@dataclass(frozen=True)
class ProfileLink:
    """One of an actor's links: a label and an http(s) URL (checked by the caller)."""

    name: str
    url: str


@dataclass(frozen=True)
class ActorInfo:
    """A local actor as the builders need it."""

    kind: str  # "artists", "labels", "users": the path segment
    name: str
    display_name: str
    summary: str  # plain text
    as_type: str  # Person, Group, Organization
    public_pem: str
    manually_approves: bool = False
    icon_url: str | None = None  # the avatar
    icon_type: str | None = None
    published: datetime | None = None
    image_url: str | None = None  # the header
    image_type: str | None = None
    discoverable: bool | None = None  # None: artists and labels yes, listeners no
    indexable: bool | None = None  # None: as discoverable
    links: tuple[ProfileLink, ...] = ()
    also_known_as: tuple[str, ...] = ()
    moved_to: str | None = None


def actor_id(base_url: str, kind: str, name: str) -> str:
    return f"{base_url}/{kind}/{name}"


def paragraphs(text: str) -> str:
    """Plain text as escaped HTML paragraphs."""
    blocks = [block.strip() for block in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        "<p>" + html.escape(block).replace("\n", "<br>") + "</p>" for block in blocks if block
    )


def actor_links(base_url: str, actor: ActorInfo) -> list[dict[str, Any]]:
    """The actor's ``url``: its page, and for an artist its RSS feed too, which is what makes
    Funkwhale take the actor for a channel (docs/architecture.md#federation)."""
    uri = actor_id(base_url, actor.kind, actor.name)
    links: list[dict[str, Any]] = [{"type": "Link", "mediaType": "text/html", "href": uri}]
    if actor.kind == "artists":
        links.append(
            {
                "type": "Link",
                "mediaType": "application/rss+xml",
                "href": feed_url(base_url, actor.kind, actor.name, "rss"),
            }
        )
    return links


def profile_image_url(base_url: str, kind: str | None, name: str, role: str, version: int) -> str:
    """Where a version of an actor's avatar or header is served (kind None: the instance
    actor's, under /actor). A new version has a new URL, so caches keep each for ever."""
    owner = f"{base_url}/actor" if kind is None else actor_id(base_url, kind, name)
    return f"{owner}/{role}/{version}.jpg"  # the worker makes JPEG only


def link_html(url: str) -> str:
    """A profile link as Mastodon writes a verified-looking field value."""
    shown = url.split("://", 1)[-1].rstrip("/")
    return (
        f'<a href="{html.escape(url)}" rel="me nofollow noopener" target="_blank">'
        f"{html.escape(shown)}</a>"
    )


def profile_fields(links: Sequence[ProfileLink]) -> list[dict[str, Any]]:
    return [
        {"type": "PropertyValue", "name": link.name, "value": link_html(link.url)} for link in links
    ]


def image_object(url: str | None, media_type: str | None) -> dict[str, Any] | None:
    if not url:
        return None
    return {"type": "Image", "mediaType": media_type or "image/jpeg", "url": url}


def local_actor(base_url: str, actor: ActorInfo) -> dict[str, Any]:
    uri = actor_id(base_url, actor.kind, actor.name)
    discoverable = actor.kind != "users" if actor.discoverable is None else actor.discoverable
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": uri,
        "type": actor.as_type,
        "preferredUsername": actor.name,
        "name": actor.display_name,
        "summary": paragraphs(actor.summary),
        "url": actor_links(base_url, actor),
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "followers": f"{uri}/followers",
        "following": f"{uri}/following",
        "endpoints": {"sharedInbox": f"{base_url}/inbox"},
        "manuallyApprovesFollowers": actor.manually_approves,
        "discoverable": discoverable,
        "indexable": discoverable if actor.indexable is None else actor.indexable,
        "attachment": profile_fields(actor.links),
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": actor.public_pem},
    }
    if icon := image_object(actor.icon_url, actor.icon_type):
        document["icon"] = icon
    if image := image_object(actor.image_url, actor.image_type):
        document["image"] = image
    if actor.published:
        document["published"] = iso(actor.published)
    if actor.also_known_as:
        document["alsoKnownAs"] = list(actor.also_known_as)
    if actor.moved_to:
        document["movedTo"] = actor.moved_to
    return document


def update_actor(base_url: str, actor: ActorInfo, when: datetime) -> dict[str, Any]:
    """The Update that tells followers' servers an actor's profile changed (its new
    avatar, links …), with the whole actor document embedded, as Mastodon sends it."""
    document = local_actor(base_url, actor)
    context = document.pop("@context")
    uri = document["id"]
    update = activity(
        f"{uri}/updates/{round(when.timestamp() * 1000)}",
        "Update",
        uri,
        document,
        to=[PUBLIC],
        cc=[document["followers"]],
        published=when,
    )
    update["@context"] = context
    return update


def move_actor(base_url: str, kind: str, name: str, target: str, when: datetime) -> dict[str, Any]:
    """The Move an actor sends its followers when it has moved to ``target`` (which
    lists it in ``alsoKnownAs``): Mastodon then has them follow the target."""
    uri = actor_id(base_url, kind, name)
    return activity(
        f"{uri}/moves/{round(when.timestamp())}",
        "Move",
        uri,
        uri,
        to=[f"{uri}/followers"],
        published=when,
    ) | {"target": target}


@dataclass(frozen=True)
class TrackInfo:
    id: int
    title: str
    position: int
    duration_ms: int
    license: str
    price_model: str
    artist_name: str
    preview_type: str | None  # None: no preview made (yet)
    disc: int = 1
    preview_duration_ms: int | None = None


@dataclass(frozen=True)
class SamplerInfo:
    """A release's sampler (excerpts of its first tracks in one MP3), once it is made."""

    tracks: int  # how many tracks it has excerpts of
    duration_ms: int | None


@dataclass(frozen=True)
class ReleaseInfo:
    id: int
    title: str
    artist_name: str
    artist_display_name: str
    label_name: str | None
    description: str  # plain text
    license: str
    published: datetime
    updated: datetime | None
    cover_type: str | None  # None: no cover
    tags: tuple[str, ...]
    tracks: tuple[TrackInfo, ...]
    sampler: SamplerInfo | None = None
    cover_blurhash: str | None = None


def release_page_url(base_url: str, release: int) -> str:
    """The release's page: the URL people share. An ActivityPub request for it gets the
    release's Note (docs/architecture.md#federation)."""
    return page_url(base_url, "releases", release)


def track_page_url(base_url: str, track: int) -> str:
    """The track's page (and the track's name in Listens and statements); an ActivityPub
    request for it gets the track's Note."""
    return page_url(base_url, "tracks", track)


def release_id(base_url: str, release: int) -> str:
    """The id of the album object (an OrderedCollection of Audio) playfair peers read."""
    return f"{release_page_url(base_url, release)}/album"


def track_id(base_url: str, track: int) -> str:
    """The id of the track's Audio object."""
    return f"{track_page_url(base_url, track)}/audio"


def note_id(base_url: str, release: int) -> str:
    return f"{release_page_url(base_url, release)}/note"


def track_note_id(base_url: str, track: int) -> str:
    return f"{track_page_url(base_url, track)}/note"


def channel_album_id(base_url: str, release: int) -> str:
    """The release as the ``Album`` a Funkwhale channel files uploads under."""
    return f"{base_url}/releases/{release}/channel-album"


def channel_audio_create_id(base_url: str, track: int) -> str:
    return f"{track_id(base_url, track)}/create"


_CC_CODE = re.compile(r"CC-(BY(?:-NC)?(?:-SA|-ND)?)-(\d\.\d)", re.IGNORECASE)
_CC_ZERO = re.compile(r"CC0-(\d\.\d)", re.IGNORECASE)


def license_url(code: str) -> str | None:
    """A Creative Commons licence code (SPDX spelling: ``CC-BY-SA-4.0``, ``CC0-1.0``) as
    the licence's URL; None for any other code (``all-rights-reserved``)."""
    if match := _CC_CODE.fullmatch(code.strip()):
        return f"https://creativecommons.org/licenses/{match[1].lower()}/{match[2]}/"
    if match := _CC_ZERO.fullmatch(code.strip()):
        return f"https://creativecommons.org/publicdomain/zero/{match[1]}/"
    return None


def track_object(base_url: str, release: ReleaseInfo, track: TrackInfo) -> dict[str, Any]:
    """A track as an ``Audio``, in the shape Funkwhale's channel uploads take too: the
    duration in whole seconds, the licence as a URL (left out when it has none), the album
    by its id, the preview as the one audio link (docs/architecture.md#federation)."""
    uri = track_id(base_url, track.id)
    page = track_page_url(base_url, track.id)
    links: list[dict[str, Any]] = [{"type": "Link", "mediaType": "text/html", "href": page}]
    document: dict[str, Any] = {
        "id": uri,
        "type": "Audio",
        "name": track.title,
        "duration": max(track.duration_ms, 0) // 1000,
        "attributedTo": actor_id(base_url, "artists", track.artist_name),
        "position": track.position,
        "disc": max(track.disc, 1),
        "priceModel": track.price_model,
        "partOf": release_id(base_url, release.id),
        "album": channel_album_id(base_url, release.id),
        "published": iso(release.published),
        "url": links,
    }
    if licence := license_url(track.license):
        document["license"] = licence
    if cover := _cover(base_url, release):
        document["image"] = cover  # the track's artwork in Funkwhale
    if track.preview_type:
        preview = preview_url(base_url, track.id)
        document["preview"] = preview
        links.append(
            {"type": "Link", "rel": "preview", "mediaType": track.preview_type, "href": preview}
        )
    return document


def _cover(base_url: str, release: ReleaseInfo) -> dict[str, Any] | None:
    if not release.cover_type:
        return None
    return {
        "type": "Image",
        "mediaType": release.cover_type,
        "url": cover_url(base_url, release.id),
        "name": f"Cover of {release.title}",
    }


def release_object(base_url: str, release: ReleaseInfo) -> dict[str, Any]:
    uri = release_id(base_url, release.id)
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": uri,
        "type": "OrderedCollection",
        "name": release.title,
        "attributedTo": actor_id(base_url, "artists", release.artist_name),
        "content": paragraphs(release.description),
        "license": release.license,
        "published": iso(release.published),
        "url": release_page_url(base_url, release.id),
        "totalItems": len(release.tracks),
        "orderedItems": [track_object(base_url, release, track) for track in release.tracks],
        "tag": _hashtags(base_url, release.tags),
    }
    if release.updated:
        document["updated"] = iso(release.updated)
    if cover := _cover(base_url, release):
        document["image"] = cover
    return document


def tag_url(base_url: str, tag: str) -> str:
    return f"{base_url}/tags/{quote(tag, safe='')}"


def _hashtags(base_url: str, tags: Sequence[str]) -> list[dict[str, Any]]:
    return [{"type": "Hashtag", "name": f"#{tag}", "href": tag_url(base_url, tag)} for tag in tags]


def release_preview(base_url: str, release: ReleaseInfo) -> dict[str, Any] | None:
    """The one audio ``Document`` of a release post: the release's sampler, else (a single,
    or a sampler that could not be made) the first track's preview; None before any
    preview exists. The cover is its ``icon`` (Mastodon's poster), never an attachment of
    its own: Mastodon draws its player only for exactly one attachment that is audio."""
    previewed = [track for track in release.tracks if track.preview_type]
    if not previewed:
        return None
    by = release.artist_display_name
    first = previewed[0]
    if release.sampler is not None:
        url, media_type = sampler_url(base_url, release.id), "audio/mpeg"
        duration = release.sampler.duration_ms
        name = f"Preview of «{release.title}» by {by}: excerpts of {release.sampler.tracks} tracks"
    else:
        url, media_type = preview_url(base_url, first.id), str(first.preview_type)
        duration = first.preview_duration_ms
        name = f"Preview of «{first.title}» by {by}"
        if len(release.tracks) > 1 or first.title != release.title:
            name = f"Preview of «{first.title}» from «{release.title}» by {by}"
    document: dict[str, Any] = {
        "type": "Document",
        "mediaType": media_type,
        "url": url,
        "name": name,
    }
    if duration:
        document["duration"] = iso_duration(duration)
    if release.cover_type:
        document["icon"] = {
            "type": "Image",
            "mediaType": release.cover_type,
            "url": cover_url(base_url, release.id),
        }
        if release.cover_blurhash:
            document["blurhash"] = release.cover_blurhash
    return document


def _track_list(release: ReleaseInfo) -> str:
    """The titles of a release of several tracks, numbered, as one paragraph."""
    if len(release.tracks) < 2:
        return ""
    shown = release.tracks[:MAX_NOTE_TRACK_TITLES]
    lines = [f"{number}. {html.escape(track.title)}" for number, track in enumerate(shown, 1)]
    if len(release.tracks) > len(shown):
        lines.append(f"… and {len(release.tracks) - len(shown)} more")
    return "<p>" + "<br>".join(lines) + "</p>"


def release_note(base_url: str, release: ReleaseInfo) -> dict[str, Any]:
    """The Note Mastodon shows: the text with the link and the track list, one playable
    preview with the cover as its poster (:func:`release_preview`); ``release`` points
    playfair peers at the full object, whose tracks keep their own previews."""
    uri = release_page_url(base_url, release.id)
    artist = actor_id(base_url, "artists", release.artist_name)
    text = (
        f"<p>New release by {html.escape(release.artist_display_name)}: "
        f'<a href="{uri}">{html.escape(release.title)}</a></p>'
        + paragraphs(release.description)
        + _track_list(release)
    )
    if release.tags:
        text += (
            "<p>"
            + " ".join(
                f'<a href="{html.escape(tag_url(base_url, tag))}" '
                'class="mention hashtag" rel="tag">'
                f"#<span>{html.escape(tag)}</span></a>"
                for tag in release.tags
            )
            + "</p>"
        )
    preview = release_preview(base_url, release)
    document: dict[str, Any] = {
        "id": note_id(base_url, release.id),
        "type": "Note",
        "attributedTo": artist,
        "content": text,
        "url": uri,
        "published": iso(release.published),
        "to": [PUBLIC],
        "cc": [f"{artist}/followers"],
        "attachment": [preview] if preview else [],
        "tag": _hashtags(base_url, release.tags),
        "release": release_id(base_url, release.id),
        "sensitive": False,
    }
    if release.updated:
        document["updated"] = iso(release.updated)
    return document


def channel_album(base_url: str, release: ReleaseInfo, artist_type: str) -> dict[str, Any]:
    """The release as Funkwhale's ``Album``: the artist is the channel's actor (its type,
    ``artist_type``, tells Funkwhale it is an actor and not one of its ``Artist`` objects)."""
    artist = actor_id(base_url, "artists", release.artist_name)
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": channel_album_id(base_url, release.id),
        "type": "Album",
        "name": release.title,
        "attributedTo": artist,
        "published": iso(release.published),
        "released": release.published.astimezone(UTC).date().isoformat(),
        "artists": [{"type": artist_type, "id": artist}],
        "url": [
            {
                "type": "Link",
                "mediaType": "text/html",
                "href": release_page_url(base_url, release.id),
            }
        ],
    }
    if release.description:
        document["content"] = paragraphs(release.description)
        document["mediaType"] = "text/html"
    if cover := _cover(base_url, release):
        document["image"] = cover
        # what Funkwhale's AlbumSerializer reads for the artwork
        document["cover"] = {"type": "Link", "href": cover["url"], "mediaType": cover["mediaType"]}
    return document


def create_audio(base_url: str, release: ReleaseInfo, track: TrackInfo) -> dict[str, Any]:
    """One track of a release as Funkwhale's channels take an upload: ``Create{Audio}`` by
    the artist to its followers, the ``Audio`` embedded (no ``library``: that is what marks
    a channel upload), its one audio link the public preview."""
    audio = track_object(base_url, release, track)
    artist = audio["attributedTo"]
    audio["to"] = [PUBLIC]
    audio["cc"] = [f"{artist}/followers"]
    return activity(
        channel_audio_create_id(base_url, track.id),
        "Create",
        artist,
        audio,
        to=audio["to"],
        cc=audio["cc"],
        published=release.published,
    )


def track_note(base_url: str, release: ReleaseInfo, track: TrackInfo) -> dict[str, Any]:
    """The Note a pasted track URL resolves to on Mastodon: a line of text linking the
    track's and the release's pages, one audio attachment (the preview, with the cover as
    its ``icon``, which Mastodon's player shows), and ``track`` and ``release`` pointing
    playfair peers at the Audio and album objects."""
    artist = actor_id(base_url, "artists", track.artist_name)
    page = track_page_url(base_url, track.id)
    text = (
        f'<p><a href="{page}">{html.escape(track.title)}</a> by '
        f"{html.escape(release.artist_display_name)}, from "
        f'<a href="{release_page_url(base_url, release.id)}">{html.escape(release.title)}</a>'
        "</p>"
    )
    attachments: list[dict[str, Any]] = []
    if track.preview_type:
        preview: dict[str, Any] = {
            "type": "Document",
            "mediaType": track.preview_type,
            "url": preview_url(base_url, track.id),
            "name": f"Preview of {track.title}",
        }
        if cover := _cover(base_url, release):
            preview["icon"] = {k: v for k, v in cover.items() if k != "name"}
        attachments.append(preview)
    return {
        "id": track_note_id(base_url, track.id),
        "type": "Note",
        "attributedTo": artist,
        "content": text,
        "url": page,
        "published": iso(release.published),
        "to": [PUBLIC],
        "cc": [f"{artist}/followers"],
        "attachment": attachments,
        "tag": _hashtags(base_url, release.tags),
        "track": track_id(base_url, track.id),
        "release": release_id(base_url, release.id),
        "sensitive": False,
    }


def activity(
    uri: str,
    type_: str,
    actor: str,
    object_: Any,
    *,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    published: datetime | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": uri,
        "type": type_,
        "actor": actor,
        "object": object_,
    }
    if to:
        document["to"] = list(to)
    if cc:
        document["cc"] = list(cc)
    if published:
        document["published"] = iso(published)
    return document


def create_release(base_url: str, release: ReleaseInfo) -> dict[str, Any]:
    note = release_note(base_url, release)
    return activity(
        f"{note['id']}/create",
        "Create",
        note["attributedTo"],
        note,
        to=note["to"],
        cc=note["cc"],
        published=release.published,
    )


def update_release(base_url: str, release: ReleaseInfo, version: datetime) -> dict[str, Any]:
    note = release_note(base_url, release)
    note["updated"] = iso(version)
    return activity(
        f"{note['id']}/update/{round(version.timestamp() * 1_000_000)}",
        "Update",
        note["attributedTo"],
        note,
        to=note["to"],
        cc=note["cc"],
        published=version,
    )


def delete_release(base_url: str, release: int, artist_name: str, when: datetime) -> dict[str, Any]:
    artist = actor_id(base_url, "artists", artist_name)
    uri = note_id(base_url, release)
    tombstone = {"id": uri, "type": "Tombstone", "formerType": "Note", "deleted": iso(when)}
    return activity(
        f"{uri}/delete", "Delete", artist, tombstone, to=[PUBLIC], cc=[f"{artist}/followers"]
    )


def announce_release(
    base_url: str, label_name: str, release: int, artist_name: str, published: datetime
) -> dict[str, Any]:
    label = actor_id(base_url, "labels", label_name)
    return activity(
        f"{label}/announces/{release}",
        "Announce",
        label,
        note_id(base_url, release),
        to=[PUBLIC],
        cc=[f"{label}/followers", actor_id(base_url, "artists", artist_name)],
        published=published,
    )


def ordered_collection(uri: str, total: int) -> dict[str, Any]:
    """The collection itself: its size and a link to the first page."""
    return {
        "@context": CONTEXT,
        "id": uri,
        "type": "OrderedCollection",
        "totalItems": total,
        "first": f"{uri}?page=1",
        "last": f"{uri}?page={max(1, -(-total // PAGE_SIZE))}",
    }


def collection_page(uri: str, page: int, total: int, items: Sequence[Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": f"{uri}?page={page}",
        "type": "OrderedCollectionPage",
        "partOf": uri,
        "totalItems": total,
        "orderedItems": list(items),
    }
    if page * PAGE_SIZE < total:
        document["next"] = f"{uri}?page={page + 1}"
    if page > 1:
        document["prev"] = f"{uri}?page={page - 1}"
    return document


def handle_of(base_url: str, name: str) -> str:
    return f"@{name}@{host_of(base_url)}"
