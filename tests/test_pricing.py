from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.pricing import (
    FULL_PRICE,
    buy_now_cost,
    paid_so_far,
    play_cost,
    plays_until_owned,
    share_of,
    split,
)


def test_the_price_table() -> None:
    assert [play_cost(n) for n in range(11)] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 0, 0]
    assert FULL_PRICE == 1022 == paid_so_far(9) == paid_so_far(20)
    assert [buy_now_cost(n) for n in (0, 1, 5, 8, 9)] == [1022, 1020, 960, 512, 0]
    assert [plays_until_owned(n) for n in (0, 4, 9, 12)] == [9, 5, 0, 0]
    with pytest.raises(ValueError, match="never negative"):
        play_cost(-1)


def test_split_examples() -> None:
    assert split(0, 2, 7000) == (1, 1)  # floor(1.4) = 1
    assert split(2, 4, 7000) == (3, 1)  # floor(4.2) - 1 = 3
    assert split(0, 1022, 7000) == (715, 307)


@given(st.lists(st.integers(0, 600), max_size=60), st.integers(0, 10_000))
def test_split_never_makes_or_loses_a_token(amounts: list[int], share_bp: int) -> None:
    gross = credited = 0
    for amount in amounts:
        to_payee, to_instance = split(gross, amount, share_bp)
        assert to_payee >= 0 and to_instance >= 0
        assert to_payee + to_instance == amount
        gross += amount
        credited += to_payee
        assert credited == share_of(gross, share_bp)
