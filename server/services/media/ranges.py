"""HTTP range requests and conditional GETs (RFC 9110 §13, §14), as pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeError(ValueError):
    """The Range header cannot be satisfied or understood; answer 416."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, or None for the whole representation.

    Single ranges (``0-499``, ``500-``, suffix ``-500``) are served; several ranges in one
    header are answered with the whole file, which RFC 9110 allows. A header that is
    malformed or that no byte of the file satisfies raises :class:`RangeError`.
    """
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeError(f"malformed Range header {header[:60]!r}: expected bytes=START-END")
    parts = spec.split(",")
    if len(parts) > 1:
        if any(not (m := _RANGE.match(part)) or m.groups() == ("", "") for part in parts):
            raise RangeError(f"malformed Range header {header[:60]!r}")
        return None
    match = _RANGE.match(spec)
    if not match or match.groups() == ("", ""):
        raise RangeError(f"malformed Range header {header[:60]!r}: expected bytes=START-END")
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeError("the range asks for no bytes")
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise RangeError(f"malformed Range header {header[:60]!r}: the end is before the start")
    if start >= size:
        raise RangeError(f"the range starts at byte {start}; the file has {size} bytes")
    return ByteRange(start, min(end, size - 1))


def http_date(moment: datetime) -> str:
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def _parse_http_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def not_modified(
    etag: str, last_modified: datetime, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether a GET/HEAD can be answered 304 (If-None-Match wins over If-Modified-Since)."""
    if if_none_match is not None:
        tags = _etags(if_none_match)
        weak = etag.removeprefix("W/")
        return "*" in tags or any(tag.removeprefix("W/") == weak for tag in tags)
    if if_modified_since is not None:
        since = _parse_http_date(if_modified_since)
        return since is not None and last_modified.replace(microsecond=0) <= since
    return False


def if_range_allows(etag: str, last_modified: datetime, if_range: str | None) -> bool:
    """Whether the Range header may be honoured: If-Range must match strongly (RFC 9110
    §13.1.5); otherwise the whole file is sent."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return not value.startswith("W/") and value == etag
    when = _parse_http_date(value)
    return when is not None and last_modified.replace(microsecond=0) == when
