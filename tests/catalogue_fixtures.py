"""An artist with a token, uploads through the real API, and the worker run to the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from quart import Quart
from quart.datastructures import FileStorage
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from models.tokens import AccessToken, new_token, token_digest
from models.users import Role, User
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.services.jobs import build_worker
from server.services.media.storage import LOCK_NAME
from server.web.current import resources_of


@dataclass
class Account:
    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_account(
    app: Quart,
    name: str,
    role: Role,
    scopes: str = "read write upload play",
    artist: str | None = None,
) -> Account:
    async with resources_of(app).sessionmaker() as session:
        user = await create_user(session, name, "a long password", role)
        if artist:
            await create_artist(session, artist, user, display_name=artist.title())
        token = new_token()
        session.add(AccessToken(user_id=user.id, digest=token_digest(token), scopes=scopes))
        await session.commit()
        return Account(user.id, token)


async def upload(
    client: Client, account: Account | None, path: Path, *, name: str | None = None,
    query: str = "", content_type: str = "application/octet-stream",
):  # type: ignore[no-untyped-def]  # fmt: skip
    with path.open("rb") as handle:
        return await client.post(
            f"/api/v1/uploads{query}",
            headers=account.headers if account else {},
            files={
                "file": FileStorage(handle, filename=name or path.name, content_type=content_type)
            },
        )


async def run_worker(app: Quart) -> int:
    return await build_worker(resources_of(app)).run_until_idle()


async def count_rows(app: Quart, model: type) -> int:
    async with resources_of(app).sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def stored_files(app: Quart) -> list[Path]:
    """Every file in the media folder but the lock of a scratch folder (each process
    holds one while it lives: it is no file of anybody's)."""
    root = resources_of(app).settings.media_dir
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not (p.name == LOCK_NAME and p.parent.parent == root / "incoming")
    )


@pytest.fixture
async def artist(app: Quart) -> Account:
    return await make_account(app, "mira", Role.ARTIST, artist="aurora")


__all__ = ["Account", "User", "count_rows", "make_account", "run_worker", "stored_files", "upload"]
