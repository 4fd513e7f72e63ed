"""The co-op side: members, their class and status, share transactions, and the vote.

One member, one vote: a member votes while their membership is paid (or in its grace
period) and they hold at least one share. The voting status is stored with the member and
recomputed by :func:`voting_status` whenever shares or status change, so that it can be
listed and audited. A member row outlives the account it belongs to (the link is cleared
on deletion): share transactions are the co-op's books and keep only the member number.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, UTCDateTime, str_enum, utcnow


class MembershipStatus(StrEnum):
    PAID = "paid"
    GRACE = "grace"
    UNPAID = "unpaid"


class ShareMethod(StrEnum):
    PURCHASE = "purchase"
    GIFT = "gift"
    ANNULMENT = "annulment"
    VOLUNTEER = "volunteer"  # a volunteer contribution, with its reference


class VotingStatus(StrEnum):
    VOTING = "voting"
    NOT_VOTING = "not_voting"


class ShareError(ValueError):
    """A share transaction that the rules do not allow; the message says why."""


def voting_status(status: MembershipStatus, shares: int) -> VotingStatus:
    if status in (MembershipStatus.PAID, MembershipStatus.GRACE) and shares > 0:
        return VotingStatus.VOTING
    return VotingStatus.NOT_VOTING


def check_share_transaction(
    balance: int, shares: int, method: ShareMethod, reference: str | None
) -> int:
    """Validate a transaction against the member's current balance; return the new one."""
    if shares == 0:
        raise ShareError("a share transaction moves at least one share")
    if method is ShareMethod.ANNULMENT and shares > 0:
        raise ShareError("an annulment removes shares: give a negative number")
    if method is not ShareMethod.ANNULMENT and shares < 0:
        raise ShareError(f"a {method.value} adds shares: give a positive number")
    if method is ShareMethod.VOLUNTEER and not (reference or "").strip():
        raise ShareError("a volunteer contribution needs its reference")
    if balance + shares < 0:
        raise ShareError(f"the member holds {balance} shares; {-shares} cannot be annulled")
    return balance + shares


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True, default=None
    )
    membership_class: Mapped[str] = mapped_column(String(32))
    status: Mapped[MembershipStatus] = mapped_column(
        str_enum(MembershipStatus, 16), default=MembershipStatus.UNPAID
    )
    renewal_date: Mapped[date | None] = mapped_column(Date, default=None)
    shares: Mapped[int] = mapped_column(Integer, default=0)
    voting: Mapped[VotingStatus] = mapped_column(
        str_enum(VotingStatus, 16), default=VotingStatus.NOT_VOTING
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShareTransaction(Base):
    __tablename__ = "share_transactions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="RESTRICT"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    shares: Mapped[int] = mapped_column(Integer)
    membership_class: Mapped[str] = mapped_column(String(32))
    method: Mapped[ShareMethod] = mapped_column(str_enum(ShareMethod, 16))
    reference: Mapped[str | None] = mapped_column(Text, default=None)
    recorded_by: Mapped[int | None] = mapped_column(BigIntId, default=None)
