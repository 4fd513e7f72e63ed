"""Signed audio links served in-process (``server.services.media.links``): the audio hot
path, outside the framework.

Once a stream is allowed in full to someone who could download the file anyway, the
stream route redirects to a link, and the player's ranges and seeks go there. A link is
decided by its signature and time alone, so this ASGI layer answers ``/audio/…`` before
Quart sees the request: no routing, hooks, session or database, and the file read with
as few thread hops as can be (``server.services.media.reads``). Behind nginx the same links are
checked and served by nginx alone (``server.runtime.nginx_site``); this layer answers
alike (the same types, ETag and status codes), so a player sees no difference.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from quart import Quart

from server.runtime.resources import Resources
from server.services.media.links import TYPES, LinkCheck, check_link, link_secret
from server.services.media.ranges import (
    RangeError,
    http_date,
    if_range_allows,
    not_modified,
    parse_range,
)
from server.services.media.reads import CHUNK, open_file, read_chunk
from server.web.current import EXTENSION_KEY
from server.web.input_limits import request_id

log = logging.getLogger("playfair.requests")
# The player's own copy may be kept a while (the link is its listener's to use); never
# in shared caches.
CACHE_CONTROL = "private, max-age=3600"
_REFUSALS = {
    LinkCheck.BAD: (403, "this audio link is not valid: start the track again"),
    LinkCheck.EXPIRED: (410, "this audio link has expired: start the track again"),
}


@dataclass
class _Answer:
    """What to send for one request: the head, a short body, or the open file to read."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    fd: int | None = None  # open while more is to be read
    offset: int = 0
    remaining: int = 0


def _plain(status: int, reason: str, extra: tuple[tuple[bytes, bytes], ...] = ()) -> _Answer:
    body = (reason + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    return _Answer(status, headers, body)


@dataclass(frozen=True)
class _Head:
    """A file's validators and fixed headers, kept while its size and time stay."""

    etag: str
    modified: datetime
    headers: tuple[tuple[bytes, bytes], ...]


_heads: dict[tuple[str, int, int], _Head] = {}
_HEADS_KEPT = 4096


def _head(key: str, size: int, mtime: int) -> _Head:
    found = _heads.get((key, size, mtime))
    if found is None:
        if len(_heads) >= _HEADS_KEPT:
            _heads.clear()
        modified = datetime.fromtimestamp(mtime, UTC)
        etag = f'"{mtime:x}-{size:x}"'  # nginx's form: the two answer alike
        found = _heads[(key, size, mtime)] = _Head(
            etag,
            modified,
            (
                (b"content-type", TYPES[key.rpartition(".")[2]].encode()),
                (b"accept-ranges", b"bytes"),
                (b"etag", etag.encode()),
                (b"last-modified", http_date(modified).encode()),
                (b"cache-control", CACHE_CONTROL.encode()),
            ),
        )
    return found


def _answer(path: Path, key: str, method: str, asked: dict[bytes, str]) -> _Answer:
    """The head of the answer to a valid link's request, and the file left open when a
    body is to be read (``server.services.media.reads``)."""
    try:
        fd = open_file(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return _plain(404, "the file is missing from the media store")
    keep = False
    try:
        stat = os.fstat(fd)
        size = stat.st_size
        head = _head(key, size, int(stat.st_mtime))
        headers = list(head.headers)
        if not_modified(
            head.etag, head.modified, asked.get(b"if-none-match"), asked.get(b"if-modified-since")
        ):
            return _Answer(304, headers)
        start, length, status = 0, size, 200
        if if_range_allows(head.etag, head.modified, asked.get(b"if-range")):
            try:
                byte_range = parse_range(asked.get(b"range"), size)
            except RangeError as exc:
                return _plain(416, str(exc), ((b"content-range", f"bytes */{size}".encode()),))
            if byte_range is not None:
                start, length, status = byte_range.start, byte_range.length, 206
                headers.append((b"content-range", byte_range.content_range(size).encode()))
        headers.append((b"content-length", str(length).encode()))
        if method == "HEAD" or length == 0:
            return _Answer(status, headers)
        keep = True
        return _Answer(status, headers, fd=fd, offset=start, remaining=length)
    finally:
        if not keep:
            os.close(fd)


class AudioLinkServer:
    """ASGI middleware: ``/audio/…`` here, everything else to the app."""

    def __init__(self, app: Quart, inner: object) -> None:
        self.app = app
        self.inner = inner

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/audio/"):
            await self.inner(scope, receive, send)  # type: ignore[operator]
            return
        started = time.perf_counter()
        resources: Resources | None = self.app.extensions.get(EXTENSION_KEY)
        method = scope["method"]
        if resources is None:
            answer = _plain(503, "the server is starting")
        elif method not in ("GET", "HEAD"):
            answer = _plain(
                405, "audio links are read with GET or HEAD", ((b"allow", b"GET, HEAD"),)
            )
        else:
            try:
                answer = await self._answer(resources, scope, method)
            except Exception:  # a bug or an unreadable store: logged, never a bare 500
                given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
                rid = request_id(given)
                log.exception("audio link %s failed (request %s)", scope["path"], rid)
                answer = _plain(500, f"the audio could not be read (request {rid})")
        try:
            await send(
                {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
            )
            body = answer.body if method != "HEAD" else b""
            more = answer.remaining > 0 and answer.fd is not None
            if body or not more:
                await send({"type": "http.response.body", "body": body, "more_body": more})
            while answer.remaining > 0 and answer.fd is not None:
                data = await read_chunk(answer.fd, answer.offset, min(CHUNK, answer.remaining))
                if not data:  # the file shrank under us: end the body where it ends
                    answer.remaining = 0
                answer.offset += len(data)
                answer.remaining -= len(data)
                await send(
                    {"type": "http.response.body", "body": data, "more_body": answer.remaining > 0}
                )
        finally:
            if answer.fd is not None:
                os.close(answer.fd)
        if resources is not None and resources.settings.server.access_log:
            log.info(
                "%s %s %s", method, scope["path"], answer.status,
                extra={"fields": {"ms": round((time.perf_counter() - started) * 1000, 1)}},
            )  # fmt: skip

    async def _answer(self, resources: Resources, scope: HTTPScope, method: str) -> _Answer:
        checked = check_link(
            scope["path"],
            scope["query_string"].decode("latin-1"),
            link_secret(resources.secret),
            now=time.time(),
        )
        if checked.result is not LinkCheck.VALID:
            return _plain(*_REFUSALS[checked.result])
        asked = {
            name: value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"range", b"if-range", b"if-none-match", b"if-modified-since")
        }
        return _answer(resources.settings.media_dir / checked.key, checked.key, method, asked)
