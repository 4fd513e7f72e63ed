"""Local actors (artists, labels, listeners) as ActivityPub sees them, and their keys.

An actor's RSA key is made the first time anything needs it: when its actor document is
first served or when it first signs a delivery. No other server can see an actor before
that, so nobody can tell the difference from a key made with the account, and listeners
who never federate cost nothing. (A decision: see docs/decisions.md.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from federation.keys import KeyCache, encrypt_private_key, generate, public_pem
from federation.objects import ActorInfo, actor_id
from models.catalogue import Artist, ArtistKind, Label
from models.federation import ActorKey
from models.handles import Handle, HandleKind
from models.keys import KeyAlgorithm
from models.users import AccountStatus, User
from server.services.profiles import ProfileView, profile_view

KIND_PATHS = {HandleKind.ARTIST: "artists", HandleKind.LABEL: "labels", HandleKind.USER: "users"}
PATH_KINDS = {path: kind for kind, path in KIND_PATHS.items()}


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: rsa.RSAPrivateKey


async def actor_key_row(session: AsyncSession, name: str, secret: str) -> ActorKey:
    """The actor's active key, made now if it has none (the caller commits).

    Two processes racing both make one; the oldest active key wins for everybody, so the
    loser's key is simply never used."""
    row = await _active_key(session, name)
    if row is None:
        key = generate(KeyAlgorithm.RSA_2048)
        session.add(
            ActorKey(
                actor_name=name,
                public_pem=public_pem(key),
                private_encrypted=encrypt_private_key(key, secret),
            )
        )
        await session.flush()
        row = await _active_key(session, name)
        assert row is not None
    return row


async def ensure_actor_key(
    read: async_sessionmaker[AsyncSession],
    write: async_sessionmaker[AsyncSession],
    name: str,
    secret: str,
) -> None:
    """Make the key of the local actor ``name`` if it has none, in a short unit of work
    of its own (the RSA key is generated before it opens), so that the pages serving the
    actor only read."""
    async with read() as session:
        if await session.get(Handle, name) is None or await _active_key(session, name):
            return
    key = await asyncio.to_thread(generate, KeyAlgorithm.RSA_2048)  # not on the event loop
    async with write() as session:
        if await _active_key(session, name) is None:
            session.add(
                ActorKey(
                    actor_name=name,
                    public_pem=public_pem(key),
                    private_encrypted=encrypt_private_key(key, secret),
                )
            )
            await session.commit()


async def _active_key(session: AsyncSession, name: str) -> ActorKey | None:
    return await session.scalar(
        select(ActorKey)
        .where(ActorKey.actor_name == name, ActorKey.retired_at.is_(None))
        .order_by(ActorKey.id)
        .limit(1)
    )


@dataclass(frozen=True)
class LocalActor:
    kind: HandleKind
    name: str
    info: ActorInfo
    artist: Artist | None = None
    label: Label | None = None
    user: User | None = None
    profile: ProfileView | None = None


async def load_local_actor(
    session: AsyncSession, base_url: str, path: str, name: str, secret: str
) -> LocalActor | None:
    """The actor at /{path}/{name}, or None when there is none (or it is not active),
    with its profile (avatar, header, links, aliases) in its info."""
    actor = await _load_local_actor(session, path, name, secret)
    if actor is None:
        return None
    profile = await profile_view(session, base_url, path, actor.name)
    info = replace(
        actor.info,
        icon_url=profile.icon_url,
        icon_type=profile.icon_type,
        image_url=profile.image_url,
        image_type=profile.image_type,
        discoverable=profile.discoverable,
        indexable=profile.indexable,
        links=profile.links,
        also_known_as=profile.also_known_as,
        moved_to=profile.moved_to,
    )
    return replace(actor, info=info, profile=profile)


async def _load_local_actor(
    session: AsyncSession, path: str, name: str, secret: str
) -> LocalActor | None:
    kind = PATH_KINDS.get(path)
    handle = await session.get(Handle, name.lower())
    if kind is None or handle is None or handle.kind is not kind:
        return None
    if kind is HandleKind.ARTIST:
        artist = await session.scalar(select(Artist).where(Artist.name == handle.name))
        if artist is None:
            return None
        key = await actor_key_row(session, handle.name, secret)
        as_type = "Group" if artist.kind is ArtistKind.BAND else "Person"
        info = ActorInfo(
            path,
            artist.name,
            artist.display_name,
            artist.summary,
            as_type,
            key.public_pem,
            manually_approves=artist.approves_followers,
            published=artist.created_at,
        )
        return LocalActor(kind, handle.name, info, artist=artist)
    if kind is HandleKind.LABEL:
        label = await session.scalar(select(Label).where(Label.name == handle.name))
        if label is None:
            return None
        key = await actor_key_row(session, handle.name, secret)
        info = ActorInfo(
            path,
            label.name,
            label.display_name,
            label.summary,
            "Organization",
            key.public_pem,
            published=label.created_at,
        )
        return LocalActor(kind, handle.name, info, label=label)
    user = await session.scalar(select(User).where(User.username == handle.name))
    if user is None or user.status is not AccountStatus.ACTIVE:
        return None
    key = await actor_key_row(session, handle.name, secret)
    info = ActorInfo(
        path, user.username, user.username, "", "Person", key.public_pem, published=user.created_at
    )
    return LocalActor(kind, handle.name, info, user=user)


async def signing_key(
    session: AsyncSession, base_url: str, name: str, secret: str, cache: KeyCache
) -> SigningKey:
    """The key a local actor signs with (made if needed; the caller commits)."""
    handle = await session.get(Handle, name)
    if handle is None:
        raise LookupError(f"there is no local actor {name!r}")
    row = await actor_key_row(session, name, secret)
    uri = actor_id(base_url, KIND_PATHS[handle.kind], name)
    return SigningKey(f"{uri}#main-key", cache.private(row.id, row.private_encrypted, secret))
