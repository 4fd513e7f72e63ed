"""FEP-8b32 integrity proofs (eddsa-jcs-2022): published test vectors, every refusal, JCS."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.discovery import base58btc, ed25519_multikey
from federation.proofs import (
    ProofError,
    base58btc_decode,
    canonical_json,
    multikey_public,
    sign_object,
    verify_object,
)

# --- Published test vectors -------------------------------------------------------------
#
# The key pair of W3C "Data Integrity EdDSA Cryptosuites v1.0", copied from
# github.com/w3c/vc-di-eddsa TestVectors/keyPair.json (commit abb673eb9df6…), also
# used by FEP-8b32's test vectors. The secret key is a Multikey with the ed25519-priv
# multicodec (0x1300, varint 0x80 0x26) before the 32-byte seed.
SPEC_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
SPEC_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
SPEC_CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)

# W3C vc-di-eddsa §"Representation: eddsa-jcs-2022" (https://www.w3.org/TR/vc-di-eddsa/),
# copied from github.com/w3c/vc-di-eddsa TestVectors/eddsa-jcs-2022/signedJCS.json and the
# intermediate files next to it (canonDocJCS.txt, proofCanonJCS.txt, docHashJCS.txt,
# proofHashJCS.txt, sigHexJCS.txt, sigBTC58JCS.txt), commit abb673eb9df6….
W3C_SIGNED_JCS = """{
  "@context": [
    "https://www.w3.org/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/examples/v2"
  ],
  "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
  "type": [
    "VerifiableCredential",
    "AlumniCredential"
  ],
  "name": "Alumni Credential",
  "description": "A minimum viable example of an Alumni Credential.",
  "issuer": "https://vc.example/issuers/5678",
  "validFrom": "2023-01-01T00:00:00Z",
  "credentialSubject": {
    "id": "did:example:abcdefgh",
    "alumniOf": "The School of Examples"
  },
  "proof": {
    "type": "DataIntegrityProof",
    "cryptosuite": "eddsa-jcs-2022",
    "created": "2023-02-24T23:36:38Z",
    "verificationMethod": "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
    "proofPurpose": "assertionMethod",
    "@context": [
      "https://www.w3.org/ns/credentials/v2",
      "https://www.w3.org/ns/credentials/examples/v2"
    ],
    "proofValue": "z2HnFSSPPBzR36zdDgK8PbEHeXbR56YF24jwMpt3R1eHXQzJDMWS93FCzpvJpwTWd3GAVFuUfjoJdcnTMuVor51aX"
  }
}"""  # noqa: E501
W3C_CANON_DOC = (
    '{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/'
    'examples/v2"],"credentialSubject":{"alumniOf":"The School of Examples","id":"did:example:'
    'abcdefgh"},"description":"A minimum viable example of an Alumni Credential.","id":"urn:uuid:'
    '58172aac-d8ba-11ed-83dd-0b3aef56cc33","issuer":"https://vc.example/issuers/5678","name":'
    '"Alumni Credential","type":["VerifiableCredential","AlumniCredential"],"validFrom":'
    '"2023-01-01T00:00:00Z"}'
)
W3C_CANON_PROOF_CONFIG = (
    '{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/'
    'examples/v2"],"created":"2023-02-24T23:36:38Z","cryptosuite":"eddsa-jcs-2022",'
    '"proofPurpose":"assertionMethod","type":"DataIntegrityProof","verificationMethod":'
    '"did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6p'
    'vBQ7XJPt4swbTQ2"}'
)
W3C_DOC_HASH = "59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19"
W3C_PROOF_HASH = "66ab154f5c2890a140cb8388a22a160454f80575f6eae09e5a097cabe539a1db"
W3C_SIGNATURE_HEX = (
    "407cd12654b33d718ecbb99179a1506daaa849450bf3fc523cce3e1c96f8b803"
    "51da3f253d725c6f00b07c9e5448d50b3ef78012b9ab54255116d069c6dd2808"
)

# FEP-8b32's own vector, "Signing document" / "Verifying a signature" in
# fep/8b32/fep-8b32.feature (codeberg.org/fediverse/fep), copied from the GitHub mirror
# julianlam/feps: the data-integrity/v2 version at commit 029288dcd11d… and the
# earlier data-integrity/v1 version at commit 6b746b572e17…. The two differ only in the
# second @context entry and, therefore, in the proofValue.
FEP_VECTORS = {
    "https://w3id.org/security/data-integrity/v2": (
        "z42ffGu6AUKPCFcFPiabmUvnGLPJzC7e4DGWC52NUasSSH37UMa9c58tdgVszUcZfytxa4fQ5TYHaJENCxUDe9SdL"
    ),
    "https://w3id.org/security/data-integrity/v1": (
        "zLaewdp4H9kqtwyrLatK4cjY5oRHwVcw4gibPSUDYDMhi4M49v8pcYk3ZB6D69dNpAPbUmY8ocuJ3m9KhKJEEg7z"
    ),
}
FEP_KEY_ID = "https://server.example/users/alice#ed25519-key"
FEP_DOCUMENT = """{
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "%(context)s"
    ],
    "id": "https://server.example/activities/1",
    "type": "Create",
    "actor": "https://server.example/users/alice",
    "object": {
        "id": "https://server.example/objects/1",
        "type": "Note",
        "attributedTo": "https://server.example/users/alice",
        "content": "Hello world",
        "location": {
            "type": "Place",
            "longitude": -71.184902,
            "latitude": 25.273962
        }
    }
}"""
FEP_SIGNED_DOCUMENT = """{
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "%(context)s"
    ],
    "id": "https://server.example/activities/1",
    "type": "Create",
    "actor": "https://server.example/users/alice",
    "object": {
        "id": "https://server.example/objects/1",
        "type": "Note",
        "attributedTo": "https://server.example/users/alice",
        "content": "Hello world",
        "location": {
            "type": "Place",
            "longitude": -71.184902,
            "latitude": 25.273962
        }
    },
    "proof": {
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            "%(context)s"
        ],
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": "https://server.example/users/alice#ed25519-key",
        "proofPurpose": "assertionMethod",
        "proofValue": "%(proof_value)s",
        "created": "2023-02-24T23:36:38Z"
    }
}"""


def spec_private_key() -> Ed25519PrivateKey:
    raw = base58btc_decode(SPEC_SECRET[1:])
    assert raw[:2] == b"\x80\x26"  # ed25519-priv
    return Ed25519PrivateKey.from_private_bytes(raw[2:])


def resolver(keys: dict[str, Ed25519PublicKey]) -> Callable[[str], Ed25519PublicKey | None]:
    return keys.get


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_spec_secret_key_gives_spec_public_key() -> None:
    public = spec_private_key().public_key()
    assert ed25519_multikey(raw_public(public)) == SPEC_PUBLIC
    assert raw_public(multikey_public(SPEC_PUBLIC)) == raw_public(public)


def test_w3c_vector_intermediate_values() -> None:
    signed = json.loads(W3C_SIGNED_JCS)
    unsecured = {k: v for k, v in signed.items() if k != "proof"}
    config = {k: v for k, v in signed["proof"].items() if k != "proofValue"}
    assert canonical_json(unsecured) == W3C_CANON_DOC.encode()
    assert canonical_json(config) == W3C_CANON_PROOF_CONFIG.encode()
    assert hashlib.sha256(canonical_json(unsecured)).hexdigest() == W3C_DOC_HASH
    assert hashlib.sha256(canonical_json(config)).hexdigest() == W3C_PROOF_HASH
    signature = bytes.fromhex(W3C_SIGNATURE_HEX)
    assert signed["proof"]["proofValue"] == "z" + base58btc(signature)
    assert base58btc_decode(signed["proof"]["proofValue"][1:]) == signature


def test_w3c_vector_verifies() -> None:
    signed = json.loads(W3C_SIGNED_JCS)
    method = signed["proof"]["verificationMethod"]
    keys = resolver({method: multikey_public(SPEC_PUBLIC)})
    assert verify_object(signed, keys) == method
    assert verify_object(signed, keys, expected_controller=f"did:key:{SPEC_PUBLIC}") == method


def test_w3c_vector_sign_reproduces_byte_for_byte() -> None:
    signed = json.loads(W3C_SIGNED_JCS)
    unsecured = {k: v for k, v in signed.items() if k != "proof"}
    ours = sign_object(
        unsecured,
        spec_private_key(),
        signed["proof"]["verificationMethod"],
        created=SPEC_CREATED,
    )
    assert ours["proof"]["proofValue"] == signed["proof"]["proofValue"]
    assert ours == signed
    assert canonical_json(ours) == canonical_json(signed)


@pytest.mark.parametrize("context", sorted(FEP_VECTORS))
def test_fep_vector_verifies(context: str) -> None:
    signed = json.loads(
        FEP_SIGNED_DOCUMENT % {"context": context, "proof_value": FEP_VECTORS[context]}
    )
    keys = resolver({FEP_KEY_ID: multikey_public(SPEC_PUBLIC)})
    assert (
        verify_object(signed, keys, expected_controller="https://server.example/users/alice")
        == FEP_KEY_ID
    )


@pytest.mark.parametrize("context", sorted(FEP_VECTORS))
def test_fep_vector_sign_reproduces_byte_for_byte(context: str) -> None:
    document = json.loads(FEP_DOCUMENT % {"context": context})
    expected = json.loads(
        FEP_SIGNED_DOCUMENT % {"context": context, "proof_value": FEP_VECTORS[context]}
    )
    ours = sign_object(document, spec_private_key(), FEP_KEY_ID, created=SPEC_CREATED)
    assert ours["proof"]["proofValue"] == FEP_VECTORS[context]
    assert canonical_json(ours) == canonical_json(expected)


# --- Our own documents: every rule ------------------------------------------------------

ACTOR = "https://a.example/actor"
KEY_ID = f"{ACTOR}#ed25519-key"
CREATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def statement() -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://playfair.example/ns"],
        "id": "https://a.example/statements/7",
        "type": "RoyaltyStatement",
        "payer": ACTOR,
        "payee": "https://b.example/actor",
        "lines": [
            {"track": "https://b.example/tracks/1", "plays": 12, "owed": {"tokens": 30}},
            {"track": "https://b.example/tracks/2", "plays": 1, "owed": {"tokens": 4}},
        ],
        "note": "Grüße — 音楽",
    }


def signed_statement(purpose: str = "assertionMethod") -> dict[str, Any]:
    return sign_object(statement(), PRIVATE, KEY_ID, created=CREATED, proof_purpose=purpose)


def our_keys() -> Callable[[str], Ed25519PublicKey | None]:
    return resolver({KEY_ID: PRIVATE.public_key()})


def any_id_is_our_key(_: str) -> Ed25519PublicKey:
    return PRIVATE.public_key()


def test_round_trip() -> None:
    document = statement()
    signed = sign_object(document, PRIVATE, KEY_ID, created=CREATED)
    assert document == statement()  # the input is not touched
    assert set(signed["proof"]) == {
        "@context",
        "type",
        "cryptosuite",
        "verificationMethod",
        "proofPurpose",
        "created",
        "proofValue",
    }
    assert signed["proof"]["created"] == "2026-03-01T12:00:00Z"
    assert signed["proof"]["type"] == "DataIntegrityProof"
    assert signed["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert verify_object(signed, our_keys(), expected_controller=ACTOR) == KEY_ID
    # key order and whitespace are not part of what is signed
    reordered = json.loads(json.dumps(dict(reversed(signed.items())), indent=3))
    assert verify_object(reordered, our_keys()) == KEY_ID


def test_hash_built_by_hand_matches() -> None:
    """An independent path: build hashData by hand and check the signature with it."""
    signed = signed_statement()
    proof = dict(signed["proof"])
    signature = base58btc_decode(proof.pop("proofValue")[1:])
    body = {k: v for k, v in signed.items() if k != "proof"}
    hash_data = (
        hashlib.sha256(canonical_json(proof)).digest()
        + hashlib.sha256(canonical_json(body)).digest()
    )
    PRIVATE.public_key().verify(signature, hash_data)
    assert PRIVATE.sign(hash_data) == signature


def test_created_is_utc_to_the_second_and_must_be_aware() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 3, 1, 14, 0, 0, 999_999, tzinfo=plus_two)
    signed = sign_object(statement(), PRIVATE, KEY_ID, created=moment)
    assert signed["proof"]["created"] == "2026-03-01T12:00:00Z"
    with pytest.raises(ValueError, match="aware"):
        sign_object(statement(), PRIVATE, KEY_ID, created=datetime(2026, 3, 1))  # noqa: DTZ001


def test_sign_refuses_a_document_with_a_proof() -> None:
    with pytest.raises(ValueError, match="already"):
        sign_object(signed_statement(), PRIVATE, KEY_ID, created=CREATED)


def test_document_without_context() -> None:
    document = {"type": "Note", "content": "no context"}
    signed = sign_object(document, PRIVATE, KEY_ID, created=CREATED)
    assert "@context" not in signed["proof"]
    assert verify_object(signed, our_keys()) == KEY_ID


def test_nested_change_after_signing() -> None:
    signed = signed_statement()
    signed["lines"][1]["owed"]["tokens"] = 40
    with pytest.raises(ProofError, match="signature does not match"):
        verify_object(signed, our_keys())


def test_added_field_after_signing() -> None:
    signed = signed_statement()
    signed["cc"] = ["https://hub.example/actor"]
    with pytest.raises(ProofError, match="signature does not match"):
        verify_object(signed, our_keys())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("created", "2026-03-01T12:00:01Z"),
        ("verificationMethod", f"{ACTOR}#other-key"),
        ("@context", ["https://www.w3.org/ns/activitystreams"]),
    ],
)
def test_proof_options_changed(name: str, value: Any) -> None:
    signed = signed_statement()
    signed["proof"][name] = value
    # the resolver answers with the right key for any id, so only the signature can fail
    with pytest.raises(ProofError, match="signature does not match"):
        verify_object(signed, any_id_is_our_key)


def test_extra_proof_option_added() -> None:
    signed = signed_statement()
    signed["proof"]["expires"] = "2030-01-01T00:00:00Z"
    with pytest.raises(ProofError, match="signature does not match"):
        verify_object(signed, our_keys())


@pytest.mark.parametrize(
    ("proof_value", "message"),
    [
        (None, "not a base58btc multibase"),
        (42, "not a base58btc multibase"),
        ("uAAAA", "not a base58btc multibase"),  # base64url multibase
        ("z0OIl", "not base58btc"),  # characters outside the alphabet
        ("z" + base58btc(bytes(62) + b"\x01"), "64 bytes, this one 63"),
        ("z" + base58btc(b"\x01" * 65), "64 bytes, this one 65"),
        ("z", "64 bytes, this one 0"),
    ],
)
def test_malformed_proof_value(proof_value: Any, message: str) -> None:
    signed = signed_statement()
    signed["proof"]["proofValue"] = proof_value
    with pytest.raises(ProofError, match=message):
        verify_object(signed, our_keys())


def test_truncated_proof_value() -> None:
    signed = signed_statement()
    signed["proof"]["proofValue"] = signed["proof"]["proofValue"][:-3]
    with pytest.raises(ProofError, match="64 bytes"):
        verify_object(signed, our_keys())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("cryptosuite", "eddsa-rdfc-2022", "unsupported cryptosuite"),
        ("cryptosuite", "jcs-eddsa-2022", "unsupported cryptosuite"),
        ("type", "Ed25519Signature2020", "unsupported proof type"),
    ],
)
def test_wrong_type_or_cryptosuite(name: str, value: str, message: str) -> None:
    signed = signed_statement()
    signed["proof"][name] = value
    with pytest.raises(ProofError, match=message):
        verify_object(signed, our_keys())


def test_wrong_purpose() -> None:
    signed = signed_statement(purpose="authentication")
    with pytest.raises(ProofError, match="purpose"):
        verify_object(signed, our_keys())
    assert verify_object(signed, our_keys(), purpose="authentication") == KEY_ID
    with pytest.raises(ProofError, match="purpose"):
        verify_object(signed_statement(), our_keys(), purpose="authentication")


def test_unknown_key() -> None:
    with pytest.raises(ProofError, match="unknown key"):
        verify_object(signed_statement(), resolver({}))


def test_controller_mismatch() -> None:
    with pytest.raises(ProofError, match="does not belong"):
        verify_object(signed_statement(), our_keys(), expected_controller="https://b.example/actor")
    # the controller is the id without the fragment, compared exactly
    with pytest.raises(ProofError, match="does not belong"):
        verify_object(signed_statement(), our_keys(), expected_controller=f"{ACTOR}/")


def test_no_proof() -> None:
    with pytest.raises(ProofError, match="no proof"):
        verify_object(statement(), our_keys())
    with pytest.raises(ProofError, match="not an object"):
        verify_object({**statement(), "proof": "z123"}, our_keys())
    signed = signed_statement()
    del signed["proof"]["verificationMethod"]
    with pytest.raises(ProofError, match="no verificationMethod"):
        verify_object(signed, our_keys())


def test_signed_by_another_key() -> None:
    forged = sign_object(statement(), OTHER, KEY_ID, created=CREATED)
    with pytest.raises(ProofError, match="signature does not match"):
        verify_object(forged, our_keys())


def test_proof_context_must_prefix_document_context() -> None:
    signed = signed_statement()
    signed["@context"] = ["https://www.w3.org/ns/activitystreams"]
    with pytest.raises(ProofError, match="does not start with"):
        verify_object(signed, our_keys())
    # a longer document context that starts with the proof's is accepted by the
    # specification, and the signature covers the proof's context
    signed = signed_statement()
    signed["@context"] = [*signed["@context"], "https://w3id.org/security/data-integrity/v2"]
    assert verify_object(signed, our_keys()) == KEY_ID


def test_invalid_created() -> None:
    signed = signed_statement()
    signed["proof"]["created"] = "yesterday"
    with pytest.raises(ProofError, match="not a date-time"):
        verify_object(signed, our_keys())


def test_proof_set_verifies_the_first_eddsa_jcs_2022_proof() -> None:
    signed = signed_statement()
    ours = signed["proof"]
    foreign = {"type": "DataIntegrityProof", "cryptosuite": "ecdsa-jcs-2019", "proofValue": "z1"}
    forged = sign_object(statement(), OTHER, KEY_ID, created=CREATED)["proof"]
    assert verify_object({**signed, "proof": [foreign, ours]}, our_keys()) == KEY_ID
    with pytest.raises(ProofError, match="signature does not match"):
        verify_object({**signed, "proof": [foreign, forged, ours]}, our_keys())
    with pytest.raises(ProofError, match="no eddsa-jcs-2022 proof"):
        verify_object({**signed, "proof": [foreign]}, our_keys())


def _hand_signed(proof_config: dict[str, Any], body: dict[str, Any]) -> str:
    hash_data = (
        hashlib.sha256(canonical_json(proof_config)).digest()
        + hashlib.sha256(canonical_json(body)).digest()
    )
    return "z" + base58btc(PRIVATE.sign(hash_data))


def test_proof_without_context_both_conventions() -> None:
    """A proof that does not repeat @context: the current specification hashes the proof
    options as they are; the 2023 drafts (and early FEP-8b32 implementations) added the
    document's @context to the proof configuration. Both are accepted."""
    body = statement()
    options = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": KEY_ID,
        "proofPurpose": "assertionMethod",
        "created": "2026-03-01T12:00:00Z",
    }
    for config in (options, {**options, "@context": body["@context"]}):
        document = {**body, "proof": {**options, "proofValue": _hand_signed(config, body)}}
        assert verify_object(document, our_keys()) == KEY_ID
        tampered = copy.deepcopy(document)
        tampered["payee"] = ACTOR
        with pytest.raises(ProofError, match="signature does not match"):
            verify_object(tampered, our_keys())


def test_uncanonicalisable_document_is_refused() -> None:
    signed = signed_statement()
    signed["lines"][0]["plays"] = 2**60
    with pytest.raises(ProofError, match="canonicalised"):
        verify_object(signed, our_keys())


# --- JCS (RFC 8785) ---------------------------------------------------------------------


def test_jcs_sorts_keys_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: the emoji (surrogates D83D DE00) sorts before U+FB33, which it would
    # not by code point.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical_json(value) == expected.encode()


def test_jcs_rfc_example() -> None:
    # RFC 8785 §3.2.2 (the example of the whole serialisation).
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode()


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-0.0, "0"),
        (1.0, "1"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740992.0, "9007199254740992"),
        (-71.184902, "-71.184902"),
        (2**53 - 1, "9007199254740991"),
    ],
)
def test_jcs_numbers(number: float, text: str) -> None:
    assert canonical_json(number) == text.encode()


def test_jcs_refuses_what_json_cannot_say() -> None:
    for value in (float("nan"), float("inf"), 2**53, "\ud800", {1: "not a string key"}):
        with pytest.raises(ValueError):  # noqa: PT011
            canonical_json(value)


# --- Multikey and base58btc -------------------------------------------------------------


def test_multikey_round_trip() -> None:
    for private in (PRIVATE, OTHER, Ed25519PrivateKey.generate()):
        raw = raw_public(private.public_key())
        assert raw_public(multikey_public(ed25519_multikey(raw))) == raw


@pytest.mark.parametrize(
    ("multibase", "message"),
    [
        ("z" + base58btc(b"\xe7\x01" + bytes(33)), "not an Ed25519 public key"),  # secp256k1
        ("z" + base58btc(b"\x12\x00" + bytes(32)), "not an Ed25519 public key"),  # p256
        (SPEC_SECRET, "not an Ed25519 public key"),  # the ed25519-priv multicodec
        ("z" + base58btc(b"\xed\x01" + bytes(31)), "32 bytes"),
        ("z" + base58btc(b"\xed\x01" + bytes(33)), "32 bytes"),
        ("f" + (b"\xed\x01" + bytes(32)).hex(), "starting with 'z'"),
        ("z6Mk0OIl", "not base58btc"),
        ("", "starting with 'z'"),
    ],
)
def test_multikey_refuses_others(multibase: str, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        multikey_public(multibase)


def test_base58btc_decode() -> None:
    assert base58btc_decode("") == b""
    assert base58btc_decode("112") == b"\0\0\x01"
    assert base58btc_decode("2NEpo7TZRRrLZSi2U") == b"Hello World!"
    for data in (b"\0", b"\0\0\xff", bytes(range(256)), b"\x01" * 64):
        assert base58btc_decode(base58btc(data)) == data
    with pytest.raises(ValueError, match="not a base58btc character"):
        base58btc_decode("0")
