"""The instance's own signing keys.

One active RSA key (HTTP signatures) and one active Ed25519 key (integrity proofs) at a
time. Retired keys stay here so that what was signed with them can still be verified.
Private keys are stored encrypted with a key derived from the instance secret.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, UTCDateTime, str_enum, utcnow


class KeyAlgorithm(StrEnum):
    RSA_2048 = "rsa-2048"
    ED25519 = "ed25519"


class InstanceKey(Base):
    __tablename__ = "instance_keys"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # The fragment of the key's id under the instance actor: "main-key", "ed25519-key".
    name: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[KeyAlgorithm] = mapped_column(str_enum(KeyAlgorithm, 16))
    public_pem: Mapped[str] = mapped_column(Text)
    private_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
