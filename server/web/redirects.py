"""Redirects to a target someone else chose (``?next=`` after log-in, the referrer a form
came from) stay on this site.

Browsers are generous with what they take for another site: ``//evil.example``,
``/\\evil.example`` (a backslash counts as a slash), tabs and newlines inside the URL
(dropped), ``https:evil.example`` (a scheme without slashes), and any of those
percent-encoded once more for a server or proxy that decodes again. A target is kept
only when it is a plain path on this site, whatever the decoding.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MAX_TARGET = 2048
_DECODING_ROUNDS = 3


def _plain_path(text: str) -> bool:
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return False
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return False
    parts = urlsplit(text)
    return not parts.scheme and not parts.netloc


def local_target(target: str | None, base_url: str) -> str | None:
    """``target`` as a path on this site (an absolute URL of ``base_url`` included), or
    None when it is empty, too long, or could lead elsewhere."""
    if not target or len(target) > MAX_TARGET:
        return None
    if base_url and target.startswith(base_url + "/"):
        target = target[len(base_url) :]
    if any(ch.isspace() or not ch.isprintable() for ch in target):
        return None
    text = target
    for _ in range(_DECODING_ROUNDS):
        if not _plain_path(text):
            return None
        decoded = unquote(text)
        if decoded == text:
            return target
        text = decoded
    return None  # encoded more deeply than any honest link is
