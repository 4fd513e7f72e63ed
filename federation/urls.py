"""The one rule for URLs of other servers: what we store as a remote id, and what we fetch.

A remote URL is an absolute ``https`` URL (``http`` too where the caller allows it: the
parsers keep http ids, which only a lab network's guard will then fetch) of at most
:data:`MAX_URL_CHARS` characters, with a host, a valid port, no user-info part, and no
whitespace or control characters. Anything else (``file:``, ``ftp:``, ``javascript:``,
``https:host`` without ``//``, ``https://user@host``, ``https://host:99999``) is refused
before it is resolved, fetched or stored.

The guarded client (:mod:`federation.fetch`) applies this to every hop, input checks apply
it to what people and servers send us, links in remote HTML are kept only when they pass it
(:mod:`federation.sanitize`), the instance's own ``base_url`` is held to it with
``origin_only`` (:mod:`server.runtime.config`), and :func:`origin` is what same-origin rules
compare. Two checks are not this rule on purpose: OAuth redirect URIs (``models.oauth``:
an app's own scheme, http on loopback only) and the local paths a log-in may send the
browser back to (``server.web.redirects``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}

# Control characters and any whitespace (one C-level scan, not a Python loop per character).
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\s]")


class UnacceptableURL(ValueError):
    """Not a URL of another server that we may use; the message says why."""


def checked_url(value: Any, *, allow_http: bool = True, origin_only: bool = False) -> str:
    """``value`` when it is an acceptable remote URL (see the module), else
    :class:`UnacceptableURL`. ``allow_http`` lets plain ``http`` through; ``origin_only``
    also refuses a path (other than ``/``), a query and a fragment."""
    if not isinstance(value, str) or not value:
        raise UnacceptableURL("a URL must be a non-empty string")
    shown = repr(value[:200])
    if len(value) > MAX_URL_CHARS:
        raise UnacceptableURL(f"a URL is at most {MAX_URL_CHARS} characters long")
    if _UNSAFE_CHARS.search(value):
        raise UnacceptableURL(f"{shown} has spaces or control characters in it")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise UnacceptableURL(f"{shown} is not a valid URL") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_http else ("https",)
    if scheme not in allowed:
        needed = "https and http" if allow_http else "https"
        raise UnacceptableURL(f"{shown}: only {needed} URLs are accepted")
    if not value[len(scheme) + 1 :].startswith("//") or not parts.hostname:
        raise UnacceptableURL(f"{shown} has no host")
    if "@" in parts.netloc:
        raise UnacceptableURL(f"{shown} has a user name in it")
    if port == 0 or parts.netloc.endswith(":"):
        raise UnacceptableURL(f"{shown} has no valid port")
    if origin_only and (parts.path not in ("", "/") or parts.query or "#" in value):
        raise UnacceptableURL(f"{shown} must be an origin without a path, query or fragment")
    return value


def is_remote_url(value: Any, *, allow_http: bool = True, origin_only: bool = False) -> bool:
    try:
        checked_url(value, allow_http=allow_http, origin_only=origin_only)
    except UnacceptableURL:
        return False
    return True


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an acceptable remote URL, default ports filled in; else None."""
    if not is_remote_url(url):
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return None
    return scheme, host, parts.port if parts.port is not None else DEFAULT_PORTS[scheme]


FEED_KINDS = ("artists", "labels")
FEED_FORMATS = ("rss", "atom")
PAGE_KINDS = ("artists", "labels", "users", "releases", "tracks")
EMBED_KINDS = ("releases", "tracks")


def feed_url(base_url: str, kind: str | None, name: str | None, fmt: str) -> str:
    """Our RSS or Atom feed of an artist's or a label's releases (``kind`` "artists" or
    "labels"), or with ``kind`` None of the instance's new releases
    (docs/architecture.md#outside-the-fediverse)."""
    if fmt not in FEED_FORMATS:
        raise ValueError(f"a feed is rss or atom, not {fmt!r}")
    if kind is None:
        return f"{base_url}/feed.{fmt}"
    if kind not in FEED_KINDS or not name:
        raise ValueError(f"feeds are of artists and labels, not {kind!r}")
    return f"{base_url}/{kind}/{name}/feed.{fmt}"


def page_url(base_url: str, kind: str, key: str | int) -> str:
    """The human page of an artist, label, listener, release or track: the canonical URL that link
    previews and feeds point at (ActivityPub ids are made in :mod:`federation.objects`)."""
    if kind not in PAGE_KINDS:
        raise ValueError(f"no page of {kind!r}")
    return f"{base_url}/{kind}/{key}"


def embed_url(base_url: str, kind: str, key: int) -> str:
    """The embeddable player of a release or a track (served to be framed anywhere)."""
    if kind not in EMBED_KINDS:
        raise ValueError(f"no embed of {kind!r}")
    return f"{base_url}/embed/{kind}/{key}"


def cover_url(base_url: str, release: int) -> str:
    return f"{page_url(base_url, 'releases', release)}/cover"


def preview_url(base_url: str, track: int) -> str:
    """A track's public preview clip (MP3)."""
    return f"{page_url(base_url, 'tracks', track)}/preview"


def sampler_url(base_url: str, release: int) -> str:
    """A release's sampler: excerpts of its tracks in one MP3, the audio of its post."""
    return f"{page_url(base_url, 'releases', release)}/sampler"


def stream_url(base_url: str, track: int) -> str:
    """A track's whole audio as MP3 without a play session: what anyone may hear of a free
    track (the stream gate refuses it for a stream-to-own track)."""
    return f"{page_url(base_url, 'tracks', track)}/stream?format=mp3"


__all__ = [
    "MAX_URL_CHARS",
    "UnacceptableURL",
    "checked_url",
    "cover_url",
    "embed_url",
    "feed_url",
    "is_remote_url",
    "origin",
    "page_url",
    "preview_url",
    "sampler_url",
    "stream_url",
]
