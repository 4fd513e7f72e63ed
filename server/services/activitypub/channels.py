"""A release as uploads to Funkwhale channels (docs/architecture.md#federation).

Funkwhale files nothing of a ``Create{Note}``; it takes a release from an artist it knows
as a channel (the actor's ``url`` lists an RSS feed) as one ``Create{Audio}`` per track.
Those go to followers on Funkwhale servers only: Mastodon turns an ``Audio`` into a status
of its own, so every other follower would get one post per track besides the release's
Note. A follower is on Funkwhale when its actor id has Funkwhale's path for actors
(``/federation/actors/<name>``), which is all we know of its server without a NodeInfo
look-up.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import ReleaseInfo, create_audio
from models.catalogue import Artist, ArtistKind
from models.federation import Follow, FollowState, RemoteActor
from server.services.activitypub.delivery import deliver, record_activity

FUNKWHALE_ACTOR_PATH = "/federation/actors/"


def is_funkwhale_actor(uri: str) -> bool:
    """Whether an actor id has the shape of Funkwhale's (``/federation/actors/<name>``)."""
    path = urlsplit(uri).path
    name = path.removeprefix(FUNKWHALE_ACTOR_PATH)
    return path.startswith(FUNKWHALE_ACTOR_PATH) and bool(name) and "/" not in name


async def funkwhale_inboxes(session: AsyncSession, artist_name: str) -> list[str]:
    """The inboxes of the artist's accepted followers on Funkwhale, each shared inbox once."""
    rows = await session.execute(
        select(RemoteActor.uri, RemoteActor.shared_inbox, RemoteActor.inbox)
        .join(Follow, Follow.follower_actor_id == RemoteActor.id)
        .where(
            Follow.followed_name == artist_name,
            Follow.state == FollowState.ACCEPTED,
            RemoteActor.gone_at.is_(None),
            RemoteActor.uri.contains(FUNKWHALE_ACTOR_PATH, autoescape=True),  # the rest below
        )
    )
    return sorted({shared or inbox for uri, shared, inbox in rows if is_funkwhale_actor(uri)})


async def artist_type(session: AsyncSession, artist_name: str) -> str:
    """The artist's ActivityStreams type, as its actor document gives it."""
    kind = await session.scalar(select(Artist.kind).where(Artist.name == artist_name))
    return "Group" if kind is ArtistKind.BAND else "Person"


async def send_channel_uploads(session: AsyncSession, base_url: str, release: ReleaseInfo) -> int:
    """Record a public ``Create{Audio}`` for each track that has a preview (a track without
    one has no audio Funkwhale may play) and queue it to the Funkwhale followers; returns
    how many deliveries were queued. With no such follower nothing is sent, so nothing is
    recorded (the ids resolve anyway: server/web/channel.py builds them)."""
    inboxes = await funkwhale_inboxes(session, release.artist_name)
    if not inboxes:
        return 0
    queued = 0
    for track in release.tracks:
        if not track.preview_type:
            continue
        document = create_audio(base_url, release, track)
        row, _ = await record_activity(
            session, document, release.artist_name, release_id=release.id, public=True
        )
        queued += await deliver(session, row, inboxes)
    return queued
