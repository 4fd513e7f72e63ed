"""Discovery documents as pure builders: WebFinger (RFC 7033), host-meta (RFC 6415),
NodeInfo 2.0/2.1, and the instance actor (an ActivityStreams ``Application`` with its RSA
key for HTTP signatures and its Ed25519 key as a FEP-521a ``Multikey``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v1"  # ``proof``
# What the instance actor uses beyond those contexts (objects.EXTRA_CONTEXT is the actors'
# full set, but objects.py builds on this module): the security vocabulary's
# assertionMethod, which lists the Multikey, as FEP-521a has it.
INSTANCE_ACTOR_TERMS: dict[str, object] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "assertionMethod": {
        "@id": "https://w3id.org/security#assertionMethod",
        "@type": "@id",
        "@container": "@set",
    },
}
ACTIVITY_JSON = "application/activity+json"
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/{version}"
SOFTWARE = "playfair"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def host_of(base_url: str) -> str:
    """The host as it appears in handles: with the port when it is not the default."""
    return urlsplit(base_url).netloc


def base58btc(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, remainder = divmod(number, 58)
        encoded = _BASE58[remainder] + encoded
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + encoded


def ed25519_multikey(raw_public_key: bytes) -> str:
    """FEP-521a / W3C Multikey: 'z' + base58btc(0xed 0x01 + the 32-byte key)."""
    if len(raw_public_key) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return "z" + base58btc(b"\xed\x01" + raw_public_key)


def parse_acct(resource: str) -> tuple[str, str] | None:
    """``acct:name@host`` (or ``@name@host``, ``name@host``) → (name, host)."""
    value = resource.strip()
    if value.startswith("acct:"):
        value = value[5:]
    value = value.lstrip("@")
    name, sep, host = value.partition("@")
    if not sep or not name or not host or "@" in host or "/" in host:
        return None
    return name.lower(), host.lower()


def webfinger(base_url: str, name: str, actor_url: str, profile_url: str) -> dict[str, Any]:
    return {
        "subject": f"acct:{name}@{host_of(base_url)}",
        "aliases": [actor_url, profile_url] if profile_url != actor_url else [actor_url],
        "links": [
            {"rel": "self", "type": ACTIVITY_JSON, "href": actor_url},
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": profile_url,
            },
            {
                "rel": "http://ostatus.org/schema/1.0/subscribe",
                "template": f"{base_url}/authorize_interaction?uri={{uri}}",
            },
        ],
    }


def host_meta(base_url: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/jrd+json" '
        f'template="{base_url}/.well-known/webfinger?resource={{uri}}"/>\n'
        "</XRD>\n"
    )


def nodeinfo_links(base_url: str) -> dict[str, Any]:
    return {
        "links": [
            {
                "rel": NODEINFO_SCHEMA.format(version=version),
                "href": f"{base_url}/nodeinfo/{version}",
            }
            for version in ("2.0", "2.1")
        ]
    }


@dataclass(frozen=True)
class Usage:
    users: int
    active_month: int
    active_half_year: int
    local_posts: int


def nodeinfo(
    version: str,
    software_version: str,
    base_url: str,
    name: str,
    open_registrations: bool,
    usage: Usage,
) -> dict[str, Any]:
    software: dict[str, Any] = {"name": SOFTWARE, "version": software_version}
    if version == "2.1":
        software["repository"] = "https://github.com/playfair/playfair"
        software["homepage"] = base_url
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": open_registrations,
        "usage": {
            "users": {
                "total": usage.users,
                "activeMonth": usage.active_month,
                "activeHalfyear": usage.active_half_year,
            },
            "localPosts": usage.local_posts,
        },
        "metadata": {"nodeName": name, "instanceActor": f"{base_url}/actor"},
    }


def instance_actor(
    base_url: str,
    name: str,
    rsa_public_pem: str,
    rsa_key_name: str,
    ed25519_raw_public: bytes,
    ed25519_key_name: str,
    *,
    icon: dict[str, Any] | None = None,
    image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The instance actor; ``icon`` and ``image`` are its avatar and header (``Image``
    objects), when an admin has set them."""
    actor_id = f"{base_url}/actor"
    document: dict[str, Any] = {
        "@context": [
            AS_CONTEXT,
            SECURITY_CONTEXT,
            MULTIKEY_CONTEXT,
            INSTANCE_ACTOR_TERMS,
        ],
        "id": actor_id,
        "type": "Application",
        "preferredUsername": host_of(base_url),
        "name": name,
        "summary": f"The instance actor of {name}, a playfair music co-operative.",
        "url": f"{base_url}/",
        "inbox": f"{actor_id}/inbox",
        "outbox": f"{actor_id}/outbox",
        "followers": f"{actor_id}/followers",
        "following": f"{actor_id}/following",
        "endpoints": {"sharedInbox": f"{base_url}/inbox"},
        "manuallyApprovesFollowers": True,
        "publicKey": {
            "id": f"{actor_id}#{rsa_key_name}",
            "owner": actor_id,
            "publicKeyPem": rsa_public_pem,
        },
        "assertionMethod": [
            {
                "id": f"{actor_id}#{ed25519_key_name}",
                "type": "Multikey",
                "controller": actor_id,
                "publicKeyMultibase": ed25519_multikey(ed25519_raw_public),
            }
        ],
    }
    if icon:
        document["icon"] = icon
    if image:
        document["image"] = image
    return document
