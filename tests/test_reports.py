"""The accountant's reports: a table of kinds, each with its builder."""

from __future__ import annotations

from datetime import date

import pytest

from server.runtime.resources import Resources
from server.services.reports import BUILDERS, ReportKind, report

HEADERS = {
    ReportKind.PLAYS: "transaction,at,track_id,track,artist,outcome,paid_play,tokens",
    ReportKind.EARNINGS: "account,earned_tokens,earned_cents,paid_out_tokens,currency",
    ReportKind.TOP_UPS: "transaction,at,method,tokens,amount_cents,rate_tokens,rate_cents,currency",
    ReportKind.PAYOUTS: (
        "transaction,paid_at,artist,tokens,amount_cents,currency,rate_tokens,rate_cents"
    ),
}


def test_every_kind_has_a_builder() -> None:
    assert set(BUILDERS) == set(ReportKind) == set(HEADERS)


def test_kinds_are_named_as_in_their_urls() -> None:
    assert [kind.value for kind in ReportKind] == ["plays", "earnings", "top-ups", "payouts"]
    with pytest.raises(ValueError, match="secrets"):
        ReportKind("secrets")


@pytest.mark.parametrize("kind", list(ReportKind))
async def test_each_report_of_an_empty_period_is_its_header(
    resources: Resources, kind: ReportKind
) -> None:
    async with resources.read_sessionmaker() as session:
        text = await report(
            session, kind, date(2026, 1, 1), date(2026, 1, 31), resources.settings.money
        )
    assert text == HEADERS[kind] + "\n"
