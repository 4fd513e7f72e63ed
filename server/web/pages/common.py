"""What the page modules share: rendering a page with the instance's settings. Page
modules import from here, never a private helper of one another."""

from __future__ import annotations

from typing import Any

from quart import current_app, render_template

from server.web.current import resources_of


async def render(template: str, **context: Any) -> str:
    """The page ``template``, with ``instance`` (name, base URL…) for the layout."""
    return await render_template(
        template, instance=resources_of(current_app).settings.instance, **context
    )
