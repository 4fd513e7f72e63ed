"""The artist dashboard: upload (with progress when JavaScript is there), releases and
their processing state, publishing, plays and earnings as SVG charts, payout requests,
and follow requests for artists who approve their followers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import Forbidden, HTTPException, NotFound

from models.base import utcnow
from models.catalogue import Artist, Label, Release, Track
from models.plays import Play
from models.users import Role, User
from server.services.activitypub import follows as following
from server.services.activitypub.context import federation_of
from server.services.catalogue import CatalogueError, publish_release
from server.services.earnings import earnings_of, request_payout
from server.services.media.storage import LocalStorage
from server.services.money import MoneyError
from server.services.profiles import profile_view
from server.services.viewers import Viewer, session_scopes
from server.web.api.uploads import accept_upload, receive_multipart
from server.web.auth import Audience, page_requires, page_user
from server.web.charts import bar_chart
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.pages.common import render
from server.web.sessions import CSRF_COOKIE, CSRF_FIELD, check_csrf

artist_pages = Blueprint("artist_pages", __name__, url_prefix="/dashboard")
CHART_DAYS = 30


async def _own_artist(session: AsyncSession, user: User, artist_id: int) -> Artist:
    """The artist, in the caller's session (its unit of work), if ``user`` manages it."""
    artist = await session.get(Artist, artist_id)
    if artist is None or (artist.owner_id != user.id and user.role is not Role.ADMIN):
        raise NotFound(_("You manage no such artist."))
    return artist


@artist_pages.get("")
@page_requires(Audience.CREATORS)
async def dashboard() -> ResponseReturnValue:
    user = page_user()
    resources = resources_of(current_app)
    since = (utcnow() - timedelta(days=CHART_DAYS - 1)).date()
    since_moment = datetime.combine(since, time.min, UTC)
    base = resources.settings.instance.base_url
    async with resources.read_sessionmaker() as session:
        artists = (
            await session.scalars(
                select(Artist).where(Artist.owner_id == user.id).order_by(Artist.display_name)
            )
        ).all()
        panels = []
        for artist in artists:
            releases = (
                await session.scalars(
                    select(Release)
                    .where(Release.artist_id == artist.id)
                    .order_by(Release.created_at.desc())
                )
            ).all()
            tracks = (
                await session.scalars(
                    select(Track)
                    .where(Track.artist_id == artist.id)
                    .order_by(Track.release_id, Track.disc, Track.position)
                )
            ).all()
            day = func.date(Play.at)
            plays = {
                _as_date(when): int(count)
                for when, count in await session.execute(
                    select(day, func.count())
                    .join(Track, Track.id == Play.track_id)
                    .where(Track.artist_id == artist.id, Play.at >= since_moment)
                    .group_by(day)
                )
            }
            earned = await earnings_of(session, artist, resources.settings.money)
            earned_days = {when: tokens for when, tokens in earned.per_day if when >= since}
            days = [since + timedelta(days=offset) for offset in range(CHART_DAYS)]
            panels.append(
                {
                    "artist": artist,
                    "releases": releases,
                    "tracks": {
                        release.id: [t for t in tracks if t.release_id == release.id]
                        for release in releases
                    },
                    "earnings": earned,
                    "plays_chart": bar_chart(
                        _("Plays per day, last %(days)s days", days=CHART_DAYS),
                        [(d.isoformat(), plays.get(d, 0)) for d in days],
                        _("plays"),
                    ),
                    "earnings_chart": bar_chart(
                        _("Tokens earned per day, last %(days)s days", days=CHART_DAYS),
                        [(d.isoformat(), earned_days.get(d, 0)) for d in days],
                        _("tokens"),
                    ),
                    "requests": await following.pending_followers(
                        session, federation_of(resources), artist.name
                    ),
                    "profile": await profile_view(session, base, "artists", artist.name),
                }
            )
        labels = [
            {"label": label, "profile": await profile_view(session, base, "labels", label.name)}
            for label in (
                await session.scalars(
                    select(Label).where(Label.owner_id == user.id).order_by(Label.display_name)
                )
            ).all()
        ]
    return await render(
        "dashboard.html",
        panels=panels,
        labels=labels,
        money=resources.settings.money,
        message=request.args.get("message"),
        error=request.args.get("error"),
    )


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@artist_pages.post("/upload")
@page_requires(Audience.CREATORS)
async def upload_form() -> ResponseReturnValue:
    """The upload form: multipart, its CSRF field sent before the file. Checked once the
    body is in (the temporary file is removed when the check fails)."""
    user = page_user()
    settings = resources_of(current_app).settings
    received = await receive_multipart(
        LocalStorage(settings.media_dir), settings.media.max_upload_bytes
    )
    expected = request.cookies.get(CSRF_COOKIE) or ""
    if not expected or received.fields.get(CSRF_FIELD) != expected:
        if received.path is not None:
            received.path.unlink(missing_ok=True)
        raise Forbidden(_("The form's security token is out of date: reload and try again."))
    viewer = Viewer(user.id, user.username, user.role, session_scopes(user.role), via_session=True)
    try:
        track, release, _artist = await accept_upload(viewer, received)
    except HTTPException as error:
        return redirect(url_for("artist_pages.dashboard", error=error.description), 303)
    message = _("“%(title)s” is uploaded to “%(release)s” and being processed.",
                title=track.title, release=release.title)  # fmt: skip
    return redirect(url_for("artist_pages.dashboard", message=message), 303)


@artist_pages.post("/releases/<int:release_id>/publish")
@page_requires(Audience.CREATORS)
async def publish_form(release_id: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).sessionmaker() as session:
        release = await session.get(Release, release_id)
        if release is None:
            raise NotFound(_("There is no such release."))
        await _own_artist(session, user, release.artist_id)
        try:
            await publish_release(session, release_id)
        except CatalogueError as error:
            return redirect(url_for("artist_pages.dashboard", error=str(error)), 303)
        await session.commit()
    return redirect(url_for("artist_pages.dashboard", message=_("Published.")), 303)


@artist_pages.post("/artists/<int:artist_id>/payout")
@page_requires(Audience.CREATORS)
async def payout_form(artist_id: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    settings = resources_of(current_app).settings.money
    async with resources_of(current_app).sessionmaker() as session:
        artist = await _own_artist(session, user, artist_id)
        try:
            await request_payout(session, artist, settings)
        except MoneyError as error:
            await session.rollback()
            return redirect(url_for("artist_pages.dashboard", error=str(error)), 303)
        await session.commit()
    return redirect(url_for("artist_pages.dashboard", message=_("Payout requested.")), 303)


@artist_pages.post("/artists/<int:artist_id>/followers/<int:follow_id>/<any(accept, reject):verb>")
@page_requires(Audience.CREATORS)
async def follow_request_form(artist_id: int, follow_id: int, verb: str) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).read_sessionmaker() as session:
        artist = await _own_artist(session, user, artist_id)
    fed = federation_of(resources_of(current_app))
    if not await following.answer_request(fed, artist.name, follow_id, verb == "accept"):
        raise NotFound(_("There is no such follow request."))
    return redirect(url_for("artist_pages.dashboard"), 303)


@artist_pages.post("/artists/<int:artist_id>/settings")
@page_requires(Audience.CREATORS)
async def artist_settings_form(artist_id: int) -> ResponseReturnValue:
    """Whether follows of the artist wait for approval (else they are accepted at once)."""
    user = page_user()
    await check_csrf()
    approves = (await request.form).get("approves_followers") == "1"
    async with resources_of(current_app).sessionmaker() as session:
        artist = await _own_artist(session, user, artist_id)
        artist.approves_followers = approves
        await session.commit()
    return redirect(url_for("artist_pages.dashboard", message=_("Saved.")), 303)
