"""JSON from people and servers we do not trust, parsed within limits.

Every JSON document that reaches us from outside (request bodies, inbox activities,
documents fetched from other servers, payment webhooks) is parsed by :func:`loads`, which
refuses with :class:`UnsafeJSON` (a ``ValueError`` whose message says what is wrong):

* a body larger than the caller's byte cap, or that is not UTF-8;
* nesting deeper than :data:`MAX_DEPTH` arrays and objects, checked on the raw text
  before the parser runs (Python's parser recurses, and so does much of what reads a
  document afterwards);
* integers outside a signed 64-bit range (our ids and amounts are at most that, and the
  databases store no more), floats that overflow to infinity, and the non-standard
  ``NaN``/``Infinity`` constants;
* strings with a NUL character (PostgreSQL's text and JSONB cannot hold one) or with a lone
  UTF-16 surrogate (it cannot be written out as UTF-8 again).

Anything else the standard library accepts is accepted; a duplicated key keeps its last
value, as in every common JSON library.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# A JSON string literal (unrolled loop: no backtracking on long strings).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
# An escape that is not itself escaped: an even number of backslashes before it.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_SURROGATE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_INT_DIGITS = len(str(INT64_MAX))


class UnsafeJSON(ValueError):
    """The document is not JSON, or is JSON beyond our limits; the message says which."""


def nesting_depth_within(data: bytes, max_depth: int) -> bool:
    """Whether no array or object in ``data`` is nested deeper than ``max_depth``.

    String literals are taken out first (they may hold brackets), then each pass removes
    the innermost empty pairs: a well-formed document of depth d is empty after d passes.
    Text that does not empty in ``max_depth`` passes is too deep or not JSON at all.
    """
    brackets = _STRING.sub(b"", data).translate(None, delete=_NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets, removed = _EMPTY_PAIR.subn(b"", brackets)
        if not removed:
            return False
    return not brackets


def _int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _INT_DIGITS:
        raise UnsafeJSON("a number in the document is out of range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise UnsafeJSON("a number in the document is out of range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON("a number in the document is out of range")
    return value


def _constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not JSON")


def loads(data: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """The document in ``data`` (UTF-8 bytes or text), or :class:`UnsafeJSON`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if max_bytes is not None and len(raw) > max_bytes:
        raise UnsafeJSON(f"the document is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeJSON("the document is not UTF-8 text") from None
    if not nesting_depth_within(raw, max_depth):
        raise UnsafeJSON(f"the document is nested deeper than {max_depth} levels, or not JSON")
    if _NUL_ESCAPE.search(raw):
        raise UnsafeJSON("the document has a NUL character in a string")
    try:
        document = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except UnsafeJSON:
        raise
    except RecursionError:  # not reached within MAX_DEPTH; kept for a caller's own depth
        raise UnsafeJSON("the document is nested too deeply") from None
    except ValueError as error:
        raise UnsafeJSON(f"the document is not JSON: {error}") from None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafeJSON("the document has a lone UTF-16 surrogate in a string") from None
    return document


__all__ = ["INT64_MAX", "INT64_MIN", "MAX_DEPTH", "UnsafeJSON", "loads", "nesting_depth_within"]
