"""RSS 2.0 (podcast-style) and Atom feeds of new tracks, per artist, per label and for the
instance (docs/architecture.md#outside-the-fediverse).

Each item is a published track with its public preview as the enclosure (its length in
bytes, its type), the release's cover as ``itunes:image`` and a ``guid`` that is the
track's page URL, which never moves. The XML is written with the standard library's
ElementTree (docs/decisions.md says why not feedgen). A feed's ETag is the
digest of its body, so that an edit of a title is seen although no date moved; a
conditional GET is answered 304 by ``If-None-Match`` only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast
from xml.etree import ElementTree

from quart import Blueprint, Response, current_app, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from federation.objects import iso
from federation.urls import cover_url, feed_url, page_url, preview_url
from server.services.feeds import FeedItem, FeedSource, feed_items, feed_source
from server.services.media.ranges import http_date, not_modified
from server.web.current import resources_of

feeds = Blueprint("feeds", __name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
CONTENT_TYPES = {"rss": "application/rss+xml; charset=utf-8",
                 "atom": "application/atom+xml; charset=utf-8"}  # fmt: skip
CACHE = "public, max-age=300"
NOTHING_YET = datetime(1970, 1, 1, tzinfo=UTC)
# What XML 1.0 cannot carry at all (ElementTree would write it and make the feed invalid).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _add(parent: ElementTree.Element, tag: str, text: str | None = None,
         **attributes: str) -> ElementTree.Element:  # fmt: skip
    element = ElementTree.SubElement(parent, tag, {k: _text(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _text(text)
    return element


def _clock(milliseconds: int | None) -> str | None:
    if milliseconds is None:
        return None
    minutes, seconds = divmod(max(milliseconds, 0) // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _item_title(item: FeedItem) -> str:
    return f"{item.title} · {item.release_title}"


def _item_text(item: FeedItem) -> str:
    return item.description or f"From {item.release_title} by {item.artist_display_name}"


def _channel(base_url: str, instance_name: str, source: FeedSource) -> tuple[str, str, str]:
    """The home page, title and summary of a feed."""
    if source.kind is None:
        return f"{base_url}/", instance_name, f"New releases on {instance_name}"
    assert source.name is not None
    summary = source.summary or f"New releases by {source.display_name} on {instance_name}"
    return page_url(base_url, source.kind, source.name), source.display_name, summary


def newest(source: FeedSource, items: Sequence[FeedItem]) -> datetime:
    return items[0].published if items else (source.created or NOTHING_YET)


def build_rss(
    base_url: str, instance_name: str, source: FeedSource, items: Sequence[FeedItem]
) -> bytes:
    """RSS 2.0 with the iTunes podcast tags that podcast apps read."""
    ElementTree.register_namespace("atom", ATOM_NS)
    ElementTree.register_namespace("itunes", ITUNES_NS)
    home, title, summary = _channel(base_url, instance_name, source)
    rss = ElementTree.Element("rss", {"version": "2.0"})
    channel = _add(rss, "channel")
    _add(channel, "title", title)
    _add(channel, "link", home)
    _add(channel, "description", summary)
    _add(channel, "generator", "playfair")
    _add(channel, "lastBuildDate", http_date(newest(source, items)))
    _add(channel, f"{{{ATOM_NS}}}link", href=feed_url(base_url, source.kind, source.name, "rss"),
         rel="self", type="application/rss+xml")  # fmt: skip
    _add(channel, f"{{{ITUNES_NS}}}author", title)
    _add(channel, f"{{{ITUNES_NS}}}summary", summary)
    _add(channel, f"{{{ITUNES_NS}}}explicit", "false")
    if covered := next((item for item in items if item.cover_type), None):
        artwork = cover_url(base_url, covered.release_id)
        _add(channel, f"{{{ITUNES_NS}}}image", href=artwork)
        image = _add(channel, "image")
        _add(image, "url", artwork)
        _add(image, "title", title)
        _add(image, "link", home)
    for item in items:
        page = page_url(base_url, "tracks", item.track_id)
        entry = _add(channel, "item")
        _add(entry, "title", _item_title(item))
        _add(entry, "link", page)
        _add(entry, "description", _item_text(item))
        _add(entry, "guid", page, isPermaLink="false")
        _add(entry, "pubDate", http_date(item.published))
        _add(entry, "enclosure", url=preview_url(base_url, item.track_id),
             length=str(item.preview_bytes), type=item.preview_type)  # fmt: skip
        _add(entry, f"{{{ITUNES_NS}}}author", item.artist_display_name)
        if duration := _clock(item.preview_ms):
            _add(entry, f"{{{ITUNES_NS}}}duration", duration)
        if item.cover_type:
            _add(entry, f"{{{ITUNES_NS}}}image", href=cover_url(base_url, item.release_id))
    return cast(bytes, ElementTree.tostring(rss, encoding="utf-8", xml_declaration=True))


def build_atom(
    base_url: str, instance_name: str, source: FeedSource, items: Sequence[FeedItem]
) -> bytes:
    """Atom (RFC 4287): the same items, the preview as a ``rel="enclosure"`` link."""
    home, title, summary = _channel(base_url, instance_name, source)

    def atom(parent: ElementTree.Element, tag: str, text: str | None = None,
             **attributes: str) -> ElementTree.Element:  # fmt: skip
        return _add(parent, tag, text, **attributes)

    # Atom's namespace as the default one, written on the root: ElementTree's
    # default_namespace option refuses the attributes that have none.
    feed = ElementTree.Element("feed", {"xmlns": ATOM_NS})
    atom(feed, "id", home)
    atom(feed, "title", title)
    atom(feed, "subtitle", summary)
    atom(feed, "updated", iso(newest(source, items)))
    atom(feed, "link", rel="alternate", type="text/html", href=home)
    atom(feed, "link", rel="self", type="application/atom+xml",
         href=feed_url(base_url, source.kind, source.name, "atom"))  # fmt: skip
    atom(atom(feed, "author"), "name", title)
    atom(feed, "generator", "playfair")
    if covered := next((item for item in items if item.cover_type), None):
        atom(feed, "logo", cover_url(base_url, covered.release_id))
    for item in items:
        page = page_url(base_url, "tracks", item.track_id)
        entry = atom(feed, "entry")
        atom(entry, "id", page)
        atom(entry, "title", _item_title(item))
        atom(entry, "updated", iso(item.published))
        atom(entry, "published", iso(item.published))
        atom(atom(entry, "author"), "name", item.artist_display_name)
        atom(entry, "link", rel="alternate", type="text/html", href=page)
        atom(entry, "link", rel="enclosure", type=item.preview_type,
             length=str(item.preview_bytes), href=preview_url(base_url, item.track_id))  # fmt: skip
        atom(entry, "summary", _item_text(item))
    return cast(bytes, ElementTree.tostring(feed, encoding="utf-8", xml_declaration=True))


async def _answer(kind: str | None, name: str | None, fmt: str) -> ResponseReturnValue:
    resources = resources_of(current_app)
    settings = resources.settings.instance
    async with resources.read_sessionmaker() as session:
        if kind is None:
            source = FeedSource(None, None, settings.name, "", None)
        else:
            found = await feed_source(session, kind, name or "")
            if found is None:
                raise NotFound(f"there is no {kind[:-1]} called {name!r} here")
            source = found
        items = await feed_items(session, source)
    build = build_rss if fmt == "rss" else build_atom
    body = build(settings.base_url, settings.name, source, items)
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    changed = newest(source, items)
    headers = {
        "Content-Type": CONTENT_TYPES[fmt],
        "ETag": etag,
        "Last-Modified": http_date(changed),
        "Cache-Control": CACHE,
        "Access-Control-Allow-Origin": "*",
    }
    if not_modified(etag, changed, request.headers.get("If-None-Match"), None):
        return Response(b"", 304, headers)
    return Response(body, 200, headers)


@feeds.get("/feed.<any(rss, atom):fmt>")
async def instance_feed(fmt: str) -> ResponseReturnValue:
    return await _answer(None, None, fmt)


# The same converter as the other routes under an actor (listeners included, who have no
# feed): werkzeug matches segment by segment, and a narrower ``any`` here would be tried
# after the branch where the catch-all of the activities we sent (server/web/sent.py) waits.
@feeds.get("/<any(artists, labels, users):kind>/<name>/feed.<any(rss, atom):fmt>")
async def actor_feed(kind: str, name: str, fmt: str) -> ResponseReturnValue:
    if kind == "users":
        raise NotFound("listeners have no feed")
    return await _answer(kind, name, fmt)
