"""Tracks hosted by partner instances: the partner's side of stream-to-own
(``server.services.plays``, which charges them exactly as local tracks;
docs/architecture.md#a-play-of-a-partners-track).

The listener's instance (this one, the payer) resolves a partner's release into its
tracks (ids in the one id space of tracks here), charges its own listener by the
stream-to-own curve with the count kept here, books the artist share as owed to the
payee instance (a PEER ledger account), serves the audio from a cache it fills with a
GET signed by its instance actor (checked against the payee's Repr-Digest), and sends the
payee one ``Listen`` per play, in the transaction that charges it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.fetch import FetchError
from federation.parse import album_link, as_list, duration_ms, same_origin, track_name
from federation.royalties import ListenRecord, listen_activity, pseudonymous_listener
from models import ledger
from models.base import utcnow
from models.catalogue import FileRole, MediaFile
from models.federation import Partnership, PartnerState, RemoteActor
from models.ledger import AccountKind, AccountRef
from models.plays import PlayOutcome
from models.pricing import PAID_PLAYS_TO_OWN, play_cost
from models.remote_plays import RemoteListenerTrack, RemotePlay, RemotePlaySession, RemoteTrack
from server.runtime.resources import Resources
from server.services.activitypub.context import Federation
from server.services.activitypub.delivery import deliver, record_activity
from server.services.activitypub.partners import instance_actor_url
from server.services.activitypub.remote import ResolveError, get_actor, remote_url
from server.services.errors import Refused
from server.services.media.storage import LocalStorage
from server.services.plays import (
    Audio,
    Heard,
    Playable,
    Posting,
    Recorded,
    Rows,
    claimable_row,
    new_track_id,
)

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
    track on the release's own server, named by its page URL (``track_name``)."""
    release_uri, title = document.get("id"), document.get("name")
    if not isinstance(release_uri, str) or document.get("type") != "OrderedCollection":
        raise RemoteTrackError("that is not a playfair release")
    tracks = []
    for item in as_list(document.get("orderedItems"))[:MAX_TRACKS]:
        if not isinstance(item, dict) or item.get("type") != "Audio":
            continue
        uri, name = track_name(item), item.get("name")
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


async def resolve_release(fed: Federation, uri: str) -> tuple[list[RemoteTrack], RemoteActor]:
    """A partner's release made playable here: its tracks (new ones get ids in the one id
    space of tracks here) and the partner's instance actor, who is owed for them."""
    try:
        uri = remote_url(fed, uri)  # before anything is resolved or fetched
    except ResolveError as error:
        raise RemoteTrackError(str(error)) from None
    payee = await partner_payee(fed, uri)
    try:
        _final, document = await fed.fetcher.get_json(uri, sign=fed.instance_signer())
        album = album_link(document)
        if album is not None and same_origin(album, uri):  # a page's Note: on to the album
            uri = album
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
                row = RemoteTrack(
                    id=await new_track_id(session), uri=track.uri, payee_id=payee.id, stream_url=""
                )
                session.add(row)
            row.payee_id, row.artist_uri, row.title = payee.id, track.artist_uri, track.title
            row.duration_ms, row.position, row.free = track.duration_ms, track.position, track.free
            row.release_uri, row.release_title = release_uri, title
            row.stream_url = f"{track.uri}/stream?format=mp3"
            row.preview_url, row.fetched_at = track.preview_url, utcnow()
            rows.append(row)
        await session.commit()
        return rows, payee


@dataclass(frozen=True, kw_only=True)
class PartnerTrack(Playable):
    remote: RemoteTrack
    payee: RemoteActor  # the instance actor of the server hosting it


@dataclass(frozen=True)
class Partner:
    """Tracks of partner instances: what the artist is owed is owed to the partner (a PEER
    account), each play is a remote play row and a Listen sent to the partner in the same
    transaction, the audio comes from our cache of the partner's file."""

    fed: Federation

    name = "partner"
    lends_to_partners = False
    rows = Rows(
        sessions=RemotePlaySession,
        session_track=RemotePlaySession.remote_track_id,
        unclaimed=RemotePlaySession.play_id.is_(None),
        counts=RemoteListenerTrack,
        count_track=RemoteListenerTrack.remote_track_id,
    )

    def claiming(self, now: datetime) -> dict[str, object]:
        return {"play_id": None}  # the row's lock and the guard are what count

    def owning(self, now: datetime, via: str) -> dict[str, object]:
        if via == "bought":  # reported as the remaining paid plays (record_purchase)
            return {"owned_at": now, "paid_plays": PAID_PLAYS_TO_OWN}
        return {"owned_at": now}

    async def track(self, session: AsyncSession, track_id: int) -> PartnerTrack | None:
        remote = await session.get(RemoteTrack, track_id)
        payee = await session.get(RemoteActor, remote.payee_id) if remote else None
        if remote is None or payee is None:
            return None
        return self.playable(remote, payee)

    async def claimable(
        self, session: AsyncSession, token: str, user_id: int
    ) -> tuple[RemotePlaySession, RemoteListenerTrack | None, PartnerTrack | None] | None:
        row = await claimable_row(
            session,
            self.rows,
            token,
            user_id,
            (RemoteTrack, RemoteTrack.id == RemotePlaySession.remote_track_id),
            (RemoteActor, RemoteActor.id == RemoteTrack.payee_id),
        )
        if row is None:
            return None
        play_session, count, remote, payee = row
        whole = remote is not None and payee is not None
        return play_session, count, self.playable(remote, payee) if whole else None

    def playable(self, remote: RemoteTrack, payee: RemoteActor) -> PartnerTrack:
        return PartnerTrack(
            origin=self,
            id=remote.id,
            title=remote.title,
            duration_ms=remote.duration_ms,
            free=remote.free,
            owner_id=None,
            public=True,
            unplayable=None,
            remote=remote,
            payee=payee,
        )

    def payee(self, track: Playable) -> AccountRef:
        assert isinstance(track, PartnerTrack)
        actor = track.payee.id
        return AccountRef(ledger.peer_key(actor), AccountKind.PEER, actor)

    def play_posting(self, track: Playable, token: str, paid_number: int) -> Posting:
        assert isinstance(track, PartnerTrack)
        return Posting(
            "remote-play",
            f"remote-play:{token}",
            {"payee": track.payee.uri, "track": track.id, "paid_number": paid_number},
            None,
        )

    def buy_posting(self, track: Playable, user_id: int) -> Posting:
        assert isinstance(track, PartnerTrack)
        return Posting(
            "remote-play",
            f"remote-buy:{user_id}:{track.id}",
            {"payee": track.payee.uri, "track": track.id},
            None,
        )

    async def record_play(
        self, session: AsyncSession, track: Playable, user_id: int, heard: Heard
    ) -> int:
        assert isinstance(track, PartnerTrack)
        play = await self._report(
            session, user_id, track, heard.paid_number, heard.tokens, heard.owned, heard.at
        )
        return play.id

    async def record_purchase(
        self, session: AsyncSession, track: Playable, user_id: int, paid_before: int, at: datetime
    ) -> None:
        """Reported to the payee as the remaining paid plays, each its own Listen with its
        play number and price (their sum is exactly the rest of 1022), so statements, the
        payee's counts and the hub need nothing new for purchases."""
        assert isinstance(track, PartnerTrack)
        for number in range(paid_before + 1, PAID_PLAYS_TO_OWN + 1):
            await self._report(
                session, user_id, track, number, play_cost(number - 1),
                number == PAID_PLAYS_TO_OWN, at,
            )  # fmt: skip

    async def recorded(self, session: AsyncSession, play_id: int) -> Recorded:
        play = await session.get(RemotePlay, play_id)
        assert play is not None
        outcome = PlayOutcome.CHARGED if play.tokens else PlayOutcome.FREE
        return Recorded(play.remote_track_id, outcome, play.tokens, play.paid_number)

    async def stored_audio(self, session: AsyncSession, track: Playable, *, mp3: bool) -> None:
        """Never: the partner's audio may have to be fetched first (``audio``)."""
        return None

    async def audio(self, track: Playable, *, mp3: bool, resources: Resources) -> Audio:
        """Our cached copy (MP3, whatever was asked), fetched from the partner if missing."""
        try:
            cached = await cached_audio(
                self.fed, LocalStorage(resources.settings.media_dir), track.id,
                resources.settings.media.max_upload_bytes, self.fed.settings.audio_cache_bytes,
            )  # fmt: skip
        except RemoteTrackError as error:
            raise Refused(str(error), 409) from None
        key = cached.cache_key
        if key is None or cached.cache_sha256 is None:
            raise Refused("the partner's audio is not in the cache", 409)
        file = MediaFile(  # not stored: the shape send_media serves from
            role=FileRole.STREAM_MP3,
            storage_key=key,
            mime_type=cached.cache_type or "audio/mpeg",
            sha256=cached.cache_sha256,
            size_bytes=cached.cache_bytes or 0,
            timeline=cached.cache_timeline,
            created_at=cached.cached_at or utcnow(),
        )
        track_id = cached.id
        return Audio(
            file,
            lambda timeline: (
                update(RemoteTrack)
                .where(RemoteTrack.id == track_id, RemoteTrack.cache_key == key)
                .values(cache_timeline=timeline)
            ),
        )

    async def _report(
        self,
        session: AsyncSession,
        user_id: int,
        track: PartnerTrack,
        paid_number: int | None,
        tokens: int,
        owned: bool,
        now: datetime,
    ) -> RemotePlay:
        """Record a play and queue its Listen to the payee, in the caller's transaction."""
        fed, payee = self.fed, track.payee
        record = ListenRecord(
            id=f"{fed.base_url}/listens/{uuid.uuid4().hex}",
            payer=fed.instance_actor,
            track=track.remote.uri,
            listener=pseudonymous_listener(
                fed.secret.encode(), user_id, urlsplit(payee.uri).netloc
            ),
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
