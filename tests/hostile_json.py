"""Hypothesis strategies for what an attacker sends instead of JSON: deep nesting, huge
numbers, wrong types, odd unicode, duplicate keys, huge strings, NaN and Infinity, and
bytes that are not UTF-8; and hostile versions of real documents (a field replaced, added
or dropped), so the parsers behind the JSON decoder are reached too.

Every strategy draws ``bytes``: the exact body to send."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Characters that break naive code: NUL and other controls, lone surrogates, the byte order
# mark, right-to-left and zero-width marks, non-characters, combining marks, astral planes.
ODD_CHARACTERS = [
    "\x00", "\x01", "\x1f", "\x7f", "\u0085", "\u00a0", "\u200b", "\u200e", "\u202e",
    "\u2028", "\ufeff", "\ufffd", "\uffff", "\U0001f3b5", "\U0010ffff", "e\u0301", "\ud800",
    "\udfff", "\\", '"', "/", "%00", "%ff", "'", "<script>", "{{7*7}}", "../", "\r\n",
]  # fmt: skip
HUGE_NUMBERS = [
    "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1" * 5000,
    "-" + "9" * 4301, "1e400", "-1e400", "1e-400", "0.1e99999", "123456789012345678901234567890.5",
    "NaN", "Infinity", "-Infinity", "-0", "0e0", "1E+2",
]  # fmt: skip


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.lists(st.sampled_from(ODD_CHARACTERS), max_size=8).map("".join),
        st.integers(1_000, 600_000).map(lambda n: "a" * n),
        st.sampled_from(["https://", "file:///etc/passwd", "ftp://x.example/", "javascript:1",
                         "https://mastodon.example:99999/", "https://[::1/", "//evil.example",
                         "https://user@mastodon.example/", "http://127.0.0.1/", ""]),
    )  # fmt: skip


def _literal(value: Any) -> str:
    """JSON text of ``value``; lone surrogates are written as escapes, as an attacker would."""
    return json.dumps(value, ensure_ascii=True)


def json_values() -> st.SearchStrategy[str]:
    """JSON text (mostly valid, some of it only JSON-looking) of any type."""
    scalars = st.one_of(
        st.none().map(_literal),
        st.booleans().map(_literal),
        st.integers().map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(HUGE_NUMBERS),
        _text().map(_literal),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
            st.lists(st.tuples(_text().map(_literal), inner), max_size=4).map(
                lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
            ),
        ),
        max_leaves=12,
    )


def deep_nesting() -> st.SearchStrategy[bytes]:
    def nest(depth: int, kind: str) -> bytes:
        if kind == "array":
            return b"[" * depth + b"]" * depth
        if kind == "object":
            return b'{"a":' * depth + b"1" + b"}" * depth
        return b"[" * depth  # never closed

    return st.builds(nest, st.integers(60, 200_000), st.sampled_from(["array", "object", "open"]))


def not_utf8() -> st.SearchStrategy[bytes]:
    invalid = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf"])
    return st.one_of(
        st.binary(max_size=200),
        st.tuples(invalid, st.sampled_from([b'{"type":"', b'{"', b"["])).map(
            lambda parts: parts[1] + parts[0] + b'"}'
        ),
    )


def duplicate_keys(document: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """The document with one key given twice, the second time with another value."""

    def duplicate(key: str, value: str) -> bytes:
        text = json.dumps(document)
        return (text[:-1] + f", {json.dumps(key)}: {value}" + "}").encode()

    return st.builds(duplicate, st.sampled_from(sorted(document)), json_values())


def mutated(document: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """The document with a field (or a field of its ``object``) replaced by any JSON value,
    a new field added, or a field dropped."""
    keys = sorted(document)

    def replace(path: tuple[str, ...], value: str) -> bytes:
        return _with(document, path, value)

    paths: list[tuple[str, ...]] = [(key,) for key in keys]
    inner = document.get("object")
    if isinstance(inner, dict):
        paths += [("object", key) for key in sorted(inner)]
    return st.one_of(
        st.builds(replace, st.sampled_from(paths), json_values()),
        st.builds(replace, st.tuples(_text()), json_values()),
        st.sampled_from(keys).map(
            lambda key: json.dumps({k: v for k, v in document.items() if k != key}).encode()
        ),
    )


def _with(document: dict[str, Any], path: tuple[str, ...], value: str) -> bytes:
    """``document`` as JSON text with the member at ``path`` set to the JSON text ``value``
    (spliced in as text, so values that are not valid JSON go out as they are)."""
    marker = "\u0001MARK\u0001"
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = marker
    return json.dumps(copy).replace(json.dumps(marker), value).encode("utf-8", "surrogatepass")


def hostile_bodies(document: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Any of the above, around a real ``document``."""
    return st.one_of(
        mutated(document),
        duplicate_keys(document),
        json_values().map(lambda text: text.encode("utf-8", "surrogatepass")),
        deep_nesting(),
        not_utf8(),
        st.sampled_from(HUGE_NUMBERS).map(str.encode),
    )
