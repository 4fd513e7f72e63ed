"""Typed tables and the pure domain rules that act on them. Imports nothing from server/
or federation/.

``import models`` loads nothing: import the module you need (``from models.catalogue
import Track``). Code that needs every table at once (the migrations' comparison, a
database session's unit of work, the account export and erasure that go over every
table) calls :func:`load_all`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData


def load_all() -> MetaData:
    """Import every table module, so that the metadata holds the whole schema, and return
    it. Cheap after the first call (Python keeps imported modules)."""
    import models.accounts
    import models.app_passwords
    import models.catalogue
    import models.federation
    import models.handles
    import models.jobs
    import models.keys
    import models.ledger
    import models.library
    import models.membership
    import models.oauth
    import models.plays
    import models.profiles
    import models.remote_plays
    import models.search
    import models.tokens
    import models.users
    import models.vouchers  # noqa: F401 - each registers its tables on the metadata
    from models.base import Base

    return Base.metadata


__all__ = ["load_all"]
