"""What to do after a delivery attempt, as a pure function (docs/architecture.md#federation).

2xx: delivered. 429 and 503: wait as long as ``Retry-After`` says. Other 5xx, timeouts
and connection errors: exponential back-off with jitter, for up to ``give_up_after``
(days, so that an instance behind a flaky link catches up when it returns), then
``failed`` (an admin may replay it). 401/403: retry once (the receiver may have held an
old copy of our key and refetches it on failure). 410: the inbox is gone for good. Any
other 4xx, a redirect (an inbox is POSTed to, never redirected), or an address we refuse
to contact: abandoned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

MAX_RETRY_AFTER_SECONDS = 366 * 24 * 3600


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    ABANDONED = "abandoned"
    GONE = "gone"


@dataclass(frozen=True)
class RetryRules:
    base: timedelta = timedelta(seconds=30)
    maximum: timedelta = timedelta(hours=6)
    give_up_after: timedelta = timedelta(days=5)


@dataclass(frozen=True)
class Attempt:
    status: int | None  # None: no answer (timeout, connection refused, DNS)
    error: str | None = None
    retry_after: str | None = None
    refused: bool = False  # the address guard or policy refused the inbox


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    delay: timedelta | None = None  # for RETRY
    keys_refreshed: bool = False


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # a server asking for more than a year is not asking for anything sensible
        return timedelta(seconds=min(int(value), MAX_RETRY_AFTER_SECONDS))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when - now, timedelta(0)), timedelta(seconds=MAX_RETRY_AFTER_SECONDS))


def backoff(rules: RetryRules, attempts: int, rng: random.Random | None = None) -> timedelta:
    exponent = min(max(attempts - 1, 0), 64)  # capped before it can overflow a float
    step = min(rules.base.total_seconds() * 2**exponent, rules.maximum.total_seconds())
    return timedelta(seconds=step * (rng or random).uniform(0.5, 1.0))


def decide(
    attempt: Attempt,
    *,
    attempts: int,
    first_created: datetime,
    keys_refreshed: bool,
    now: datetime,
    rules: RetryRules,
    rng: random.Random | None = None,
) -> Decision:
    """``attempts`` counts the attempt just made."""
    status = attempt.status
    if attempt.refused:
        return Decision(Verdict.ABANDONED, attempt.error or "the inbox address is refused")
    if status is not None and 200 <= status < 300:
        return Decision(Verdict.DELIVERED, f"HTTP {status}")
    if status == 410:
        return Decision(Verdict.GONE, "HTTP 410: the inbox is gone")
    if status in (401, 403):
        if keys_refreshed:
            return Decision(Verdict.ABANDONED, f"HTTP {status} again after a retry")
        return Decision(
            Verdict.RETRY, f"HTTP {status}: retrying once", rules.base, keys_refreshed=True
        )
    if status is not None and (status < 200 or 300 <= status < 500) and status != 429:
        return Decision(Verdict.ABANDONED, f"HTTP {status}")
    reason = f"HTTP {status}" if status is not None else (attempt.error or "no answer")
    delay = None
    if status in (429, 503):
        delay = parse_retry_after(attempt.retry_after, now)
    if delay is None:
        delay = backoff(rules, attempts, rng)
    if now + delay > first_created + rules.give_up_after:
        return Decision(Verdict.FAILED, f"{reason}; gave up after {attempts} attempts")
    return Decision(Verdict.RETRY, reason, delay, keys_refreshed=keys_refreshed)
