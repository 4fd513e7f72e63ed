"""Time as the pacing of audio sees it: the system's monotonic clock, replaceable in
tests by one that moves on when asked to wait (so a 45-second rule is tested in
milliseconds, not by sleeping)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
