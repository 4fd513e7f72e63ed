"""ActivityStreams documents for what we publish, as pure builders
(docs/architecture.md#federation).

Actors (artists, labels, listeners), releases (an ordered collection of ``Audio`` tracks),
the ``Note`` that carries a release to Mastodon with playable previews, activities, and
paged ordered collections. Every id is an absolute URL under the instance's base URL.
Text that goes out as HTML is escaped here, so callers pass plain text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from federation.discovery import AS_CONTEXT, SECURITY_CONTEXT, host_of

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PLAYFAIR_NS = "https://playfair.coop/ns#"
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
    "position": "playfair:position",
    "priceModel": "playfair:priceModel",
    "license": {"@id": "playfair:license"},
}
CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, EXTRA_CONTEXT]
MAX_NOTE_PREVIEWS = 4
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
class ActorInfo:
    """A local actor as the builders need it."""

    kind: str  # "artists", "labels", "users": the path segment
    name: str
    display_name: str
    summary: str  # plain text
    as_type: str  # Person, Group, Organization
    public_pem: str
    manually_approves: bool = False
    icon_url: str | None = None
    icon_type: str | None = None
    published: datetime | None = None


def actor_id(base_url: str, kind: str, name: str) -> str:
    return f"{base_url}/{kind}/{name}"


def paragraphs(text: str) -> str:
    """Plain text as escaped HTML paragraphs."""
    blocks = [block.strip() for block in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        "<p>" + html.escape(block).replace("\n", "<br>") + "</p>" for block in blocks if block
    )


def local_actor(base_url: str, actor: ActorInfo) -> dict[str, Any]:
    uri = actor_id(base_url, actor.kind, actor.name)
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": uri,
        "type": actor.as_type,
        "preferredUsername": actor.name,
        "name": actor.display_name,
        "summary": paragraphs(actor.summary),
        "url": uri,
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "followers": f"{uri}/followers",
        "following": f"{uri}/following",
        "endpoints": {"sharedInbox": f"{base_url}/inbox"},
        "manuallyApprovesFollowers": actor.manually_approves,
        "discoverable": actor.kind != "users",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": actor.public_pem},
    }
    if actor.icon_url:
        document["icon"] = {"type": "Image", "mediaType": actor.icon_type, "url": actor.icon_url}
    if actor.published:
        document["published"] = iso(actor.published)
    return document


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


def release_id(base_url: str, release: int) -> str:
    return f"{base_url}/releases/{release}"


def track_id(base_url: str, track: int) -> str:
    return f"{base_url}/tracks/{track}"


def note_id(base_url: str, release: int) -> str:
    return f"{base_url}/releases/{release}/note"


def track_object(base_url: str, release: ReleaseInfo, track: TrackInfo) -> dict[str, Any]:
    uri = track_id(base_url, track.id)
    links: list[dict[str, Any]] = [{"type": "Link", "mediaType": "text/html", "href": uri}]
    document: dict[str, Any] = {
        "id": uri,
        "type": "Audio",
        "name": track.title,
        "duration": iso_duration(track.duration_ms),
        "attributedTo": actor_id(base_url, "artists", track.artist_name),
        "position": track.position,
        "license": track.license,
        "priceModel": track.price_model,
        "partOf": release_id(base_url, release.id),
        "published": iso(release.published),
        "url": links,
    }
    if track.preview_type:
        preview = f"{uri}/preview"
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
        "url": f"{base_url}/releases/{release.id}/cover",
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
        "url": uri,
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


def release_note(base_url: str, release: ReleaseInfo) -> dict[str, Any]:
    """The Note Mastodon shows: the text with the link, preview clips it plays inline,
    and the cover; ``release`` points playfair peers at the full object."""
    uri = release_id(base_url, release.id)
    artist = actor_id(base_url, "artists", release.artist_name)
    text = (
        f"<p>New release by {html.escape(release.artist_display_name)}: "
        f'<a href="{uri}">{html.escape(release.title)}</a></p>' + paragraphs(release.description)
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
    attachments: list[dict[str, Any]] = [
        {
            "type": "Document",
            "mediaType": track.preview_type,
            "url": f"{track_id(base_url, track.id)}/preview",
            "name": track.title,
        }
        for track in release.tracks
        if track.preview_type
    ][:MAX_NOTE_PREVIEWS]
    if cover := _cover(base_url, release):
        attachments.append({**cover, "type": "Document"})
    document: dict[str, Any] = {
        "id": note_id(base_url, release.id),
        "type": "Note",
        "attributedTo": artist,
        "content": text,
        "url": uri,
        "published": iso(release.published),
        "to": [PUBLIC],
        "cc": [f"{artist}/followers"],
        "attachment": attachments,
        "tag": _hashtags(base_url, release.tags),
        "release": uri,
        "sensitive": False,
    }
    if release.updated:
        document["updated"] = iso(release.updated)
    return document


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
