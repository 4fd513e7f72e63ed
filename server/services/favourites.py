"""A listener's favourite tracks (the library page's, the track page's button and the
Subsonic API's stars are these same rows). Changes happen in the caller's transaction:
the caller commits, so several of them can be one change."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.catalogue import Favourite


async def is_favourite(session: AsyncSession, user_id: int, track_id: int) -> bool:
    return await session.get(Favourite, (user_id, track_id)) is not None


async def add(session: AsyncSession, user_id: int, track_ids: Iterable[int]) -> None:
    """Make these tracks favourites; one that is already stays as it was (and keeps the
    moment it became one)."""
    wanted = set(track_ids)
    if not wanted:
        return
    there = set(
        await session.scalars(
            select(Favourite.track_id).where(
                Favourite.user_id == user_id, Favourite.track_id.in_(wanted)
            )
        )
    )
    session.add_all(
        Favourite(user_id=user_id, track_id=track_id) for track_id in sorted(wanted - there)
    )
    await session.flush()


async def remove(session: AsyncSession, user_id: int, track_ids: Iterable[int]) -> None:
    """No longer favourites; one that was not is no error."""
    wanted = set(track_ids)
    if wanted:
        await session.execute(
            delete(Favourite).where(Favourite.user_id == user_id, Favourite.track_id.in_(wanted))
        )
