"""ActivityPub over HTTP: actor documents and pages on the same URLs (content
negotiation), outboxes and follower collections, release and track objects, and the
inboxes."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app, jsonify, render_template, request
from quart.typing import ResponseReturnValue
from sqlalchemy import false, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import BadRequest, NotFound

from federation.objects import (
    CONTEXT,
    PAGE_SIZE,
    ReleaseInfo,
    TrackInfo,
    actor_id,
    announce_release,
    collection_page,
    create_release,
    handle_of,
    local_actor,
    note_id,
    ordered_collection,
    release_note,
    release_object,
    release_page_url,
    track_note,
    track_note_id,
    track_object,
    track_page_url,
)
from federation.royalties import ListenRecord, listen_activity
from models.catalogue import Favourite, Playlist, Release, Visibility
from models.federation import Follow, FollowState, Interaction, InteractionKind, RemoteActor
from models.handles import Handle, HandleKind
from models.pricing import buy_now_cost
from models.remote_plays import (
    HubEntryKind,
    HubLogEntry,
    RemotePlay,
    RemoteTrack,
    RoyaltyStatementRecord,
    StatementDirection,
)
from models.users import User
from server.runtime.values import whole_number
from server.services import plays
from server.services.activitypub.context import federation_of
from server.services.activitypub.inbox import receive
from server.services.activitypub.local import (
    KIND_PATHS,
    LocalActor,
    ensure_actor_key,
    load_local_actor,
)
from server.services.activitypub.publish import load_release_info, load_track_info
from server.services.local_plays import LOCAL
from server.web.current import resources_of
from server.web.previews import actor_preview, newest_cover, release_preview, track_preview
from server.web.sessions import user_for_session
from server.web.signed import signed_by

activitypub = Blueprint("activitypub", __name__)
ACTIVITY_JSON = "application/activity+json"
AP_TYPES = ("application/activity+json", "application/ld+json")
KINDS = "<any(artists, labels, users):kind>"


def wants_activity() -> bool:
    """ActivityPub when the Accept header names an ActivityPub type before any HTML.

    (werkzeug's matching refuses ``application/ld+json; profile=…`` against a bare offer,
    and browsers list text/html first, so the order of the ranges decides.)"""
    ranges = [part.split(";", 1)[0].strip().lower() for part in
              request.headers.get("Accept", "").split(",")]  # fmt: skip
    for media in ranges:
        if media in AP_TYPES:
            return True
        if media in ("text/html", "application/xhtml+xml"):
            return False
    return False


def _json(document: dict[str, Any]) -> Response:
    response = jsonify(document)
    response.headers["Content-Type"] = ACTIVITY_JSON
    response.headers["Vary"] = "Accept"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


async def _html(template: str, **context: Any) -> Response:
    resources = resources_of(current_app)
    body = await render_template(template, instance=resources.settings.instance, **context)
    response = Response(body, 200, {"Content-Type": "text/html; charset=utf-8"})
    response.headers["Vary"] = "Accept"
    return response


def activity_response(document: dict[str, Any]) -> Response:
    """An ActivityPub document as this blueprint answers it (for routes elsewhere)."""
    return _json(document)


async def html_response(template: str, **context: Any) -> Response:
    """A page that varies by Accept like the ones here (for routes elsewhere)."""
    return await _html(template, **context)


async def _ensure_key(name: str) -> None:
    """Before the read of an actor's page: its key, made if it has none yet."""
    resources = resources_of(current_app)
    await ensure_actor_key(
        resources.read_sessionmaker, resources.sessionmaker, name.lower(), resources.secret
    )


async def _local_actor(session: AsyncSession, kind: str, name: str) -> LocalActor:
    """The actor (its key made beforehand by ``_ensure_key``: this only reads)."""
    resources = resources_of(current_app)
    actor = await load_local_actor(
        session, resources.settings.instance.base_url, kind, name, resources.secret
    )
    if actor is None:
        raise NotFound(f"there is no {kind[:-1]} called {name!r} here")
    return actor


def page_number() -> int | None:
    """The ``page`` query parameter of a paged collection (None: the collection itself)."""
    raw = request.args.get("page")
    if raw is None:
        return None
    page = whole_number(raw, low=1, high=100_000)
    if page is None:
        raise BadRequest("page must be a number from 1")
    return page


@activitypub.get(f"/{KINDS}/<name>")
async def actor_page(kind: str, name: str) -> ResponseReturnValue:
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    await _ensure_key(name)
    async with resources.read_sessionmaker() as session:
        actor = await _local_actor(session, kind, name)
        if wants_activity():
            return _json(local_actor(base, actor.info))
        releases: list[Any] = []
        if actor.artist is not None or actor.label is not None:
            if actor.artist is not None:
                owned = Release.artist_id == actor.artist.id
            else:
                assert actor.label is not None  # one of the two, by the test above
                owned = Release.label_id == actor.label.id
            releases = list(
                (
                    await session.scalars(
                        select(Release)
                        .where(owned, Release.visibility == Visibility.PUBLIC)
                        .order_by(Release.published_at.desc())
                    )
                ).all()
            )
        followers = await _count_followers(session, actor.name)
        covered = await newest_cover(session, [release.id for release in releases])
    return await _html(
        "actor.html",
        actor=actor,
        releases=releases,
        followers=followers,
        handle=handle_of(base, actor.name),
        actor_url=actor_id(base, kind, actor.name),
        actor_path=f"/{kind}/{actor.name}",
        remote_error=request.args.get("remote_error"),
        preview=actor_preview(
            base,
            resources.settings.instance.name,
            kind,
            actor.name,
            actor.info.display_name,
            actor.info.summary,
            covered,
        ),
    )


async def _count_followers(session: AsyncSession, name: str) -> int:
    return (
        await session.scalar(
            select(func.count())
            .select_from(Follow)
            .where(Follow.followed_name == name, Follow.state == FollowState.ACCEPTED)
        )
        or 0
    )


@activitypub.get(f"/{KINDS}/<name>/outbox")
async def outbox(kind: str, name: str) -> ResponseReturnValue:
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    page = page_number()
    await _ensure_key(name)
    async with resources.read_sessionmaker() as session:
        actor = await _local_actor(session, kind, name)
        uri = f"{actor_id(base, kind, actor.name)}/outbox"
        query = select(Release.id).where(Release.visibility == Visibility.PUBLIC)
        if actor.artist is not None:
            query = query.where(Release.artist_id == actor.artist.id)
        elif actor.label is not None:
            query = query.where(Release.label_id == actor.label.id)
        else:
            query = query.where(false())  # listeners publish nothing
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        if page is None:
            return _json(ordered_collection(uri, total))
        ids = (
            await session.scalars(
                query.order_by(Release.published_at.desc(), Release.id.desc())
                .limit(PAGE_SIZE)
                .offset((page - 1) * PAGE_SIZE)
            )
        ).all()
        items = []
        for release_id in ids:
            info = await load_release_info(session, release_id)
            if info is None:
                continue
            document = create_release(base, info)
            document.pop("@context")
            if actor.label is not None:  # a label's outbox: its announces
                document = announce_release(
                    base, actor.name, info.id, info.artist_name, info.published
                )
                document.pop("@context")
            items.append(document)
    return _json(collection_page(uri, page, total, items))


@activitypub.get(f"/{KINDS}/<name>/followers")
async def followers(kind: str, name: str) -> ResponseReturnValue:
    return await _follow_collection(kind, name, "followers")


@activitypub.get(f"/{KINDS}/<name>/following")
async def following(kind: str, name: str) -> ResponseReturnValue:
    return await _follow_collection(kind, name, "following")


async def _follow_collection(kind: str, name: str, which: str) -> ResponseReturnValue:
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    page = page_number()
    await _ensure_key(name)
    async with resources.read_sessionmaker() as session:
        actor = await _local_actor(session, kind, name)
        uri = f"{actor_id(base, kind, actor.name)}/{which}"
        accepted = Follow.state == FollowState.ACCEPTED
        if which == "followers":
            where = (Follow.followed_name == actor.name, accepted)
            remote_col, local_col = Follow.follower_actor_id, Follow.follower_name
        else:
            where = (Follow.follower_name == actor.name, accepted)
            remote_col, local_col = Follow.followed_actor_id, Follow.followed_name
        total = await session.scalar(select(func.count()).select_from(Follow).where(*where)) or 0
        if page is None:
            return _json(ordered_collection(uri, total))
        rows = (
            await session.execute(
                select(RemoteActor.uri, local_col, Handle.kind)
                .select_from(Follow)
                .outerjoin(RemoteActor, RemoteActor.id == remote_col)
                .outerjoin(Handle, Handle.name == local_col)
                .where(*where)
                .order_by(Follow.id.desc())
                .limit(PAGE_SIZE)
                .offset((page - 1) * PAGE_SIZE)
            )
        ).all()
    items = [
        remote or actor_id(base, KIND_PATHS[HandleKind(handle_kind)], str(local))
        for remote, local, handle_kind in rows
    ]
    return _json(collection_page(uri, page, total, items))


@activitypub.get("/actor/<any(outbox, followers, following):which>")
async def instance_collection(which: str) -> ResponseReturnValue:
    base = resources_of(current_app).settings.instance.base_url
    uri = f"{base}/actor/{which}"
    if page_number() is None:
        return _json(ordered_collection(uri, 0))
    return _json(collection_page(uri, 1, 0, []))


def _with_context(document: dict[str, Any]) -> Response:
    return _json({"@context": CONTEXT, **document})


def _alternate(response: Response, uri: str) -> Response:
    """The page names its ActivityPub document, as Mastodon looks for when a pasted URL
    answers HTML (fetch_resource_service's Link header and ``<link rel=alternate>``)."""
    response.headers["Link"] = f'<{uri}>; rel="alternate"; type="{ACTIVITY_JSON}"'
    return response


@activitypub.get("/releases/<int:release_id>")
async def release_page(release_id: int) -> ResponseReturnValue:
    """The page people share; ActivityPub requests get the release's Note, which Mastodon
    can show (its ``release`` property leads playfair peers to the album object)."""
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    user = None if wants_activity() else await user_for_session()
    async with resources.read_sessionmaker() as session:
        info = await load_release_info(session, release_id)
        if info is None:
            raise NotFound("there is no such release here")
        if wants_activity():
            return _with_context(release_note(base, info))
        conversation = (
            await session.execute(
                select(Interaction, RemoteActor)
                .join(RemoteActor, RemoteActor.id == Interaction.actor_id)
                .where(Interaction.release_id == release_id)
                .order_by(Interaction.published_at)
            )
        ).all()
        prices = await _prices(session, user, [track.id for track in info.tracks])
    replies = [(i, a) for i, a in conversation if i.kind is InteractionKind.REPLY]
    likes = sum(1 for i, _ in conversation if i.kind is InteractionKind.LIKE)
    boosts = sum(1 for i, _ in conversation if i.kind is InteractionKind.ANNOUNCE)
    page = await _html(
        "release.html",
        release=info,
        replies=replies,
        likes=likes,
        boosts=boosts,
        base=base,
        prices=prices,
        preview=release_preview(base, resources.settings.instance.name, info),
    )
    return _alternate(page, note_id(base, release_id))


@activitypub.get("/releases/<int:release_id>/album")
async def release_album_route(release_id: int) -> ResponseReturnValue:
    """The album object playfair peers read: an OrderedCollection of the tracks' Audio."""
    base = resources_of(current_app).settings.instance.base_url
    info = await _published(release_id)
    if not wants_activity():
        return Response("", 303, {"Location": release_page_url(base, release_id)})
    return _json(release_object(base, info))


async def _prices(session: AsyncSession, user: User | None, track_ids: list[int]) -> dict[int, Any]:
    """The signed-in listener's next-play quote for each track (none for visitors). The
    user is looked up before the session opens (one SQLite connection per process)."""
    if user is None or not track_ids:
        return {}
    return await plays.quotes(session, (LOCAL,), user.id, track_ids)


@activitypub.get("/releases/<int:release_id>/note")
async def release_note_route(release_id: int) -> ResponseReturnValue:
    base = resources_of(current_app).settings.instance.base_url
    info = await _published(release_id)
    if not wants_activity():
        return Response("", 303, {"Location": release_page_url(base, release_id)})
    return _with_context(release_note(base, info))


@activitypub.get("/releases/<int:release_id>/note/create")
async def release_create_route(release_id: int) -> ResponseReturnValue:
    info = await _published(release_id)
    return _json(create_release(resources_of(current_app).settings.instance.base_url, info))


async def _load_track(session: AsyncSession, track_id: int) -> tuple[ReleaseInfo, TrackInfo]:
    found = await load_track_info(session, track_id)
    if found is None:
        raise NotFound("there is no such track here")
    return found


async def _published(release_id: int) -> ReleaseInfo:
    """The public release, or 404 (for the routes of its ActivityPub objects)."""
    async with resources_of(current_app).read_sessionmaker() as session:
        info = await load_release_info(session, release_id)
    if info is None:
        raise NotFound("the release is not published here")
    return info


@activitypub.get("/tracks/<int:track_id>")
async def track_page(track_id: int) -> ResponseReturnValue:
    """The page people share; ActivityPub requests get the track's Note (its ``track``
    property leads playfair peers to the Audio object)."""
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    async with resources.read_sessionmaker() as session:
        info, track = await _load_track(session, track_id)
    if wants_activity():
        return _with_context(track_note(base, info, track))
    user = await user_for_session()
    async with resources.read_sessionmaker() as session:
        prices = await _prices(session, user, [track_id])
        favourite = user is not None and (
            await session.get(Favourite, (user.id, track_id)) is not None
        )
        lists = []
        if user is not None:
            lists = list(
                await session.scalars(
                    select(Playlist).where(Playlist.user_id == user.id).order_by(Playlist.title)
                )
            )
    price = prices.get(track_id)
    buy_price = None
    if price is not None and not (price.free or price.owned):
        buy_price = buy_now_cost(price.paid_plays)
    page = await _html(
        "track.html",
        release=info,
        track=track,
        base=base,
        price=price,
        buy_price=buy_price,
        message=request.args.get("message"),
        error=request.args.get("error"),
        favourite=favourite,
        playlists=lists,
        preview=track_preview(base, resources.settings.instance.name, info, track),
    )
    return _alternate(page, track_note_id(base, track_id))


@activitypub.get("/tracks/<int:track_id>/<any(audio, note):which>")
async def track_object_route(track_id: int, which: str) -> ResponseReturnValue:
    """The track's Audio object (for playfair peers) or its Note (for everyone)."""
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    async with resources.read_sessionmaker() as session:
        info, track = await _load_track(session, track_id)
    if not wants_activity():
        return Response("", 303, {"Location": track_page_url(base, track_id)})
    if which == "audio":
        return _with_context(track_object(base, info, track))
    return _with_context(track_note(base, info, track))


async def _inbox(recipient: str | None) -> ResponseReturnValue:
    """Receive an activity. Its media type must be an ActivityPub one (any parameters,
    such as ld+json's profile, are allowed): 415 otherwise, before anything is read."""
    resources = resources_of(current_app)
    fed = federation_of(resources)
    length = request.content_length
    if length is not None and length > fed.settings.max_inbox_bytes:
        return jsonify(
            {"error": f"the activity is larger than {fed.settings.max_inbox_bytes}"}
        ), 413
    if request.mimetype not in ("application/activity+json", "application/ld+json"):
        return jsonify(
            {"error": "an activity is sent as application/activity+json or application/ld+json"}
        ), 415
    body = await request.get_data(cache=False, as_text=False)
    assert isinstance(body, bytes)
    raw_path = request.scope.get("raw_path", request.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = raw_path + (f"?{query}" if query else "")
    answer = await receive(fed, recipient, request.method, path, dict(request.headers), body)
    status = "accepted" if answer.status == 202 else "refused"
    return jsonify({"status": status, "message": answer.message}), answer.status


@activitypub.post("/inbox")
async def shared_inbox() -> ResponseReturnValue:
    return await _inbox(None)


@activitypub.post("/actor/inbox")
async def instance_inbox() -> ResponseReturnValue:
    return await _inbox(None)


@activitypub.post(f"/{KINDS}/<name>/inbox")
async def actor_inbox(kind: str, name: str) -> ResponseReturnValue:
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        handle = await session.get(Handle, name.lower())
    if handle is None or KIND_PATHS[handle.kind] != kind:
        raise NotFound(f"there is no {kind[:-1]} called {name!r} here")
    return await _inbox(handle.name)


@activitypub.get("/listens/<listen_id>")
async def listen_route(listen_id: str) -> ResponseReturnValue:
    """A Listen we sent, for its payee to fetch by id (a GET signed by the payee)."""
    resources = resources_of(current_app)
    fed = federation_of(resources)
    requester = await signed_by()
    uri = f"{fed.base_url}/listens/{listen_id}"
    async with resources.read_sessionmaker() as session:
        row = (
            await session.execute(
                select(RemotePlay, RemoteTrack.uri, RemoteActor.uri)
                .join(RemoteTrack, RemoteTrack.id == RemotePlay.remote_track_id)
                .join(RemoteActor, RemoteActor.id == RemotePlay.payee_id)
                .where(RemotePlay.listen_uri == uri)
            )
        ).first()
    if row is None or requester is None or requester != row[2]:
        raise NotFound("no such Listen for you")
    play, track_uri, payee = row
    record = ListenRecord(
        play.listen_uri, fed.instance_actor, track_uri, play.listener, play.paid_number,
        play.tokens, play.owned, play.at,
    )  # fmt: skip
    return _json(listen_activity(record, to=[payee]))


@activitypub.get("/statements/<statement_id>")
async def statement_route(statement_id: str) -> ResponseReturnValue:
    """A royalty statement we signed, as signed (anyone may verify it)."""
    resources = resources_of(current_app)
    uri = f"{resources.settings.instance.base_url}/statements/{statement_id}"
    async with resources.read_sessionmaker() as session:
        row = await session.scalar(
            select(RoyaltyStatementRecord).where(
                RoyaltyStatementRecord.uri == uri,
                RoyaltyStatementRecord.direction == StatementDirection.OUTGOING,
            )
        )
    if row is None:
        raise NotFound("there is no such statement")
    return _json(row.document)


@activitypub.get("/settlements/<settlement_id>")
async def settlement_route(settlement_id: str) -> ResponseReturnValue:
    """A settlement this hub signed, as signed."""
    resources = resources_of(current_app)
    uri = f"{resources.settings.instance.base_url}/settlements/{settlement_id}"
    async with resources.read_sessionmaker() as session:
        row = await session.scalar(
            select(HubLogEntry).where(
                HubLogEntry.uri == uri, HubLogEntry.kind == HubEntryKind.SETTLEMENT
            )
        )
    if row is None:
        raise NotFound("there is no such settlement")
    return _json(row.document)
