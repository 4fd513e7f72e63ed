"""Account operations shared by the pages, the API and the command line: sign-up by
policy, log-in checks, password changes, export and deletion."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models.accounts import AuditEntry, Invitation, RetiredName, keyed_digest, secret_digest
from models.base import utcnow
from models.catalogue import Artist, Label
from models.federation import InboxItem, OutboundActivity
from models.handles import Handle
from models.users import AccountStatus, Role, User
from server.runtime.config import AccountSettings, SignupMode
from server.services.account_closing import BalanceChoice, ClosingSplit, close_wallet
from server.services.account_data import account_scope, export_document, row_filters, table
from server.services.account_rules import (
    AccountError,
    check_password,
    create_user,
    hash_password,
    verify_password,
)
from server.services.erasure import erase_now, queue_erase


@cache
def _dummy_hash() -> str:
    """A hash to compare against when the user does not exist, so that an unknown name takes
    as long to refuse as a wrong password (no user enumeration by timing). Made on the first
    log-in with an unknown name, not when the module is imported: hashing is deliberately
    slow, and every command and test would pay for it."""
    return hash_password("not the password of anybody")


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
        verify_password(_dummy_hash(), password)
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


async def export_account(session: AsyncSession, user: User, base_url: str) -> dict[str, Any]:
    """Everything held about one account, as one JSON-ready document (server.services.account_data
    describes its shape)."""
    return await export_document(session, user, base_url)


# Tables whose deleted rows held the account's names or texts (its name, e-mail and
# password hash, playlist titles, token and app password names, activity documents):
# PostgreSQL rewrites those it touched (server.services.erasure). The others held only
# ids.
TEXT_TABLES = (
    "users",
    "handles",
    "playlists",
    "access_tokens",
    "app_passwords",
    "follows",
    "actor_keys",
    "outbound_activities",
    "inbox_items",
)


async def delete_account(
    session: AsyncSession,
    user: User,
    *,
    name_key: str,
    base_url: str,
    balance: BalanceChoice | None = None,
    recipient: str | None = None,
    actor_id: int | None = None,
) -> ClosingSplit:
    """Remove the account and everything personal about it in one transaction, then make
    sure the database file and its journal keep no copy (server.services.erasure).

    What the wallet holds is booked first as ``balance`` says (server.services.account_closing);
    plays and ledger entries stay, with only pseudonymous ids. Favourites, playlists,
    tokens, sessions, OAuth grants, follows and keys go with the user and its name
    (foreign keys cascade); activities sent by the account or received for it, which
    name it without a foreign key, are deleted here. The name is retired as a keyed hash
    so nobody can take it over. An account that still manages artist or label profiles
    is refused: those are public catalogue, and must be handed over or removed first.
    """
    try:
        split = await _delete(
            session, user, name_key=name_key, base_url=base_url, balance=balance,
            recipient=recipient, actor_id=actor_id,
        )  # fmt: skip
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    engine = session.bind
    assert isinstance(engine, AsyncEngine)
    await erase_now(engine)
    return split


async def _delete(
    session: AsyncSession,
    user: User,
    *,
    name_key: str,
    base_url: str,
    balance: BalanceChoice | None,
    recipient: str | None,
    actor_id: int | None,
) -> ClosingSplit:
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
    split = await close_wallet(session, user, balance, recipient)
    filters = row_filters(await account_scope(session, user, base_url))
    touched = [
        name
        for name in TEXT_TABLES
        if await session.scalar(select(func.count()).select_from(table(name)).where(filters[name]))
    ]
    # Named without a foreign key: deleted here (their deliveries go with them).
    await session.execute(delete(InboxItem).where(filters["inbox_items"]))
    await session.execute(delete(OutboundActivity).where(filters["outbound_activities"]))
    user_id, name = user.id, user.username
    await session.execute(delete(User).where(User.id == user_id))
    await session.execute(delete(Handle).where(Handle.name == name))
    session.add(RetiredName(digest=keyed_digest(name_key, name)))
    if actor_id is not None:
        session.add(
            AuditEntry(actor_user_id=actor_id, action="account.delete", target_user_id=user_id,
                       details={"tokens_to_coop": split.transferable} if split.balance else {})
        )  # fmt: skip
    await queue_erase(session, touched)
    return split
