"""A small public catalogue for the tests of what is shared outside the fediverse (feeds,
link previews, embeds): an artist with a published album (cover, two tracks, the second
free), a label that put it out, and a draft that must never show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select, update

from models.catalogue import Artist, PriceModel, Release, Track
from models.users import Role, User
from server.services.catalogue import create_label
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, make_account, run_worker, upload

BASE = "https://music.example"


@dataclass
class Catalogue:
    artist: Account
    release_id: int
    track_ids: list[int]  # in album order; the second is free
    draft_id: int
    draft_track_id: int


def cover_png(folder: Path) -> Path:
    from PIL import Image

    path = folder / "cover.png"
    Image.new("RGB", (64, 64), (120, 40, 140)).save(path, "PNG")
    return path


async def make_catalogue(app: Quart, client: Client, folder: Path) -> Catalogue:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    cover = cover_png(folder)
    for number, title in ((1, "Low Water"), (2, "Salt Light")):
        path = make_audio(
            folder / f"0{number} - {title}.mp3", "mp3", seconds=1.5, frequency=440 * number,
            tags={"title": title, "album": "Harbour Songs", "track": str(number)}, cover=cover,
        )  # fmt: skip
        response = await upload(client, artist, path, query="?publish=1&album=Harbour+Songs")
        assert response.status_code == 202, await response.get_data(as_text=True)
    draft = make_audio(folder / "demo.mp3", "mp3", seconds=1.0, tags={"title": "Secret Demo"})
    response = await upload(client, artist, draft, query="?album=Unheard+Demos")
    assert response.status_code == 202, await response.get_data(as_text=True)
    await run_worker(app)
    async with resources_of(app).sessionmaker() as session:
        owner = await session.scalar(select(User).where(User.username == "mira"))
        assert owner is not None
        label = await create_label(session, "tidewater", owner, display_name="Tidewater Records")
        aurora = await session.scalar(select(Artist).where(Artist.name == "aurora"))
        assert aurora is not None
        releases = {
            r.title: r.id
            for r in await session.scalars(select(Release).where(Release.artist_id == aurora.id))
        }
        release_id, draft_id = releases["Harbour Songs"], releases["Unheard Demos"]
        await session.execute(
            update(Release).where(Release.id == release_id).values(label_id=label.id)
        )
        tracks = list(
            await session.scalars(
                select(Track.id).where(Track.release_id == release_id).order_by(Track.position)
            )
        )
        await session.execute(
            update(Track).where(Track.id == tracks[1]).values(price_model=PriceModel.FREE)
        )
        draft_track = await session.scalar(select(Track.id).where(Track.release_id == draft_id))
        assert draft_track is not None
        await session.commit()
    return Catalogue(artist, release_id, tracks, draft_id, draft_track)
