"""Where the worker's royalty jobs cut periods: statements and settlements cover whole
periods counted from midnight UTC (DESIGN.md §6.4: periods, default daily)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.jobs import PERIODIC, SEND_STATEMENTS, SETTLE, period_boundary


@pytest.mark.parametrize(
    ("now", "period", "start"),
    [
        (
            datetime(2026, 11, 24, 9, 1, tzinfo=UTC),
            timedelta(days=1),
            datetime(2026, 11, 24, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
            timedelta(days=1),
            datetime(2026, 11, 24, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC),
            timedelta(days=1),
            datetime(2026, 11, 23, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 24, 9, 59, tzinfo=UTC),
            timedelta(hours=1),
            datetime(2026, 11, 24, 9, tzinfo=UTC),
        ),
    ],
)
def test_period_boundary(now: datetime, period: timedelta, start: datetime) -> None:
    assert period_boundary(now, period) == start


def test_the_worker_states_and_settles_every_hour() -> None:
    kinds = {item.kind: item.every for item in PERIODIC}
    assert kinds[SEND_STATEMENTS] == timedelta(hours=1)
    assert kinds[SETTLE] == timedelta(hours=1)
