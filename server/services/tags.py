"""The public releases with one tag, newest first, a page at a time: what the tag page
``/tags/{tag}`` shows, as HTML and as an ActivityPub collection of the releases' Notes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import ReleaseInfo
from models.catalogue import Release, Tag, Visibility, release_tags
from server.services.activitypub.publish import load_release_info
from server.services.catalogue import normalise_tag


@dataclass(frozen=True)
class TaggedPage:
    tag: str  # the tag's stored name (lower case)
    total: int  # public releases with the tag
    releases: tuple[ReleaseInfo, ...]  # this page's, newest first


async def tagged_releases(
    session: AsyncSession, raw: str, page: int, page_size: int
) -> TaggedPage | None:
    """One page of the public releases tagged ``raw`` (any case); None for a tag nobody
    here has used."""
    name = normalise_tag(raw)
    if name is None:
        return None
    tag_id = await session.scalar(select(Tag.id).where(Tag.name == name))
    if tag_id is None:
        return None
    query = (
        select(Release.id)
        .join(release_tags, release_tags.c.release_id == Release.id)
        .where(release_tags.c.tag_id == tag_id, Release.visibility == Visibility.PUBLIC)
    )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ids = await session.scalars(
        query.order_by(Release.published_at.desc(), Release.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    infos = [await load_release_info(session, release_id) for release_id in ids.all()]
    return TaggedPage(name, total, tuple(info for info in infos if info is not None))
