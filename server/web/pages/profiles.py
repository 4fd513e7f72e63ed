"""The profile forms of the dashboard: avatar and header, links, whether search may find
the actor, aliases and moving (docs/architecture.md#actor-profiles). Every form answers
with a redirect to the dashboard carrying a message or the reason of a refusal."""

from __future__ import annotations

from quart import Blueprint, current_app, redirect, request, url_for
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from server.services import account_moves
from server.services.activitypub.context import federation_of
from server.services.errors import Refused
from server.services.media.storage import LocalStorage
from server.services.profiles import (
    Owned,
    check_links,
    image_role,
    image_upload_limit,
    owned_actor,
    save_profile,
    store_image,
)
from server.web.api.uploads import receive_multipart
from server.web.auth import Audience, page_requires, page_user
from server.web.current import resources_of
from server.web.i18n import gettext as _
from server.web.sessions import CSRF_COOKIE, CSRF_FIELD, check_csrf

profile_pages = Blueprint("profile_pages", __name__, url_prefix="/dashboard/profiles")


def _back(*, message: str | None = None, error: str | None = None) -> ResponseReturnValue:
    return redirect(url_for("artist_pages.dashboard", message=message, error=error), 303)


async def _owned(name: str) -> Owned:
    user = page_user()
    async with resources_of(current_app).read_sessionmaker() as session:
        return await owned_actor(session, user.id, user.role, name)


@profile_pages.post("/<name>")
@page_requires(Audience.CREATORS)
async def profile_form(name: str) -> ResponseReturnValue:
    await check_csrf()
    owner = await _owned(name)
    form = await request.form
    pairs = [
        (form.get(f"link_name_{number}", ""), form.get(f"link_url_{number}", ""))
        for number in range(len([key for key in form if key.startswith("link_name_")]))
    ]
    try:
        links = check_links(pairs)
    except Refused as error:
        return _back(error=str(error))
    async with resources_of(current_app).sessionmaker() as session:
        await save_profile(
            session,
            owner,
            discoverable=form.get("discoverable") == "1",
            indexable=form.get("indexable") == "1",
            links=links,
        )
        await session.commit()
    return _back(message=_("Profile saved."))


@profile_pages.post("/<name>/<any(avatar, header):role>")
@page_requires(Audience.CREATORS)
async def image_form(name: str, role: str) -> ResponseReturnValue:
    """Multipart, the CSRF field sent before the file (checked once the body is in)."""
    settings = resources_of(current_app).settings
    received = await receive_multipart(
        LocalStorage(settings.media_dir), image_upload_limit(settings.media.max_upload_bytes)
    )
    assert received.path is not None
    expected = request.cookies.get(CSRF_COOKIE) or ""
    if not expected or received.fields.get(CSRF_FIELD) != expected:
        received.path.unlink(missing_ok=True)
        raise Forbidden(_("The form's security token is out of date: reload and try again."))
    try:
        owner = await _owned(name)
    except Refused:
        received.path.unlink(missing_ok=True)
        raise
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await store_image(
                session, LocalStorage(settings.media_dir), owner, image_role(role), received.path
            )
        except Refused as error:
            return _back(error=str(error))
        await session.commit()
    return _back(message=_("The picture is uploaded; it shows once it is resized."))


@profile_pages.post("/<name>/aliases")
@page_requires(Audience.CREATORS)
async def alias_form(name: str) -> ResponseReturnValue:
    await check_csrf()
    owner = await _owned(name)
    form = await request.form
    fed = federation_of(resources_of(current_app))
    if remove := form.get("remove"):
        async with fed.sessionmaker() as session:
            await account_moves.remove_alias(session, owner, remove)
            await session.commit()
        return _back(message=_("Alias removed."))
    try:
        uri = await account_moves.add_alias(fed, owner, form.get("account", ""))
    except Refused as error:
        return _back(error=str(error))
    return _back(message=_("%(account)s may now move here.", account=uri))


@profile_pages.post("/<name>/move")
@page_requires(Audience.CREATORS)
async def move_form(name: str) -> ResponseReturnValue:
    await check_csrf()
    owner = await _owned(name)
    form = await request.form
    fed = federation_of(resources_of(current_app))
    try:
        target, _count = await account_moves.move_to(fed, owner, form.get("account", ""))
    except Refused as error:
        return _back(error=str(error))
    return _back(message=_("Moved to %(account)s; your followers are told.", account=target))
