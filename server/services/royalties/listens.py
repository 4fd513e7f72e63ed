"""Partners' Listens (docs/architecture.md#a-play-of-a-partners-track): each recorded once by its
id, and the artist's share of what the listener paid credited to the artist's earnings
as a receivable from the payer (a PEER ledger account), with the same running-floor
split the payer used."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from federation.parse import ParsedActivity
from federation.royalties import InvalidListen, parse_listen
from models import ledger
from models.catalogue import Track
from models.federation import RemoteActor
from models.ledger import AccountKind, DuplicateTransaction
from models.pricing import split
from models.remote_plays import ReceivedListen
from server.runtime.values import whole_number
from server.services.activitypub.context import Federation
from server.services.activitypub.partners import is_partner
from server.services.activitypub.registry import ANY, Ignored, Incoming, Registry


class ListenRefused(Exception):
    """The Listen concerns nothing here or comes from a non-partner; says why."""


async def record_listen(fed: Federation, activity: ParsedActivity, share_bp: int) -> str:
    try:
        listen = parse_listen(activity.raw)
    except InvalidListen as error:
        raise ListenRefused(f"not a valid Listen: {error}") from None
    if listen.payer != activity.actor:
        raise ListenRefused("the Listen's payer is not the actor that sent it")
    prefix = f"{fed.base_url}/tracks/"
    track_id = listen.track.removeprefix(prefix)
    if not listen.track.startswith(prefix) or whole_number(track_id) is None:
        raise ListenRefused("the Listen is not about a track hosted here")
    async with fed.sessionmaker() as session:
        if not await is_partner(session, listen.payer):
            raise ListenRefused("Listens are taken from partner instances only")
        track = await session.get(Track, int(track_id))
        payer = await session.scalar(select(RemoteActor).where(RemoteActor.uri == listen.payer))
        if track is None or payer is None:
            raise ListenRefused("the Listen is not about a track hosted here")
        try:
            async with session.begin_nested():
                session.add(
                    ReceivedListen(
                        uri=listen.id, payer_id=payer.id, track_id=track.id,
                        listener=listen.listener, paid_number=listen.play_number,
                        tokens=listen.tokens, owned=listen.owned, at=listen.at,
                    )
                )  # fmt: skip
        except IntegrityError:
            return "Listen already recorded"
        credited = 0
        if listen.tokens:
            receivable = await ledger.account(
                session, ledger.peer_key(payer.id), AccountKind.PEER, payer.id
            )
            earnings = await ledger.account(
                session, ledger.artist_key(track.artist_id), AccountKind.ARTIST, track.artist_id
            )
            gross_before = await ledger.add_gross(session, receivable, listen.tokens)
            credited, _payer_keeps = split(gross_before, listen.tokens, share_bp)
            try:
                await ledger.post(
                    session,
                    "remote-listen",
                    f"listen:{listen.id}",
                    [(receivable, -credited), (earnings, credited)],
                    {"payer": listen.payer, "tokens": listen.tokens},
                    track_id=track.id,
                )
            except DuplicateTransaction:
                return "Listen already booked"
        await session.commit()
    return f"Listen of track {track_id} recorded: {credited} tokens to the artist"


async def on_listen(incoming: Incoming) -> str:
    try:
        return await record_listen(incoming.fed, incoming.activity, incoming.fed.artist_share_bp)
    except ListenRefused as error:
        raise Ignored(str(error)) from None


def register(registry: Registry) -> None:
    registry.register("Listen", ANY, on_listen)
