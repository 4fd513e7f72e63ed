"""The delivery policy (federation/delivery.py, docs/architecture.md#federation): what to do
after an attempt."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.delivery import (
    Attempt,
    Decision,
    RetryRules,
    Verdict,
    backoff,
    decide,
    parse_retry_after,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RULES = RetryRules()


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - jitter, not secrets


def _step(rules: RetryRules, attempts: int) -> float:
    """The upper bound of the back-off for this attempt, in seconds."""
    return min(rules.base.total_seconds() * 2 ** (attempts - 1), rules.maximum.total_seconds())


def _decide(
    attempt: Attempt,
    *,
    attempts: int = 1,
    first_created: datetime = NOW,
    keys_refreshed: bool = False,
    now: datetime = NOW,
    rules: RetryRules = RULES,
    seed: int | None = 7,
) -> Decision:
    return decide(
        attempt,
        attempts=attempts,
        first_created=first_created,
        keys_refreshed=keys_refreshed,
        now=now,
        rules=rules,
        rng=None if seed is None else _rng(seed),
    )


# --- 2xx -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    decision = _decide(Attempt(status), attempts=3)
    assert decision.verdict is Verdict.DELIVERED
    assert decision.delay is None
    assert str(status) in decision.reason


def test_2xx_is_delivered_even_past_the_give_up_horizon() -> None:
    decision = _decide(Attempt(202), attempts=40, first_created=NOW - timedelta(days=30))
    assert decision.verdict is Verdict.DELIVERED


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("seconds", [1, 120, 3600, 86_400])
def test_retry_after_in_seconds_is_honoured(status: int, seconds: int) -> None:
    decision = _decide(Attempt(status, retry_after=str(seconds)), attempts=1)
    assert decision.verdict is Verdict.RETRY
    # the header, not the back-off (which would be 15..30 s on the first attempt)
    assert decision.delay == timedelta(seconds=seconds)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_with_spaces_is_honoured(status: int) -> None:
    decision = _decide(Attempt(status, retry_after="  600 "))
    assert decision.delay == timedelta(seconds=600)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("seconds", [90, 7200])
def test_retry_after_as_http_date_is_honoured(status: int, seconds: int) -> None:
    header = format_datetime(NOW + timedelta(seconds=seconds), usegmt=True)
    decision = _decide(Attempt(status, retry_after=header), attempts=5)
    assert decision.verdict is Verdict.RETRY
    assert decision.delay == timedelta(seconds=seconds)


def test_retry_after_http_date_with_an_offset_counts_the_instant() -> None:
    plus_two = timezone(timedelta(hours=2))
    header = format_datetime((NOW + timedelta(minutes=10)).astimezone(plus_two))
    assert header.endswith("+0200")
    decision = _decide(Attempt(503, retry_after=header))
    assert decision.delay == timedelta(minutes=10)


def test_retry_after_http_date_without_a_zone_is_utc() -> None:
    header = format_datetime((NOW + timedelta(hours=2)).replace(tzinfo=None))
    assert header.endswith("-0000")
    decision = _decide(Attempt(429, retry_after=header))
    assert decision.delay == timedelta(hours=2)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_date_in_the_past_gives_no_delay(status: int) -> None:
    header = format_datetime(NOW - timedelta(hours=3), usegmt=True)
    decision = _decide(Attempt(status, retry_after=header), attempts=4)
    assert decision.verdict is Verdict.RETRY
    assert decision.delay == timedelta(0)


def test_retry_after_far_in_the_past_gives_no_delay() -> None:
    decision = _decide(Attempt(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    assert decision.verdict is Verdict.RETRY
    assert decision.delay == timedelta(0)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("attempts", [1, 3, 12])
def test_without_retry_after_the_back_off_is_used(status: int, attempts: int) -> None:
    decision = _decide(Attempt(status), attempts=attempts, seed=11)
    assert decision.verdict is Verdict.RETRY
    assert decision.delay == backoff(RULES, attempts, _rng(11))
    step = _step(RULES, attempts)
    assert decision.delay is not None
    assert step * 0.5 <= decision.delay.total_seconds() <= step


@pytest.mark.parametrize(
    "header", ["", "soon", "-5", "1.5", "120s", "Mon, 99 Foo 2015", "tomorrow at noon", "0x10"]
)
@pytest.mark.parametrize("status", [429, 503])
def test_garbage_retry_after_falls_back_to_back_off(status: int, header: str) -> None:
    decision = _decide(Attempt(status, retry_after=header), attempts=2, seed=3)
    assert decision.verdict is Verdict.RETRY
    assert decision.delay == backoff(RULES, 2, _rng(3))


def test_retry_after_is_ignored_for_other_5xx() -> None:
    decision = _decide(Attempt(500, retry_after="3600"), attempts=1, seed=5)
    assert decision.delay == backoff(RULES, 1, _rng(5))
    assert decision.delay is not None
    assert decision.delay <= timedelta(seconds=30)


def test_parse_retry_after_directly() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after("0", NOW) == timedelta(0)
    assert parse_retry_after("42", NOW) == timedelta(seconds=42)
    assert parse_retry_after("nonsense", NOW) is None
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, NOW) == timedelta(seconds=30)
    past = format_datetime(NOW - timedelta(days=1), usegmt=True)
    assert parse_retry_after(past, NOW) == timedelta(0)


def test_superscript_digit_retry_after_falls_back_to_back_off() -> None:
    decision = _decide(Attempt(503, retry_after="²"), attempts=2, seed=3)
    assert decision.delay == backoff(RULES, 2, _rng(3))


@pytest.mark.parametrize("header", ["9" * 20, "999999999999"])
def test_huge_retry_after_gives_a_verdict(header: str) -> None:
    decision = _decide(Attempt(503, retry_after=header))
    assert decision.verdict in (Verdict.RETRY, Verdict.FAILED)


# --- back-off ------------------------------------------------------------------------------


def test_back_off_bounds_double_per_attempt_up_to_the_maximum() -> None:
    steps = [_step(RULES, n) for n in range(1, 14)]
    assert steps[:10] == [30 * 2**k for k in range(10)]  # 30 s … 15360 s
    assert steps[10:] == [RULES.maximum.total_seconds()] * 3  # 6 h from attempt 11 on
    rng = _rng(1)
    for attempts, step in enumerate(steps, start=1):
        for _ in range(200):
            seconds = backoff(RULES, attempts, rng).total_seconds()
            assert step * 0.5 <= seconds <= step


def test_back_off_jitter_spreads_over_half_to_full_step() -> None:
    rng = _rng(2024)
    samples = [backoff(RULES, 4, rng).total_seconds() for _ in range(2000)]
    assert min(samples) >= 120
    assert max(samples) <= 240
    # really jittered, and across most of the range
    assert len(set(samples)) > 1900
    assert min(samples) < 125
    assert max(samples) > 235


def test_back_off_with_custom_rules() -> None:
    rules = RetryRules(
        base=timedelta(seconds=10), maximum=timedelta(minutes=1), give_up_after=timedelta(hours=1)
    )
    rng = _rng(9)
    for attempts, step in [(1, 10), (2, 20), (3, 40), (4, 60), (5, 60), (30, 60)]:
        for _ in range(100):
            assert step / 2 <= backoff(rules, attempts, rng).total_seconds() <= step


def test_back_off_is_reproducible_with_a_seed_and_works_without() -> None:
    assert backoff(RULES, 5, _rng(1)) == backoff(RULES, 5, _rng(1))
    for _ in range(100):
        assert timedelta(seconds=240) <= backoff(RULES, 5) <= timedelta(seconds=480)


def test_back_off_for_attempt_zero_is_the_base() -> None:
    for _ in range(50):
        assert timedelta(seconds=15) <= backoff(RULES, 0) <= timedelta(seconds=30)


def test_back_off_for_a_huge_attempt_count_is_capped() -> None:
    delay = backoff(RULES, 1100, _rng(1))
    assert RULES.maximum / 2 <= delay <= RULES.maximum


@pytest.mark.parametrize("status", [500, 502, 504, 599, None])
@pytest.mark.parametrize("attempts", [1, 2, 5, 10, 11, 25])
def test_server_errors_and_no_answer_retry_with_back_off(status: int | None, attempts: int) -> None:
    decision = _decide(Attempt(status, error="timed out"), attempts=attempts, seed=attempts)
    assert decision.verdict is Verdict.RETRY
    assert decision.delay == backoff(RULES, attempts, _rng(attempts))
    assert decision.delay is not None
    step = _step(RULES, attempts)
    assert step * 0.5 <= decision.delay.total_seconds() <= step
    assert decision.keys_refreshed is False


def test_reason_names_the_status_or_the_error() -> None:
    assert _decide(Attempt(502)).reason == "HTTP 502"
    assert _decide(Attempt(None, error="connection refused")).reason == "connection refused"
    assert _decide(Attempt(None)).reason == "no answer"


def test_keys_refreshed_is_kept_across_later_retries() -> None:
    decision = _decide(Attempt(500), keys_refreshed=True)
    assert decision.verdict is Verdict.RETRY
    assert decision.keys_refreshed is True


# --- giving up -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429, None])
def test_gives_up_once_the_next_try_would_pass_the_horizon(status: int | None) -> None:
    # 10 s left; the back-off on attempt 7 is at least 960 s
    first = NOW - RULES.give_up_after + timedelta(seconds=10)
    decision = _decide(Attempt(status, error="timed out"), attempts=7, first_created=first)
    assert decision.verdict is Verdict.FAILED
    assert "7 attempts" in decision.reason
    assert decision.delay is None


def test_still_retries_when_the_next_try_is_inside_the_horizon() -> None:
    # one hour left; the back-off on attempt 3 is at most 120 s
    first = NOW - RULES.give_up_after + timedelta(hours=1)
    decision = _decide(Attempt(500), attempts=3, first_created=first)
    assert decision.verdict is Verdict.RETRY


def test_the_horizon_boundary_with_retry_after() -> None:
    first = NOW - RULES.give_up_after + timedelta(seconds=60)
    exactly = _decide(Attempt(503, retry_after="60"), attempts=4, first_created=first)
    assert exactly.verdict is Verdict.RETRY
    assert exactly.delay == timedelta(seconds=60)
    beyond = _decide(Attempt(503, retry_after="61"), attempts=4, first_created=first)
    assert beyond.verdict is Verdict.FAILED
    assert "4 attempts" in beyond.reason


def test_a_retry_after_longer_than_the_horizon_fails() -> None:
    decision = _decide(Attempt(429, retry_after=str(6 * 86_400)), attempts=1)
    assert decision.verdict is Verdict.FAILED
    assert "1 attempts" in decision.reason


def test_already_past_the_horizon_fails() -> None:
    decision = _decide(Attempt(None), attempts=33, first_created=NOW - timedelta(days=6))
    assert decision.verdict is Verdict.FAILED
    assert "33 attempts" in decision.reason
    assert "no answer" in decision.reason


# --- 401/403, 410, other 4xx, refused ------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorised_retries_once_after_refreshing_keys(status: int) -> None:
    rules = RetryRules(base=timedelta(seconds=45))
    first = _decide(Attempt(status), attempts=1, rules=rules)
    assert first.verdict is Verdict.RETRY
    assert first.keys_refreshed is True
    assert first.delay == timedelta(seconds=45)
    second = _decide(Attempt(status), attempts=2, rules=rules, keys_refreshed=True)
    assert second.verdict is Verdict.ABANDONED
    assert str(status) in second.reason
    assert second.delay is None


def test_gone_is_gone() -> None:
    for keys_refreshed in (False, True):
        decision = _decide(Attempt(410), keys_refreshed=keys_refreshed)
        assert decision.verdict is Verdict.GONE
        assert decision.delay is None


@pytest.mark.parametrize("status", [400, 404, 405, 413, 422, 451, 499])
def test_other_4xx_abandon(status: int) -> None:
    decision = _decide(Attempt(status), attempts=1)
    assert decision.verdict is Verdict.ABANDONED
    assert decision.reason == f"HTTP {status}"
    assert decision.delay is None


@pytest.mark.parametrize("status", [None, 200, 202, 401, 410, 429, 500, 503])
def test_refused_is_abandoned_whatever_the_status(status: int | None) -> None:
    decision = _decide(Attempt(status, retry_after="10", refused=True))
    assert decision.verdict is Verdict.ABANDONED
    assert decision.delay is None
    assert decision.reason


def test_refused_reason_is_the_error_when_given() -> None:
    decision = _decide(Attempt(None, error="loopback address", refused=True))
    assert decision.reason == "loopback address"


def test_verdicts_are_the_delivery_states() -> None:
    assert {verdict.value for verdict in Verdict} == {
        "delivered",
        "retry",
        "failed",
        "abandoned",
        "gone",
    }


# --- property ------------------------------------------------------------------------------


@given(
    attempts=st.integers(min_value=1, max_value=60),
    status=st.one_of(st.none(), st.integers(min_value=500, max_value=599)),
    seed=st.integers(min_value=0, max_value=2**32),
    elapsed=st.integers(min_value=0, max_value=7 * 86_400),
)
def test_server_errors_retry_within_bounds_or_fail_at_the_horizon(
    attempts: int, status: int | None, seed: int, elapsed: int
) -> None:
    first = NOW - timedelta(seconds=elapsed)
    decision = _decide(Attempt(status), attempts=attempts, first_created=first, seed=seed)
    expected = backoff(RULES, attempts, _rng(seed))
    passes_horizon = NOW + expected > first + RULES.give_up_after
    if passes_horizon:
        assert decision.verdict is Verdict.FAILED
        assert f"{attempts} attempts" in decision.reason
    else:
        assert decision.verdict is Verdict.RETRY
        assert decision.delay == expected
        assert timedelta(0) < decision.delay <= RULES.maximum


@given(
    attempts=st.integers(min_value=1, max_value=60),
    status=st.one_of(st.none(), st.integers(min_value=500, max_value=599)),
)
def test_fresh_deliveries_always_retry(attempts: int, status: int | None) -> None:
    decision = _decide(Attempt(status), attempts=attempts, seed=None)
    assert decision.verdict is Verdict.RETRY
    assert decision.delay is not None
    assert timedelta(0) < decision.delay <= RULES.maximum
