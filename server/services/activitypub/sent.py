"""Activities we sent, fetched again by their ids (docs/architecture.md#federation).

Every activity we send is recorded (``delivery.record_activity``) exactly as delivered,
so its id can be dereferenced: a public one (addressed to ``as:Public``, or recorded as
public) by anyone; any other (a Follow, a Like, an Undo, an Accept or Reject, a Listen's
Create, a statement's answer) only by a GET signed by an actor on the server of one of
its addressees, which received it already; everybody else gets a 404, as for an id
that never existed, so a private activity does not even show that it exists. An object
sent inside a ``Create`` (a listener's reply) is served by its own id with the Create's
addressing. What went out about a release that is no longer public is withdrawn with it
(its Delete stays fetchable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation import urls
from federation.objects import CONTEXT, PUBLIC
from federation.parse import as_list
from models.catalogue import Release, Visibility
from models.federation import OutboundActivity

ADDRESSING = ("to", "cc", "bto", "bcc", "audience")


def addressees(document: dict[str, Any]) -> set[str]:
    return {
        item for key in ADDRESSING for item in as_list(document.get(key)) if isinstance(item, str)
    }


def may_fetch(document: dict[str, Any], recorded_public: bool, requester: str | None) -> bool:
    """Whether ``requester`` (the verified signer of the GET, or None) may read it."""
    audience = addressees(document)
    if recorded_public or PUBLIC in audience or "as:Public" in audience:
        return True
    if requester is None:
        return False
    origin = urls.origin(requester)
    return origin is not None and origin in {urls.origin(a) for a in audience}


def _release_of(base_url: str, document: dict[str, Any]) -> int | None:
    """The release an activity is about, by the Note it carries or names."""
    target = document.get("object")
    target_id = target.get("id") if isinstance(target, dict) else target
    if not isinstance(target_id, str):
        return None
    found = re.fullmatch(re.escape(base_url) + r"/releases/(\d+)/note", target_id)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Sent:
    document: dict[str, Any]  # as served
    audience: dict[str, Any]  # the addressing it went out with
    recorded_public: bool

    @property
    def public(self) -> bool:
        return may_fetch(self.audience, self.recorded_public, None)

    def for_requester(self, requester: str | None) -> dict[str, Any] | None:
        return self.document if may_fetch(self.audience, self.recorded_public, requester) else None


async def sent_document(session: AsyncSession, base_url: str, uri: str) -> Sent | None:
    """The document we sent with id ``uri`` and who it went to; None if there is none
    (or it was about a release that is not public any more). Whether the asker may see
    it is ``Sent.for_requester``: the caller verifies a signature only when it must."""
    row = await session.scalar(select(OutboundActivity).where(OutboundActivity.uri == uri))
    if row is not None:
        document, audience = row.document, row.document
    else:
        row = await session.scalar(
            select(OutboundActivity).where(OutboundActivity.uri == f"{uri}/create")
        )
        inner = row.document.get("object") if row is not None else None
        if row is None or not isinstance(inner, dict) or inner.get("id") != uri:
            return None
        document = {"@context": row.document.get("@context", CONTEXT), **inner}
        audience = {key: row.document.get(key) for key in ADDRESSING} | {
            key: inner.get(key) for key in ADDRESSING if inner.get(key)
        }
    release = _release_of(base_url, row.document)
    if release is not None and row.type != "Delete":
        visibility = await session.scalar(select(Release.visibility).where(Release.id == release))
        if visibility is not Visibility.PUBLIC:
            return None
    return Sent(document, audience, row.public)
