"""Local listeners following artists and labels, here or on other servers, and the feed
of what the followed publish (docs/architecture.md#a-follow-outgoing; issue 6 point 6)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import PUBLIC, activity, actor_id, iso, paragraphs
from models.base import utcnow
from models.catalogue import Artist, Release, Visibility
from models.federation import FOLLOW_STATES, Follow, FollowState, RemoteActor, RemotePost
from models.handles import Handle, HandleKind
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.handlers import answer_follow, local_target
from server.services.activitypub.local import KIND_PATHS
from server.services.activitypub.remote import ResolveError, resolve


class FollowError(Exception):
    """The follow cannot be made; the message says why."""


@dataclass(frozen=True)
class Followed:
    follow: Follow
    actor_uri: str
    name: str
    handle: str
    local: bool


def _user_actor(fed: Federation, username: str) -> str:
    return actor_id(fed.base_url, "users", username)


async def follow(fed: Federation, username: str, query: str) -> Followed:
    """Follow ``@name@host``, a URL, or a local artist's or label's name."""
    query = query.strip()
    local_name = _local_name(fed, query)
    if local_name is not None:
        return await _follow_local(fed, username, local_name)
    try:
        target = await resolve(fed, query)  # network: no session held
    except ResolveError as error:
        raise FollowError(str(error)) from None
    async with fed.sessionmaker() as session:
        row = await follow_actor(session, fed, username, target)
        await session.commit()
        return Followed(row, target.uri, target.name, remote_handle(target), False)


async def follow_actor(
    session: AsyncSession, fed: Federation, username: str, target: RemoteActor
) -> Follow:
    """The listener's follow of a remote actor; a new one is sent (flushing)."""
    row = await session.scalar(
        select(Follow).where(
            Follow.follower_name == username, Follow.followed_actor_id == target.id
        )
    )
    if row is None:
        uri = f"{_user_actor(fed, username)}/follows/{uuid.uuid4().hex}"
        row = Follow(activity_uri=uri, follower_name=username, followed_actor_id=target.id)
        session.add(row)
        await session.flush()
        document = activity(uri, "Follow", _user_actor(fed, username), target.uri, to=[target.uri])
        sent, _ = await record_activity(session, document, username)
        await deliver(session, sent, [target.inbox])
    return row


def _local_name(fed: Federation, query: str) -> str | None:
    target = local_target(fed, query)
    if target is not None and target[0] in ("artists", "labels"):
        return target[1]
    host = fed.base_url.split("://", 1)[1]
    bare = query.removeprefix("@")
    name, _, at = bare.partition("@")
    if at.lower() == host.lower() or (not at and "/" not in bare and ":" not in bare):
        return name.lower()
    return None


async def _follow_local(fed: Federation, username: str, name: str) -> Followed:
    async with fed.sessionmaker() as session:
        handle = await session.get(Handle, name)
        if handle is None or handle.kind is HandleKind.USER:
            raise FollowError(f"there is no artist or label called {name!r} here")
        row = await session.scalar(
            select(Follow).where(Follow.follower_name == username, Follow.followed_name == name)
        )
        artist = None
        if handle.kind is HandleKind.ARTIST:
            artist = await session.scalar(select(Artist).where(Artist.name == name))
        approves = bool(artist and artist.approves_followers)
        if row is None:
            row = Follow(
                activity_uri=f"{_user_actor(fed, username)}/follows/{uuid.uuid4().hex}",
                follower_name=username,
                followed_name=name,
                state=FOLLOW_STATES.start(
                    FollowState.PENDING if approves else FollowState.ACCEPTED
                ),
                accepted_at=None if approves else utcnow(),
            )
            session.add(row)
            await session.flush()
        elif row.state is FollowState.REJECTED:  # asking again, as a repeated remote Follow
            row.state = FOLLOW_STATES.check(
                row.state, FollowState.PENDING if approves else FollowState.ACCEPTED
            )
            row.accepted_at = None if approves else utcnow()
        await session.commit()
        host = fed.base_url.split("://", 1)[1]
        uri = actor_id(fed.base_url, KIND_PATHS[handle.kind], name)
        return Followed(row, uri, name, f"@{name}@{host}", True)


def remote_handle(actor: RemoteActor) -> str:
    """@name@host, with the port when the actor's server has one (like our own handles)."""
    return f"@{actor.preferred_username or '?'}@{urlsplit(actor.uri).netloc}"


async def unfollow(fed: Federation, username: str, follow_id: int) -> bool:
    async with fed.sessionmaker() as session:
        row = await session.scalar(
            select(Follow).where(Follow.id == follow_id, Follow.follower_name == username)
        )
        if row is None:
            return False
        await end_follow(session, fed, row)
        await session.commit()
    return True


async def end_follow(session: AsyncSession, fed: Federation, row: Follow) -> None:
    """Delete a local listener's follow; a remote followed actor is sent the Undo."""
    username = row.follower_name
    assert username is not None
    if row.followed_actor_id is not None:
        target = await session.get(RemoteActor, row.followed_actor_id)
        if target is not None:
            inner = activity(row.activity_uri, "Follow", _user_actor(fed, username), target.uri)
            inner.pop("@context")
            undo = activity(
                f"{row.activity_uri}/undo",
                "Undo",
                _user_actor(fed, username),
                inner,
                to=[target.uri],
            )
            sent, _ = await record_activity(session, undo, username)
            await deliver(session, sent, [target.inbox])
    await session.delete(row)
    await session.flush()


async def list_follows(
    session: AsyncSession, fed: Federation, username: str
) -> list[dict[str, Any]]:
    # the outer join gives None for a local follow (SQLAlchemy types the row as not None)
    rows: Sequence[tuple[Follow, RemoteActor | None]] = (
        await session.execute(
            select(Follow, RemoteActor)
            .outerjoin(RemoteActor, RemoteActor.id == Follow.followed_actor_id)
            .where(Follow.follower_name == username)
            .order_by(Follow.id.desc())
        )
    ).all()
    host = fed.base_url.split("://", 1)[1]
    result = []
    for row, remote in rows:
        if remote is not None:
            result.append(
                {
                    "id": row.id,
                    "state": row.state.value,
                    "actor": remote.uri,
                    "handle": remote_handle(remote),
                    "name": remote.name,
                    "local": False,
                }
            )
        elif row.followed_name:
            handle = await session.get(Handle, row.followed_name)
            kind = KIND_PATHS[handle.kind] if handle else "artists"
            result.append(
                {
                    "id": row.id,
                    "state": row.state.value,
                    "actor": actor_id(fed.base_url, kind, row.followed_name),
                    "handle": f"@{row.followed_name}@{host}",
                    "name": row.followed_name,
                    "local": True,
                }
            )
    return result


@dataclass(frozen=True)
class FeedItem:
    uri: str
    author: str
    author_handle: str
    title: str | None
    content_html: str
    url: str | None
    published: datetime
    previews: list[dict[str, Any]]
    cover: str | None
    local_release_id: int | None
    release_uri: str | None = None  # a playfair peer's release (playable when a partner)


async def feed(
    session: AsyncSession, fed: Federation, username: str, limit: int = 50
) -> list[FeedItem]:
    """New releases of the artists and labels the listener follows, here and elsewhere."""
    remote = (
        await session.execute(
            select(RemotePost, RemoteActor)
            .join(RemoteActor, RemoteActor.id == RemotePost.actor_id)
            .join(Follow, Follow.followed_actor_id == RemoteActor.id)
            .where(Follow.follower_name == username, Follow.state == FollowState.ACCEPTED)
            .order_by(RemotePost.published_at.desc())
            .limit(limit)
        )
    ).all()
    items = [
        FeedItem(
            post.uri,
            actor.name,
            remote_handle(actor),
            post.name,
            post.content_html,
            post.url,
            post.published_at,
            [a for a in post.attachments if a.get("kind") == "audio"][:4],
            next((a["url"] for a in post.attachments if a.get("kind") == "image"), None),
            None,
            post.release_uri,
        )
        for post, actor in remote
    ]
    local = (
        await session.execute(
            select(Release, Artist)
            .join(Artist, Artist.id == Release.artist_id)
            .join(Follow, Follow.followed_name == Artist.name)
            .where(
                Follow.follower_name == username,
                Follow.state == FollowState.ACCEPTED,
                Release.visibility == Visibility.PUBLIC,
            )
            .order_by(Release.published_at.desc())
            .limit(limit)
        )
    ).all()
    host = fed.base_url.split("://", 1)[1]
    for release, artist in local:
        assert release.published_at is not None
        items.append(
            FeedItem(
                f"{fed.base_url}/releases/{release.id}",
                artist.display_name,
                f"@{artist.name}@{host}",
                release.title,
                "",
                f"{fed.base_url}/releases/{release.id}",
                release.published_at,
                [],
                None,
                release.id,
            )
        )
    items.sort(key=lambda item: item.published, reverse=True)
    return items[:limit]


@dataclass(frozen=True)
class FollowRequest:
    """A follow of an artist waiting for the artist's answer: by a remote actor or by a
    listener here."""

    follow: Follow
    actor: str  # the follower's actor id
    handle: str
    name: str


async def pending_followers(
    session: AsyncSession, fed: Federation, name: str
) -> list[FollowRequest]:
    """Follow requests of the artist ``name``, remote and local, oldest first."""
    rows = await session.execute(
        select(Follow, RemoteActor)
        .outerjoin(RemoteActor, RemoteActor.id == Follow.follower_actor_id)
        .where(Follow.followed_name == name, Follow.state == FollowState.PENDING)
        .order_by(Follow.id)
    )
    host = fed.base_url.split("://", 1)[1]
    requests = []
    # the outer join gives None for a local follower (SQLAlchemy types the row as not None)
    for follow, actor in cast(Sequence[tuple[Follow, RemoteActor | None]], rows.all()):
        if actor is not None:
            requests.append(FollowRequest(follow, actor.uri, remote_handle(actor), actor.name))
        elif follow.follower_name:
            username = follow.follower_name
            uri = _user_actor(fed, username)
            requests.append(FollowRequest(follow, uri, f"@{username}@{host}", username))
    return requests


async def answer_request(fed: Federation, name: str, follow_id: int, accept: bool) -> bool:
    """An artist accepts or rejects a pending follow; a remote follower's server is told."""
    async with fed.sessionmaker() as session:
        row = await session.scalar(
            select(Follow).where(
                Follow.id == follow_id,
                Follow.followed_name == name,
                Follow.state == FollowState.PENDING,
            )
        )
        handle = await session.get(Handle, name)
        if row is None or handle is None:
            return False
        if accept:
            row.state = FOLLOW_STATES.check(row.state, FollowState.ACCEPTED)
            row.accepted_at = utcnow()
        else:
            row.state = FOLLOW_STATES.check(row.state, FollowState.REJECTED)
        await session.flush()
        if row.follower_actor_id is not None:
            follower = await session.get(RemoteActor, row.follower_actor_id)
            assert follower is not None
            answer = "Accept" if accept else "Reject"
            await answer_follow(session, fed, row, handle, follower, answer)
        await session.commit()
    return True


async def _remote_post_author(fed: Federation, post_uri: str) -> RemoteActor:
    async with fed.sessionmaker() as session:
        row = await session.execute(
            select(RemoteActor)
            .join(RemotePost, RemotePost.actor_id == RemoteActor.id)
            .where(RemotePost.uri == post_uri)
        )
        author = row.scalar_one_or_none()
    if author is None:
        raise FollowError("that post is not in anybody's feed here")
    return author


async def like(fed: Federation, username: str, post_uri: str) -> str:
    """Like a post from the feed; its author's server is told. Returns the Like's id."""
    author = await _remote_post_author(fed, post_uri)
    me = _user_actor(fed, username)
    uri = f"{me}/likes/{uuid.uuid4().hex}"
    async with fed.sessionmaker() as session:
        document = activity(uri, "Like", me, post_uri, to=[author.uri])
        sent, _ = await record_activity(session, document, username)
        await deliver(session, sent, [author.inbox])
        await session.commit()
    return uri


async def reply(fed: Federation, username: str, post_uri: str, text: str) -> str:
    """Reply to a post from the feed (public, addressed to its author). Returns the
    reply's id."""
    author = await _remote_post_author(fed, post_uri)
    me = _user_actor(fed, username)
    note_uri = f"{me}/notes/{uuid.uuid4().hex}"
    note: dict[str, Any] = {
        "id": note_uri,
        "type": "Note",
        "attributedTo": me,
        "inReplyTo": post_uri,
        "content": paragraphs(text),
        "published": iso(utcnow()),
        "to": [PUBLIC, author.uri],
        "cc": [f"{me}/followers"],
        "tag": [{"type": "Mention", "href": author.uri}],
    }
    async with fed.sessionmaker() as session:
        document = activity(f"{note_uri}/create", "Create", me, note, to=note["to"], cc=note["cc"])
        sent, _ = await record_activity(session, document, username, public=True)
        await deliver(session, sent, [author.shared_inbox or author.inbox])
        await session.commit()
    return note_uri
