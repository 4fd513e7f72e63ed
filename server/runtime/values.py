"""Plain values read from text (query strings, form fields, activities), the one way each."""

from __future__ import annotations

from federation import safejson


def whole_number(text: str | None, *, low: int = 0, high: int = safejson.INT64_MAX) -> int | None:
    """``text`` as a whole number from ``low`` to ``high``, or None. Only ASCII digits (and
    a leading minus where ``low`` is negative) count: ``str.isdigit`` also takes "²",
    which ``int`` refuses, and ``int`` alone takes "1_000", " 7 " and 4000 digits."""
    if not text or not text.isascii():
        return None
    digits = text[1:] if text.startswith("-") and low < 0 else text
    if not digits.isdigit() or len(digits) > len(str(safejson.INT64_MAX)):
        return None
    value = int(text)
    return value if low <= value <= high else None
