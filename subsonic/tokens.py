"""The classic Subsonic credentials: ``t`` = md5(password + ``s``), or the password in
``p`` (plain, or ``enc:`` and its UTF-8 bytes in hex)."""

from __future__ import annotations

import hashlib
import hmac

from subsonic.errors import Code, SubsonicError

MIN_SALT = 6  # the specification asks for at least six characters of salt
MAX_SALT = 64


def token_matches(password: str, salt: str, token: str) -> bool:
    expected = hashlib.md5((password + salt).encode(), usedforsecurity=False).hexdigest()
    # as bytes: compare_digest refuses str with anything but ASCII (a hostile token)
    return hmac.compare_digest(expected.encode(), token.strip().lower().encode())


def check_salt(salt: str) -> None:
    if not MIN_SALT <= len(salt) <= MAX_SALT:
        raise SubsonicError(
            Code.WRONG_CREDENTIALS, f"the salt must be {MIN_SALT} to {MAX_SALT} characters"
        )


def decode_password(value: str) -> str:
    if not value.startswith("enc:"):
        return value
    try:
        return bytes.fromhex(value[4:]).decode()
    except (ValueError, UnicodeDecodeError):
        raise SubsonicError(
            Code.WRONG_CREDENTIALS, "the encoded password is not hex UTF-8"
        ) from None
