"""Stream-to-own of tracks hosted by partner instances (DESIGN.md §6.2-6.3).

The listener's instance (this one, the payer) resolves a partner's release into its
tracks, charges its own listener by the stream-to-own curve with the count kept here,
books the artist share as owed to the payee instance (a PEER ledger account, with the
same running-floor split as local artists), serves the audio from a cache it fills with
a GET signed by its instance actor (checked against the payee's Repr-Digest), and sends
the payee one ``Listen`` per play, in the transaction that charges it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.fetch import FetchError
from federation.parse import as_list, duration_ms, same_origin
from federation.royalties import ListenRecord, listen_activity, pseudonymous_listener
from models import ledger
from models.base import utcnow
from models.federation import Partnership, PartnerState, RemoteActor
from models.ledger import AccountKind, InsufficientBalance
from models.pricing import PAID_PLAYS_TO_OWN, play_cost, plays_until_owned, split
from models.remote_plays import RemoteListenerTrack, RemotePlay, RemotePlaySession, RemoteTrack
from server.runtime.config import MoneySettings
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.partners import instance_actor_url
from server.services.activitypub.remote import ResolveError, get_actor, remote_url
from server.services.media.storage import LocalStorage
from server.services.money import PLAY_THRESHOLD, ConcurrentChange, MoneyError, Quote

MAX_TRACKS = 200


class RemoteTrackError(Exception):
    """A remote release or track cannot be used; the message says why."""


@dataclass(frozen=True)
class ParsedTrack:
    uri: str
    title: str
    duration_ms: int
    position: int
    artist_uri: str
    preview_url: str | None
    free: bool


def parse_release_tracks(document: dict[str, Any]) -> tuple[str, str, list[ParsedTrack]]:
    """A playfair release (an OrderedCollection of Audio) → (id, title, tracks); every
    track on the release's own server."""
    release_uri, title = document.get("id"), document.get("name")
    if not isinstance(release_uri, str) or document.get("type") != "OrderedCollection":
        raise RemoteTrackError("that is not a playfair release")
    tracks = []
    for item in as_list(document.get("orderedItems"))[:MAX_TRACKS]:
        if not isinstance(item, dict) or item.get("type") != "Audio":
            continue
        uri, name = item.get("id"), item.get("name")
        artist = item.get("attributedTo")
        if not (isinstance(uri, str) and isinstance(name, str) and isinstance(artist, str)):
            continue
        if not same_origin(uri, release_uri) or not same_origin(artist, release_uri):
            raise RemoteTrackError(f"the track {uri[:200]} is not on the release's server")
        preview = item.get("preview")
        position = item.get("position")
        tracks.append(
            ParsedTrack(
                uri,
                name[:500],
                duration_ms(item.get("duration")) or 0,
                position if isinstance(position, int) and 0 < position < 10_000 else 1,
                artist,
                preview if isinstance(preview, str) and same_origin(preview, uri) else None,
                item.get("priceModel") == "free",
            )
        )
    if not tracks:
        raise RemoteTrackError("the release has no tracks")
    return release_uri, str(title or "")[:500], tracks


async def partner_payee(fed: Federation, uri: str) -> RemoteActor:
    """The instance actor of the server hosting ``uri``, which must be our partner (we
    follow it and it accepted: it lets us fetch its audio)."""
    host = urlsplit(uri).netloc
    try:
        actor = await get_actor(fed, instance_actor_url(fed, f"{urlsplit(uri).scheme}://{host}"))
    except ResolveError as error:
        raise RemoteTrackError(str(error)) from None
    async with fed.sessionmaker() as session:
        state = await session.scalar(
            select(Partnership.we_follow).where(Partnership.actor_id == actor.id)
        )
    if state is not PartnerState.ACCEPTED:
        raise RemoteTrackError(
            f"{host} is not a partner of this instance: its tracks can only be previewed"
        )
    return actor


async def resolve_release(fed: Federation, uri: str) -> list[RemoteTrack]:
    try:
        uri = remote_url(fed, uri)  # before anything is resolved or fetched
    except ResolveError as error:
        raise RemoteTrackError(str(error)) from None
    payee = await partner_payee(fed, uri)
    try:
        _final, document = await fed.fetcher.get_json(uri, sign=fed.instance_signer())
    except FetchError as error:
        raise RemoteTrackError(f"the release cannot be fetched: {error}") from None
    release_uri, title, parsed = parse_release_tracks(document)
    if not same_origin(release_uri, uri):
        raise RemoteTrackError("the release answered with an id on another server")
    async with fed.sessionmaker() as session:
        rows = []
        for track in parsed:
            row = await session.scalar(select(RemoteTrack).where(RemoteTrack.uri == track.uri))
            if row is None:
                row = RemoteTrack(uri=track.uri, payee_id=payee.id, stream_url="")
                session.add(row)
            row.payee_id, row.artist_uri, row.title = payee.id, track.artist_uri, track.title
            row.duration_ms, row.position, row.free = track.duration_ms, track.position, track.free
            row.release_uri, row.release_title = release_uri, title
            row.stream_url = f"{track.uri}/stream?format=mp3"
            row.preview_url, row.fetched_at = track.preview_url, utcnow()
            rows.append(row)
        await session.commit()
        return rows


async def quote_remote(session: AsyncSession, user_id: int, track: RemoteTrack) -> Quote:
    state = await session.get(RemoteListenerTrack, (user_id, track.id))
    paid = state.paid_plays if state else 0
    owned = bool(state and state.owned_at)
    price = 0 if (track.free or owned) else play_cost(paid)
    balance = await ledger.balance(session, ledger.wallet_key(user_id))
    return Quote(price, paid, plays_until_owned(paid), owned, track.free, balance)


async def open_session(session: AsyncSession, user_id: int, track: RemoteTrack) -> str:
    token = secrets.token_urlsafe(24)
    session.add(RemotePlaySession(token=token, user_id=user_id, remote_track_id=track.id))
    await session.commit()
    return token


@dataclass(frozen=True)
class RemoteClaim:
    outcome: str
    tokens: int
    paid_number: int | None
    owned: bool
    balance: int
    listen: str


async def claim(
    session: AsyncSession,
    fed: Federation,
    token: str,
    user_id: int,
    settings: MoneySettings,
    now: datetime | None = None,
) -> RemoteClaim:
    """The player says the play was heard: charged once min(45 s, length) has passed
    since the session opened (like a local play)."""
    return await charge_session(session, fed, token, user_id, settings, now, heard_check=True)


async def charge_session(
    session: AsyncSession,
    fed: Federation,
    token: str,
    user_id: int,
    settings: MoneySettings,
    now: datetime | None = None,
    *,
    heard_check: bool,
) -> RemoteClaim:
    """Charge a remote play once (like a local one: the player's claim, or the stream
    reaching the end of the free part) and queue its Listen to the payee, in one
    transaction: the money and the report of it commit together or not at all."""
    now = now or utcnow()
    play_session = await session.scalar(
        select(RemotePlaySession).where(
            RemotePlaySession.token == token, RemotePlaySession.user_id == user_id
        )
    )
    if play_session is None:
        raise MoneyError("there is no such play session", 404)
    if play_session.play_id is not None:
        return await _result(session, play_session.play_id, user_id)
    track = await session.get(RemoteTrack, play_session.remote_track_id)
    payee = await session.get(RemoteActor, track.payee_id) if track else None
    if track is None or payee is None:
        raise MoneyError("the track is gone", 410)
    if now - play_session.started_at > settings.play_session_lifetime:
        raise MoneyError("the play session has expired: start the track again", 410)
    needed = min(PLAY_THRESHOLD, timedelta(milliseconds=track.duration_ms))
    if heard_check and now - play_session.started_at < needed:
        left = (needed - (now - play_session.started_at)).total_seconds()
        raise MoneyError(
            f"a play counts after {needed.total_seconds():g} s: {left:.1f} s to go", 425
        )
    # One winner per session: a concurrent claimer waits for this row's lock, then finds
    # it claimed, and its retry reads the result.
    taken = await session.execute(
        update(RemotePlaySession)
        .where(RemotePlaySession.id == play_session.id, RemotePlaySession.play_id.is_(None))
        .values(play_id=None)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        raise ConcurrentChange()
    state = await session.get(RemoteListenerTrack, (user_id, track.id))
    if state is None:
        try:
            async with session.begin_nested():
                state = RemoteListenerTrack(user_id=user_id, remote_track_id=track.id)
                session.add(state)
        except IntegrityError:
            state = await session.get(
                RemoteListenerTrack, (user_id, track.id), populate_existing=True
            )
            assert state is not None
    cost = 0 if (track.free or state.owned_at) else play_cost(state.paid_plays)
    paid_number = None
    if cost:
        paid_number = state.paid_plays + 1
        owns_now = paid_number >= PAID_PLAYS_TO_OWN
        moved = await session.execute(
            update(RemoteListenerTrack)
            .where(
                RemoteListenerTrack.user_id == user_id,
                RemoteListenerTrack.remote_track_id == track.id,
                RemoteListenerTrack.paid_plays == state.paid_plays,
                RemoteListenerTrack.owned_at.is_(None),
            )
            .values(paid_plays=paid_number, **({"owned_at": now} if owns_now else {}))
            .execution_options(synchronize_session=False)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            raise ConcurrentChange()
        await _charge(session, user_id, payee, cost, settings, reference=f"remote-play:{token}")
    owned = bool(state.owned_at) or (paid_number or 0) >= PAID_PLAYS_TO_OWN
    play = await _report(session, fed, user_id, track, payee, paid_number, cost, owned, now)
    play_session.play_id = play.id
    await session.commit()
    return await _result(session, play.id, user_id)


async def _report(
    session: AsyncSession,
    fed: Federation,
    user_id: int,
    track: RemoteTrack,
    payee: RemoteActor,
    paid_number: int | None,
    tokens: int,
    owned: bool,
    now: datetime,
) -> RemotePlay:
    """Record a play and queue its Listen to the payee, in the caller's transaction."""
    record = ListenRecord(
        id=f"{fed.base_url}/listens/{uuid.uuid4().hex}",
        payer=fed.instance_actor,
        track=track.uri,
        listener=pseudonymous_listener(fed.secret.encode(), user_id, urlsplit(payee.uri).netloc),
        play_number=paid_number,
        tokens=tokens,
        owned=owned,
        at=now,
    )
    play = RemotePlay(
        listen_uri=record.id, user_id=user_id, remote_track_id=track.id, payee_id=payee.id,
        at=now, paid_number=paid_number, tokens=tokens, owned=owned, listener=record.listener,
    )  # fmt: skip
    session.add(play)
    await session.flush()
    sent, _ = await record_activity(session, listen_activity(record, to=[payee.uri]), None)
    await deliver(session, sent, [payee.shared_inbox or payee.inbox])
    return play


async def buy(
    session: AsyncSession,
    fed: Federation,
    user_id: int,
    track: RemoteTrack,
    settings: MoneySettings,
) -> RemoteClaim:
    """Buy now: what is left of 1022 tokens, and the listener owns the track at once.

    Reported to the payee as the remaining paid plays, each its own Listen with its play
    number and price (their sum is exactly the rest of 1022), so statements, the payee's
    counts and the hub need nothing new for purchases."""
    payee = await session.get(RemoteActor, track.payee_id)
    if payee is None:
        raise MoneyError("the track is gone", 410)
    state = await session.get(RemoteListenerTrack, (user_id, track.id))
    paid = state.paid_plays if state else 0
    if state is not None and state.owned_at is not None:
        raise MoneyError("you own this track already", 409)
    if track.free:
        raise MoneyError("this track is free: there is nothing to buy", 409)
    now = utcnow()
    if state is None:
        session.add(RemoteListenerTrack(user_id=user_id, remote_track_id=track.id))
        await session.flush()
    moved = await session.execute(
        update(RemoteListenerTrack)
        .where(
            RemoteListenerTrack.user_id == user_id,
            RemoteListenerTrack.remote_track_id == track.id,
            RemoteListenerTrack.paid_plays == paid,
            RemoteListenerTrack.owned_at.is_(None),
        )
        .values(paid_plays=PAID_PLAYS_TO_OWN, owned_at=now)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConcurrentChange()
    cost = sum(play_cost(n) for n in range(paid, PAID_PLAYS_TO_OWN))
    await _charge(
        session, user_id, payee, cost, settings, reference=f"remote-buy:{user_id}:{track.id}"
    )
    last = None
    for number in range(paid + 1, PAID_PLAYS_TO_OWN + 1):
        last = await _report(
            session, fed, user_id, track, payee, number, play_cost(number - 1),
            number == PAID_PLAYS_TO_OWN, now,
        )  # fmt: skip
    assert last is not None
    await session.commit()
    return RemoteClaim(
        "charged", cost, None, True,
        await ledger.balance(session, ledger.wallet_key(user_id)), last.listen_uri,
    )  # fmt: skip


async def _charge(
    session: AsyncSession,
    user_id: int,
    payee: RemoteActor,
    cost: int,
    settings: MoneySettings,
    *,
    reference: str,
) -> None:
    wallet = await ledger.account(session, ledger.wallet_key(user_id), AccountKind.WALLET, user_id)
    owed = await ledger.account(session, ledger.peer_key(payee.id), AccountKind.PEER, payee.id)
    instance = await ledger.account(session, "instance", AccountKind.INSTANCE)
    gross_before = await ledger.add_gross(session, owed, cost)
    to_artist, to_instance = split(gross_before, cost, settings.artist_share_bp)
    try:
        await ledger.post(
            session,
            "remote-play",
            reference,
            [(wallet, -cost), (owed, to_artist), (instance, to_instance)],
            {"payee": payee.uri},
        )
    except InsufficientBalance:
        balance = await ledger.balance(session, wallet.key)
        raise MoneyError(
            f"your balance is too low: this costs {cost} tokens and you have {balance}; "
            "top up, or listen to the preview",
            402,
        ) from None


async def _result(session: AsyncSession, play_id: int, user_id: int) -> RemoteClaim:
    play = await session.get(RemotePlay, play_id)
    assert play is not None
    return RemoteClaim(
        "charged" if play.tokens else "free",
        play.tokens,
        play.paid_number,
        play.owned,
        await ledger.balance(session, ledger.wallet_key(user_id)),
        play.listen_uri,
    )


async def cached_audio(
    fed: Federation, storage: LocalStorage, track_id: int, max_bytes: int, cache_limit: int
) -> RemoteTrack:
    """The track with its audio in the cache: fetched from the partner with a signed GET
    when missing, checked against its Repr-Digest, least recently used files evicted."""
    async with fed.sessionmaker() as session:
        track = await session.get(RemoteTrack, track_id)
        if track is None:
            raise RemoteTrackError("there is no such remote track")
        if track.cache_key and storage.exists(track.cache_key):
            track.last_used_at = utcnow()
            await session.commit()
            return track
        stream_url = track.stream_url
    fetcher = fed.fetcher.with_policy(replace(fed.fetcher.policy, max_bytes=max_bytes))
    try:
        response = await fetcher.request(
            "GET", stream_url, headers={"Accept": "audio/mpeg"}, sign=fed.instance_signer(),
            follow_redirects=True,
        )  # fmt: skip
    except FetchError as error:
        raise RemoteTrackError(f"the partner's audio cannot be fetched: {error}") from None
    if response.status != 200:
        raise RemoteTrackError(f"the partner answered {response.status} for the audio")
    digest = hashlib.sha256(response.content).digest()
    stated = response.headers.get("Repr-Digest", "")
    expected = "sha-256=:" + base64.b64encode(digest).decode() + ":"
    if expected not in [part.strip() for part in stated.split(",")]:
        raise RemoteTrackError("the audio does not match the digest the partner sent")
    key = f"remote/{digest.hex()[:2]}/{digest.hex()}"
    await asyncio.to_thread(_store, storage, key, response.content)
    async with fed.sessionmaker() as session:
        track = await session.get(RemoteTrack, track_id)
        assert track is not None
        track.cache_key, track.cache_bytes, track.cache_sha256 = (
            key,
            len(response.content),
            digest.hex(),
        )
        track.cache_type = response.headers.get("Content-Type", "audio/mpeg").split(";")[0]
        track.cached_at = track.last_used_at = utcnow()
        track.cache_timeline = None  # made from the new file on first use
        await session.commit()
        await _evict(session, storage, cache_limit, keep=track.id)
        return track


def _store(storage: LocalStorage, key: str, content: bytes) -> None:
    temporary = storage.temporary_file()
    temporary.write_bytes(content)
    storage.put(temporary, key)


async def _evict(session: AsyncSession, storage: LocalStorage, limit: int, keep: int) -> None:
    """Remove least recently used cached files until the cache fits its limit."""
    total = await session.scalar(select(func.coalesce(func.sum(RemoteTrack.cache_bytes), 0)))
    while total and total > limit:
        oldest = await session.scalar(
            select(RemoteTrack)
            .where(RemoteTrack.cache_key.is_not(None), RemoteTrack.id != keep)
            .order_by(RemoteTrack.last_used_at)
            .limit(1)
        )
        if oldest is None or oldest.cache_key is None:
            break
        storage.delete(oldest.cache_key)
        total -= oldest.cache_bytes or 0
        oldest.cache_key = oldest.cache_bytes = oldest.cache_sha256 = None
        oldest.cache_timeline = None
        await session.commit()
