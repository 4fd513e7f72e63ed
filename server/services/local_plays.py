"""This instance's own tracks as an origin of stream-to-own (``server.services.plays``):
the artist's earnings are owed, each play is a row of ``plays``, a purchase is its
ledger transaction, and the audio is in our media store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ledger
from models.catalogue import (
    Artist,
    FileRole,
    MediaFile,
    PriceModel,
    Release,
    Track,
    TrackStatus,
    Visibility,
)
from models.ledger import AccountKind, AccountRef
from models.plays import ListenerTrack, Play, PlayOutcome, PlaySession
from server.runtime.resources import Resources
from server.services.errors import Refused
from server.services.plays import (
    Audio,
    Heard,
    Playable,
    Posting,
    Recorded,
    Rows,
    claimable_row,
)


@dataclass(frozen=True, kw_only=True)
class LocalTrack(Playable):
    track: Track
    release: Release
    artist: Artist


class Local:
    """Tracks of this instance."""

    name = "local"
    lends_to_partners = True
    rows = Rows(
        sessions=PlaySession,
        session_track=PlaySession.track_id,
        unclaimed=PlaySession.claimed_at.is_(None),
        counts=ListenerTrack,
        count_track=ListenerTrack.track_id,
    )

    def claiming(self, now: datetime) -> dict[str, object]:
        return {"claimed_at": now}

    def owning(self, now: datetime, via: str) -> dict[str, object]:
        return {"owned_at": now, "owned_via": via}

    async def track(self, session: AsyncSession, track_id: int) -> LocalTrack | None:
        row = (
            await session.execute(
                select(Track, Release, Artist)
                .join(Release, Release.id == Track.release_id)
                .join(Artist, Artist.id == Track.artist_id)
                .where(Track.id == track_id)
            )
        ).first()
        if row is None:
            return None
        return self.playable(*row)

    async def claimable(
        self, session: AsyncSession, token: str, user_id: int
    ) -> tuple[PlaySession, ListenerTrack | None, LocalTrack | None] | None:
        row = await claimable_row(
            session,
            self.rows,
            token,
            user_id,
            (Track, Track.id == PlaySession.track_id),
            (Release, Release.id == Track.release_id),
            (Artist, Artist.id == Track.artist_id),
        )
        if row is None:
            return None
        play_session, count, track, release, artist = row
        whole = track is not None and release is not None and artist is not None
        return play_session, count, self.playable(track, release, artist) if whole else None

    def playable(self, track: Track, release: Release, artist: Artist) -> LocalTrack:
        return LocalTrack(
            origin=self,
            id=track.id,
            title=track.title,
            duration_ms=track.duration_ms,
            free=track.price_model is PriceModel.FREE,
            owner_id=artist.owner_id,
            public=release.visibility is Visibility.PUBLIC,
            unplayable=None
            if track.status is TrackStatus.READY
            else f"the track is {track.status.value}, not yet playable",
            track=track,
            release=release,
            artist=artist,
        )

    def payee(self, track: Playable) -> AccountRef:
        assert isinstance(track, LocalTrack)
        artist = track.artist.id
        return AccountRef(ledger.artist_key(artist), AccountKind.ARTIST, artist)

    def play_posting(self, track: Playable, token: str, paid_number: int) -> Posting:
        return Posting(
            "play", f"play:{token}", {"track": track.id, "paid_number": paid_number}, track.id
        )

    def buy_posting(self, track: Playable, user_id: int) -> Posting:
        return Posting("buy", f"buy:{user_id}:{track.id}", {"track": track.id}, track.id)

    async def record_play(
        self, session: AsyncSession, track: Playable, user_id: int, heard: Heard
    ) -> int:
        play = Play(
            user_id=user_id,
            track_id=track.id,
            at=heard.at,
            outcome=PlayOutcome.CHARGED if heard.tokens else PlayOutcome.FREE,
            paid_number=heard.paid_number,
            tokens=heard.tokens,
            transaction_id=heard.transaction_id,
        )
        session.add(play)
        await session.flush()
        return play.id

    async def record_purchase(
        self, session: AsyncSession, track: Playable, user_id: int, paid_before: int, at: datetime
    ) -> None:
        """Nothing beyond the ledger's ``buy`` transaction and the count's ``bought``."""

    async def recorded(self, session: AsyncSession, play_id: int) -> Recorded:
        play = await session.get(Play, play_id)
        assert play is not None
        return Recorded(play.track_id, play.outcome, play.tokens, play.paid_number)

    async def audio(self, track: Playable, *, mp3: bool, resources: Resources) -> Audio:
        async with resources.read_sessionmaker() as session:
            return await self.stored_audio(session, track, mp3=mp3)

    async def stored_audio(self, session: AsyncSession, track: Playable, *, mp3: bool) -> Audio:
        role = FileRole.STREAM_MP3 if mp3 else FileRole.STREAM_OPUS
        file = await session.scalar(
            select(MediaFile).where(MediaFile.track_id == track.id, MediaFile.role == role)
        )
        if file is None:
            raise Refused("the track's streaming files are not ready", 409)
        file_id = file.id
        return Audio(
            file,
            lambda timeline: (
                update(MediaFile).where(MediaFile.id == file_id).values(timeline=timeline)
            ),
        )


LOCAL = Local()
