"""The ``subsonic-response`` envelope: one tree of :class:`Node` written as XML (the
default), JSON (``f=json``) or JSONP (``f=jsonp``).

A node has attributes, children in the order the XSD's sequences name them, and
optionally text. Children are added either as one element (:meth:`Node.one`) or as a
repeatable one (:meth:`Node.many`): in XML both are plain elements, in JSON the second is
always an array, even of one item or none, which is what Subsonic's JSON clients expect.
A text-only node is a JSON string; a node with attributes and text keeps the text under
``value`` (as ``<genre songCount="3">Folk</genre>`` is ``{"songCount": 3, "value": "Folk"}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from subsonic.errors import Code, SubsonicError

API_VERSION = "1.16.1"
SERVER_TYPE = "playfair"
NAMESPACE = "http://subsonic.org/restapi"

Scalar = str | int | float | bool | datetime | date | None

# a JSONP callback is a JavaScript name path, nothing that could run code of its own
CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*")
# characters XML 1.0 cannot carry at all (a title may hold them)
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class Format(StrEnum):
    XML = "xml"
    JSON = "json"
    JSONP = "jsonp"


@dataclass
class Node:
    """One element: attributes (None values are left out), children, text."""

    attrs: dict[str, Scalar] = field(default_factory=dict)
    text: Scalar = None
    children: list[tuple[str, Node | list[Node]]] = field(default_factory=list)

    def one(self, name: str, child: Node) -> Node:
        """Add ``child`` as the element ``name``; returns it."""
        self.children.append((name, child))
        return child

    def many(self, name: str, children: Iterable[Node]) -> list[Node]:
        """Add ``children`` as repeated ``name`` elements (an array in JSON); returns them."""
        items = list(children)
        self.children.append((name, items))
        return items

    def text_child(self, name: str, text: str | None) -> None:
        """A child element holding only text (``<biography>…</biography>``), if any."""
        if text is not None:
            self.children.append((name, Node(text=text)))


def parse_format(value: str | None) -> Format:
    try:
        return Format(value or "xml")
    except ValueError:
        raise SubsonicError(
            Code.GENERIC, f"unknown format {value!r}: use xml, json or jsonp"
        ) from None


def check_callback(callback: str | None) -> str:
    if not callback:
        raise SubsonicError(Code.MISSING_PARAMETER, "required parameter 'callback' is missing")
    if len(callback) > 100 or CALLBACK.fullmatch(callback) is None:
        raise SubsonicError(Code.GENERIC, "the callback must be a JavaScript name")
    return callback


def envelope(
    server_version: str, body: Node | None = None, error: SubsonicError | None = None
) -> Node:
    """The ``subsonic-response`` node: OpenSubsonic's fields on every answer."""
    root = Node(
        {
            "status": "failed" if error is not None else "ok",
            "version": API_VERSION,
            "type": SERVER_TYPE,
            "serverVersion": server_version,
            "openSubsonic": True,
        }
    )
    if error is not None:
        root.one("error", Node({"code": int(error.code), "message": error.message}))
    elif body is not None:
        root.children.extend(body.children)
    return root


def _scalar_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (
        aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}Z"
    )


def _clean(text: str) -> str:
    return XML_ILLEGAL.sub("", text)


def _xml_node(name: str, node: Node, out: list[str], *, root: bool = False) -> None:
    out.append(f"<{name}")
    if root:
        out.append(f' xmlns="{NAMESPACE}"')
    for key, value in node.attrs.items():
        if value is not None:
            out.append(f" {key}={quoteattr(_clean(_scalar_text(value)))}")
    if not node.children and node.text is None:
        out.append("/>")
        return
    out.append(">")
    if node.text is not None:
        out.append(escape(_clean(_scalar_text(node.text))))
    for child_name, child in node.children:
        for item in child if isinstance(child, list) else [child]:
            _xml_node(child_name, item, out)
    out.append(f"</{name}>")


def to_xml(root: Node) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    _xml_node("subsonic-response", root, out, root=True)
    return "".join(out)


def _json_scalar(value: Scalar) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _json_node(node: Node) -> Any:
    if node.text is not None and not node.attrs and not node.children:
        return _json_scalar(node.text)
    document: dict[str, Any] = {k: _json_scalar(v) for k, v in node.attrs.items() if v is not None}
    if node.text is not None:
        document["value"] = _json_scalar(node.text)
    for name, child in node.children:
        if isinstance(child, list):
            document.setdefault(name, []).extend(_json_node(item) for item in child)
        else:
            document[name] = _json_node(child)
    return document


def to_json(root: Node) -> str:
    return json.dumps({"subsonic-response": _json_node(root)}, ensure_ascii=False)


def render(root: Node, format: Format, callback: str | None = None) -> tuple[str, str]:
    """The body and its media type."""
    if format is Format.JSON:
        return to_json(root), "application/json"
    if format is Format.JSONP:
        return f"{callback}({to_json(root)});", "application/javascript"
    return to_xml(root), "text/xml"
