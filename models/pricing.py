"""Stream-to-own prices and the per-play split, as pure integer arithmetic
(docs/architecture.md#money-stream-to-own).

Play n (n = earlier paid plays of the track by the listener) costs 2^(n+1) tokens for n
in 0..8: 2, 4, 8, …, 512, 1022 in all; after the ninth paid play the listener owns the
track. Buying now costs what is left of 1022.
"""

from __future__ import annotations

PAID_PLAYS_TO_OWN = 9
FULL_PRICE = (1 << (PAID_PLAYS_TO_OWN + 1)) - 2  # 1022
BASIS_POINTS = 10_000


def play_cost(paid_plays_before: int) -> int:
    if paid_plays_before < 0:
        raise ValueError("a play count is never negative")
    return 1 << (paid_plays_before + 1) if paid_plays_before < PAID_PLAYS_TO_OWN else 0


def paid_so_far(paid_plays: int) -> int:
    """What plays 1..paid_plays cost together."""
    return sum(play_cost(n) for n in range(min(paid_plays, PAID_PLAYS_TO_OWN)))


def buy_now_cost(paid_plays_before: int) -> int:
    return FULL_PRICE - paid_so_far(paid_plays_before)


def plays_until_owned(paid_plays: int) -> int:
    return max(PAID_PLAYS_TO_OWN - paid_plays, 0)


def share_of(gross: int, share_bp: int) -> int:
    """floor(gross × share) with the share in basis points (7000 = 70 %)."""
    return gross * share_bp // BASIS_POINTS


def split(gross_before: int, amount: int, share_bp: int) -> tuple[int, int]:
    """(to the payee, to the instance) for ``amount`` more on top of ``gross_before``.

    The payee's running total is always floor(gross so far × share), so rounding never
    makes or loses a token over any number of plays: a 2-token play may credit 1 or 2.
    """
    to_payee = share_of(gross_before + amount, share_bp) - share_of(gross_before, share_bp)
    return to_payee, amount - to_payee
