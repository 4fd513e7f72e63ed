"""The social side of the inbox: follows of our artists and labels, answers to our
listeners' follows, replies, likes, boosts, updates, deletes and reports.

``register`` puts each handler in the inbox registry under its (activity type, object
type); see registry.py for the key. A handler returns what it did, in words, for the
admins; an activity that concerns nothing here raises ``Ignored``. Running a handler
twice changes nothing the second time: every row it writes is keyed by an ActivityPub id.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import Delete, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import activity, actor_id
from federation.parse import (
    AUDIO_TYPES,
    NOTE_TYPES,
    as_list,
    id_of,
    parse_actor,
    parse_note,
)
from models.base import utcnow
from models.catalogue import Artist, Release, Visibility
from models.federation import (
    FOLLOW_STATES,
    Follow,
    FollowState,
    Interaction,
    InteractionKind,
    RemoteActor,
    RemotePost,
    Report,
)
from models.handles import Handle, HandleKind
from server.runtime.values import whole_number
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.local import KIND_PATHS, PATH_KINDS
from server.services.activitypub.registry import ANY, Ignored, Incoming, Registry
from server.services.activitypub.remote import store_actor


def local_target(fed: Federation, uri: str | None) -> tuple[str, str] | None:
    """Our URL → ("artists"|"labels"|"users"|"releases"|"tracks"|"actor", key)."""
    if not uri or not uri.startswith(fed.base_url + "/"):
        return None
    path = uri[len(fed.base_url) + 1 :].split("#", 1)[0]
    if path == "actor":
        return ("actor", "")
    match = re.fullmatch(r"(artists|labels|users|releases|tracks)/([^/]+)(/note)?", path)
    return (match.group(1), match.group(2)) if match else None


async def local_release(session: AsyncSession, fed: Federation, uri: str | None) -> Release | None:
    target = local_target(fed, uri)
    if target is None or target[0] != "releases" or whole_number(target[1]) is None:
        return None
    release = await session.get(Release, int(target[1]))
    if release is None or release.visibility is not Visibility.PUBLIC:
        return None
    return release


async def on_follow(incoming: Incoming) -> str:
    """A Follow of one of our artists, labels or listeners (the instance actor's
    Follows are partnerships: partners.py)."""
    fed, act = incoming.fed, incoming.activity
    target = local_target(fed, act.object_id)
    if target is None:
        raise Ignored("the Follow is not for an actor here")
    kind = PATH_KINDS.get(target[0])
    async with fed.sessionmaker() as session:
        handle = await session.get(Handle, target[1])
    if kind is None or handle is None or handle.kind is not kind:
        raise Ignored(f"{act.object_id} is not an actor here")
    follower = await incoming.sender()
    async with fed.sessionmaker() as session:
        approves = False
        if kind is HandleKind.ARTIST:
            artist = await session.scalar(select(Artist).where(Artist.name == handle.name))
            approves = bool(artist and artist.approves_followers)
        follow = await session.scalar(
            select(Follow).where(
                Follow.follower_actor_id == follower.id, Follow.followed_name == handle.name
            )
        )
        if follow is None:
            follow = Follow(
                activity_uri=act.id,
                follower_actor_id=follower.id,
                followed_name=handle.name,
                state=FOLLOW_STATES.start(FollowState.PENDING),
            )
            session.add(follow)
        follow.activity_uri = act.id  # a repeated Follow gets its answer again
        answer = "Accept"
        if kind is HandleKind.USER:
            follow.state = FOLLOW_STATES.check(follow.state, FollowState.REJECTED)
            answer = "Reject"  # listeners publish nothing
        elif approves and follow.state is not FollowState.ACCEPTED:
            follow.state = FOLLOW_STATES.check(follow.state, FollowState.PENDING)
            await session.commit()
            return f"{follower.uri} asked to follow {handle.name}; waiting for approval"
        else:
            follow.state = FOLLOW_STATES.check(follow.state, FollowState.ACCEPTED)
            follow.accepted_at = utcnow()
        await session.flush()
        await answer_follow(session, fed, follow, handle, follower, answer)
        await session.commit()
    return f"{answer} of {follower.uri} following {handle.name}"


async def answer_follow(
    session: AsyncSession,
    fed: Federation,
    follow: Follow,
    handle: Handle,
    follower: RemoteActor,
    answer: str,
) -> None:
    """Send Accept or Reject of a Follow to the follower's own inbox (flushing)."""
    local = actor_id(fed.base_url, KIND_PATHS[handle.kind], handle.name)
    follow_doc = {
        "id": follow.activity_uri,
        "type": "Follow",
        "actor": follower.uri,
        "object": local,
    }
    digest = hashlib.sha256(follow.activity_uri.encode()).hexdigest()[:16]
    uri = f"{local}/answers/{follow.id}/{answer.lower()}/{digest}"
    document = activity(uri, answer, local, follow_doc, to=[follower.uri])
    row, _created = await record_activity(session, document, handle.name)
    await deliver(session, row, [follower.inbox])


async def on_follow_answer(incoming: Incoming) -> str:
    """The Accept or Reject of a listener's Follow, by the followed actor."""
    fed, act = incoming.fed, incoming.activity
    async with fed.sessionmaker() as session:
        follow = await session.scalar(
            select(Follow)
            .join(RemoteActor, RemoteActor.id == Follow.followed_actor_id)
            .where(Follow.activity_uri == act.object_id, RemoteActor.uri == act.actor)
        )
        if follow is None:
            raise Ignored("no Follow of ours by that id to that actor")
        if act.type == "Accept":
            follow.state = FOLLOW_STATES.check(follow.state, FollowState.ACCEPTED)
            follow.accepted_at = utcnow()
        else:
            follow.state = FOLLOW_STATES.check(follow.state, FollowState.REJECTED)
        await session.commit()
    return f"{act.type} of follow {act.object_id}"


async def on_undo(incoming: Incoming) -> str:
    """The end of a Follow, Like or Announce (an instance actor's Follow: partners.py)."""
    fed, act = incoming.fed, incoming.activity
    inner_type = str((act.object or {}).get("type", ""))
    async with fed.sessionmaker() as session:
        actor = await session.scalar(select(RemoteActor).where(RemoteActor.uri == act.actor))
        if actor is None:
            raise Ignored("an Undo from an actor we do not know")
        count = await _delete(
            session,
            delete(Follow).where(
                Follow.activity_uri == act.object_id, Follow.follower_actor_id == actor.id
            ),
        )
        if not count and inner_type == "Follow" and act.object:
            target = local_target(fed, id_of(act.object.get("object")))
            if target is not None:
                count = await _delete(
                    session,
                    delete(Follow).where(
                        Follow.follower_actor_id == actor.id, Follow.followed_name == target[1]
                    ),
                )
        count += await _delete(
            session,
            delete(Interaction).where(
                Interaction.uri == act.object_id, Interaction.actor_id == actor.id
            ),
        )
        await session.commit()
    if not count:
        raise Ignored("nothing to undo")
    return f"undid {act.object_id}"


async def _delete(session: AsyncSession, statement: Delete) -> int:
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def on_create(incoming: Incoming) -> str:
    """A post (a reply to one of our releases, or news of an actor somebody follows)."""
    fed, act = incoming.fed, incoming.activity
    obj = incoming.embedded()
    note = parse_note(obj)
    if note.attributed_to != act.actor:
        raise Ignored("the object is attributed to somebody else than the actor")
    actor = await incoming.sender()
    async with fed.sessionmaker() as session:
        release = await local_release(session, fed, note.in_reply_to)
        if release is not None:
            if await session.scalar(select(Interaction.id).where(Interaction.uri == note.id)):
                return "reply already stored"
            session.add(
                Interaction(
                    uri=note.id,
                    kind=InteractionKind.REPLY,
                    release_id=release.id,
                    actor_id=actor.id,
                    content_html=note.content_html,
                    url=note.url,
                    published_at=note.published or utcnow(),
                )
            )
            await session.commit()
            return f"reply to release {release.id}"
        followed = await session.scalar(
            select(Follow.id).where(
                Follow.followed_actor_id == actor.id, Follow.state == FollowState.ACCEPTED
            )
        )
        if followed is None:
            raise Ignored("nobody here follows the author, and it replies to nothing of ours")
        if await session.scalar(select(RemotePost.id).where(RemotePost.uri == note.id)):
            return "post already stored"
        session.add(_remote_post(note, actor))
        await session.commit()
    return f"post {note.id} for the feeds of its followers"


def _remote_post(note: Any, actor: RemoteActor) -> RemotePost:
    return RemotePost(
        uri=note.id,
        actor_id=actor.id,
        type=note.type,
        name=note.name,
        content_html=note.content_html,
        url=note.url,
        release_uri=note.release,
        attachments=[
            {"url": a.url, "media_type": a.media_type, "name": a.name, "kind": a.kind}
            for a in note.attachments
        ],
        published_at=note.published or utcnow(),
    )


async def on_update(incoming: Incoming) -> str:
    fed, act = incoming.fed, incoming.activity
    obj = incoming.embedded()
    if act.object_id == act.actor:
        parsed = parse_actor(obj)  # key rotation, new name or avatar
        async with fed.sessionmaker() as session:
            if not await session.scalar(select(RemoteActor.id).where(RemoteActor.uri == act.actor)):
                raise Ignored("an Update of an actor we do not know")
            await store_actor(session, parsed)
            await session.commit()
        return f"actor {act.actor} updated"
    if obj.get("type") not in (*NOTE_TYPES, *AUDIO_TYPES):
        raise Ignored("an Update of something we do not keep")
    note = parse_note(obj)
    async with fed.sessionmaker() as session:
        actor = await session.scalar(select(RemoteActor).where(RemoteActor.uri == act.actor))
        if actor is None:
            raise Ignored("an Update from an actor we do not know")
        reply = await session.scalar(
            select(Interaction).where(Interaction.uri == note.id, Interaction.actor_id == actor.id)
        )
        post = await session.scalar(
            select(RemotePost).where(RemotePost.uri == note.id, RemotePost.actor_id == actor.id)
        )
        if reply is None and post is None:
            raise Ignored("an Update of something we do not keep")
        if reply is not None:
            reply.content_html = note.content_html
        if post is not None:
            fresh = _remote_post(note, actor)
            post.name, post.content_html = fresh.name, fresh.content_html
            post.url, post.attachments, post.release_uri = (
                fresh.url,
                fresh.attachments,
                fresh.release_uri,
            )
            post.updated_at = utcnow()
        await session.commit()
    return f"updated {note.id}"


async def on_delete(incoming: Incoming) -> str:
    fed, act = incoming.fed, incoming.activity
    async with fed.sessionmaker() as session:
        actor = await session.scalar(select(RemoteActor).where(RemoteActor.uri == act.actor))
        if actor is None:
            raise Ignored("a Delete from an actor we do not know")
        if act.object_id == act.actor:
            await session.delete(actor)  # follows, replies, likes and posts go with it
            await session.commit()
            return f"actor {act.actor} and everything of theirs removed"
        removed = 0
        for model in (Interaction, RemotePost):
            removed += await _delete(
                session,
                delete(model).where(model.uri == act.object_id, model.actor_id == actor.id),
            )
        await session.commit()
    if not removed:
        raise Ignored("nothing of theirs by that id here")
    return f"deleted {act.object_id}"


async def _interaction(incoming: Incoming, kind: InteractionKind) -> str:
    fed, act = incoming.fed, incoming.activity
    async with fed.sessionmaker() as session:
        release = await local_release(session, fed, act.object_id)
    if release is None:
        raise Ignored(f"the {act.type} is not of a release here")
    actor = await incoming.sender()
    async with fed.sessionmaker() as session:
        if await session.scalar(select(Interaction.id).where(Interaction.uri == act.id)):
            return f"{act.type} already stored"
        session.add(Interaction(uri=act.id, kind=kind, release_id=release.id, actor_id=actor.id))
        await session.commit()
    return f"{act.type} of release {release.id}"


async def on_like(incoming: Incoming) -> str:
    return await _interaction(incoming, InteractionKind.LIKE)


async def on_announce(incoming: Incoming) -> str:
    return await _interaction(incoming, InteractionKind.ANNOUNCE)


async def on_flag(incoming: Incoming) -> str:
    act = incoming.activity
    objects = [uri for value in as_list(act.raw.get("object")) if (uri := id_of(value))]
    content = act.raw.get("content")
    async with incoming.fed.sessionmaker() as session:
        if await session.scalar(select(Report.id).where(Report.activity_uri == act.id)):
            return "report already stored"
        session.add(
            Report(
                activity_uri=act.id,
                reporter_uri=act.actor,
                objects=objects[:50],
                content=content[:5000] if isinstance(content, str) else "",
            )
        )
        await session.commit()
    return f"report about {len(objects)} object(s) for the admins"


def register(registry: Registry) -> None:
    registry.register("Follow", ANY, on_follow)
    for answer in ("Accept", "Reject"):
        registry.register(answer, "Follow", on_follow_answer)
    registry.register("Undo", ANY, on_undo)
    for post in sorted(NOTE_TYPES | AUDIO_TYPES):
        registry.register("Create", post, on_create)
    registry.register("Update", ANY, on_update)
    registry.register("Delete", ANY, on_delete)
    registry.register("Like", ANY, on_like)
    registry.register("Announce", ANY, on_announce)
    registry.register("Flag", ANY, on_flag)
