"""Actor profiles in the API (docs/architecture.md#actor-profiles): read and change an
artist's or label's profile, upload its avatar or header, add aliases, move it.
``{name}`` is the artist's or label's handle; the caller must manage it."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from models.tokens import Scope
from server.services import account_moves
from server.services.activitypub.context import federation_of
from server.services.media.storage import LocalStorage
from server.services.profiles import (
    Owned,
    ProfileView,
    check_links,
    image_role,
    image_upload_limit,
    owned_actor,
    profile_view,
    save_profile,
    store_image,
)
from server.web.api.uploads import receive_multipart
from server.web.auth import require, viewer_required
from server.web.current import resources_of

profiles_api = Blueprint("profiles_api", __name__)


class LinkIn(BaseModel):
    name: str = Field(max_length=255)
    url: str = Field(max_length=500)


class ProfileChange(BaseModel):
    discoverable: bool | None = None
    indexable: bool | None = None
    links: list[LinkIn] | None = Field(default=None, max_length=16)


class ImageOut(BaseModel):
    url: str


class ProfileOut(BaseModel):
    name: str
    discoverable: bool
    indexable: bool
    links: list[LinkIn]
    also_known_as: list[str]
    moved_to: str | None
    avatar: ImageOut | None
    header: ImageOut | None
    pending: list[str] = Field(description="pictures uploaded and not resized yet")


class AccountIn(BaseModel):
    account: str = Field(min_length=1, max_length=2048, description="@name@host or an actor URL")


class ImageAccepted(BaseModel):
    id: int
    role: str
    state: str


async def _owned(name: str) -> Owned:
    viewer = viewer_required()
    async with resources_of(current_app).read_sessionmaker() as session:
        return await owned_actor(session, viewer.user_id, viewer.role, name)


def _out(owner: Owned, view: ProfileView) -> ProfileOut:
    return ProfileOut(
        name=owner.actor,
        discoverable=view.discoverable,
        indexable=view.indexable,
        links=[LinkIn(name=link.name, url=link.url) for link in view.links],
        also_known_as=list(view.also_known_as),
        moved_to=view.moved_to,
        avatar=ImageOut(url=view.icon_url) if view.icon_url else None,
        header=ImageOut(url=view.image_url) if view.image_url else None,
        pending=[role.value for role in view.pending],
    )


async def _view(owner: Owned) -> ProfileOut:
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        view = await profile_view(
            session, resources.settings.instance.base_url, owner.kind, owner.actor
        )
    return _out(owner, view)


@profiles_api.get("/profiles/<name>")
@require(Scope.READ)
@validate_response(ProfileOut)
async def get_profile(name: str) -> ProfileOut:
    """The profile of an artist or label you manage."""
    return await _view(await _owned(name))


@profiles_api.patch("/profiles/<name>")
@require(Scope.WRITE)
@validate_request(ProfileChange)
@validate_response(ProfileOut)
async def change_profile(name: str, data: ProfileChange) -> ProfileOut:
    """Change what is given; `links` replaces all links (at most 4, http or https)."""
    owner = await _owned(name)
    links = None
    if data.links is not None:
        links = check_links([(link.name, link.url) for link in data.links])
    async with resources_of(current_app).sessionmaker() as session:
        await save_profile(
            session, owner, discoverable=data.discoverable, indexable=data.indexable, links=links
        )
        await session.commit()
    return await _view(owner)


@profiles_api.post("/profiles/<name>/<any(avatar, header):role>")
@require(Scope.UPLOAD)
@validate_response(ImageAccepted, 202)
async def upload_image(name: str, role: str) -> tuple[ImageAccepted, int]:
    """Upload a picture (multipart/form-data, part `file`: JPEG, PNG or WebP). Answers
    202: the worker resizes it (avatar 400 × 400, header 1500 × 500) and then it shows."""
    owner = await _owned(name)
    settings = resources_of(current_app).settings
    storage = LocalStorage(settings.media_dir)
    received = await receive_multipart(storage, image_upload_limit(settings.media.max_upload_bytes))
    assert received.path is not None
    async with resources_of(current_app).sessionmaker() as session:
        row = await store_image(session, storage, owner, image_role(role), received.path)
        await session.commit()
    return ImageAccepted(id=row.id, role=row.role.value, state=row.state.value), 202


@profiles_api.post("/profiles/<name>/aliases")
@require(Scope.WRITE)
@validate_request(AccountIn)
@validate_response(ProfileOut)
async def add_alias(name: str, data: AccountIn) -> ProfileOut:
    """Let a remote account move here (it goes into `alsoKnownAs`)."""
    owner = await _owned(name)
    await account_moves.add_alias(federation_of(resources_of(current_app)), owner, data.account)
    return await _view(owner)


@profiles_api.post("/profiles/<name>/move")
@require(Scope.WRITE)
@validate_request(AccountIn)
@validate_response(ProfileOut)
async def move(name: str, data: AccountIn) -> ProfileOut:
    """Move to a remote account that lists this one in its `alsoKnownAs` (else 422):
    `movedTo` is set and the followers are sent a Move."""
    owner = await _owned(name)
    await account_moves.move_to(federation_of(resources_of(current_app)), owner, data.account)
    return await _view(owner)
