"""``getUser``: whose account details a caller may read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.users import User
from server.services.errors import NotFoundError, Refused
from server.services.viewers import Viewer


async def visible_user(session: AsyncSession, viewer: Viewer, username: str | None) -> User:
    """The account ``username`` (the viewer's own when None). Anyone may read their own;
    only an admin (credentials with the admin scope) another's: for anybody else the
    answer is the same refusal whether the name exists or not."""
    name = (username or viewer.username).strip().lower()
    if name != viewer.username and not viewer.is_admin:
        raise Refused("you may only look up your own account", 403)
    user = await session.scalar(select(User).where(User.username == name))
    if user is None:
        raise NotFoundError(f"there is no account {name!r}")
    return user
