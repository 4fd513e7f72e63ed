from __future__ import annotations

from pathlib import Path

from quart import Quart, request
from quart.typing import TestClientProtocol as Client

from server.runtime.config import Settings
from server.web.app import create_app
from tests.conftest import make_settings


async def test_healthz_reports_the_database(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok", "database": "ok"}
    assert response.headers["X-Request-Id"]


async def test_home_page_shows_the_instance(client: Client, settings: Settings) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    body = await response.get_data(as_text=True)
    assert f"<h1>{settings.instance.name}</h1>" in body
    assert "0 accounts on this instance" in body


async def test_api_errors_are_json(client: Client) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    payload = await response.get_json()
    assert payload["error"] == "Not Found"
    assert payload["status"] == 404
    assert payload["reason"]


async def test_page_errors_are_html(client: Client) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    assert "<h1>404 Not Found</h1>" in await response.get_data(as_text=True)


async def test_method_not_allowed_keeps_allow_header(client: Client) -> None:
    response = await client.post("/healthz")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert (await response.get_json())["error"] == "Method Not Allowed"


async def test_unexpected_errors_are_a_logged_500_without_details(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/api/v1/boom")
    async def boom() -> str:
        raise RuntimeError("secret internals")

    @app.get("/boom")
    async def boom_page() -> str:
        raise RuntimeError("secret internals")

    async with app.test_app() as test_app:
        client = test_app.test_client()
        api = await client.get("/api/v1/boom")
        page = await client.get("/boom")
    assert api.status_code == 500
    assert (await api.get_json())["error"] == "Internal Server Error"
    assert "secret internals" not in await api.get_data(as_text=True)
    assert page.status_code == 500
    assert "secret internals" not in await page.get_data(as_text=True)


async def test_oversized_bodies_are_refused(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, server={"max_body_bytes": 2048}))

    @app.post("/api/v1/echo")
    async def echo() -> str:
        return str(len(await request.get_data()))

    async with app.test_app() as test_app:
        client = test_app.test_client()
        small = await client.post("/api/v1/echo", data=b"x" * 100)
        large = await client.post("/api/v1/echo", data=b"x" * 5000)
    assert (small.status_code, await small.get_data(as_text=True)) == (200, "100")
    assert large.status_code == 413
    assert (await large.get_json())["status"] == 413


def test_creating_the_app_opens_nothing(settings: Settings) -> None:
    app: Quart = create_app(settings)
    assert "playfair" not in app.extensions
    assert not settings.instance.data_dir.exists()


async def test_pages_make_no_third_party_requests(client: Client, settings: Settings) -> None:
    import re

    for path in ("/", "/signup", "/login", "/no/such/page"):
        page = await (await client.get(path)).get_data(as_text=True)
        for url in re.findall(r'(?:src|href|action)="([^"]+)"', page):
            local = url.startswith(("/", "#")) and not url.startswith("//")
            assert local or url.startswith(settings.instance.base_url), (path, url)
