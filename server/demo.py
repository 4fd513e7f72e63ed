"""Demo content for a fresh instance (`playfair demo`, and `make run` on an empty one)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.users import Role, User
from server.accounts import create_user, generate_password

DEMO_ACCOUNTS = (("demo_artist", Role.ARTIST), ("demo_listener", Role.LISTENER))


async def add_demo_content(session: AsyncSession, *, only_if_empty: bool) -> list[str]:
    """Make the demo accounts that are missing; return what to tell the admin."""
    existing = set(
        (
            await session.scalars(
                select(User.username).where(User.username.in_([name for name, _ in DEMO_ACCOUNTS]))
            )
        ).all()
    )
    if only_if_empty and await session.scalar(select(func.count()).select_from(User)):
        return ["the instance has content already; no demo content added"]
    lines = []
    for name, role in DEMO_ACCOUNTS:
        if name in existing:
            lines.append(f"demo {role} {name} exists already")
            continue
        password = generate_password()
        await create_user(session, name, password, role)
        lines.append(f"demo {role} {name}, password {password}")
    return lines
