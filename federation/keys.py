"""Making, storing and loading the instance's keys.

RSA 2048 for HTTP signatures (what Mastodon and every other server verify) and Ed25519
for FEP-8b32 integrity proofs. Private keys are encrypted at rest with Fernet under a key
derived (HKDF-SHA256) from the instance secret (``models.sealing``), so a copy of the
database alone does not give away the instance's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.keys import InstanceKey, KeyAlgorithm
from models.sealing import sealer

RSA_KEY_NAME = "main-key"
ED25519_KEY_NAME = "ed25519-key"
KEYS_PURPOSE = b"playfair instance keys"  # the HKDF purpose of their sealing key

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class KeyDecryptionError(Exception):
    """A stored key cannot be decrypted: the instance secret is not the one it was made with."""


def encrypt_private_key(key: PrivateKey, secret: str) -> bytes:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return sealer(secret, KEYS_PURPOSE).encrypt(pem)


def decrypt_private_key(blob: bytes, secret: str) -> PrivateKey:
    try:
        pem = sealer(secret, KEYS_PURPOSE).decrypt(blob)
    except InvalidToken:
        raise KeyDecryptionError(
            "the instance keys cannot be decrypted with this instance secret"
        ) from None
    # Fernet authenticated the blob: these are the bytes we wrote when the key was made, so
    # the RSA consistency checks (~30 ms a key, paid by every process that starts) would
    # prove nothing more.
    key = serialization.load_pem_private_key(
        pem, password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyDecryptionError(f"unexpected key type {type(key).__name__}")
    return key


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def generate(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm is KeyAlgorithm.RSA_2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class InstanceKeys:
    """The active keys, decrypted, as the app and the worker hold them in memory."""

    rsa_name: str
    rsa: rsa.RSAPrivateKey
    ed25519_name: str
    ed25519: ed25519.Ed25519PrivateKey


_WANTED = ((RSA_KEY_NAME, KeyAlgorithm.RSA_2048), (ED25519_KEY_NAME, KeyAlgorithm.ED25519))


async def ensure_instance_keys(session: AsyncSession, secret: str) -> InstanceKeys:
    """Load the active keys, making the missing ones; safe when several processes race."""
    for name, algorithm in _WANTED:
        if await _active(session, algorithm) is None:
            key = generate(algorithm)
            try:
                async with session.begin_nested():
                    session.add(
                        InstanceKey(
                            name=name,
                            algorithm=algorithm,
                            public_pem=public_pem(key),
                            private_encrypted=encrypt_private_key(key, secret),
                        )
                    )
            except IntegrityError:
                pass  # another process made it first; use theirs
    await session.commit()
    return await load_instance_keys(session, secret)


async def load_instance_keys(session: AsyncSession, secret: str) -> InstanceKeys:
    rsa_row = await _active(session, KeyAlgorithm.RSA_2048)
    ed_row = await _active(session, KeyAlgorithm.ED25519)
    if rsa_row is None or ed_row is None:
        raise LookupError("the instance has no keys yet: run `playfair init`")
    rsa_key = decrypt_private_key(rsa_row.private_encrypted, secret)
    ed_key = decrypt_private_key(ed_row.private_encrypted, secret)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    return InstanceKeys(
        rsa_name=rsa_row.name, rsa=rsa_key, ed25519_name=ed_row.name, ed25519=ed_key
    )


async def _active(session: AsyncSession, algorithm: KeyAlgorithm) -> InstanceKey | None:
    return await session.scalar(
        select(InstanceKey)
        .where(InstanceKey.algorithm == algorithm, InstanceKey.retired_at.is_(None))
        .order_by(InstanceKey.id.desc())
        .limit(1)
    )


class KeyCache:
    """Decrypted RSA private keys by stored row id, so that a fan-out to thousands of
    inboxes decrypts each actor's key once per process, not once per delivery."""

    def __init__(self) -> None:
        self._keys: dict[int, rsa.RSAPrivateKey] = {}

    def private(self, row_id: int, blob: bytes, secret: str) -> rsa.RSAPrivateKey:
        key = self._keys.get(row_id)
        if key is None:
            loaded = decrypt_private_key(blob, secret)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise KeyDecryptionError("an actor key is not an RSA key")
            key = self._keys[row_id] = loaded
        return key
