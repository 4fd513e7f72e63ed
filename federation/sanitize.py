"""Sanitising HTML that comes from other servers (docs/architecture.md#federation: remote
HTML is sanitised with bleach before it is stored or shown).

``sanitize_html`` keeps what Mastodon keeps in a post: ``p br a span strong b em i ul ol li
blockquote code pre``.

* ``a`` keeps ``href`` only when it is an absolute ``http``, ``https`` or ``mailto`` URL
  (relative links would point into our own site, ``javascript:`` and ``data:`` are never
  kept) and always gets ``rel="nofollow noopener noreferrer" target="_blank"``.
* ``span`` and ``a`` keep ``class``, but only Mastodon's microformat classes
  (:data:`KEPT_CLASSES`: ``h-card u-url mention hashtag invisible ellipsis``), so that our
  stylesheet can hide the ``invisible`` parts of shortened links and style mentions; any
  other class is dropped, and ``class`` goes away when nothing is left.
* Every other tag is stripped with its text kept, except the elements in
  :data:`DROPPED_WITH_CONTENT` (``script``, ``style``, ``svg``, …) whose content goes too:
  a ``<script>`` never turns into visible text.
* Comments are removed; attributes not listed above are removed.

``plain_text`` turns HTML into one line of text for names and titles.

Both functions cut their input at :data:`MAX_HTML_CHARS` characters *before* parsing, so a
huge document costs a bounded amount of work (callers that must not lose text, such as the
activity parser, reject oversize HTML instead of letting it be cut here). A fragment with
more than :data:`MAX_TAGS` tags is reduced to its escaped text in one ``<p>``, because
html5lib's work grows with the square of the nesting depth.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import bleach
from bleach.html5lib_shim import Filter

from federation import urls

MAX_HTML_CHARS = 100_000
# html5lib rebuilds its list of open formatting elements at every tag, which is quadratic
# in the nesting depth: 33,000 nested <b> take seconds. Past this many tags a fragment is
# reduced to its text (no legitimate post comes near it; Mastodon's are a few dozen).
MAX_TAGS = 5_000

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "a",
        "span",
        "strong",
        "b",
        "em",
        "i",
        "ul",
        "ol",
        "li",
        "blockquote",
        "code",
        "pre",
    }
)
KEPT_CLASSES = frozenset({"h-card", "u-url", "mention", "hashtag", "invisible", "ellipsis"})
LINK_PROTOCOLS = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer"
DROPPED_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "template",
        "iframe",
        "noscript",
        "noembed",
        "noframes",
        "object",
        "svg",
        "math",
        "title",
        "xmp",
    }
)
# Elements that separate words: their tags become a space in plain text.
_BREAKING_TAGS = frozenset(
    {"br", "p", "div", "li", "ul", "ol", "blockquote", "pre", "tr", "td", "th", "hr"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer"}
)
_WHITESPACE = re.compile(r"\s+")


def _keep_attribute(tag: str, name: str, value: str) -> bool:
    if tag == "a" and name == "href":
        return _is_allowed_link(value)
    return name == "class" and tag in {"a", "span"}


def _is_allowed_link(value: str) -> bool:
    """A mailto: link, or an http(s) link that passes the one URL rule (federation.urls)."""
    value = value.strip()
    if value[:7].lower() == "mailto:":
        return True
    return urls.is_remote_url(value, allow_http=True)


class _FinishingFilter(Filter):  # type: ignore[misc]  # bleach ships no type hints
    """Runs after bleach's sanitiser: drops the dangerous elements with their content,
    filters classes, and adds rel/target to links."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        depth = 0  # > 0 while inside an element that is dropped with its content
        for token in super().__iter__():
            kind = token["type"]
            name = token.get("name")
            if depth:
                if kind == "StartTag":
                    depth += 1
                elif kind == "EndTag":
                    depth -= 1
                continue
            if name in DROPPED_WITH_CONTENT:
                if kind == "StartTag":
                    depth = 1
                continue
            if kind in {"StartTag", "EmptyTag"} and name in {"a", "span"}:
                token["data"] = _finish_attributes(name, token.get("data") or {})
            yield token


def _finish_attributes(tag: str, data: dict[tuple[str | None, str], str]) -> dict[Any, str]:
    finished: dict[tuple[str | None, str], str] = {}
    for key, value in data.items():
        if key == (None, "class"):
            classes = [c for c in value.split() if c in KEPT_CLASSES]
            if classes:
                finished[key] = " ".join(dict.fromkeys(classes))
        else:
            finished[key] = value
    if tag == "a":
        finished[(None, "rel")] = LINK_REL
        finished[(None, "target")] = "_blank"
    return finished


_CLEANER = bleach.Cleaner(
    # The dropped elements are let through bleach's sanitiser so that the finishing
    # filter sees them and removes them *with* their content (bleach's own stripping
    # keeps the text of a <script>).
    tags=ALLOWED_TAGS | DROPPED_WITH_CONTENT,
    attributes=_keep_attribute,
    protocols=LINK_PROTOCOLS,
    strip=True,
    strip_comments=True,
    filters=[_FinishingFilter],
)


def sanitize_html(html_text: str) -> str:
    """Remote HTML made safe to store and show (see the module docstring for the rules)."""
    if not html_text:
        return ""
    html_text = html_text[:MAX_HTML_CHARS]
    if html_text.count("<") > MAX_TAGS:
        return "<p>" + html.escape(plain_text(html_text), quote=False) + "</p>"
    cleaned: str = _CLEANER.clean(html_text)
    return cleaned.strip()


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._skipping += 1
        elif tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def plain_text(html_text: str) -> str:
    """The text of an HTML fragment on one line: tags stripped (``script``/``style``
    content included), entities unescaped, runs of whitespace collapsed to one space."""
    if not html_text:
        return ""
    collector = _TextCollector()
    collector.feed(html_text[:MAX_HTML_CHARS])
    collector.close()
    return _WHITESPACE.sub(" ", "".join(collector.parts)).strip()
