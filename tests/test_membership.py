"""Membership: the share rules (property-tested), the admin API and page, and what stays
in the books when a member deletes their account."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models.accounts import AuditEntry
from models.membership import (
    Member,
    MembershipStatus,
    ShareError,
    ShareMethod,
    VotingStatus,
    check_share_transaction,
    voting_status,
)
from models.users import Role
from server.services.account_rules import create_user
from server.web.current import resources_of
from tests.catalogue_fixtures import Account, make_account
from tests.test_account_pages import PASSWORD, all_database_text, csrf, log_in


@given(
    st.lists(
        st.tuples(
            st.integers(-50, 50), st.sampled_from(list(ShareMethod)), st.sampled_from(["", "ref-1"])
        ),
        max_size=40,
    )
)
def test_share_balance_never_goes_negative(steps: list[tuple[int, ShareMethod, str]]) -> None:
    balance = 0
    for shares, method, reference in steps:
        try:
            balance = check_share_transaction(balance, shares, method, reference)
        except ShareError:
            continue
        assert balance >= 0


@pytest.mark.parametrize(
    ("balance", "shares", "method", "reference", "reason"),
    [
        (5, 0, ShareMethod.PURCHASE, None, "at least one share"),
        (5, 2, ShareMethod.ANNULMENT, None, "negative number"),
        (5, -2, ShareMethod.GIFT, None, "positive number"),
        (5, 1, ShareMethod.VOLUNTEER, " ", "needs its reference"),
        (1, -2, ShareMethod.ANNULMENT, None, "holds 1 shares"),
    ],
)
def test_share_rules(
    balance: int, shares: int, method: ShareMethod, reference: str | None, reason: str
) -> None:
    with pytest.raises(ShareError, match=reason):
        check_share_transaction(balance, shares, method, reference)


def test_one_member_one_vote() -> None:
    assert voting_status(MembershipStatus.PAID, 1) is VotingStatus.VOTING
    assert voting_status(MembershipStatus.PAID, 50) is VotingStatus.VOTING
    assert voting_status(MembershipStatus.GRACE, 1) is VotingStatus.VOTING
    assert voting_status(MembershipStatus.UNPAID, 10) is VotingStatus.NOT_VOTING
    assert voting_status(MembershipStatus.PAID, 0) is VotingStatus.NOT_VOTING


@pytest.fixture
async def admin(app: Quart) -> Account:
    return await make_account(app, "root_admin", Role.ADMIN, scopes="read write admin")


async def test_membership_api(app: Quart, client: Client, admin: Account) -> None:
    await make_account(app, "lina", Role.LISTENER)
    h = admin.headers
    made = await client.post(
        "/api/v1/admin/members",
        headers=h,
        json={"username": "lina", "membership_class": "listener"},
    )
    assert made.status_code == 201, await made.get_data(as_text=True)
    number = (await made.get_json())["number"]
    assert number == 1
    twice = await client.post(
        "/api/v1/admin/members",
        headers=h,
        json={"username": "lina", "membership_class": "listener"},
    )
    assert twice.status_code == 409
    bad_class = await client.post(
        "/api/v1/admin/members", headers=h, json={"username": "lina", "membership_class": "boss"}
    )
    assert bad_class.status_code == 422
    assert "unknown membership class" in (await bad_class.get_json())["reason"]
    nobody = await client.post(
        "/api/v1/admin/members",
        headers=h,
        json={"username": "nobody", "membership_class": "listener"},
    )
    assert nobody.status_code == 404

    bought = await client.post(
        f"/api/v1/admin/members/{number}/shares",
        headers=h,
        json={"shares": 3, "method": "purchase"},
    )
    assert bought.status_code == 201
    assert (await bought.get_json())["voting"] == "not_voting", "not paid yet"
    paid = await client.patch(
        f"/api/v1/admin/members/{number}",
        headers=h,
        json={"status": "paid", "renewal_date": "2027-11-24"},
    )
    assert (await paid.get_json())["voting"] == "voting"
    too_many = await client.post(
        f"/api/v1/admin/members/{number}/shares",
        headers=h,
        json={"shares": -4, "method": "annulment"},
    )
    assert too_many.status_code == 422
    volunteer = await client.post(
        f"/api/v1/admin/members/{number}/shares",
        headers=h,
        json={"shares": 1, "method": "volunteer", "reference": "sound desk, May festival"},
    )
    assert volunteer.status_code == 201
    detail = await (await client.get(f"/api/v1/admin/members/{number}", headers=h)).get_json()
    assert detail["shares"] == 4
    assert [t["method"] for t in detail["transactions"]] == ["purchase", "volunteer"]
    assert detail["transactions"][1]["reference"] == "sound desk, May festival"
    schema = await client.post(
        f"/api/v1/admin/members/{number}/shares",
        headers=h,
        json={"shares": "three", "method": "purchase"},
    )
    assert schema.status_code == 422
    assert (await client.get("/api/v1/admin/members/99", headers=h)).status_code == 404

    async with resources_of(app).sessionmaker() as session:
        actions = [
            e.action for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert actions == [
        "member.add",
        "member.shares.purchase",
        "member.update",
        "member.shares.volunteer",
    ]


async def test_membership_api_is_for_admins(app: Quart, client: Client) -> None:
    listener = await make_account(app, "lina", Role.LISTENER, scopes="read write admin")
    refused = await client.get("/api/v1/admin/members", headers=listener.headers)
    assert refused.status_code == 403
    reader = await make_account(app, "boss", Role.ADMIN, scopes="read")
    no_scope = await client.get("/api/v1/admin/members", headers=reader.headers)
    assert no_scope.status_code == 403
    assert 'scope="admin"' in no_scope.headers["WWW-Authenticate"]


async def test_members_page_and_deletion_keeps_the_books(app: Quart) -> None:
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "root_admin", PASSWORD, Role.ADMIN)
        await create_user(session, "lina_member", PASSWORD, Role.LISTENER)
    admin = app.test_client()
    assert (await log_in(admin, "root_admin")).status_code == 303
    token = await csrf(admin, "/admin/members")
    await admin.post(
        "/admin/members",
        form={"csrf_token": token, "username": "lina_member", "membership_class": "supporter"},
    )
    await admin.post(
        "/admin/members/1/shares",
        form={"csrf_token": token, "shares": "2", "method": "gift", "reference": ""},
    )
    bad = await admin.post(
        "/admin/members/1/shares", form={"csrf_token": token, "shares": "-9", "method": "annulment"}
    )
    assert "cannot be annulled" in bad.headers["Location"].replace("+", " ").replace("%20", " ")
    page = await (await admin.get("/admin/members")).get_data(as_text=True)
    assert "lina_member" in page
    assert "supporter" in page

    member_client = app.test_client()
    assert (await log_in(member_client, "lina_member")).status_code == 303
    export = await (await member_client.get("/settings/export")).get_json()
    assert export["tables"]["members"][0]["shares"] == 2
    assert len(export["tables"]["share_transactions"]) == 1
    token = await csrf(member_client, "/settings")
    await member_client.post("/settings/delete", form={"csrf_token": token, "password": PASSWORD})
    async with resources_of(app).sessionmaker() as session:
        member = await session.scalar(select(Member))
    assert member is not None
    assert (member.user_id, member.shares, member.number) == (None, 2, 1)
    assert "lina_member" not in await all_database_text(app)
