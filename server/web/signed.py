"""Requests signed by a partner instance's actor (full audio, Listens by id)."""

from __future__ import annotations

from quart import current_app, request

from federation.signatures import IncomingRequest, PublicKey, SignatureError, verify_request
from server.services.activitypub.context import federation_of
from server.services.activitypub.partners import is_partner
from server.services.activitypub.remote import lookup_key
from server.web.current import resources_of


async def signed_by_partner() -> str | None:
    """The partner instance actor that signed this request, or None
    (docs/architecture.md#partnerships)."""
    signer = await signed_by()
    if signer is None:
        return None
    fed = federation_of(resources_of(current_app))
    async with fed.read_sessionmaker() as session:
        return signer if await is_partner(session, signer) else None


async def signed_by() -> str | None:
    """The actor whose key signed this request (verified), or None."""
    if "Signature" not in request.headers and "Signature-Input" not in request.headers:
        return None
    fed = federation_of(resources_of(current_app))
    raw_path = request.scope.get("raw_path", request.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    incoming = IncomingRequest(
        request.method,
        raw_path + (f"?{query}" if query else ""),
        dict(request.headers),
        b"",
        scheme=fed.base_url.split("://", 1)[0],
    )

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        return await lookup_key(fed, key_id, refresh)

    try:
        key = await verify_request(incoming, lookup)
    except SignatureError:
        return None
    return key.owner
