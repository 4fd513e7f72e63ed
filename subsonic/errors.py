"""Subsonic's error codes (API 1.16.1, plus OpenSubsonic's 42–44), and the one exception
that carries them to the envelope."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    GENERIC = 0
    MISSING_PARAMETER = 10
    CLIENT_TOO_OLD = 20
    SERVER_TOO_OLD = 30
    WRONG_CREDENTIALS = 40
    TOKEN_AUTH_UNSUPPORTED = 41  # for LDAP users: not used here, app passwords take tokens
    AUTH_MECHANISM_UNSUPPORTED = 42
    CONFLICTING_AUTH = 43
    INVALID_API_KEY = 44
    NOT_AUTHORIZED = 50
    TRIAL_OVER = 60  # never used: nothing here expires
    NOT_FOUND = 70


class SubsonicError(Exception):
    """A failed call: answered as ``<error code=… message=…/>`` with ``status="failed"``."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def missing(name: str) -> SubsonicError:
    return SubsonicError(Code.MISSING_PARAMETER, f"required parameter {name!r} is missing")


def not_found(what: str) -> SubsonicError:
    return SubsonicError(Code.NOT_FOUND, f"{what} not found")
