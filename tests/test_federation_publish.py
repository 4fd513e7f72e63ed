"""A release's life on the fediverse, through the API and the worker: announced once
its audio is transcoded (with the preview attached), updated when edited, deleted when
withdrawn; each activity queued for every follower inbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from models.federation import Delivery, Follow, FollowState, OutboundActivity, RemoteActor
from models.users import Role
from server.runtime.config import Settings
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import make_account, run_worker, upload
from tests.conftest import make_settings

BASE = "https://music.example"
FOLLOWER_INBOX = "http://127.0.0.1:9/inbox"  # nothing listens: deliveries wait to retry


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        federation={"allow_private_addresses": True},
    )


async def sent(app: Quart) -> list[tuple[str, dict[str, Any], list[str]]]:
    async with resources_of(app).sessionmaker() as session:
        rows = (await session.scalars(select(OutboundActivity).order_by(OutboundActivity.id))).all()
        result = []
        for row in rows:
            inboxes = (
                await session.scalars(select(Delivery.inbox).where(Delivery.activity_id == row.id))
            ).all()
            result.append((row.type, row.document, list(inboxes)))
        return result


async def test_publish_edit_withdraw(app: Quart, client: Any, tmp_path: Path) -> None:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    async with resources_of(app).sessionmaker() as session:
        follower = RemoteActor(
            uri="http://127.0.0.1:9/users/f", domain="127.0.0.1", type="Person",
            inbox=FOLLOWER_INBOX,
        )  # fmt: skip
        session.add(follower)
        await session.flush()
        session.add(
            Follow(
                activity_uri="http://127.0.0.1:9/follows/1",
                follower_actor_id=follower.id,
                followed_name="aurora",
                state=FollowState.ACCEPTED,
            )
        )
        await session.commit()

    path = tmp_path / "01 - Tide.flac"
    make_audio(path, "flac", seconds=2)
    response = await upload(client, artist, path, query="?publish=1&album=Shoreline")
    assert response.status_code == 202, await response.get_data(as_text=True)
    release_id = (await response.get_json())["release"]["id"]
    # published, but nothing goes out before the preview exists
    assert await sent(app) == []

    await run_worker(app)
    [(kind, create, inboxes)] = await sent(app)
    assert kind == "Create" and inboxes == [FOLLOWER_INBOX]
    note = create["object"]
    [clip] = note["attachment"]  # a single: its preview is the one attachment
    assert clip["mediaType"] == "audio/mpeg" and clip["url"].endswith("/preview")
    preview = await client.get(clip["url"].removeprefix(BASE))
    assert preview.status_code == 200

    changed = await client.patch(
        f"/api/v1/releases/{release_id}",
        json={"title": "Shoreline (remastered)", "tags": ["ambient"]},
        headers=artist.headers,
    )
    assert changed.status_code == 200, await changed.get_data(as_text=True)
    await run_worker(app)
    kinds = [(kind, inboxes) for kind, _doc, inboxes in await sent(app)]
    assert kinds == [("Create", [FOLLOWER_INBOX]), ("Update", [FOLLOWER_INBOX])]
    update = (await sent(app))[1][1]
    assert "Shoreline (remastered)" in update["object"]["content"]
    assert update["object"]["id"] == note["id"]

    withdrawn = await client.delete(
        f"/api/v1/releases/{release_id}/publication", headers=artist.headers
    )
    assert withdrawn.status_code == 204
    await run_worker(app)
    delete = (await sent(app))[2]
    assert delete[0] == "Delete" and delete[1]["object"]["id"] == note["id"]
    gone = await client.get(
        f"/releases/{release_id}", headers={"Accept": "application/activity+json"}
    )
    assert gone.status_code == 404


async def test_only_the_owner_edits(app: Quart, client: Any) -> None:
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    other = await make_account(app, "sol", Role.ARTIST, artist="sol_band")
    response = await client.patch("/api/v1/releases/1", json={"title": "x"}, headers=other.headers)
    assert response.status_code == 404
    bad = await client.patch("/api/v1/releases/1", json={"title": ""}, headers=other.headers)
    assert bad.status_code == 422
