"""The tag page ``/tags/{tag}`` our hashtags link to: the public releases with the tag,
newest first, paged; an ActivityPub request gets an OrderedCollection of their Notes
(docs/architecture.md#federation). Tags are case-insensitive."""

from __future__ import annotations

from quart import Blueprint, current_app
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from federation.objects import PAGE_SIZE, collection_page, ordered_collection, release_note, tag_url
from server.services.tags import tagged_releases
from server.web.activitypub import activity_response, html_response, page_number, wants_activity
from server.web.current import resources_of
from server.web.previews import tag_preview

tags = Blueprint("tags", __name__)


@tags.get("/tags/<tag>")
async def tag_page(tag: str) -> ResponseReturnValue:
    resources = resources_of(current_app)
    base = resources.settings.instance.base_url
    page = page_number()
    async with resources.read_sessionmaker() as session:
        found = await tagged_releases(session, tag, page or 1, PAGE_SIZE)
    if found is None:
        raise NotFound("nothing here has that tag")
    uri = tag_url(base, found.tag)
    if wants_activity():
        if page is None:
            return activity_response(ordered_collection(uri, found.total))
        notes = [release_note(base, release) for release in found.releases]
        return activity_response(collection_page(uri, page, found.total, notes))
    current = page or 1
    return await html_response(
        "tag.html",
        tag=found.tag,
        total=found.total,
        releases=found.releases,
        page=current,
        previous=current - 1 if current > 1 else None,
        next=current + 1 if current * PAGE_SIZE < found.total else None,
        collection=uri,
        preview=tag_preview(
            base, resources.settings.instance.name, found.tag, found.total, found.releases
        ),
    )
