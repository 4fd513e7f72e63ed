"""Playlists over the API: the listener's own, and any public one."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response
from sqlalchemy import select
from werkzeug.exceptions import Conflict, HTTPException, NotFound, UnprocessableEntity

from models.catalogue import Playlist
from models.tokens import Scope
from server.services import playlists as pl
from server.web.auth import current_viewer, require, viewer_required
from server.web.current import resources_of

playlists_api = Blueprint("playlists_api", __name__)


class PlaylistIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    public: bool = False


class ItemIn(BaseModel):
    track_id: int = Field(ge=1)


class ItemOut(BaseModel):
    position: int
    track_id: int
    title: str
    artist: str
    duration_ms: int


class PlaylistOut(BaseModel):
    id: int
    title: str
    public: bool
    items: list[ItemOut]


class PlaylistList(BaseModel):
    items: list[PlaylistOut]


def _error(exc: pl.PlaylistError) -> HTTPException:
    return {404: NotFound, 409: Conflict}.get(exc.status, UnprocessableEntity)(str(exc))


async def _out(playlist_id: int, viewer_id: int | None) -> PlaylistOut:
    async with resources_of(current_app).sessionmaker() as session:
        try:
            seen = await pl.view(session, viewer_id, playlist_id)
        except pl.PlaylistError as exc:
            raise _error(exc) from None
    return PlaylistOut(
        id=seen.playlist.id,
        title=seen.playlist.title,
        public=seen.playlist.visibility.value == "public",
        items=[
            ItemOut(
                position=position,
                track_id=track.id,
                title=track.title,
                artist=artist.display_name,
                duration_ms=track.duration_ms,
            )
            for position, track, _release, artist in seen.rows
        ],
    )


@playlists_api.get("/me/playlists")
@require(Scope.READ)
@validate_response(PlaylistList)
async def mine() -> PlaylistList:
    viewer = viewer_required()
    async with resources_of(current_app).read_sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(Playlist.id).where(Playlist.user_id == viewer.user_id).order_by(Playlist.id)
            )
        )
    return PlaylistList(items=[await _out(i, viewer.user_id) for i in ids])


@playlists_api.post("/me/playlists")
@require(Scope.WRITE)
@validate_request(PlaylistIn)
@validate_response(PlaylistOut, 201)
async def make(data: PlaylistIn) -> tuple[PlaylistOut, int]:
    viewer = viewer_required()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            made = await pl.create(session, viewer.user_id, data.title, public=data.public)
        except pl.PlaylistError as exc:
            raise _error(exc) from None
        playlist_id = made.id
    return await _out(playlist_id, viewer.user_id), 201


@playlists_api.get("/playlists/<int:playlist_id>")
@validate_response(PlaylistOut)
async def read(playlist_id: int) -> PlaylistOut:
    viewer = await current_viewer()
    return await _out(playlist_id, viewer.user_id if viewer else None)


@playlists_api.post("/playlists/<int:playlist_id>/items")
@require(Scope.WRITE)
@validate_request(ItemIn)
@validate_response(PlaylistOut, 201)
async def add_item(playlist_id: int, data: ItemIn) -> tuple[PlaylistOut, int]:
    viewer = viewer_required()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await pl.add(session, viewer.user_id, playlist_id, data.track_id)
        except pl.PlaylistError as exc:
            raise _error(exc) from None
    return await _out(playlist_id, viewer.user_id), 201


@playlists_api.delete("/playlists/<int:playlist_id>/items/<int32:position>")
@require(Scope.WRITE)
async def remove_item(playlist_id: int, position: int) -> tuple[str, int]:
    viewer = viewer_required()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await pl.remove(session, viewer.user_id, playlist_id, position)
        except pl.PlaylistError as exc:
            raise _error(exc) from None
    return "", 204


@playlists_api.delete("/playlists/<int:playlist_id>")
@require(Scope.WRITE)
async def remove_playlist(playlist_id: int) -> tuple[str, int]:
    viewer = viewer_required()
    async with resources_of(current_app).sessionmaker() as session:
        try:
            await pl.delete_playlist(session, viewer.user_id, playlist_id)
        except pl.PlaylistError as exc:
            raise _error(exc) from None
    return "", 204
