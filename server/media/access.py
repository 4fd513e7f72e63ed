"""Who may hear what. This is the one hook the money issue fills in: today a full paid
track streams only for its own artist; play sessions will open it to paying listeners."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import NotFound

from models.catalogue import Artist, PriceModel, Release, Track, TrackStatus, Visibility
from server.auth import Viewer


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def can_see(viewer: Viewer | None, track: Track, release: Release, artist: Artist) -> bool:
    """Whether the track exists for this viewer at all (drafts only for their artist)."""
    if release.visibility is Visibility.PUBLIC:
        return True
    return viewer is not None and viewer.user_id == artist.owner_id


async def visible_track(
    session: AsyncSession, track_id: int, viewer: Viewer | None
) -> tuple[Track, Release, Artist]:
    """The track with its release and artist, or 404 if it does not exist for the viewer."""
    row = (
        await session.execute(
            select(Track, Release, Artist)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(Track.id == track_id)
        )
    ).first()
    if row is None or not can_see(viewer, row[0], row[1], row[2]):
        raise NotFound(f"there is no track {track_id}")
    return row[0], row[1], row[2]


def may_preview(track: Track) -> Decision:
    if track.status is not TrackStatus.READY:
        return Decision(False, f"the track is {track.status.value}, not yet playable")
    return Decision(True)


def may_stream_full(
    viewer: Viewer | None, track: Track, artist: Artist, *, paid_for: bool = False
) -> Decision:
    """Who hears a whole track (DESIGN.md §4); previews are always public. ``paid_for``:
    the request carries a live play session for this track, or the listener owns it."""
    ready = may_preview(track)
    if not ready.allowed:
        return ready
    if track.price_model is PriceModel.FREE or paid_for:
        return Decision(True)
    if viewer is not None and viewer.user_id == artist.owner_id:
        return Decision(True)
    return Decision(
        False,
        "this track is stream-to-own: listen to the preview, or open a play session to "
        "stream it in full",
    )
