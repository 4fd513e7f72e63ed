"""Account operations shared by the pages, the API and the command line: sign-up by
policy, log-in checks, password changes, export and deletion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import (
    AuditEntry,
    Invitation,
    RetiredName,
    WebSession,
    keyed_digest,
    secret_digest,
)
from models.base import utcnow
from models.catalogue import Artist, Favourite, Label, Playlist, PlaylistItem
from models.handles import Handle
from models.membership import Member, ShareTransaction
from models.tokens import AccessToken
from models.users import AccountStatus, Role, User
from server.accounts import (
    AccountError,
    check_password,
    create_user,
    hash_password,
    verify_password,
)
from server.config import AccountSettings, SignupMode

# A hash to compare against when the user does not exist, so that an unknown name takes
# as long to refuse as a wrong password (no user enumeration by timing).
_DUMMY_HASH = hash_password("not the password of anybody")


class SignupRefused(AccountError):
    pass


@dataclass(frozen=True)
class SignupResult:
    user: User
    pending: bool


async def sign_up(
    session: AsyncSession,
    settings: AccountSettings,
    *,
    name: str,
    password: str,
    email: str | None,
    as_artist: bool,
    invitation: str | None,
    name_key: str,
    starter_balance: int = 0,
) -> SignupResult:
    mode = settings.artist_signup if as_artist else settings.signup
    if mode is SignupMode.CLOSED:
        raise SignupRefused(
            f"{'artist' if as_artist else 'listener'} sign-up is closed on this instance"
        )
    invite_row = None
    if mode is SignupMode.INVITE:
        if not invitation:
            raise SignupRefused("sign-up needs an invitation code on this instance")
        invite_row = await session.scalar(
            select(Invitation).where(Invitation.digest == secret_digest(invitation.strip()))
        )
        now = utcnow()
        if (
            invite_row is None
            or invite_row.used_at is not None
            or (invite_row.expires_at is not None and invite_row.expires_at <= now)
            or (as_artist and invite_row.role != Role.ARTIST.value)
        ):
            raise SignupRefused("the invitation code is not valid")
    pending = mode is SignupMode.APPROVAL
    role = Role.ARTIST if as_artist and not pending else Role.LISTENER
    if email is not None and email.strip() == "":
        email = None
    if email is not None and (
        "@" not in email or len(email) > 320 or any(c.isspace() for c in email)
    ):
        raise AccountError("the e-mail address does not look right (it is optional)")
    user = await create_user(
        session, name, password, role, email,
        status=AccountStatus.PENDING if pending else AccountStatus.ACTIVE,
        wants_role=Role.ARTIST if as_artist and pending else None,
        name_key=name_key,
        invitation=invite_row,
        starter_balance=starter_balance,
    )  # fmt: skip
    return SignupResult(user, pending)


async def check_login(session: AsyncSession, name: str, password: str) -> User | None:
    """The user if the name and password match an active account; else None (the caller
    answers the same for an unknown name and a wrong password)."""
    user = await session.scalar(select(User).where(User.username == name.strip().lower()))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    return user


async def change_password(session: AsyncSession, user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise AccountError("the current password is not right")
    check_password(new)
    user.password_hash = hash_password(new)
    await session.commit()


async def export_account(session: AsyncSession, user: User) -> dict[str, Any]:
    """Everything held about one account, as one JSON-ready document."""
    artists = (await session.scalars(select(Artist).where(Artist.owner_id == user.id))).all()
    labels = (await session.scalars(select(Label).where(Label.owner_id == user.id))).all()
    favourites = (
        await session.scalars(select(Favourite).where(Favourite.user_id == user.id))
    ).all()
    playlists = (await session.scalars(select(Playlist).where(Playlist.user_id == user.id))).all()
    items = {
        playlist.id: [
            item.track_id
            for item in await session.scalars(
                select(PlaylistItem)
                .where(PlaylistItem.playlist_id == playlist.id)
                .order_by(PlaylistItem.position)
            )
        ]
        for playlist in playlists
    }
    tokens = (
        await session.scalars(select(AccessToken).where(AccessToken.user_id == user.id))
    ).all()
    sessions = (
        await session.scalars(select(WebSession).where(WebSession.user_id == user.id))
    ).all()
    audit = (
        await session.scalars(select(AuditEntry).where(AuditEntry.target_user_id == user.id))
    ).all()
    member = await session.scalar(select(Member).where(Member.user_id == user.id))
    membership = None
    if member is not None:
        transactions = await session.scalars(
            select(ShareTransaction).where(ShareTransaction.member_id == member.id)
        )
        membership = {
            "number": member.number,
            "class": member.membership_class,
            "status": member.status.value,
            "renewal_date": member.renewal_date.isoformat() if member.renewal_date else None,
            "shares": member.shares,
            "voting": member.voting.value,
            "share_transactions": [
                {
                    "at": t.at.isoformat(),
                    "shares": t.shares,
                    "method": t.method.value,
                    "reference": t.reference,
                }
                for t in transactions
            ],
        }
    return {
        "format": "playfair account export, version 1",
        "exported_at": utcnow().isoformat(),
        "account": {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "role": user.role.value,
            "status": user.status.value,
            "created_at": user.created_at.isoformat(),
        },
        "membership": membership,
        "artist_profiles": [
            {"name": a.name, "display_name": a.display_name, "summary": a.summary} for a in artists
        ],
        "label_profiles": [{"name": lb.name, "display_name": lb.display_name} for lb in labels],
        "favourites": [
            {"track_id": f.track_id, "added_at": f.created_at.isoformat()} for f in favourites
        ],
        "playlists": [
            {
                "title": p.title,
                "description": p.description,
                "visibility": p.visibility.value,
                "created_at": p.created_at.isoformat(),
                "track_ids": items[p.id],
            }
            for p in playlists
        ],
        "access_tokens": [
            {
                "name": t.name,
                "scopes": t.scopes.split(),
                "created_at": t.created_at.isoformat(),
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in tokens
        ],
        "sessions": [
            {"created_at": s.created_at.isoformat(), "last_seen_at": s.last_seen_at.isoformat()}
            for s in sessions
        ],
        "admin_actions_on_this_account": [
            {"at": e.at.isoformat(), "action": e.action} for e in audit
        ],
    }


async def delete_account(
    session: AsyncSession, user: User, *, name_key: str, actor_id: int | None = None
) -> None:
    """Remove the account and everything personal about it in one transaction.

    Favourites, playlists, tokens and sessions go with the row (foreign keys cascade).
    The name is retired as a keyed hash so nobody can take it over. An account that still
    manages artist or label profiles is refused: those are public catalogue, and must be
    handed over or removed first.
    """
    owned = (
        await session.scalar(
            select(func.count()).select_from(Artist).where(Artist.owner_id == user.id)
        )
        or 0
    )
    owned += (
        await session.scalar(
            select(func.count()).select_from(Label).where(Label.owner_id == user.id)
        )
        or 0
    )
    if owned:
        raise AccountError(
            "this account manages artist or label profiles: hand them over or remove them first"
        )
    user_id, name = user.id, user.username
    await session.execute(delete(User).where(User.id == user_id))
    await session.execute(delete(Handle).where(Handle.name == name))
    session.add(RetiredName(digest=keyed_digest(name_key, name)))
    if actor_id is not None:
        session.add(
            AuditEntry(actor_user_id=actor_id, action="account.delete", target_user_id=user_id)
        )
    await session.commit()
