"""Listener pages: search, the library (favourites, owned tracks, history, playlists,
follows and the feed), the wallet (balance, top-ups, paid plays), and the small forms
behind them (favourite, follow, redeem a voucher, buy a credit pack). Every page works
without JavaScript; every form carries the CSRF token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import BadRequest, NotFound

from federation.discovery import parse_acct
from federation.fetch import FetchError
from federation.urls import is_remote_url
from models.base import utcnow
from models.catalogue import (
    Artist,
    Favourite,
    Label,
    Playlist,
    Release,
    Track,
    TrackStatus,
    Visibility,
)
from models.handles import Handle
from models.plays import ListenerTrack, Play
from models.remote_plays import RemoteTrack
from models.search import DocumentKind, search
from models.users import User
from server.runtime.values import whole_number
from server.services import favourites as favourite_tracks
from server.services import playlists, plays
from server.services.activitypub import follows as following
from server.services.activitypub.context import federation_of
from server.services.activitypub.local import KIND_PATHS
from server.services.errors import NotFoundError, Refused
from server.services.local_plays import LOCAL
from server.services.money import MoneyError, redeem_voucher, retrying
from server.services.origins import origins
from server.services.payments import PaymentError, create_checkout, find_pack
from server.services.playlists import PlaylistError
from server.services.remote_plays import RemoteTrackError, resolve_release
from server.services.wallet_history import FIRST_YEAR, LAST_YEAR, wallet_history, year_summary
from server.web.auth import current_viewer, page_requires, page_user
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.pages.common import render
from server.web.redirects import local_target
from server.web.sessions import check_csrf, user_for_session

listener = Blueprint("listener", __name__)
SEARCH_LIMIT = 20
SUBSCRIBE_REL = "http://ostatus.org/schema/1.0/subscribe"


def back(default: str) -> str:
    """Where a form came from (same site only), for the redirect after it."""
    base = resources_of(current_app).settings.instance.base_url
    return local_target(request.referrer, base) or default


@listener.get("/search")
async def search_page() -> ResponseReturnValue:
    query = request.args.get("q", "").strip()[:200]
    results: dict[str, list[Any]] = {"artists": [], "labels": [], "releases": [], "tracks": []}
    if query:
        async with resources_of(current_app).read_sessionmaker() as session:
            hits = await search(session, query, limit=SEARCH_LIMIT * 2)
            ids: dict[DocumentKind, list[int]] = {}
            for hit in hits:
                ids.setdefault(hit.kind, []).append(hit.object_id)
            results = await _load_hits(session, ids)
    return await render("search.html", query=query, results=results)


async def _load_hits(
    session: AsyncSession, ids: dict[DocumentKind, list[int]]
) -> dict[str, list[Any]]:
    def ordered(rows: list[Any], wanted: list[int], key: Any) -> list[Any]:
        by_id = {key(row): row for row in rows}
        return [by_id[i] for i in wanted if i in by_id][:SEARCH_LIMIT]

    artist_ids = ids.get(DocumentKind.ARTIST, [])
    label_ids = ids.get(DocumentKind.LABEL, [])
    release_ids = ids.get(DocumentKind.RELEASE, [])
    track_ids = ids.get(DocumentKind.TRACK, [])
    artists = (await session.scalars(select(Artist).where(Artist.id.in_(artist_ids)))).all()
    labels = (await session.scalars(select(Label).where(Label.id.in_(label_ids)))).all()
    releases = (
        await session.execute(
            select(Release, Artist)
            .join(Artist, Artist.id == Release.artist_id)
            .where(Release.id.in_(release_ids), Release.visibility == Visibility.PUBLIC)
        )
    ).all()
    tracks = (
        await session.execute(
            select(Track, Release, Artist)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(
                Track.id.in_(track_ids),
                Track.status == TrackStatus.READY,
                Release.visibility == Visibility.PUBLIC,
            )
        )
    ).all()
    return {
        "artists": ordered(list(artists), artist_ids, lambda a: a.id),
        "labels": ordered(list(labels), label_ids, lambda a: a.id),
        "releases": ordered(list(releases), release_ids, lambda r: r[0].id),
        "tracks": ordered(list(tracks), track_ids, lambda r: r[0].id),
    }


@listener.post("/tracks/<int:track_id>/favourite")
@page_requires()
async def toggle_favourite(track_id: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).sessionmaker() as session:
        track = await session.get(Track, track_id)
        if track is None:
            raise NotFound(_("There is no such track."))
        if await favourite_tracks.is_favourite(session, user.id, track_id):
            await favourite_tracks.remove(session, user.id, [track_id])
        else:
            await favourite_tracks.add(session, user.id, [track_id])
        await session.commit()
    return redirect(back(f"/tracks/{track_id}"))


@listener.post("/tracks/<int:track_id>/buy")
@page_requires()
async def buy_track(track_id: int) -> ResponseReturnValue:
    """Buy now from the track's page: what is left of 1022 tokens, owned at once (the
    same service as the API's ``POST /api/v1/tracks/{id}/buy``)."""
    await check_csrf()
    viewer = await current_viewer()
    assert viewer is not None  # page_requires: a signed-in account
    resources = resources_of(current_app)
    here, settings = origins(resources), resources.settings.money
    try:
        result = await retrying(
            resources.sessionmaker,
            lambda s: plays.buy_now(s, here, track_id, viewer, settings),
        )
    except NotFoundError:
        raise  # the track is not there (for this viewer): the 404 page
    except Refused as refused:  # owned already, free, or the balance is too low
        return redirect(f"/tracks/{track_id}?{urlencode({'error': str(refused)})}", 303)
    message = _("Bought for %(tokens)s tokens: this track is yours.", tokens=result.tokens)
    return redirect(f"/tracks/{track_id}?{urlencode({'message': message})}", 303)


@listener.post("/follow")
@page_requires()
async def follow_form() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    account = ((await request.form).get("account") or "").strip()
    if not account or len(account) > 2048:
        raise BadRequest(_("Enter an artist as @name@server, a link, or a name from here."))
    fed = federation_of(resources_of(current_app))
    try:
        made = await following.follow(fed, user.username, account)
    except following.FollowError as error:
        return redirect(url_for("listener.library", error=str(error)[:300]))
    return redirect(url_for("listener.library", followed=made.handle))


@listener.post("/follows/<int:follow_id>/delete")
@page_requires()
async def unfollow_form(follow_id: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    fed = federation_of(resources_of(current_app))
    if not await following.unfollow(fed, user.username, follow_id):
        raise NotFound(_("You do not follow that."))
    return redirect(url_for("listener.library"))


@listener.get("/library")
@page_requires()
async def library() -> ResponseReturnValue:
    user = page_user()
    fed = federation_of(resources_of(current_app))
    async with fed.read_sessionmaker() as session:
        favourites = await _tracks_with(
            session,
            select(Track.id)
            .join(Favourite, Favourite.track_id == Track.id)
            .where(Favourite.user_id == user.id)
            .order_by(Favourite.created_at.desc()),
        )
        owned = await _tracks_with(
            session,
            select(Track.id)
            .join(ListenerTrack, ListenerTrack.track_id == Track.id)
            .where(ListenerTrack.user_id == user.id, ListenerTrack.owned_at.is_not(None))
            .order_by(ListenerTrack.owned_at.desc()),
        )
        history = (
            await session.execute(
                select(Play, Track)
                .join(Track, Track.id == Play.track_id)
                .where(Play.user_id == user.id)
                .order_by(Play.at.desc())
                .limit(50)
            )
        ).all()
        playlists = (
            await session.scalars(
                select(Playlist).where(Playlist.user_id == user.id).order_by(Playlist.title)
            )
        ).all()
        follows = await following.list_follows(session, fed, user.username)
        feed = await following.feed(session, fed, user.username, limit=30)
        releases = [item.release_uri for item in feed if item.release_uri]
        remote_tracks: dict[str, list[RemoteTrack]] = {}
        for track in await session.scalars(
            select(RemoteTrack)
            .where(RemoteTrack.release_uri.in_(releases))
            .order_by(RemoteTrack.position)
        ):
            remote_tracks.setdefault(track.release_uri, []).append(track)
    return await render(
        "library.html",
        favourites=favourites,
        owned=owned,
        history=history,
        playlists=playlists,
        follows=follows,
        feed=feed,
        remote_tracks=remote_tracks,
        error=request.args.get("error"),
        followed=request.args.get("followed"),
    )


async def _tracks_with(session: AsyncSession, ids_query: Any) -> list[Any]:
    """(track, release, artist) rows for the ids the query selects, in its order."""
    ids = list((await session.scalars(ids_query.limit(100))).all())
    rows = (
        await session.execute(
            select(Track, Release, Artist)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(Track.id.in_(ids))
        )
    ).all()
    by_id = {row[0].id: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


@listener.get("/wallet")
@page_requires()
async def wallet() -> ResponseReturnValue:
    user = page_user()
    resources = resources_of(current_app)
    before = None
    if "before" in request.args:
        before = whole_number(request.args["before"], low=1)
        if before is None:
            raise BadRequest(_("before must be the number of a line of the history"))
    async with resources.read_sessionmaker() as session:
        history = await wallet_history(session, user.id, before=before)
    money = resources.settings.money
    return await render(
        "wallet.html",
        balance=history.balance,
        lines=history.lines,
        older=history.older,
        paged=before is not None,
        packs=money.packs if money.provider else (),
        currency=money.currency,
        message=request.args.get("message"),
        error=request.args.get("error"),
        paid=request.args.get("paid"),
    )


@listener.get("/wallet/summary")
@page_requires()
async def wallet_summary() -> ResponseReturnValue:
    """A year of the listener's plays and purchases: what they paid, and to whom."""
    user = page_user()
    this_year = utcnow().year
    year = this_year
    if "year" in request.args:
        chosen = whole_number(request.args["year"], low=FIRST_YEAR, high=LAST_YEAR)
        if chosen is None:
            asked = _("year must be a year from %(first)s to %(last)s")
            raise BadRequest(asked % {"first": FIRST_YEAR, "last": LAST_YEAR})
        year = chosen
    async with resources_of(current_app).read_sessionmaker() as session:
        summary = await year_summary(session, user.id, year)
    return await render("wallet_summary.html", summary=summary, this_year=this_year)


@listener.post("/wallet/voucher")
@page_requires()
async def redeem_form() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    code = ((await request.form).get("code") or "").strip()
    if not 4 <= len(code) <= 64:
        return redirect(url_for("listener.wallet", error=_("Enter the voucher code.")))
    money = resources_of(current_app).settings.money
    rate = {"tokens": money.rate_tokens, "cents": money.rate_cents, "currency": money.currency}
    async with resources_of(current_app).sessionmaker() as session:
        try:
            tokens = await redeem_voucher(session, user.id, code, rate)
        except MoneyError as error:
            await session.rollback()
            return redirect(url_for("listener.wallet", error=str(error)))
        await session.commit()
    message = _("Voucher redeemed: %(tokens)s tokens added.", tokens=tokens)
    return redirect(url_for("listener.wallet", message=message))


@listener.post("/wallet/checkout")
@page_requires()
async def checkout_form() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    pack_name = ((await request.form).get("pack") or "").strip()
    try:
        pack = find_pack(resources.settings.money, pack_name)
        made = await create_checkout(
            resources.http, resources.settings.money, pack, user.id,
            success_url=f"{base}/wallet?paid=1", cancel_url=f"{base}/wallet",
        )  # fmt: skip
    except PaymentError as error:
        return redirect(url_for("listener.wallet", error=str(error)))
    return await leave_for(made.url)


async def leave_for(url: str) -> ResponseReturnValue:
    """Send the browser on to another site after a form: with a page, as the form-action
    policy refuses redirects of form answers to other origins (server.web.headers)."""
    return await render("leaving.html", target=url, host=urlsplit(url).hostname or url)


async def prices_for(session: AsyncSession, user: User | None, tracks: list[Any]) -> dict[int, Any]:
    """The next-play quote of each (track, artist) for a signed-in listener."""
    if user is None:
        return {}
    ids = [track.id for track, _artist in tracks]
    return await plays.quotes(session, (LOCAL,), user.id, ids)


@listener.post("/<any(artists, labels):kind>/<name>/remote-follow")
async def remote_follow(kind: str, name: str) -> ResponseReturnValue:
    """ "Follow from your fediverse account": find the visitor's server by their handle
    (WebFinger) and send them to its follow page (OStatus subscribe template)."""
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    async with resources.sessionmaker() as session:
        handle = await session.get(Handle, name.lower())
    if handle is None or KIND_PATHS[handle.kind] != kind:  # and the name is safe in a URL
        raise NotFound(f"there is no {kind[:-1]} called {name[:64]!r} here")
    account = ((await request.form).get("account") or "").strip()
    target = f"{base}/{kind}/{name.lower()}"
    try:
        url = await subscribe_url(federation_of(resources), account, target)
    except following.FollowError as error:
        return redirect(f"/{kind}/{name.lower()}?remote_error={quote_plus(str(error)[:300])}")
    return await leave_for(url)


async def subscribe_url(fed: Any, account: str, target: str) -> str:
    parsed = parse_acct(account)
    if parsed is None:
        raise following.FollowError(_("Enter your handle as @you@your.server."))
    user, host = parsed
    scheme = "http" if fed.settings.allow_private_addresses else "https"
    resource = quote_plus(f"acct:{user}@{host}")
    try:
        _final, jrd = await fed.fetcher.get_json(
            f"{scheme}://{host}/.well-known/webfinger?resource={resource}",
            accept="application/jrd+json, application/json",
        )
    except FetchError as error:
        raise following.FollowError(
            _("Your server could not be asked: %(reason)s", reason=str(error))
        ) from None
    for link in jrd.get("links") or []:
        template = link.get("template") if isinstance(link, dict) else None
        if link.get("rel") == SUBSCRIBE_REL and isinstance(template, str) and "{uri}" in template:
            url = template.replace("{uri}", quote_plus(target))
            if is_remote_url(url):
                return url
    raise following.FollowError(_("Your server does not offer remote follows."))


@listener.get("/authorize_interaction")
@page_requires()
async def authorize_interaction() -> ResponseReturnValue:
    """Where other servers send our listeners to follow something (our WebFinger names
    this template): confirm, then follow."""
    uri = request.args.get("uri", "").strip()
    if not uri or len(uri) > 2048:
        raise BadRequest(_("Nothing to follow was given."))
    return await render("authorize_interaction.html", uri=uri)


@listener.post("/library/remote-release")
@page_requires()
async def remote_release_form() -> ResponseReturnValue:
    """Make a partner's release playable in full here (its tracks get play buttons)."""
    await check_csrf()
    uri = ((await request.form).get("uri") or "").strip()
    if not is_remote_url(uri):
        raise BadRequest(_("That is not a release address."))
    try:
        await resolve_release(federation_of(resources_of(current_app)), uri)
    except RemoteTrackError as error:
        return redirect(url_for("listener.library", error=str(error)[:300]))
    return redirect(url_for("listener.library"))


def _playlist_error(error: PlaylistError) -> ResponseReturnValue:
    if error.status == 404:
        raise NotFound(str(error))
    return redirect(url_for("listener.library", error=str(error)))


@listener.post("/playlists")
@page_requires()
async def create_playlist_form() -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    form = await request.form
    async with resources_of(current_app).sessionmaker() as session:
        try:
            made = await playlists.create(
                session, user.id, form.get("title", ""), public=form.get("public") == "1"
            )
        except PlaylistError as error:
            return _playlist_error(error)
        return redirect(f"/playlists/{made.id}")


@listener.post("/playlist-items")
@page_requires()
async def add_to_playlist_form() -> ResponseReturnValue:
    """From a track's page: the playlist and the track are form fields."""
    user = page_user()
    await check_csrf()
    form = await request.form
    track, playlist = form.get("track_id", ""), form.get("playlist", "")
    track_id, playlist_id = whole_number(track), whole_number(playlist)
    if track_id is None or playlist_id is None:
        raise BadRequest(_("Choose a playlist and a track."))
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await playlists.add(session, user.id, playlist_id, track_id)
        except PlaylistError as error:
            return _playlist_error(error)
    return redirect(back(f"/playlists/{playlist_id}"))


@listener.post("/playlists/<int:playlist_id>/items/<int32:position>/delete")
@page_requires()
async def remove_from_playlist_form(playlist_id: int, position: int) -> ResponseReturnValue:
    user = page_user()
    await check_csrf()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await playlists.remove(session, user.id, playlist_id, position)
        except PlaylistError as error:
            return _playlist_error(error)
    return redirect(f"/playlists/{playlist_id}")


@listener.get("/playlists/<int:playlist_id>")
async def playlist_page(playlist_id: int) -> ResponseReturnValue:
    user = await user_for_session()
    async with resources_of(current_app).read_sessionmaker() as session:
        try:
            seen = await playlists.view(session, user.id if user else None, playlist_id)
        except PlaylistError as error:
            raise NotFound(str(error)) from None
        prices = await prices_for(session, user, [(t, a) for _p, t, _r, a in seen.rows])
    return await render(
        "playlist.html",
        playlist=seen.playlist,
        rows=seen.rows,
        prices=prices,
        mine=user is not None and seen.playlist.user_id == user.id,
    )
