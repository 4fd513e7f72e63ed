"""Everything the instance keeps about one account: for each table, which of its rows
belong to the account. The export gives exactly these rows; deletion removes them or
leaves them holding only pseudonymous ids; tests/test_privacy.py checks the map against
the tables, so that a new table with a user id cannot be forgotten.

A row belongs to an account when it refers to it (its user id, with or without a foreign
key, or one of its names: the account's own, and those of the artists and labels it
manages) or to a row that belongs to it (a playlist's items, a wallet's ledger entries,
an owned artist's releases and tracks). Rows of other people that point at the account's
catalogue (their plays, favourites and playlists of its tracks) are theirs, not its.

The export document (``export_document``), version 2::

    {
      "format": "playfair account export",
      "version": 2,
      "exported_at": "2026-12-01T12:00:00+00:00",
      "instance": "https://music.example",
      "tables": {"users": [{"id": 12, "username": "lina", ...}], "plays": [...], ...},
      "withheld": {"users": ["password_hash"], "web_sessions": ["digest"], ...},
      "referenced": {"tracks": {"17": {"title": ..., "artist": ..., "release": ...}},
                     "remote_tracks": {...}, "oauth_clients": {"<client_id>": "<name>"}}
    }

``tables`` has one list per table (every table of the map, empty lists included), each
row with every column under its own name: times in ISO 8601 UTC, enumerations as their
values, JSON as it is stored. Secrets (the password hash, digests of tokens, private
keys, sealed app passwords, the bearer tokens of play sessions) are never given: a
secret that is present reads ``"withheld"`` (one that is not reads ``null``), and
``withheld`` names those columns.
``referenced`` gives the titles and names that the rows refer to by id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, Text, and_, cast, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import actor_id
from models import load_all
from models.accounts import AuditEntry, Invitation, WebSession
from models.app_passwords import AppPassword
from models.base import utcnow
from models.catalogue import (
    Artist,
    Favourite,
    Label,
    MediaFile,
    Playlist,
    PlaylistItem,
    Release,
    Track,
    label_artists,
    release_tags,
)
from models.federation import ActorKey, Delivery, Follow, InboxItem, Interaction, OutboundActivity
from models.handles import Handle
from models.ledger import AccountKind, LedgerAccount, LedgerEntry, LedgerTransaction, Payout
from models.library import AlbumStar, ArtistStar, NowPlaying, PlayQueue
from models.membership import Member, ShareTransaction
from models.oauth import AuthorizationCode, OAuthClient, RefreshToken
from models.plays import ListenerTrack, Play, PlaySession
from models.profiles import ActorImage, ActorProfile
from models.remote_plays import RemoteListenerTrack, RemotePlay, RemotePlaySession, RemoteTrack
from models.tokens import AccessToken
from models.users import User
from models.vouchers import Voucher

FORMAT = "playfair account export"
VERSION = 2
WITHHELD = "withheld"

# Columns whose values are secrets: said to exist, never given.
SECRET_COLUMNS: Mapping[str, frozenset[str]] = {
    "users": frozenset({"password_hash"}),
    "web_sessions": frozenset({"digest"}),
    "access_tokens": frozenset({"digest"}),
    "app_passwords": frozenset({"password_sealed"}),
    "oauth_codes": frozenset({"digest"}),
    "oauth_refresh_tokens": frozenset({"digest"}),
    "invitations": frozenset({"digest"}),
    "vouchers": frozenset({"digest"}),
    "actor_keys": frozenset({"private_encrypted"}),
    "play_sessions": frozenset({"token"}),
    "remote_play_sessions": frozenset({"token"}),
}


@dataclass(frozen=True)
class AccountScope:
    """What identifies one account's rows: its id, its names and their actor ids."""

    user_id: int
    username: str
    created_at: datetime
    names: tuple[str, ...]  # the account's name, then its artists' and labels'
    actor_uris: tuple[str, ...]


async def account_scope(session: AsyncSession, user: User, base_url: str) -> AccountScope:
    artists = (await session.scalars(select(Artist.name).where(Artist.owner_id == user.id))).all()
    labels = (await session.scalars(select(Label.name).where(Label.owner_id == user.id))).all()
    uris = (
        [actor_id(base_url, "users", user.username)]
        + [actor_id(base_url, "artists", name) for name in artists]
        + [actor_id(base_url, "labels", name) for name in labels]
    )
    return AccountScope(
        user.id, user.username, user.created_at, (user.username, *artists, *labels), tuple(uris)
    )


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mentions(column: Any, uris: Iterable[str]) -> ColumnElement[bool]:
    """A JSON column whose text holds one of these actor ids, or an id under one of them
    (``…/users/lina/follows/…``), as a whole JSON string (``…/users/linas`` is not
    ``…/users/lina``)."""
    text = cast(column, Text)
    clauses = [
        text.like(f'%"{_like_literal(uri)}{end}%', escape="\\")
        for uri in uris
        for end in ('"', "/", "#")
    ]
    return or_(false(), *clauses)


def row_filters(scope: AccountScope) -> dict[str, ColumnElement[bool]]:
    """For each table that can hold the account's rows, the condition that picks them."""
    uid, names = scope.user_id, list(scope.names)
    artists = select(Artist.id).where(Artist.owner_id == uid)
    labels = select(Label.id).where(Label.owner_id == uid)
    releases = select(Release.id).where(
        or_(Release.artist_id.in_(artists), Release.label_id.in_(labels))
    )
    tracks = select(Track.id).where(Track.release_id.in_(releases))
    playlists = select(Playlist.id).where(Playlist.user_id == uid)
    members = select(Member.id).where(Member.user_id == uid)
    ledger_accounts = select(LedgerAccount.id).where(
        or_(
            and_(LedgerAccount.kind == AccountKind.WALLET, LedgerAccount.owner_id == uid),
            and_(LedgerAccount.kind == AccountKind.ARTIST, LedgerAccount.owner_id.in_(artists)),
        )
    )
    activities = select(OutboundActivity.id).where(OutboundActivity.actor_name.in_(names))
    return {
        "users": User.id == uid,
        "handles": Handle.name.in_(names),
        "actor_profiles": ActorProfile.actor.in_(names),
        "actor_images": ActorImage.actor.in_(names),
        "web_sessions": WebSession.user_id == uid,
        "access_tokens": AccessToken.user_id == uid,
        "app_passwords": AppPassword.user_id == uid,
        "oauth_codes": AuthorizationCode.user_id == uid,
        "oauth_refresh_tokens": RefreshToken.user_id == uid,
        "invitations": Invitation.created_by == uid,
        # Ids without a foreign key outlive the account they name; the time keeps a later
        # account that was given the same id from seeing them.
        "audit_log": and_(
            or_(AuditEntry.target_user_id == uid, AuditEntry.actor_user_id == uid),
            AuditEntry.at >= scope.created_at,
        ),
        "members": Member.user_id == uid,
        "share_transactions": or_(
            ShareTransaction.member_id.in_(members),
            and_(ShareTransaction.recorded_by == uid, ShareTransaction.at >= scope.created_at),
        ),
        "favourites": Favourite.user_id == uid,
        "playlists": Playlist.user_id == uid,
        "playlist_items": PlaylistItem.playlist_id.in_(playlists),
        "album_stars": AlbumStar.user_id == uid,
        "artist_stars": ArtistStar.user_id == uid,
        "play_queues": PlayQueue.user_id == uid,
        "now_playing": NowPlaying.user_id == uid,
        "listener_tracks": ListenerTrack.user_id == uid,
        "play_sessions": PlaySession.user_id == uid,
        "plays": Play.user_id == uid,
        "remote_listener_tracks": RemoteListenerTrack.user_id == uid,
        "remote_play_sessions": RemotePlaySession.user_id == uid,
        "remote_plays": RemotePlay.user_id == uid,
        "vouchers": Voucher.redeemed_by == uid,
        "ledger_accounts": LedgerAccount.id.in_(ledger_accounts),
        "ledger_entries": LedgerEntry.account_id.in_(ledger_accounts),
        "ledger_transactions": LedgerTransaction.id.in_(
            select(LedgerEntry.transaction_id).where(LedgerEntry.account_id.in_(ledger_accounts))
        ),
        "artists": Artist.owner_id == uid,
        "labels": Label.owner_id == uid,
        "label_artists": or_(
            label_artists.c.label_id.in_(labels), label_artists.c.artist_id.in_(artists)
        ),
        "releases": Release.id.in_(releases),
        "release_tags": release_tags.c.release_id.in_(releases),
        "tracks": Track.id.in_(tracks),
        "media_files": or_(MediaFile.track_id.in_(tracks), MediaFile.release_id.in_(releases)),
        "payouts": or_(
            Payout.artist_id.in_(artists),
            and_(Payout.paid_by == uid, Payout.paid_at >= scope.created_at),
        ),
        "interactions": Interaction.release_id.in_(releases),
        "actor_keys": ActorKey.actor_name.in_(names),
        "follows": or_(Follow.follower_name.in_(names), Follow.followed_name.in_(names)),
        "outbound_activities": OutboundActivity.id.in_(activities),
        "deliveries": Delivery.activity_id.in_(activities),
        # Activities that came in for the account: to its inbox, or about its actors
        # (an Accept of its Follow arrives at the shared inbox).
        "inbox_items": or_(
            InboxItem.recipient.in_(names), mentions(InboxItem.payload, scope.actor_uris)
        ),
    }


def table(name: str) -> Table:
    return load_all().tables[name]


_SECRET_LOOKING = re.compile(r"digest|hash|secret|private|password|^token$")


def looks_secret(column_name: str) -> bool:
    """A column name that suggests a secret (tests check each is classified)."""
    return bool(_SECRET_LOOKING.search(column_name))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _row(table_name: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    secrets = SECRET_COLUMNS.get(table_name, frozenset())
    return {
        str(key): (WITHHELD if value is not None else None)
        if key in secrets
        else _json_value(value)
        for key, value in row.items()
    }


async def _referenced(
    session: AsyncSession, tables: Mapping[str, list[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    track_ids = {
        row["track_id"]
        for rows in tables.values()
        for row in rows
        if isinstance(row.get("track_id"), int)
    }
    tracks = {
        str(track.id): {"title": track.title, "artist": artist, "release": release}
        for track, release, artist in await session.execute(
            select(Track, Release.title, Artist.display_name)
            .join(Release, Release.id == Track.release_id)
            .join(Artist, Artist.id == Track.artist_id)
            .where(Track.id.in_(track_ids))
        )
    }
    remote_ids = {
        row["remote_track_id"]
        for rows in tables.values()
        for row in rows
        if isinstance(row.get("remote_track_id"), int)
    }
    remote = {
        str(track.id): {"title": track.title, "uri": track.uri, "release": track.release_title}
        for track in await session.scalars(
            select(RemoteTrack).where(RemoteTrack.id.in_(remote_ids))
        )
    }
    client_ids = {
        row["client_id"]
        for rows in tables.values()
        for row in rows
        if isinstance(row.get("client_id"), str)
    }
    clients = {
        client.client_id: client.name
        for client in await session.scalars(
            select(OAuthClient).where(OAuthClient.client_id.in_(client_ids))
        )
    }
    return {"tracks": tracks, "remote_tracks": remote, "oauth_clients": clients}


async def export_document(session: AsyncSession, user: User, base_url: str) -> dict[str, Any]:
    """Every row the instance keeps about the account, as one JSON-ready document."""
    scope = await account_scope(session, user, base_url)
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, condition in row_filters(scope).items():
        source = table(name)
        result = await session.execute(
            select(source).where(condition).order_by(*source.primary_key.columns)
        )
        tables[name] = [_row(name, row) for row in result.mappings()]
    withheld = {
        name: sorted(
            column for column in SECRET_COLUMNS.get(name, ()) if any(row[column] for row in rows)
        )
        for name, rows in tables.items()
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": utcnow().isoformat(),
        "instance": base_url,
        "tables": tables,
        "withheld": {name: columns for name, columns in withheld.items() if columns},
        "referenced": await _referenced(session, tables),
    }
