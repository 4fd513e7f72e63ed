from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from sqlalchemy import func, select

from federation.keys import (
    KeyDecryptionError,
    ensure_instance_keys,
    load_instance_keys,
)
from models.keys import InstanceKey
from server.runtime.resources import Resources
from tests.conftest import TEST_SECRET


async def test_keys_are_made_once_and_stored_encrypted(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        again = await ensure_instance_keys(session, TEST_SECRET)
        rows = (await session.scalars(select(InstanceKey))).all()
    assert len(rows) == 2
    assert {row.name for row in rows} == {"main-key", "ed25519-key"}
    # the keys the app holds are the stored ones
    assert again.rsa.private_numbers() == resources.keys.rsa.private_numbers()
    for row in rows:
        assert b"PRIVATE KEY" not in row.private_encrypted
        assert "PUBLIC KEY" in row.public_pem
    assert isinstance(resources.keys.rsa, rsa.RSAPrivateKey)
    assert resources.keys.rsa.key_size == 2048
    assert isinstance(resources.keys.ed25519, ed25519.Ed25519PrivateKey)


async def test_public_key_matches_the_private_key(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        row = await session.scalar(select(InstanceKey).where(InstanceKey.name == "main-key"))
    assert row is not None
    public = serialization.load_pem_public_key(row.public_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    signature = resources.keys.rsa.sign(b"hello", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"hello", padding.PKCS1v15(), hashes.SHA256())


async def test_a_wrong_secret_cannot_load_the_keys(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        with pytest.raises(KeyDecryptionError, match="cannot be decrypted"):
            await load_instance_keys(session, "another-secret-" + "y" * 40)
        # and nothing was changed by the failed attempt
        assert await session.scalar(select(func.count()).select_from(InstanceKey)) == 2
