"""RFC 9421 HTTP Message Signatures on incoming requests.

``verify_rfc9421`` keeps the contract of ``signatures.verify_request``: it returns the
verified key or raises SignatureError with a plain reason, fails closed, fetches the key
again once when verification fails, and checks the key's owner against the actor.

``Signature-Input`` and ``Signature`` are RFC 8941 dictionaries, parsed with ``http-sf``.
Every label must appear in both fields. Of several signatures we verify exactly one: the
first in ``Signature-Input`` order that meets our rules on its own (coverage, ``keyid``,
``created`` and ``expires`` in Mastodon's window (``signatures.signature_window``), an
accepted ``alg``, every covered component present); if none does, the first one's
shortcoming is the reason given.

Our rules: ``@method`` is covered, and either ``@target-uri`` or ``@authority`` with
``@path`` or ``@request-target``; ``content-digest`` too when there is a body, and its
``sha-256``/``sha-512`` entries (RFC 9530) must match the body. Algorithms are
``rsa-v1_5-sha256``, ``rsa-pss-sha512`` and ``ed25519``; without ``alg`` an RSA key means
``rsa-v1_5-sha256`` (as Mastodon signs) and an Ed25519 key ``ed25519``. Components with
parameters (``;sf``, ``;key``, ``;bs``, ``;req``, ``;name``) and ``@query-param`` are not
supported and make a signature unusable. The ``@signature-params`` line is the member's
inner list exactly as received (for the canonical serialisation senders produce, the same
as the RFC's re-serialisation). No I/O: the key lookup is injected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

import http_sf
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from federation.signatures import (
    IncomingRequest,
    KeyLookup,
    PublicKey,
    SignatureError,
    signature_window,
)

ALGORITHMS = ("rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519")
DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
DEFAULT_PORTS = {"https": ":443", "http": ":80"}


@dataclass(frozen=True)
class SignatureInput:
    """The member of Signature-Input chosen for verification."""

    label: str
    key_id: str
    algorithm: str | None  # None: inferred from the key's type


def _fail(reason: str) -> NoReturn:
    raise SignatureError(reason)


def field_value(request: IncomingRequest, name: str) -> str | None:
    """The field's values, trimmed and joined with ", " (RFC 9421 §2.1), or None."""
    values = [value.strip() for key, value in request.headers.items() if key.lower() == name]
    return ", ".join(values) if values else None


def _dictionary(request: IncomingRequest, name: str) -> dict[str, tuple[object, object]]:
    """A Dictionary field parsed with http-sf; duplicate keys are refused."""
    title = name.title()

    def duplicate(key: str, _where: str) -> None:
        _fail(f"the {title} field repeats {key!r}")

    value = field_value(request, name)
    if value is None:
        _fail(f"the {title} field is missing")
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=duplicate)
    except http_sf.StructuredFieldError:
        _fail(f"the {title} field cannot be parsed")
    if not isinstance(parsed, dict) or not parsed:
        _fail(f"the {title} field is empty")
    return {key: member for key, member in parsed.items() if isinstance(member, tuple)}


def _raw_members(value: str) -> dict[str, str]:
    """The text of each member of a Dictionary that http-sf has already accepted.

    Commas separate members except inside quoted strings; nothing else in a valid
    Dictionary contains a comma or a double quote.
    """
    members, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            members.append(value[start:index])
            start = index + 1
    members.append(value[start:])
    pairs = (member.strip(" \t").partition("=") for member in members)
    return {key: raw for key, _, raw in pairs}


def _authority(request: IncomingRequest) -> str:
    host = (field_value(request, "host") or "").lower()
    if not host:
        _fail("the request has no Host header")
    port = DEFAULT_PORTS.get(request.scheme.lower(), "")
    return host.removesuffix(port) if port else host


def component_value(request: IncomingRequest, name: str) -> str:
    """The value of one covered component (RFC 9421 §2.1, §2.2)."""
    path, _, query = request.path.partition("?")
    if name == "@method":
        value = request.method
    elif name == "@target-uri":
        value = f"{request.scheme.lower()}://{_authority(request)}{request.path}"
    elif name == "@authority":
        value = _authority(request)
    elif name == "@scheme":
        value = request.scheme.lower()
    elif name == "@request-target":
        value = request.path
    elif name == "@path":
        value = path or "/"
    elif name == "@query":
        value = "?" + query
    elif name.startswith("@"):
        _fail(f"the component {name!r} is not supported")
    elif name != name.lower():
        _fail(f"the component {name!r} is not lowercase")
    else:
        found = field_value(request, name)
        if found is None:
            _fail(f"the signed field {name!r} is missing")
        value = found
    if "\n" in value or "\r" in value:
        _fail(f"the component {name!r} contains a line break")
    return value


def signature_base(request: IncomingRequest, components: Sequence[str], params: str) -> str:
    """The signature base of RFC 9421 §2.5; ``params`` is the serialized inner list."""
    if len(set(components)) != len(components):
        _fail("a component is covered twice")
    lines = [f'"{name}": {component_value(request, name)}' for name in components]
    lines.append(f'"@signature-params": {params}')
    base = "\n".join(lines)
    if not base.isascii():
        _fail("the signature base is not ASCII")
    return base


def _components(inner: object) -> tuple[str, ...]:
    if not isinstance(inner, list):
        _fail("a Signature-Input member is not an inner list")
    names = []
    for item in inner:
        if not isinstance(item, tuple) or not isinstance(item[0], str):
            _fail("a covered component is not a string")
        if item[1]:
            _fail(f"component parameters on {item[0]!r} are not supported")
        names.append(item[0])
    return tuple(names)


def _integer(params: dict[str, object], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"the {name} parameter is not an integer")
    return value


def _check_coverage(components: tuple[str, ...], has_body: bool) -> None:
    covered = set(components)
    if "@method" not in covered:
        _fail("the signature must cover @method")
    target = "@target-uri" in covered or (
        "@authority" in covered and bool(covered & {"@path", "@request-target"})
    )
    if not target:
        _fail("the signature must cover @target-uri, or @authority and @path")
    if has_body and "content-digest" not in covered:
        _fail("the signature must cover content-digest")


def _check_time(params: dict[str, object], now: datetime) -> None:
    created, expires = _integer(params, "created"), _integer(params, "expires")
    if created is None:
        _fail("the signature has no created parameter")
    try:
        created_at = datetime.fromtimestamp(created, UTC)
        expires_at = None if expires is None else datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        _fail("the signature's created or expires parameter is not a time")
    signature_window(created_at, expires_at, now, "the signature's created time")


def _usable(
    request: IncomingRequest, label: str, member: tuple[object, object], raw: str, now: datetime
) -> tuple[SignatureInput, str]:
    """The member and its signature base, or SignatureError saying what it lacks."""
    inner, params = member
    if not isinstance(params, dict):
        _fail("the Signature-Input member has no parameters")
    components = _components(inner)
    _check_coverage(components, bool(request.body))
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        _fail("the signature has no keyid")
    algorithm = params.get("alg")
    if algorithm is not None and (not isinstance(algorithm, str) or algorithm not in ALGORITHMS):
        _fail(f"the algorithm {str(algorithm)!r} is not accepted")
    _check_time(params, now)
    return SignatureInput(label, key_id, algorithm), signature_base(request, components, raw)


def check_content_digest(header: str, body: bytes) -> None:
    """Content-Digest (RFC 9530): every sha-256/sha-512 entry must match the body."""
    try:
        parsed = http_sf.parse(header.encode(), tltype="dictionary")
    except http_sf.StructuredFieldError:
        _fail("the Content-Digest header cannot be parsed")
    known = {
        name: member[0]
        for name, member in (parsed.items() if isinstance(parsed, dict) else ())
        if name in DIGESTS and isinstance(member, tuple)
    }
    if not known:
        _fail("the Content-Digest header has no sha-256 or sha-512 entry")
    for name, given in known.items():
        if given != DIGESTS[name](body).digest():
            _fail("the Content-Digest header does not match the body")


def check_signature(pem: str, algorithm: str | None, base: str, signature: bytes) -> None:
    """Verify ``signature`` over ``base`` with the PEM key; raise SignatureError if not."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        _fail("the key cannot be read")
    message = base.encode()
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm in (None, "rsa-v1_5-sha256"):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, rsa.RSAPublicKey) and algorithm == "rsa-pss-sha512":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
            key.verify(signature, message, pss, hashes.SHA512())
        elif isinstance(key, ed25519.Ed25519PublicKey) and algorithm in (None, "ed25519"):
            key.verify(signature, message)
        else:
            _fail(f"the key does not fit the algorithm {algorithm or 'of the key type'}")
    except InvalidSignature:
        _fail("the signature does not verify")


def _select(request: IncomingRequest, now: datetime) -> tuple[SignatureInput, str, bytes]:
    inputs = _dictionary(request, "signature-input")
    signatures = _dictionary(request, "signature")
    for label in signatures.keys() - inputs.keys():
        _fail(f"the Signature label {label!r} has no Signature-Input")
    for label in inputs.keys() - signatures.keys():
        _fail(f"the Signature-Input label {label!r} has no Signature")
    raw = _raw_members(field_value(request, "signature-input") or "")
    if list(raw) != list(inputs):
        _fail("the Signature-Input field cannot be parsed")
    problems = []
    for label, member in inputs.items():
        try:
            chosen, base = _usable(request, label, member, raw[label], now)
        except SignatureError as problem:
            problems.append(problem)
            continue
        value = signatures[label][0]
        if not isinstance(value, bytes):
            _fail(f"the signature {label!r} is not a byte sequence")
        return chosen, base, value
    raise problems[0]


async def verify_rfc9421(
    request: IncomingRequest,
    lookup: KeyLookup,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> PublicKey:
    """Check the request's RFC 9421 signature; return the verified key or raise."""
    chosen, base, signature = _select(request, now or datetime.now(UTC))
    digest = field_value(request, "content-digest")
    if digest is not None or request.body:
        check_content_digest(digest or "", request.body)
    reason = f"the key {chosen.key_id} cannot be found"
    for refresh in (False, True):
        key = await lookup(chosen.key_id, refresh)
        if key is None:
            continue
        try:
            check_signature(key.pem, chosen.algorithm, base, signature)
        except SignatureError as problem:
            reason = str(problem)
            continue
        if actor is not None and key.owner != actor:
            _fail("the key's owner is not the activity's actor")
        return key
    raise SignatureError(reason)
