"""Remote actors: resolving handles, fetching actor documents with a signed GET, and a
cache of them that expires (docs/architecture.md#federation).

Network I/O never happens while a database session is open: with SQLite's single pooled
connection, a session held across a slow fetch would stall the whole process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urldefrag, urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.discovery import parse_acct
from federation.fetch import FetchError
from federation.parse import InvalidObject, ParsedActor, id_of, parse_actor, same_origin
from federation.signatures import PublicKey
from federation.urls import UnacceptableURL, checked_url
from models.base import utcnow
from models.federation import RemoteActor
from server.services.activitypub.context import Federation

JRD_ACCEPT = "application/jrd+json, application/json"


class ResolveError(Exception):
    """A remote actor could not be found or is not acceptable; the message says why."""


def domain_of(uri: str) -> str:
    return (urlsplit(uri).hostname or "").lower()


def _is_fresh(actor: RemoteActor, fed: Federation, now: datetime) -> bool:
    return now - actor.fetched_at < fed.settings.actor_cache_lifetime


async def fetch_actor_document(fed: Federation, uri: str) -> ParsedActor:
    """Fetch and parse an actor; its id must be the URL asked for (or on its origin)."""
    return (await fetch_actor_with_document(fed, uri))[0]


async def fetch_actor_with_document(
    fed: Federation, uri: str
) -> tuple[ParsedActor, dict[str, Any]]:
    """``fetch_actor_document`` and the document as fetched (for what the parsed actor
    does not keep, such as ``alsoKnownAs``)."""
    try:
        final_url, document = await fed.fetcher.get_json(uri, sign=fed.instance_signer())
        actor = parse_actor(document)
    except (FetchError, InvalidObject) as error:
        raise ResolveError(f"{uri}: {error}") from None
    if not same_origin(actor.id, final_url) or not same_origin(actor.id, uri):
        raise ResolveError(f"{uri} answered with an actor from another server ({actor.id})")
    return actor, document


async def store_actor(
    session: AsyncSession, actor: ParsedActor, now: datetime | None = None
) -> RemoteActor:
    """Insert or refresh the cached copy (flushing; the caller commits)."""
    now = now or utcnow()
    values = {
        "type": actor.type,
        "preferred_username": actor.preferred_username,
        "name": actor.name,
        "summary_html": actor.summary_html,
        "url": actor.url,
        "icon_url": actor.icon_url,
        "inbox": actor.inbox,
        "shared_inbox": actor.shared_inbox,
        "outbox": actor.outbox,
        "followers": actor.followers,
        "key_id": actor.key.id if actor.key else None,
        "public_pem": actor.key.pem if actor.key else None,
        "manually_approves": actor.manually_approves_followers,
        "fetched_at": now,
        "gone_at": None,
    }
    row = await session.scalar(select(RemoteActor).where(RemoteActor.uri == actor.id))
    if row is None:
        try:
            async with session.begin_nested():
                row = RemoteActor(uri=actor.id, domain=domain_of(actor.id), **values)
                session.add(row)
                await session.flush()
            return row
        except IntegrityError:  # stored by a concurrent request in the meantime
            row = await session.scalar(select(RemoteActor).where(RemoteActor.uri == actor.id))
            assert row is not None
    for name, value in values.items():
        setattr(row, name, value)
    await session.flush()
    return row


def remote_url(fed: Federation, value: str) -> str:
    """``value`` when it is a URL of another server that we may fetch (https, or http when
    the fetch policy allows lab networks: ``federation.allow_private_addresses``), else
    :class:`ResolveError`. It is checked before anything is looked up, resolved or fetched;
    which addresses plain http may reach is then the guarded client's decision."""
    policy = fed.fetcher.policy
    try:
        return checked_url(value, allow_http=policy.allow_private or bool(policy.allowed_networks))
    except UnacceptableURL as error:
        raise ResolveError(str(error)) from None


async def get_actor(fed: Federation, uri: str, *, refresh: bool = False) -> RemoteActor:
    """The cached actor, fetched when missing, stale or asked to refresh."""
    uri = remote_url(fed, urldefrag(uri)[0])
    async with fed.read_sessionmaker() as session:
        cached = await session.scalar(select(RemoteActor).where(RemoteActor.uri == uri))
        if cached is not None and not refresh and _is_fresh(cached, fed, utcnow()):
            session.expunge(cached)
            return cached
    parsed = await fetch_actor_document(fed, uri)
    async with fed.sessionmaker() as session:
        row = await store_actor(session, parsed)
        await session.commit()
        session.expunge(row)
        return row


def cached_key(fed: Federation, actor: RemoteActor | None, key_id: str) -> PublicKey | None:
    """``key_id`` as the cached ``actor`` holds it, while the copy is fresh; else None."""
    if actor is None or actor.key_id != key_id or not actor.public_pem:
        return None
    return (
        PublicKey(key_id, actor.uri, actor.public_pem) if _is_fresh(actor, fed, utcnow()) else None
    )


async def lookup_key(fed: Federation, key_id: str, refresh: bool) -> PublicKey | None:
    """The key lookup the signature verifier uses: the cache first, then the key's actor.

    A key id is usually ``actor#main-key``; some servers use ``actor/main-key`` and serve
    a Key document with its ``owner``. The key must be the one the owner lists."""
    if not refresh:
        async with fed.read_sessionmaker() as session:
            cached = await session.scalar(select(RemoteActor).where(RemoteActor.key_id == key_id))
        if (key := cached_key(fed, cached, key_id)) is not None:
            return key
    owner = urldefrag(key_id)[0]
    try:
        _final, document = await fed.fetcher.get_json(owner, sign=fed.instance_signer())
    except FetchError:
        return None
    if "inbox" not in document and isinstance(owner_id := id_of(document.get("owner")), str):
        owner = owner_id  # a Key document: the actor is its owner
    try:
        actor = await get_actor(fed, owner, refresh=True)
    except ResolveError:
        return None
    if actor.key_id != key_id or not actor.public_pem:
        return None
    return PublicKey(key_id, actor.uri, actor.public_pem)


async def resolve(fed: Federation, query: str) -> RemoteActor:
    """``@name@host``, ``name@host`` or an actor URL → the actor (WebFinger, signed GET)."""
    query = query.strip()
    if "://" in query or query.lower().startswith(("https:", "http:")):
        return await get_actor(fed, query, refresh=True)
    parsed = parse_acct(query)
    if parsed is None:
        raise ResolveError(f"{query!r} is neither @name@host nor a URL")
    name, host = parsed
    scheme = "http" if fed.settings.allow_private_addresses else "https"
    resource = quote(f"acct:{name}@{host}", safe=":@")
    url = f"{scheme}://{host}/.well-known/webfinger?resource={resource}"
    try:
        _final, jrd = await fed.fetcher.get_json(url, accept=JRD_ACCEPT)
    except FetchError as error:
        raise ResolveError(f"WebFinger for {name}@{host} failed: {error}") from None
    links = jrd.get("links")
    for link in links if isinstance(links, list) else []:
        if (
            isinstance(link, dict)
            and link.get("rel") == "self"
            and isinstance(link.get("href"), str)
            and any(kind in str(link.get("type", "")) for kind in ("activity+json", "ld+json"))
        ):
            return await get_actor(fed, link["href"], refresh=True)
    raise ResolveError(f"{name}@{host} has no ActivityPub actor")
