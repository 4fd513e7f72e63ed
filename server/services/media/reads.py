"""Reading media files for responses, with as few hops to a worker thread as can be.

A file is opened on the event loop (on the media folder's local disk that is a cached
lookup, as nginx opens files in its worker); its bytes come straight from the page cache
when it holds them (Linux ``RWF_NOWAIT``: the common case of a track being listened to),
and from a worker thread when they must come from the disk.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

CHUNK = 256 * 1024
_NOWAIT = getattr(os, "RWF_NOWAIT", None)  # Linux: read only what the page cache holds


def _pread(fd: int, offset: int, size: int) -> bytes:
    return os.pread(fd, size, offset)


def open_file(path: Path) -> int:
    """A read-only descriptor of the file (FileNotFoundError if it is not there)."""
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


async def read_chunk(fd: int, offset: int, size: int) -> bytes:
    """``size`` bytes from ``offset`` (fewer at the end of the file)."""
    if _NOWAIT is not None:
        buffer = bytearray(size)
        try:
            got = os.preadv(fd, [buffer], offset, _NOWAIT)
        except BlockingIOError:
            got = 0
        if got == size:
            return bytes(buffer)
        if got:
            rest = await asyncio.to_thread(_pread, fd, offset + got, size - got)
            return bytes(memoryview(buffer)[:got]) + rest
    return await asyncio.to_thread(_pread, fd, offset, size)


async def file_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of the file from ``start``, in chunks (fewer if it is shorter)."""
    fd = open_file(path)
    try:
        position, end = start, start + length
        while position < end:
            data = await read_chunk(fd, position, min(CHUNK, end - position))
            if not data:
                return
            position += len(data)
            yield data
    finally:
        os.close(fd)
