"""The web pages and the health check."""

from __future__ import annotations

from quart import Blueprint, current_app, jsonify, render_template
from quart.typing import ResponseReturnValue
from sqlalchemy import func, select, text

from models.users import User
from server.resources import resources_of

web = Blueprint("web", __name__)


@web.get("/healthz")
async def healthz() -> ResponseReturnValue:
    resources = resources_of(current_app)
    try:
        async with resources.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        return jsonify({"status": "unavailable", "database": type(exc).__name__}), 503
    return jsonify({"status": "ok", "database": "ok"})


@web.get("/")
async def home() -> ResponseReturnValue:
    resources = resources_of(current_app)
    async with resources.sessionmaker() as session:
        accounts = await session.scalar(select(func.count()).select_from(User))
    return await render_template(
        "home.html",
        instance=resources.settings.instance,
        accounts=accounts or 0,
    )
