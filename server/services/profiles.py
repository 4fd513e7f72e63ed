"""Actor profiles: avatars and headers, links, discoverable and indexable
(docs/architecture.md#actor-profiles); aliases and moves are in ``moves``.

An uploaded picture is checked and re-encoded at once (a bad one is refused and nothing
is kept), then kept as a pending version; the worker (:data:`PROFILE_IMAGE_JOB`) cuts it
to its size, and only then does the actor document show it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import ProfileLink, profile_image_url
from federation.urls import UnacceptableURL, checked_url
from models import jobs
from models.base import utcnow
from models.catalogue import Artist, Label
from models.profiles import (
    IMAGE_STATES,
    INSTANCE_ACTOR,
    MAX_LINKS,
    ActorImage,
    ActorProfile,
    ImageRole,
    ImageState,
)
from models.users import Role
from server.runtime.worker import JobContext
from server.services.errors import NotFoundError, Refused
from server.services.media.images import BadImage, clean_image, fit_jpeg
from server.services.media.storage import LocalStorage

log = logging.getLogger("playfair.profiles")

PROFILE_IMAGE_JOB = "profiles.image"
PROFILE_UPDATE_JOB = "profiles.update"  # handled in profile_updates (it needs delivery)
SIZES: dict[ImageRole, tuple[int, int]] = {
    ImageRole.AVATAR: (400, 400),  # square, cut about the centre
    ImageRole.HEADER: (1500, 500),  # 3:1, as Mastodon shows headers
}
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # a phone's photo passes; the audio limit is far larger
FORM_SLACK = 64 * 1024  # the multipart framing and form fields around a picture
KEPT_SIDE = 3000  # the upload as kept until the worker cuts it: twice the widest size
LINK_NAME_CHARS = 255  # Mastodon's limits for a profile field
LINK_URL_CHARS = 500


@dataclass(frozen=True)
class Owned:
    """A local actor whose profile someone may change: ``kind`` is its path segment
    ("artists", "labels"), None for the instance actor."""

    actor: str
    kind: str | None
    display_name: str


async def owned_actor(session: AsyncSession, user_id: int, role: Role, name: str) -> Owned:
    """The artist or label ``name`` if the user manages it (an admin manages all)."""
    name = name.lower()
    artist = await session.scalar(select(Artist).where(Artist.name == name))
    if artist is not None and (artist.owner_id == user_id or role is Role.ADMIN):
        return Owned(artist.name, "artists", artist.display_name)
    label = await session.scalar(select(Label).where(Label.name == name))
    if label is not None and (label.owner_id == user_id or role is Role.ADMIN):
        return Owned(label.name, "labels", label.display_name)
    raise NotFoundError(f"you manage no artist or label named {name!r}")


INSTANCE = Owned(INSTANCE_ACTOR, None, "")


async def queue_update(session: AsyncSession, actor: str) -> None:
    """Tell the actor's followers that its profile changed (in the caller's transaction;
    the instance actor's partners are not told)."""
    if actor == INSTANCE_ACTOR:
        return
    stamp = round(utcnow().timestamp() * 1000)
    await jobs.enqueue(
        session, PROFILE_UPDATE_JOB, {"actor": actor}, unique_key=f"profile-update:{actor}:{stamp}"
    )


# --- images ---------------------------------------------------------------------------------


def image_upload_limit(max_upload_bytes: int) -> int:
    """The body size an upload of a picture may have: the media limit, and never more
    than :data:`MAX_IMAGE_BYTES` of picture."""
    return min(max_upload_bytes, MAX_IMAGE_BYTES + FORM_SLACK)


def image_role(value: str) -> ImageRole:
    try:
        return ImageRole(value)
    except ValueError:
        raise Refused(f"{value!r} is neither 'avatar' nor 'header'", 404) from None


async def store_image(
    session: AsyncSession, storage: LocalStorage, owner: Owned, role: ImageRole, upload: Path
) -> ActorImage:
    """Check and keep an uploaded picture as the owner's next avatar or header, and queue
    its cutting (the caller commits). The upload file is consumed either way; a bad
    picture is refused with 422 and nothing is kept."""
    try:
        data = await asyncio.to_thread(upload.read_bytes)
        if len(data) > MAX_IMAGE_BYTES:
            raise Refused(f"a picture is at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", 413)
        try:
            clean = await asyncio.to_thread(clean_image, data, KEPT_SIDE)
        except BadImage as error:
            raise Refused(str(error), 422) from None
    finally:
        await asyncio.to_thread(upload.unlink, True)
    digest = hashlib.sha256(clean.data).hexdigest()
    key = f"profiles/{owner.actor}/{role.value}-source-{digest[:16]}.{clean.extension}"
    temporary = storage.temporary_file()
    await asyncio.to_thread(temporary.write_bytes, clean.data)
    await asyncio.to_thread(storage.put, temporary, key)
    row = ActorImage(
        actor=owner.actor, role=role, state=IMAGE_STATES.start(ImageState.PENDING), source_key=key
    )
    session.add(row)
    await session.flush()
    await jobs.enqueue(
        session, PROFILE_IMAGE_JOB, {"image": row.id}, unique_key=f"profile-image:{row.id}"
    )
    return row


async def run_profile_image(context: JobContext, payload: dict[str, object]) -> None:
    """Cut a pending picture to its size; it becomes the shown version, and older ones of
    the same actor and role are removed with their files."""
    storage = LocalStorage(context.resources.settings.media_dir)
    image_id = int(str(payload["image"]))
    async with context.sessionmaker() as session:
        row = await session.get(ActorImage, image_id)
        if row is None or row.state is not ImageState.PENDING or row.source_key is None:
            return
        width, height = SIZES[row.role]
        try:
            source = await asyncio.to_thread(storage.path(row.source_key).read_bytes)
        except FileNotFoundError:  # lost from the media store: the upload is gone
            await session.delete(row)
            await session.commit()
            log.warning("image %s of %s: its upload is missing, dropped", image_id, row.actor)
            return
        fitted = await asyncio.to_thread(fit_jpeg, source, width, height)
        digest = hashlib.sha256(fitted.data).hexdigest()
        key = f"profiles/{row.actor}/{row.role.value}-{row.id}-{digest[:12]}.{fitted.extension}"
        temporary = storage.temporary_file()
        await asyncio.to_thread(temporary.write_bytes, fitted.data)
        await asyncio.to_thread(storage.put, temporary, key)
        old_source = row.source_key
        row.state = IMAGE_STATES.check(row.state, ImageState.READY)
        row.storage_key, row.source_key = key, None
        row.mime_type, row.width, row.height = fitted.mime_type, fitted.width, fitted.height
        row.size_bytes, row.sha256, row.ready_at = len(fitted.data), digest, utcnow()
        await session.flush()
        newest = await _newest_ready(session, row.actor, row.role)
        assert newest is not None
        older = (
            await session.scalars(
                select(ActorImage).where(
                    ActorImage.actor == row.actor,
                    ActorImage.role == row.role,
                    ActorImage.id < newest.id,
                    ActorImage.state == ImageState.READY,
                )
            )
        ).all()
        gone = [key for image in older for key in (image.storage_key, image.source_key) if key]
        await session.execute(delete(ActorImage).where(ActorImage.id.in_([i.id for i in older])))
        await queue_update(session, row.actor)
        await session.commit()
    for key in [old_source, *gone]:
        storage.delete(key)
    log.info("%s of %s is ready (%s × %s)", row.role.value, row.actor, width, height)


async def _newest_ready(session: AsyncSession, actor: str, role: ImageRole) -> ActorImage | None:
    return await session.scalar(
        select(ActorImage)
        .where(
            ActorImage.actor == actor,
            ActorImage.role == role,
            ActorImage.state == ImageState.READY,
        )
        .order_by(ActorImage.id.desc())
        .limit(1)
    )


async def shown_image(
    session: AsyncSession, actor: str, role: ImageRole, version: int
) -> ActorImage | None:
    """The version asked for, if it is the one shown now (older ones are gone)."""
    row = await session.get(ActorImage, version)
    if row is None or row.actor != actor or row.role is not role:
        return None
    return row if row.state is ImageState.READY and row.storage_key else None


# --- what the actor document shows ----------------------------------------------------------


@dataclass(frozen=True)
class ProfileView:
    """What an actor's profile adds to its document and pages."""

    discoverable: bool
    indexable: bool
    links: tuple[ProfileLink, ...] = ()
    also_known_as: tuple[str, ...] = ()
    moved_to: str | None = None
    icon_url: str | None = None
    icon_type: str | None = None
    image_url: str | None = None
    image_type: str | None = None
    pending: tuple[ImageRole, ...] = ()  # uploaded, not cut yet


async def profile_view(
    session: AsyncSession, base_url: str, kind: str | None, actor: str
) -> ProfileView:
    """The profile of the actor at /{kind}/{actor} (kind None: the instance actor)."""
    row = await session.get(ActorProfile, actor)
    default = kind in ("artists", "labels")
    urls: dict[ImageRole, tuple[str, str]] = {}
    for role in ImageRole:
        image = await _newest_ready(session, actor, role)
        if image is not None:
            url = profile_image_url(base_url, kind, actor, role.value, image.id)
            urls[role] = (url, image.mime_type)
    pending = tuple(
        await session.scalars(
            select(ActorImage.role)
            .where(ActorImage.actor == actor, ActorImage.state == ImageState.PENDING)
            .distinct()
        )
    )
    icon = urls.get(ImageRole.AVATAR, (None, None))
    header = urls.get(ImageRole.HEADER, (None, None))
    return ProfileView(
        discoverable=row.discoverable if row is not None else default,
        indexable=row.indexable if row is not None else default,
        links=tuple(ProfileLink(link["name"], link["url"]) for link in row.links) if row else (),
        also_known_as=tuple(row.also_known_as) if row is not None else (),
        moved_to=row.moved_to if row is not None else None,
        icon_url=icon[0],
        icon_type=icon[1],
        image_url=header[0],
        image_type=header[1],
        pending=pending,
    )


# --- profile choices ------------------------------------------------------------------------


def check_links(pairs: Sequence[tuple[str, str]]) -> tuple[ProfileLink, ...]:
    """Links from a form or the API: blank pairs dropped, at most :data:`MAX_LINKS`, each
    with a name and an http(s) URL; else Refused (422) saying which."""
    links: list[ProfileLink] = []
    for number, (raw_name, raw_url) in enumerate(pairs, start=1):
        name, url = raw_name.strip(), raw_url.strip()
        if not name and not url:
            continue
        if not name or not url:
            raise Refused(f"link {number} needs both a name and a URL", 422)
        if len(name) > LINK_NAME_CHARS or len(url) > LINK_URL_CHARS:
            raise Refused(
                f"link {number}: a name is at most {LINK_NAME_CHARS} characters and a URL "
                f"at most {LINK_URL_CHARS}",
                422,
            )
        if any(ord(char) < 32 for char in name):
            raise Refused(f"link {number}: the name has control characters in it", 422)
        try:
            checked_url(url, allow_http=True)
        except UnacceptableURL as error:
            raise Refused(f"link {number}: {error}", 422) from None
        links.append(ProfileLink(name, url))
    if len(links) > MAX_LINKS:
        raise Refused(f"a profile has at most {MAX_LINKS} links", 422)
    return tuple(links)


async def profile_row(session: AsyncSession, owner: Owned) -> ActorProfile:
    row = await session.get(ActorProfile, owner.actor)
    if row is None:
        row = ActorProfile(actor=owner.actor, links=[], also_known_as=[])
        session.add(row)
    return row


async def save_profile(
    session: AsyncSession,
    owner: Owned,
    *,
    discoverable: bool | None = None,
    indexable: bool | None = None,
    links: tuple[ProfileLink, ...] | None = None,
) -> None:
    """Change what is given (the caller commits)."""
    row = await profile_row(session, owner)
    if discoverable is not None:
        row.discoverable = discoverable
    if indexable is not None:
        row.indexable = indexable
    if links is not None:
        row.links = [{"name": link.name, "url": link.url} for link in links]
    row.updated_at = utcnow()
    await session.flush()
    await queue_update(session, owner.actor)
