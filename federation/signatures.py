"""HTTP signatures (draft-cavage-http-signatures-12, as the fediverse uses them).

Signing is ``rsa-sha256`` over ``(request-target) host date digest`` for POST and
``(request-target) host date`` for GET. Verification covers what the draft leaves open, and fails
closed: ``hs2019`` and ``(created)``/``(expires)``, the required headers, the digest checked
against the body, the time window (Mastodon's: ``signature_window``), the key's owner equal
to the activity's actor, and one re-fetch of the key when verification fails (the sender
may have rotated it). The key
lookup is injected, so this module does no I/O of its own. Requests with a
``Signature-Input`` header are RFC 9421 signatures and go to ``federation.rfc9421``.

The Signature header is parsed here, strictly, by the grammar Mastodon's parser uses (the
auth-param list of RFC 7235: ``token = ( token / quoted-string )``, comma-separated), so
what a peer's signature means is never a guess.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Mastodon's time window (app/lib/signed_request.rb): a signature lives from its creation
# (``created``, else the Date header) until its ``expires``, by default five minutes, at most
# twelve hours; an hour of clock skew is allowed at either end.
DEFAULT_LIFETIME = timedelta(minutes=5)
MAX_LIFETIME = timedelta(hours=12)
CLOCK_SKEW = timedelta(hours=1)
ALGORITHMS = ("rsa-sha256", "hs2019")


class SignatureError(Exception):
    """The request's signature is missing or does not hold; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    owner: str
    pem: str


KeyLookup = Callable[[str, bool], Awaitable[PublicKey | None]]

# RFC 7230 §3.2.6: a token, and a quoted-string's text and quoted pairs (obs-text included).
_TCHARS = r"[0-9A-Za-z!#$%&'*+.^_`|~-]+"
_QUOTED = r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x20-\x7e\x80-\xff])*)"'
_PARAM = re.compile(rf"[ \t]*({_TCHARS})[ \t]*=[ \t]*(?:({_TCHARS})|{_QUOTED})[ \t]*(?:,|\Z)")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def parse_signature_params(header: str) -> dict[str, str]:
    """The parameters of a draft-cavage Signature header, names in lower case. A leading
    ``Signature `` (old node-http-signatures clients send it) is ignored, as Mastodon does.
    Raises ValueError for anything else that is not a list of ``name=value`` parameters:
    an empty element, a trailing comma, an unclosed quote, a control character, a name
    given twice (which of the two was signed would be a guess)."""
    text = header.removeprefix("Signature ")
    params: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None:
            raise ValueError(f"the Signature header is not a parameter list at {position}")
        name, token, quoted = match.groups()
        name = name.lower()
        if name in params:
            raise ValueError(f"the Signature header gives {name} twice")
        params[name] = token if token is not None else _QUOTED_PAIR.sub(r"\1", quoted)
        position = match.end()
        if match.group(0).endswith(",") and position == len(text):
            raise ValueError("the Signature header ends with a comma")
    if not params:
        raise ValueError("the Signature header is empty")
    return params


def digest_header(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def check_digest(header: str, body: bytes) -> None:
    """A ``Digest`` header may list several ``algorithm=value`` pairs, comma-separated
    (RFC 3230); as Mastodon does, its ``SHA-256`` one (in any case) must be there and match
    the body, and the others are not looked at (a match of another one is not enough)."""
    pairs = (item.strip().partition("=") for item in header.split(","))
    given = [value.strip() for name, _, value in pairs if name.strip().lower() == "sha-256"]
    if not given:
        raise SignatureError("the Digest header has no SHA-256 value")
    expected = digest_header(body).split("=", 1)[1]
    if any(value != expected for value in given):
        raise SignatureError("the Digest header does not match the body")


def signature_window(
    created: datetime | None, expires: datetime | None, now: datetime, what: str
) -> None:
    """Refuse a signature outside Mastodon's window. ``what`` names where ``created``
    came from (the Date header or the created parameter), for the message."""
    if created is not None and created > now + CLOCK_SKEW:
        raise SignatureError(f"{what} is in the future")
    end, ends = expires, "the signature has expired"
    if created is not None and (expires is None or expires > created + MAX_LIFETIME):
        lifetime = DEFAULT_LIFETIME if expires is None else MAX_LIFETIME
        end, ends = created + lifetime, f"{what} is outside the window"
    if end is not None and now > end + CLOCK_SKEW:
        raise SignatureError(ends)


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    private_key: rsa.RSAPrivateKey,
    now: datetime | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers to send (Host, Date, Digest for bodies, Signature, plus ``headers``).

    The signing string is the cavage one (the same function verification uses) and the
    RSA arithmetic is `cryptography`'s with the caller's key object. httpsig's signer
    re-imports the key through pycryptodome on every call, primality tests included
    (about 23 ms of CPU per request, on the event loop); a test checks that what we
    produce is byte for byte what httpsig produces."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    signed = {"Host": parts.netloc, "Date": http_date(now or datetime.now(UTC)), **(headers or {})}
    names = ["(request-target)", "host", "date"]
    if body is not None:
        signed["Digest"] = digest_header(body)
        names.append("digest")
    outgoing = IncomingRequest(method.upper(), path, signed, b"")
    message = _signing_string(outgoing, names, {}).encode()
    signature = base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256()))
    header = (
        f'keyId="{key_id}",algorithm="rsa-sha256",'
        f'signature="{signature.decode()}",headers="{" ".join(names)}"'
    )
    return {**signed, "Signature": header}


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    path: str  # with the query string, exactly as received
    headers: Mapping[str, str]  # keys in any case
    body: bytes
    scheme: str = "https"  # for RFC 9421's @target-uri and @scheme


def _header(request: IncomingRequest, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name:
            return value
    return None


def _signing_string(request: IncomingRequest, names: list[str], params: Mapping[str, str]) -> str:
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {request.method.lower()} {request.path}")
        elif name in ("(created)", "(expires)"):
            value = params.get(name[1:-1])
            if value is None:
                raise SignatureError(f"{name} is signed but the signature has no {name[1:-1]}")
            lines.append(f"{name}: {value}")
        else:
            value = _header(request, name)
            if value is None:
                raise SignatureError(f"the signed header {name!r} is missing")
            lines.append(f"{name}: {value.strip()}")
    return "\n".join(lines)


def _timestamp(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureError(f"the signature's {name} is not a time") from None


def _check_time(
    request: IncomingRequest, names: list[str], params: Mapping[str, str], now: datetime
) -> None:
    """The window, as Mastodon times it: from ``(created)`` when it is signed, else
    from the Date header, to ``expires`` when given. Unlike Mastodon we take ``expires``
    only when ``(expires)`` is signed: anybody could lengthen an unsigned one."""
    created, what = None, "the signature's created time"
    if "(created)" in names:
        created = _timestamp(params, "created")
    elif "date" in names:
        raw = _header(request, "date") or ""
        try:
            created = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            raise SignatureError(f"the Date header {raw[:40]!r} is not a date") from None
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        what = "the Date header"
    expires = _timestamp(params, "expires") if "(expires)" in names else None
    signature_window(created, expires, now, what)


async def verify_request(
    request: IncomingRequest,
    lookup: KeyLookup,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> PublicKey:
    """Check the request's signature; return the verified key or raise SignatureError.

    A request with a ``Signature-Input`` header carries an RFC 9421 signature instead.
    """
    if _header(request, "signature-input") is not None:
        # federation.rfc9421 builds on this module, so it is imported when needed
        from federation.rfc9421 import verify_rfc9421

        return await verify_rfc9421(request, lookup, actor=actor, now=now)
    now = now or datetime.now(UTC)
    header = _header(request, "signature")
    if not header:
        raise SignatureError("the request is not signed")
    try:
        params = parse_signature_params(header)
    except ValueError as exc:
        raise SignatureError(f"the Signature header cannot be parsed: {exc}") from None
    key_id, signature = params.get("keyid"), params.get("signature")
    if not key_id or not signature:
        raise SignatureError("the Signature header lacks keyId or signature")
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in ALGORITHMS:
        raise SignatureError(f"the algorithm {algorithm!r} is not accepted")
    names = params.get("headers", "date").lower().split()
    required = {"(request-target)", "host"}
    if not ("(created)" in names and algorithm == "hs2019"):
        required.add("date")  # hs2019 may time the signature with (created) instead
    if request.body:
        required.add("digest")
    if missing := sorted(required - set(names)):
        raise SignatureError(f"the signature must cover {', '.join(missing)}")
    if request.body:
        check_digest(_header(request, "digest") or "", request.body)
    _check_time(request, names, params, now)
    message = _signing_string(request, names, params).encode()
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except ValueError:
        raise SignatureError("the signature is not base64") from None
    for refresh in (False, True):
        key = await lookup(key_id, refresh)
        if key is None:
            if refresh:
                raise SignatureError(f"the key {key_id} cannot be found")
            continue
        public = serialization.load_pem_public_key(key.pem.encode())
        if not isinstance(public, rsa.RSAPublicKey):
            raise SignatureError("the key is not an RSA key")
        try:
            public.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        if actor is not None and key.owner != actor:
            raise SignatureError("the key's owner is not the activity's actor")
        return key
    raise SignatureError("the signature does not verify")
