"""Tracks as Subsonic songs for one listener (server/services/subsonic/songs.py)."""

from __future__ import annotations

from pathlib import Path

from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.users import Role
from server.services.subsonic import songs
from server.web.current import resources_of
from subsonic.elements import song
from subsonic.envelope import Node, to_json, to_xml
from tests.catalogue_fixtures import Account, make_account
from tests.test_streaming import ready_track

__all__ = ["artist"]
from tests.catalogue_fixtures import artist


async def test_a_ready_track_is_a_song_and_a_broke_listener_is_told_why(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    track = await ready_track(app, client, artist, tmp_path)
    listener = await make_account(app, "lena", Role.LISTENER)
    async with resources_of(app).read_sessionmaker() as session:
        purse = songs.Wallet(listener.user_id, 0)
        (found,) = await songs.songs(session, purse, [int(str(track["id"])), 999_999])
        (own,) = await songs.songs(session, songs.Wallet(artist.user_id, 0), [found.id])
    assert found.title == "Tone" and found.suffix == "mp3" and found.size
    assert found.comment is not None and "2 tokens" in found.comment
    assert own.comment is None  # the artist's own track is free to her
    root = Node()
    root.one("song", song(found))
    assert 'title="Tone"' in to_xml(root) and '"isDir": false' in to_json(root)
