"""FEP-8b32 Object Integrity Proofs with the ``eddsa-jcs-2022`` cryptosuite, as pure functions.

The construction (W3C Data Integrity EdDSA Cryptosuites v1.0, §3.3 "eddsa-jcs-2022",
https://www.w3.org/TR/vc-di-eddsa/#eddsa-jcs-2022; FEP-8b32,
https://codeberg.org/fediverse/fep/src/branch/main/fep/8b32/fep-8b32.md):

* the proof options are ``type`` ``DataIntegrityProof``, ``cryptosuite`` ``eddsa-jcs-2022``,
  ``verificationMethod``, ``proofPurpose`` and ``created``, plus the document's
  ``@context`` when it has one (Create Proof, step 2);
* ``hashData = SHA-256(JCS(proof options)) || SHA-256(JCS(document without "proof"))``,
  JCS being the JSON Canonicalization Scheme of RFC 8785;
* ``proofValue = "z" + base58btc(Ed25519(hashData))`` (a 64-byte signature, as Multibase).

Verification undoes the same steps with the proof as received (minus ``proofValue``); a
proof that carries ``@context`` requires the document's ``@context`` to start with it
(Verify Proof, step 4). Keys are FEP-521a / W3C Multikey strings
(``"z" + base58btc(0xed 0x01 + 32-byte key)``). Nothing here does I/O: callers fetch keys
before verifying and hand a synchronous ``resolve_key`` over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from federation.discovery import base58btc

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
ASSERTION_METHOD = "assertionMethod"
_ED25519_PUB_MULTICODEC = b"\xed\x01"
_SIGNATURE_LENGTH = 64
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {character: index for index, character in enumerate(_BASE58_ALPHABET)}


class ProofError(Exception):
    """The proof is missing or does not hold; str() says why."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical form of a JSON value, as UTF-8 bytes.

    Raises ``ValueError`` (rfc8785's ``CanonicalizationError``) for what JCS cannot
    represent: NaN or infinite floats, integers beyond ±(2**53 - 1), lone surrogates,
    non-string keys.
    """
    return rfc8785.dumps(value)


def base58btc_decode(text: str) -> bytes:
    """The inverse of :func:`federation.discovery.base58btc` (Bitcoin alphabet).

    Raises ``ValueError`` on a character outside the alphabet.
    """
    number = 0
    for character in text:
        digit = _BASE58_INDEX.get(character)
        if digit is None:
            raise ValueError(f"{character!r} is not a base58btc character")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def multikey_public(multibase: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its Multikey form: 'z' + base58btc(0xed01 + 32 bytes)."""
    if not isinstance(multibase, str) or not multibase.startswith("z"):
        raise ProofError("a Multikey is a base58btc multibase string starting with 'z'")
    try:
        raw = base58btc_decode(multibase[1:])
    except ValueError as error:
        raise ProofError(f"the Multikey is not base58btc: {error}") from None
    if not raw.startswith(_ED25519_PUB_MULTICODEC):
        raise ProofError(f"the Multikey is not an Ed25519 public key (multicodec {raw[:2].hex()})")
    if len(raw) != len(_ED25519_PUB_MULTICODEC) + 32:
        raise ProofError(f"an Ed25519 public key has 32 bytes, this one {len(raw) - 2}")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def _xsd_datetime(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("'created' must be an aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash_data(proof_config: dict[str, Any], unsecured: dict[str, Any]) -> bytes:
    """Hashing (eddsa-jcs-2022): SHA-256 of the proof configuration, then of the document."""
    return (
        hashlib.sha256(canonical_json(proof_config)).digest()
        + hashlib.sha256(canonical_json(unsecured)).digest()
    )


def sign_object(
    document: dict[str, Any],
    private_key: Ed25519PrivateKey,
    verification_method: str,
    *,
    created: datetime,
    proof_purpose: str = ASSERTION_METHOD,
) -> dict[str, Any]:
    """A new document: ``document`` with an ``eddsa-jcs-2022`` proof under ``"proof"``.

    ``created`` must be timezone-aware; it is written in UTC to the second. As the
    specification strongly advises (Create Proof, step 2), the proof repeats the document's
    ``@context`` when there is one, so the signed document is byte for byte the one
    FEP-8b32's and the W3C's test vectors show. A document that already has a proof is
    refused (``ValueError``): proof sets and chains are not needed here.
    """
    if "proof" in document:
        raise ValueError("the document already carries a proof")
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
        "created": _xsd_datetime(created),
    }
    if "@context" in document:
        proof["@context"] = document["@context"]
    signature = private_key.sign(_hash_data(proof, document))
    return {**document, "proof": {**proof, "proofValue": "z" + base58btc(signature)}}


def _select_proof(document: dict[str, Any]) -> dict[str, Any]:
    proof = document.get("proof")
    if proof is None:
        raise ProofError("the document has no proof")
    if isinstance(proof, list):
        # A proof set: the first eddsa-jcs-2022 proof is the one we check; others are
        # ignored (each member of a set signs the document without any of the proofs).
        for candidate in proof:
            if isinstance(candidate, dict) and candidate.get("cryptosuite") == CRYPTOSUITE:
                return candidate
        raise ProofError(f"the document has no {CRYPTOSUITE} proof")
    if not isinstance(proof, dict):
        raise ProofError("the proof is not an object")
    return proof


def _as_list(context: Any) -> list[Any]:
    return context if isinstance(context, list) else [context]


def verify_object(
    document: dict[str, Any],
    resolve_key: Callable[[str], Ed25519PublicKey | None],
    *,
    expected_controller: str | None = None,
    purpose: str = ASSERTION_METHOD,
) -> str:
    """Check the document's ``eddsa-jcs-2022`` proof; return the verificationMethod id.

    ``resolve_key`` maps a verificationMethod id to the public key it names, or ``None``
    when unknown. ``expected_controller``, when given, must equal the verificationMethod
    id without its fragment (the actor whose key it is). If ``"proof"`` is a list (a proof
    set), the first proof with cryptosuite ``eddsa-jcs-2022`` is verified. Raises
    :class:`ProofError` saying why the proof does not hold.

    A proof without ``@context`` is checked as the current specification says (the proof
    options as they are) and, failing that, with the document's ``@context`` added to the
    proof configuration, as the 2023 drafts that FEP-8b32 implementations followed did.
    Both forms bind the same document and the same proof options.
    """
    proof = _select_proof(document)
    if proof.get("type") != PROOF_TYPE:
        raise ProofError(f"unsupported proof type {proof.get('type')!r}")
    if proof.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(f"unsupported cryptosuite {proof.get('cryptosuite')!r}")
    if proof.get("proofPurpose") != purpose:
        raise ProofError(f"the proof purpose is {proof.get('proofPurpose')!r}, not {purpose!r}")
    method = proof.get("verificationMethod")
    if not isinstance(method, str) or not method:
        raise ProofError("the proof names no verificationMethod")
    controller = method.split("#", 1)[0]
    if expected_controller is not None and controller != expected_controller:
        raise ProofError(f"the key {method} does not belong to {expected_controller}")
    created = proof.get("created")
    if created is not None:
        try:
            datetime.fromisoformat(created)
        except (TypeError, ValueError):
            raise ProofError(f"'created' is not a date-time: {created!r}") from None
    proof_value = proof.get("proofValue")
    if not isinstance(proof_value, str) or not proof_value.startswith("z"):
        raise ProofError("the proofValue is not a base58btc multibase string")
    try:
        signature = base58btc_decode(proof_value[1:])
    except ValueError as error:
        raise ProofError(f"the proofValue is not base58btc: {error}") from None
    if len(signature) != _SIGNATURE_LENGTH:
        raise ProofError(f"an Ed25519 signature has 64 bytes, this one {len(signature)}")
    key = resolve_key(method)
    if key is None:
        raise ProofError(f"unknown key {method}")

    unsecured = {name: value for name, value in document.items() if name != "proof"}
    options = {name: value for name, value in proof.items() if name != "proofValue"}
    configs = [options]
    if "@context" in options:
        proof_context = _as_list(options["@context"])
        document_context = _as_list(document.get("@context", []))
        if document_context[: len(proof_context)] != proof_context:
            raise ProofError("the document's @context does not start with the proof's")
        unsecured["@context"] = options["@context"]
    elif "@context" in document:
        configs.append({**options, "@context": document["@context"]})

    for config in configs:
        try:
            hash_data = _hash_data(config, unsecured)
        except ValueError as error:
            raise ProofError(f"the document cannot be canonicalised: {error}") from None
        try:
            key.verify(signature, hash_data)
        except InvalidSignature:
            continue
        return method
    raise ProofError(f"the signature does not match the document (key {method})")
