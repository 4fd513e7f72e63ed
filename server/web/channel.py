"""What Funkwhale fetches of a release filed in a channel: the ``Album`` its uploads point
at, and each ``Create{Audio}`` by its id (docs/architecture.md#federation)."""

from __future__ import annotations

from quart import Blueprint, current_app
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from federation.objects import channel_album, create_audio
from server.services.activitypub.channels import artist_type
from server.services.activitypub.publish import load_release_info, load_track_info
from server.web.activitypub import activity_response
from server.web.current import resources_of

channel = Blueprint("channel", __name__)


@channel.get("/releases/<int:release_id>/channel-album")
async def channel_album_route(release_id: int) -> ResponseReturnValue:
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        info = await load_release_info(session, release_id)
        if info is None:
            raise NotFound("the release is not published here")
        kind = await artist_type(session, info.artist_name)
    return activity_response(channel_album(resources.settings.instance.base_url, info, kind))


@channel.get("/tracks/<int:track_id>/audio/create")
async def channel_upload_route(track_id: int) -> ResponseReturnValue:
    resources = resources_of(current_app)
    async with resources.read_sessionmaker() as session:
        found = await load_track_info(session, track_id)
    if found is None or not found[1].preview_type:
        raise NotFound("there is no such upload here")
    info, track = found
    return activity_response(create_audio(resources.settings.instance.base_url, info, track))
