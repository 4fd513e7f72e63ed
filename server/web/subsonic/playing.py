"""Subsonic methods: playing and paying (``stream``, ``download``, ``scrobble``).

Stream-to-own holds exactly as in the web player, through the same code: the quote and
the play session (``server.services.plays``), who may hear what
(``server.services.media.access.may_stream``), and the gated stream that charges the play
once the free part has gone (``server.web.media.send_session_audio``). Which session a
request belongs to is ``server.services.subsonic.playing.listening``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import quote as percent_encoded

from quart import Response, request
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, RequestedRangeNotSatisfiable

from models.base import utcnow
from models.catalogue import FileRole, MediaFile
from models.tokens import Scope
from server.services import plays
from server.services.errors import Refused
from server.services.media.access import may_stream
from server.services.origins import origins
from server.services.remote_plays import PartnerTrack
from server.services.subsonic import playing, queue
from server.web.media import audio_timeline, send_media, send_session_audio
from server.web.subsonic.call import Call, Method, Methods
from subsonic import ids
from subsonic.envelope import Node
from subsonic.errors import Code, SubsonicError


async def _track(
    call: Call, value: str
) -> tuple[plays.Playable, plays.Quote, list[playing.Rendition]]:
    """The track an id names, as this listener sees it, with their quote and the
    renditions we have of it (code 70 if there is no such track for them)."""
    _kind, track_id = ids.parse_as(value, ids.Kind.TRACK)
    listener = call.listener
    async with call.resources.read_sessionmaker() as session:
        track = await plays.find(session, origins(call.resources), track_id, listener)
        quote = await plays.quote(session, listener.user_id, track)
        available = await playing.renditions(session, track)
    if track.unplayable is not None:
        raise SubsonicError(Code.GENERIC, track.unplayable)
    return track, quote, available


async def stream(call: Call) -> Response:
    """The track for this listener: in full when it is free, theirs or owned; when its
    next play is affordable, a play session's stream (gated until the play is charged);
    otherwise the preview (200, never an error). ``timeOffset`` (seconds) starts the MP3
    at the frame playing then, a continuation of the listening: past the free part it
    charges first, as any seek does."""
    listener = call.listener
    track, quote, available = await _track(call, call.params.required("id"))
    # OpenSubsonic's transcodeOffset: start at the MP3 frame playing then
    seconds = call.params.integer("timeOffset", 0, low=0) or 0
    limit = call.params.integer("maxBitRate", low=0)
    mp3 = seconds > 0 or playing.wants_mp3(available, call.params.get("format"), limit)
    call.params.boolean("estimateContentLength")  # Content-Length is always sent
    resources = call.resources
    lifetime = resources.settings.money.play_session_lifetime
    async with resources.sessionmaker() as session:
        token = await playing.listening(
            session,
            track,
            listener.user_id,
            continuing=seconds > 0 or playing.continues(request.headers.get("Range")),
            affordable=quote.affordable,
            now=utcnow(),
            lifetime=lifetime,
        )
    if token is None:
        return await _preview(call, track)
    async with resources.read_sessionmaker() as session:
        decision = await may_stream(
            session, track, listener, token=token, signed_by_partner=False, now=utcnow(),
            lifetime=lifetime,
        )  # fmt: skip
        if not decision.allowed:
            raise Refused(decision.reason, decision.status)
        audio = await track.origin.stored_audio(session, track, mp3=mp3)
    audio = audio or await track.origin.audio(track, mp3=mp3, resources=resources)
    skip = 0
    if seconds:
        timeline = await audio_timeline(audio)
        if timeline is None or timeline.kind != "mp3":
            raise SubsonicError(
                Code.GENERIC, "this track cannot start at an offset here: ask without timeOffset"
            )
        skip = playing.start_byte(timeline, seconds)
    here = origins(resources)
    gated_for = listener.user_id if decision.gated else None
    return await _audio(send_session_audio(audio, here, token, gated_for, skip=skip))


async def _preview(call: Call, track: plays.Playable) -> Response:
    """The track's preview, with Range like any file; a partner's is on the partner's
    server (a redirect to it)."""
    if isinstance(track, PartnerTrack):
        if not track.remote.preview_url:
            raise SubsonicError(Code.NOT_FOUND, "this partner's track has no preview")
        return Response(b"", 302, {"Location": track.remote.preview_url})
    async with call.resources.read_sessionmaker() as session:
        preview = await session.scalar(
            select(MediaFile).where(
                MediaFile.track_id == track.id, MediaFile.role == FileRole.PREVIEW_MP3
            )
        )
    if preview is None:
        raise SubsonicError(Code.GENERIC, "the preview is not ready")
    return await _audio(send_media(preview, cache="private, no-store"))


async def download(call: Call) -> Response:
    """The whole best rendition of a free, owned or own track; code 50 for any other
    (it is never charged: a paid track is heard through ``stream``)."""
    listener = call.listener
    track, quote, available = await _track(call, call.params.required("id"))
    refusal = playing.download_refusal(quote)
    if refusal is not None:
        raise SubsonicError(Code.NOT_AUTHORIZED, refusal)
    resources = call.resources
    async with resources.read_sessionmaker() as session:
        decision = await may_stream(
            session, track, listener, token=None, signed_by_partner=False, now=utcnow(),
            lifetime=resources.settings.money.play_session_lifetime,
        )  # fmt: skip
        if not decision.allowed:
            raise Refused(decision.reason, decision.status)
        mp3 = playing.wants_mp3(available, playing.RAW, None)
        audio = await track.origin.stored_audio(session, track, mp3=mp3)
    audio = audio or await track.origin.audio(track, mp3=mp3, resources=resources)
    response = await _audio(send_media(audio.file, cache="private, no-store"))
    extension = "mp3" if audio.file.mime_type == "audio/mpeg" else "opus"
    # an ASCII name for every client, and the title itself (RFC 6266) for those that read it
    plain = "".join(c if c.isascii() and (c.isalnum() or c in " -_.") else "_" for c in track.title)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{plain[:100] or "track"}.{extension}"; '
        f"filename*=UTF-8''{percent_encoded(track.title[:100] + '.' + extension, safe='')}"
    )
    return response


async def _audio(sending: Awaitable[ResponseReturnValue]) -> Response:
    """A file's answer, with send_media's HTTP refusals as Subsonic answers: 416 stays a
    416 (players follow it), a missing file is code 70."""
    try:
        response = await sending
    except RequestedRangeNotSatisfiable as error:
        headers = {"Content-Range": f"bytes */{error.length}"} if error.length else {}
        return Response(b"", 416, headers)
    except HTTPException as error:
        raise SubsonicError(Code.NOT_FOUND, error.description or "no such file") from None
    assert isinstance(response, Response)
    return response


async def scrobble(call: Call) -> Node:
    """``submission=true`` (the default): the player's claim of each track's latest open
    play session (charged once enough has been heard, by the server's clock; never twice);
    ``submission=false`` ("now playing"): nothing is charged. A track with no open session
    is nothing to claim, not an error."""
    listener = call.listener
    values = call.params.all("id")
    if not values:
        raise SubsonicError(Code.MISSING_PARAMETER, "required parameter 'id' is missing")
    # when the app says each was heard: checked, but the server's clock decides
    if any(not (value.isascii() and value.isdecimal()) for value in call.params.all("time")):
        raise SubsonicError(Code.GENERIC, "'time' must be milliseconds since 1970")
    submission = call.params.boolean("submission", default=True)
    if submission:  # a claim moves tokens, as the web player's claim does: it needs play
        call.need(Scope.PLAY)
    found = [await _track(call, value) for value in values]
    if submission:
        here = origins(call.resources)
        for track, _quote, _available in found:
            await playing.scrobble(call.resources, here, track, listener.user_id, utcnow())
    else:  # "now playing": what getNowPlaying shows of this app
        async with call.resources.sessionmaker() as session:
            for track, _quote, _available in found:
                await queue.record_now_playing(session, listener.user_id, track.id, call.client)
            await session.commit()
    return Node()


METHODS: Methods = {
    "stream": Method(stream, scope=Scope.PLAY),
    "download": Method(download, scope=Scope.PLAY),
    "scrobble": Method(scrobble, scope=Scope.WRITE),
}
