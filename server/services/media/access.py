"""Who may hear what: drafts, previews, and whole tracks (local or a partner's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import Artist, Release, Track, TrackStatus, Visibility
from server.services import plays
from server.services.errors import NotFoundError
from server.services.viewers import Viewer


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    status: int = 403
    # allowed, but only the free part until the play is charged (models.stream_gate)
    gated: bool = False
    # allowed in full to someone who could download the file anyway (a free track, the
    # artist's own, one the listener owns): a signed audio link, which anyone holding it
    # may use until it expires, gives nothing away (server.services.media.links)
    linkable: bool = False


@dataclass(frozen=True)
class SessionState:
    """A play session named in a stream URL, as far as access is concerned."""

    user_id: int
    started_at: datetime
    charged: bool


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
        raise NotFoundError(f"there is no track {track_id}")
    return row[0], row[1], row[2]


def may_preview(track: Track) -> Decision:
    if track.status is not TrackStatus.READY:
        return Decision(False, f"the track is {track.status.value}, not yet playable", 409)
    return Decision(True)


def may_stream_full(
    viewer: Viewer | None,
    *,
    ready: Decision,
    free: bool,
    own: bool,
    owned: bool,
    partner: bool,
    token: str | None,
    play_session: SessionState | None,
    now: datetime,
    lifetime: timedelta,
) -> Decision:
    """Who hears a whole track (local or a partner's), the one rule for every client;
    previews are always public.

    In full: a free track, the artist's own, a listener who owns it (to these three a
    signed audio link may be given: ``linkable``), a partner instance (signed request), or
    the listener whose play session the URL names once its play is charged (never by a
    link: the session's URL is bound to its listener, a link to nobody).

    Before the charge that listener gets the free part (``gated``), and nobody else
    gets anything from the session's URL: it is bound to the listener who opened it
    (signed in with the session cookie or a bearer token) and it expires.
    """
    if not ready.allowed:
        return ready
    if free or own or owned:
        return Decision(True, linkable=True)
    if partner:
        return Decision(True)
    if token is None:
        return Decision(
            False,
            "this track is stream-to-own: listen to the preview, or open a play session to "
            "stream it",
        )
    if play_session is None:
        return Decision(False, "there is no such play session for this track")
    if viewer is None:
        return Decision(
            False, "sign in as the listener who opened this play session to hear it", 401
        )
    if viewer.user_id != play_session.user_id:
        return Decision(False, "this play session belongs to another listener")
    if now - play_session.started_at > lifetime:
        return Decision(False, "the play session has expired: start the track again", 410)
    return Decision(True, gated=not play_session.charged)


async def may_stream(
    session: AsyncSession,
    track: plays.Playable,
    viewer: Viewer | None,
    *,
    token: str | None,
    signed_by_partner: bool,
    now: datetime,
    lifetime: timedelta,
) -> Decision:
    """:func:`may_stream_full` for a stream request of a track of any origin, with what it
    decides on gathered here: whether the viewer owns the track, and the play session the
    URL names (of this track only). ``signed_by_partner``: the request is signed by a
    partner instance, which gets only our own tracks in full."""
    ready = Decision(True) if track.unplayable is None else Decision(False, track.unplayable, 409)
    found = None
    if token is not None:
        named = await plays.session_of(session, (track.origin,), token, track_id=track.id)
        found = named[1] if named else None
    return may_stream_full(
        viewer,
        ready=ready,
        free=track.free,
        own=viewer is not None and viewer.user_id == track.owner_id,
        owned=viewer is not None and await plays.owns(session, viewer.user_id, track),
        partner=signed_by_partner and track.origin.lends_to_partners,
        token=token,
        play_session=SessionState(found.user_id, found.started_at, found.play_id is not None)
        if found is not None
        else None,
        now=now,
        lifetime=lifetime,
    )
