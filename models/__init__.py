"""Typed tables and the pure domain rules that act on them. Imports nothing from server/
or federation/."""

from models.accounts import AuditEntry, Invitation, RateCounter, RetiredName, WebSession
from models.base import Base
from models.catalogue import (
    Artist,
    Favourite,
    Label,
    MediaFile,
    Playlist,
    PlaylistItem,
    Release,
    Tag,
    Track,
)
from models.federation import (
    ActorBlock,
    ActorKey,
    Delivery,
    DomainPolicy,
    Follow,
    InboxItem,
    Interaction,
    OutboundActivity,
    Partnership,
    RemoteActor,
    RemotePost,
    Report,
)
from models.handles import Handle
from models.jobs import Job, JobState
from models.keys import InstanceKey, KeyAlgorithm
from models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction, Payout
from models.membership import Member, ShareTransaction
from models.oauth import AuthorizationCode, OAuthClient, RefreshToken
from models.plays import ListenerTrack, Play, PlaySession
from models.remote_plays import (
    HubLogEntry,
    ReceivedListen,
    RemoteListenerTrack,
    RemotePlay,
    RemotePlaySession,
    RemoteTrack,
    RoyaltyStatementRecord,
    SettlementRecord,
)
from models.search import SearchDocument
from models.tokens import AccessToken
from models.users import Role, User
from models.vouchers import Voucher

__all__ = [
    "AccessToken",
    "ActorBlock",
    "ActorKey",
    "Artist",
    "AuditEntry",
    "AuthorizationCode",
    "Base",
    "Delivery",
    "DomainPolicy",
    "Favourite",
    "Follow",
    "Handle",
    "HubLogEntry",
    "InboxItem",
    "InstanceKey",
    "Interaction",
    "Invitation",
    "Job",
    "JobState",
    "KeyAlgorithm",
    "Label",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "ListenerTrack",
    "MediaFile",
    "Member",
    "OAuthClient",
    "OutboundActivity",
    "Partnership",
    "Payout",
    "Play",
    "PlaySession",
    "Playlist",
    "PlaylistItem",
    "RateCounter",
    "ReceivedListen",
    "RefreshToken",
    "Release",
    "RemoteActor",
    "RemoteListenerTrack",
    "RemotePlay",
    "RemotePlaySession",
    "RemotePost",
    "RemoteTrack",
    "Report",
    "RetiredName",
    "Role",
    "RoyaltyStatementRecord",
    "SearchDocument",
    "SettlementRecord",
    "ShareTransaction",
    "Tag",
    "Track",
    "User",
    "Voucher",
    "WebSession",
]
