"""Membership operations for the admin API and pages; every change is audited."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import AuditEntry
from models.membership import (
    Member,
    MembershipStatus,
    ShareError,
    ShareMethod,
    ShareTransaction,
    check_share_transaction,
    voting_status,
)
from models.users import User


class MembershipError(ValueError):
    """The change cannot be made; ``status`` fits an HTTP answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _check_class(name: str, classes: tuple[str, ...]) -> str:
    if name not in classes:
        raise MembershipError(f"unknown membership class {name!r}; one of {', '.join(classes)}")
    return name


async def add_member(
    session: AsyncSession, username: str, membership_class: str, classes: tuple[str, ...],
    actor_id: int,
) -> Member:  # fmt: skip
    _check_class(membership_class, classes)
    user = await session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise MembershipError(f"there is no account {username!r}", 404)
    if await session.scalar(select(Member.id).where(Member.user_id == user.id)):
        raise MembershipError(f"{user.username} is a member already", 409)
    for _ in range(5):
        number = (await session.scalar(select(func.max(Member.number))) or 0) + 1
        member = Member(number=number, user_id=user.id, membership_class=membership_class)
        try:
            async with session.begin_nested():
                session.add(member)
        except IntegrityError:
            continue  # another admin took the number; take the next
        session.add(AuditEntry(actor_user_id=actor_id, action="member.add",
                               target_user_id=user.id, details={"number": number}))  # fmt: skip
        await session.commit()
        return member
    raise MembershipError("could not give out a member number; try again", 409)


async def record_shares(
    session: AsyncSession, member: Member, shares: int, method: ShareMethod,
    reference: str | None, actor_id: int,
) -> ShareTransaction:  # fmt: skip
    try:
        balance = check_share_transaction(member.shares, shares, method, reference)
    except ShareError as exc:
        raise MembershipError(str(exc)) from None
    transaction = ShareTransaction(
        member_id=member.id, shares=shares, membership_class=member.membership_class,
        method=method, reference=(reference or "").strip() or None, recorded_by=actor_id,
    )  # fmt: skip
    member.shares = balance
    member.voting = voting_status(member.status, balance)
    session.add(transaction)
    session.add(AuditEntry(actor_user_id=actor_id, action=f"member.shares.{method.value}",
                           target_user_id=member.user_id,
                           details={"number": member.number, "shares": shares}))  # fmt: skip
    await session.commit()
    return transaction


async def update_member(
    session: AsyncSession, member: Member, *, status: MembershipStatus | None,
    renewal_date: date | None, membership_class: str | None, classes: tuple[str, ...],
    actor_id: int,
) -> Member:  # fmt: skip
    changes: dict[str, str] = {}
    if membership_class is not None:
        member.membership_class = _check_class(membership_class, classes)
        changes["class"] = membership_class
    if status is not None:
        member.status = status
        changes["status"] = status.value
    if renewal_date is not None:
        member.renewal_date = renewal_date
        changes["renewal_date"] = renewal_date.isoformat()
    member.voting = voting_status(member.status, member.shares)
    session.add(AuditEntry(actor_user_id=actor_id, action="member.update",
                           target_user_id=member.user_id,
                           details={"number": member.number, **changes}))  # fmt: skip
    await session.commit()
    return member
