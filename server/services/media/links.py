"""Signed audio links: a short-lived URL for one media file that anyone holding it may
fetch, checked without the database, by this process or by nginx alone.

A link is ``/audio/<storage key>?expires=E&md5=S`` where ``E`` is a Unix time and ``S``
is the unpadded base64url MD5 of ``"<E>/audio/<storage key> <secret>"``: exactly what
nginx's ``secure_link`` module computes from ``secure_link $arg_md5,$arg_expires`` and
``secure_link_md5 "$secure_link_expires$uri <secret>"`` (see
:mod:`server.runtime.nginx_site`). The secret is derived from the instance secret for
this use alone, so it can sit in an nginx site file without giving away anything else.

Who gets a link is decided elsewhere (``access.may_stream_full``'s ``linkable``): only
those who could download the file anyway. These functions are pure.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import Enum

from server.services.media.storage import plain_key

PREFIX = "/audio/"
# Expiry times are rounded up to this many seconds, so that links made for the same
# file within a few minutes are the same URL (a browser's cache and nginx's see one).
BUCKET_SECONDS = 300
# The types a link's file is sent with, by its extension: what the nginx site declares
# for its audio location too, so both answer alike. Other files get no link.
TYPES: dict[str, str] = {"opus": "audio/ogg; codecs=opus", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
_EXPIRES = re.compile(r"[1-9][0-9]{0,11}")
_MD5 = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 bytes, base64url without padding
_MAX_QUERY = 1024


class LinkCheck(Enum):
    VALID = "valid"
    BAD = "bad"  # not signed by us (nginx: $secure_link is empty): 403
    EXPIRED = "expired"  # ours, past its time (nginx: $secure_link is "0"): 410


@dataclass(frozen=True)
class CheckedLink:
    result: LinkCheck
    key: str = ""  # the storage key, when valid


@functools.lru_cache(maxsize=4)
def link_secret(instance_secret: str) -> str:
    """The secret audio links are signed with, derived from the instance secret."""
    return hmac.new(instance_secret.encode(), b"playfair audio links", hashlib.sha256).hexdigest()


def linkable_key(key: str) -> bool:
    """Whether a file under this storage key may be given a link: a safe path with an
    audio extension the link's location declares."""
    # plain segments only: nginx's $uri is the decoded, normalised path, so what we sign
    # must be a path nginx does not rewrite
    return plain_key(key) and key.rpartition(".")[2] in TYPES


def _signature(path: str, expires: int, secret: str) -> str:
    # MD5 because nginx's secure_link computes nothing else; keyed by a secret suffix over
    # strings we choose (docs/decisions.md: why that is enough here)
    message = f"{expires}{path} {secret}".encode()
    digest = hashlib.md5(message).digest()  # noqa: S324
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry(now: float, lifetime: int) -> int:
    """When a link made at ``now`` to last ``lifetime`` seconds expires: at least that
    long, rounded up to the next bucket."""
    return -(-(int(now) + lifetime) // BUCKET_SECONDS) * BUCKET_SECONDS


def signed_link(key: str, secret: str, *, now: float, lifetime: int) -> str | None:
    """The link (path and query) to the file under ``key``, or None for a key that gets
    no link (:func:`linkable_key`)."""
    if not linkable_key(key):
        return None
    expires = expiry(now, lifetime)
    path = PREFIX + key
    return f"{path}?expires={expires}&md5={_signature(path, expires, secret)}"


def check_link(path: str, query: str, secret: str, *, now: float) -> CheckedLink:
    """Whether the request for ``path`` with ``query`` (the raw query string) carries a
    valid link: the signature first, then the time, as nginx checks them."""
    if not path.startswith(PREFIX):
        return CheckedLink(LinkCheck.BAD)
    key = path[len(PREFIX) :]
    # raw, as nginx reads $arg_md5 and $arg_expires: the first of each, not decoded
    args: dict[str, str] = {}
    for part in query.split("&", 16) if len(query) <= _MAX_QUERY else ():
        name, _, value = part.partition("=")
        args.setdefault(name, value)
    expires_arg, md5_arg = args.get("expires", ""), args.get("md5", "")
    if not _EXPIRES.fullmatch(expires_arg) or not _MD5.fullmatch(md5_arg):
        return CheckedLink(LinkCheck.BAD)
    if not linkable_key(key):
        return CheckedLink(LinkCheck.BAD)
    expires = int(expires_arg)
    if not hmac.compare_digest(md5_arg, _signature(path, expires, secret)):
        return CheckedLink(LinkCheck.BAD)
    if expires < now:
        return CheckedLink(LinkCheck.EXPIRED)
    return CheckedLink(LinkCheck.VALID, key)
