"""A call's parameters (query string and, by OpenSubsonic's ``formPost``, a form body),
read with Subsonic's errors: a missing one is code 10, a malformed one code 0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from subsonic.errors import Code, SubsonicError, missing

TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}
MAX_VALUES = 1000  # repeated parameters (ids of a playlist, say) one call may carry
INT64_MAX = 2**63 - 1  # what the database's integers hold


@dataclass(frozen=True)
class Params:
    values: Mapping[str, Sequence[str]]

    def all(self, name: str) -> list[str]:
        found = list(self.values.get(name, ()))
        if len(found) > MAX_VALUES:
            raise SubsonicError(Code.GENERIC, f"at most {MAX_VALUES} values of {name!r}")
        return found

    def get(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[0] if found else None

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None or value == "":
            raise missing(name)
        return value

    def integer(self, name: str, default: int | None = None, *, low: int | None = None,
            high: int | None = None) -> int | None:  # fmt: skip
        """An integer; ``high`` caps it (a size of 10,000 is read as the cap), ``low`` refuses."""
        text = self.get(name)
        if text is None or text == "":
            return default
        digits = text.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 100:
            raise SubsonicError(Code.GENERIC, f"{name!r} must be an integer")
        value = int(text)
        if high is not None and value > high:
            return high  # a page size or offset past the cap reads as the cap
        if abs(value) > INT64_MAX:
            raise SubsonicError(Code.GENERIC, f"{name!r} is out of range")
        if low is not None and value < low:
            raise SubsonicError(Code.GENERIC, f"{name!r} must be at least {low}")
        return min(value, high) if high is not None else value

    def required_integer(
        self, name: str, *, low: int | None = None, high: int | None = None
    ) -> int:
        value = self.integer(name, low=low, high=high)
        if value is None:
            raise missing(name)
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        text = self.get(name)
        if text is None or text == "":
            return default
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise SubsonicError(Code.GENERIC, f"{name!r} must be true or false")
