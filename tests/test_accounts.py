from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models.handles import NameTaken
from models.names import InvalidName, normalise_name
from models.users import Role, User
from server.runtime.resources import Resources
from server.services.account_rules import AccountError, create_user, verify_password


@pytest.mark.parametrize("name", ["Aurora", "the_band_2", "x", "a" * 30])
def test_good_names(name: str) -> None:
    assert normalise_name(name) == name.lower()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "1 to 30 characters"),
        ("a" * 31, "1 to 30 characters"),
        ("has space", "1 to 30 characters"),
        ("émile", "1 to 30 characters"),
        ("12345", "only digits"),
        ("admin", "reserved"),
        ("Inbox", "reserved"),
    ],
)
def test_bad_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        normalise_name(name)


async def test_create_user_hashes_and_refuses_duplicates(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        user = await create_user(session, "Mira", "correct horse battery", Role.ARTIST)
        assert user.username == "mira"
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password(user.password_hash, "correct horse battery")
        assert not verify_password(user.password_hash, "wrong horse battery")
        with pytest.raises(NameTaken, match="already taken"):
            await create_user(session, "MIRA", "another password", Role.LISTENER)
        with pytest.raises(AccountError, match="at least 10"):
            await create_user(session, "short", "tiny", Role.LISTENER)
        assert await session.scalar(select(func.count()).select_from(User)) == 1
