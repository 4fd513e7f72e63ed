"""The admin API for membership: members, status, share transactions (scope `admin`)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field
from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import Conflict, Forbidden, HTTPException, NotFound, UnprocessableEntity

from models.membership import Member, MembershipStatus, ShareMethod, ShareTransaction
from models.tokens import Scope
from models.users import User
from server.services.membership import MembershipError, add_member, record_shares, update_member
from server.web.auth import require, viewer_required
from server.web.current import resources_of

membership_api = Blueprint("membership_api", __name__)


class MemberOut(BaseModel):
    number: int
    username: str | None = Field(description="null once the member's account is deleted")
    membership_class: str
    status: str
    renewal_date: date | None
    shares: int
    voting: str
    joined_at: datetime


class TransactionOut(BaseModel):
    at: datetime
    shares: int
    membership_class: str
    method: str
    reference: str | None


class MemberDetail(MemberOut):
    transactions: list[TransactionOut]


class MemberList(BaseModel):
    items: list[MemberOut]


class NewMember(BaseModel):
    username: str = Field(min_length=1, max_length=30)
    membership_class: str = Field(min_length=1, max_length=32)


class MemberChange(BaseModel):
    status: MembershipStatus | None = None
    renewal_date: date | None = None
    membership_class: str | None = Field(default=None, max_length=32)


class NewShares(BaseModel):
    shares: int = Field(ge=-1_000_000, le=1_000_000)
    method: ShareMethod
    reference: str | None = Field(default=None, max_length=500)


def _error(exc: MembershipError) -> HTTPException:
    kinds = {404: NotFound, 409: Conflict}
    return kinds.get(exc.status, UnprocessableEntity)(str(exc))


async def _out(session: AsyncSession, member: Member) -> MemberOut:
    username = None
    if member.user_id is not None:
        username = await session.scalar(select(User.username).where(User.id == member.user_id))
    return MemberOut(
        number=member.number, username=username, membership_class=member.membership_class,
        status=member.status.value, renewal_date=member.renewal_date, shares=member.shares,
        voting=member.voting.value, joined_at=member.joined_at,
    )  # fmt: skip


async def _member(session: AsyncSession, number: int) -> Member:
    member = await session.scalar(select(Member).where(Member.number == number))
    if member is None:
        raise NotFound(f"there is no member {number}")
    return member


def _admin_id() -> int:
    viewer = viewer_required()
    if not viewer.is_admin:
        raise Forbidden("this is for the instance's admins")
    return viewer.user_id


@membership_api.get("/admin/members")
@require(Scope.ADMIN)
@validate_response(MemberList)
async def list_members() -> MemberList:
    _admin_id()
    async with resources_of(current_app).read_sessionmaker() as session:
        members = (await session.scalars(select(Member).order_by(Member.number))).all()
        return MemberList(items=[await _out(session, m) for m in members])


@membership_api.post("/admin/members")
@require(Scope.ADMIN)
@validate_request(NewMember)
@validate_response(MemberOut, 201)
async def create_member(data: NewMember) -> tuple[MemberOut, int]:
    actor = _admin_id()
    classes = resources_of(current_app).settings.membership.classes
    async with resources_of(current_app).sessionmaker() as session:
        try:
            member = await add_member(session, data.username, data.membership_class, classes, actor)
        except MembershipError as exc:
            raise _error(exc) from None
        return await _out(session, member), 201


@membership_api.get("/admin/members/<int32:number>")
@require(Scope.ADMIN)
@validate_response(MemberDetail)
async def get_member(number: int) -> MemberDetail:
    _admin_id()
    async with resources_of(current_app).read_sessionmaker() as session:
        member = await _member(session, number)
        transactions = (
            await session.scalars(
                select(ShareTransaction)
                .where(ShareTransaction.member_id == member.id)
                .order_by(ShareTransaction.id)
            )
        ).all()
        return MemberDetail(
            **(await _out(session, member)).model_dump(),
            transactions=[
                TransactionOut(at=t.at, shares=t.shares, membership_class=t.membership_class,
                               method=t.method.value, reference=t.reference)
                for t in transactions
            ],
        )  # fmt: skip


@membership_api.patch("/admin/members/<int32:number>")
@require(Scope.ADMIN)
@validate_request(MemberChange)
@validate_response(MemberOut)
async def change_member(number: int, data: MemberChange) -> MemberOut:
    actor = _admin_id()
    classes = resources_of(current_app).settings.membership.classes
    async with resources_of(current_app).sessionmaker() as session:
        member = await _member(session, number)
        try:
            await update_member(
                session, member, status=data.status, renewal_date=data.renewal_date,
                membership_class=data.membership_class, classes=classes, actor_id=actor,
            )  # fmt: skip
        except MembershipError as exc:
            raise _error(exc) from None
        return await _out(session, member)


@membership_api.post("/admin/members/<int32:number>/shares")
@require(Scope.ADMIN)
@validate_request(NewShares)
@validate_response(MemberOut, 201)
async def add_shares(number: int, data: NewShares) -> tuple[MemberOut, int]:
    actor = _admin_id()
    async with resources_of(current_app).sessionmaker() as session:
        member = await _member(session, number)
        try:
            await record_shares(session, member, data.shares, data.method, data.reference, actor)
        except MembershipError as exc:
            raise _error(exc) from None
        return await _out(session, member), 201
