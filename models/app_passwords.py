"""App passwords: what a listener types into a Subsonic app (DSub, Symfonium …) instead
of the account password, one per app, each revocable on its own.

The classic Subsonic log-in sends ``t`` = md5(password + salt) with a fresh salt, so the
server must know the password itself, not a hash of it: each app password is kept sealed
with the instance secret (:mod:`models.sealing`, purpose :data:`SEALING_PURPOSE`), so a
copy of the database alone opens none of them. They are made here, at random (about 99
bits), never chosen by the listener; the account password is never one of them.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, UTCDateTime, utcnow

SEALING_PURPOSE = b"playfair app passwords"
# Lower-case letters and digits, less those one misreads or mistypes on a phone
# (i l 1 o 0): 31 symbols, about 4.95 bits each.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GROUPS, GROUP_LENGTH = 4, 5  # 20 symbols: about 99 bits
SEPARATOR = "-"
NAME_LENGTH = 100


def new_app_password() -> str:
    """A fresh app password, in groups: ``k7rmq-xe2pa-9tnwd-hu4cf``."""
    return SEPARATOR.join(
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)
    )


def spellings(password: str) -> tuple[str, ...]:
    """The forms of a stored app password an app may have been given: as shown, and
    without the separators (some people type it that way)."""
    return (password, password.replace(SEPARATOR, ""))


def normalise_typed(password: str) -> str:
    """A password sent in the clear (``p``), as typed: case, spaces and separators
    aside, compared with the stored one without separators."""
    return "".join(ch for ch in password.lower() if ch not in f"{SEPARATOR} \t")


class AppPassword(Base):
    __tablename__ = "app_passwords"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))  # the app it is for: "Phone"
    password_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # Fernet, SEALING_PURPOSE
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


__all__ = ["AppPassword", "new_app_password", "normalise_typed", "spellings"]
