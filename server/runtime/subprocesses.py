"""Child processes that die with their parent.

Everything playfair spawns (ffmpeg, at upload and in the worker) goes through :func:`run`.
On Linux the child asks the kernel, between fork and exec, to be sent SIGKILL when its
parent dies (``prctl(PR_SET_PDEATHSIG)``), so a process killed with SIGKILL, which runs
no clean-up of its own, leaves no orphan behind. A run that is cancelled (its job lost its
lease, the worker stops) or outlives its time limit kills its child and reaps it before
the exception goes on.

The death signal belongs to the thread that forked: asyncio forks from the event loop's
thread, which lives as long as the process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


@functools.cache
def _prctl() -> Callable[..., int]:
    function = ctypes.CDLL(None, use_errno=True).prctl
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    function.restype = ctypes.c_int
    return function


def die_with_parent() -> Callable[[], None] | None:
    """The ``preexec_fn`` that ties a child's life to ours (None where Linux's prctl is
    not there). The function is looked up before the fork; in the child it only calls it
    and compares two integers, taking no lock that another thread could hold."""
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = _prctl(), os.getpid()

    def in_child() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0) != 0 or os.getppid() != parent:
            os._exit(127)  # the parent is gone already (died before the prctl), or no prctl

    return in_child


async def run(args: Sequence[str], time_limit: float) -> Completed:
    """Run ``args`` to the end with its output collected; TimeoutError after
    ``time_limit`` seconds. FileNotFoundError when the program is not installed."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent(),
    )
    try:
        async with asyncio.timeout(time_limit):
            stdout, stderr = await process.communicate()
    except BaseException:  # timed out, cancelled, or anything else: the child goes too
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return Completed(process.returncode or 0, stdout, stderr)
