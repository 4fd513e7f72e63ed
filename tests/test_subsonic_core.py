"""The Subsonic envelope and credentials over the app: XML by default, JSON and JSONP on
request, OpenSubsonic's fields everywhere, errors as Subsonic errors, never a page."""

from __future__ import annotations

import json

from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.users import Role
from tests.catalogue_fixtures import make_account


async def test_ping_with_an_api_key_in_xml_json_and_jsonp(app: Quart, client: Client) -> None:
    account = await make_account(app, "lena", Role.LISTENER, scopes="read")
    xml = await client.get(f"/rest/ping.view?apiKey={account.token}&c=test&v=1.16.1")
    assert xml.status_code == 200
    assert xml.content_type.startswith("text/xml")
    text = await xml.get_data(as_text=True)
    assert 'status="ok"' in text and 'openSubsonic="true"' in text and 'version="1.16.1"' in text
    answer = await client.get(f"/rest/ping?apiKey={account.token}&f=json")
    body = (await answer.get_json())["subsonic-response"]
    assert body["status"] == "ok" and body["openSubsonic"] is True and body["type"] == "playfair"
    jsonp = await client.get(f"/rest/ping?apiKey={account.token}&f=jsonp&callback=cb")
    text = await jsonp.get_data(as_text=True)
    assert text.startswith("cb(") and text.endswith(");")
    assert json.loads(text[3:-2])["subsonic-response"]["status"] == "ok"


async def test_form_post_carries_the_parameters(app: Quart, client: Client) -> None:
    account = await make_account(app, "lena", Role.LISTENER, scopes="read")
    answer = await client.post("/rest/ping.view", form={"apiKey": account.token, "f": "json"})
    assert (await answer.get_json())["subsonic-response"]["status"] == "ok"


async def test_bad_credentials_are_subsonic_errors(app: Quart, client: Client) -> None:
    account = await make_account(app, "lena", Role.LISTENER, scopes="read")
    cases = {
        "apiKey=pf_nothing": 44,
        f"apiKey={account.token}&u=lena": 43,
        "": 10,
        "u=lena&t=abc&s=saltsalt": 40,
        "u=lena&p=wrong": 40,
    }
    for query, code in cases.items():
        answer = await client.get(f"/rest/ping?f=json&{query}")
        body = (await answer.get_json())["subsonic-response"]
        assert body["status"] == "failed", query
        assert body["error"]["code"] == code, (query, body)


async def test_unknown_methods_and_formats_answer_as_subsonic(app: Quart, client: Client) -> None:
    account = await make_account(app, "lena", Role.LISTENER, scopes="read")
    answer = await client.get(f"/rest/noSuchThing?f=json&apiKey={account.token}")
    assert (await answer.get_json())["subsonic-response"]["error"]["code"] == 70
    answer = await client.get(f"/rest/ping?f=yaml&apiKey={account.token}")
    assert 'code="0"' in await answer.get_data(as_text=True)
    answer = await client.get(f"/rest/ping?f=jsonp&callback=alert(1)&apiKey={account.token}")
    assert 'code="0"' in await answer.get_data(as_text=True)


async def test_extensions_are_public(client: Client) -> None:
    answer = await client.get("/rest/getOpenSubsonicExtensions?f=json")
    body = (await answer.get_json())["subsonic-response"]
    names = {item["name"]: item["versions"] for item in body["openSubsonicExtensions"]}
    assert names["apiKeyAuthentication"] == [1] and names["formPost"] == [1]
