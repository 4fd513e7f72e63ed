"""Sealing small secrets at rest with the instance secret: Fernet (AES-128-CBC and
HMAC-SHA-256) under a key derived from the secret by HKDF-SHA-256 with a purpose string,
so that each kind of secret has a key of its own and a copy of the database alone opens
none of them."""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@functools.lru_cache(maxsize=16)
def sealer(secret: str, purpose: bytes) -> Fernet:
    """The Fernet that seals and opens the secrets of ``purpose`` (say, ``b"playfair
    instance keys"``) under the instance ``secret``. ``Fernet.decrypt`` raises
    ``cryptography.fernet.InvalidToken`` for a blob sealed under another secret."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))
