"""Where the worker's royalty jobs cut periods: statements and settlements cover whole
periods counted from midnight UTC (docs/architecture.md#a-royalty-period: periods, daily by
default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.services.jobs import PERIODIC, SEND_STATEMENTS, SETTLE, period_boundary


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "period", "start"),
    [
        (at(2026, 11, 24, 9, 1), DAY, at(2026, 11, 24)),
        (at(2026, 11, 24, 0, 0), DAY, at(2026, 11, 24)),
        (at(2026, 11, 23, 23, 59, 59), DAY, at(2026, 11, 23)),
        (at(2026, 11, 24, 9, 59), HOUR, at(2026, 11, 24, 9)),
    ],
)
def test_period_boundary(now: datetime, period: timedelta, start: datetime) -> None:
    assert period_boundary(now, period) == start


def test_the_worker_states_and_settles_every_hour() -> None:
    kinds = {item.kind: item.every for item in PERIODIC}
    assert kinds[SEND_STATEMENTS] == timedelta(hours=1)
    assert kinds[SETTLE] == timedelta(hours=1)
