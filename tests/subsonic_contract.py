"""The Subsonic contract, as the tests check it: an XML answer must be valid against the
Subsonic 1.16.1 schema (tests/fixtures/subsonic/, with OpenSubsonic's additions marked
there), a JSON answer must carry OpenSubsonic's envelope, and the two formats of one
call must say the same thing.

"The same thing" is decided by the schema too: the XML is decoded with the Subsonic JSON
convention (attributes as plain keys, typed by the schema; text under ``value``; an
element the schema lets repeat is always an array), which is what the JSON answer must
equal. So a JSON answer with a number as a string, a lone song that is not an array or
a field the XML lacks fails just as an invalid XML answer does.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import xmlschema
from quart.typing import TestClientProtocol as Client

SCHEMA_PATH = Path(__file__).parent / "fixtures" / "subsonic" / "subsonic-rest-api-1.16.1.xsd"
NAMESPACE = "http://subsonic.org/restapi"
API_VERSION = "1.16.1"


@functools.cache
def schema() -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(SCHEMA_PATH)


def parse_xml(text: str) -> ElementTree.Element:
    """An answer's XML, parsed with entities and DTDs refused (xmlschema's defused parser)."""
    root: ElementTree.Element = xmlschema.XMLResource(text, defuse="always").root
    return root


def assert_valid_xml(text: str) -> ElementTree.Element:
    """Validates ``text`` against the schema (with every reason it fails, if it does) and
    returns the parsed ``subsonic-response`` element."""
    try:
        root = parse_xml(text)
    except xmlschema.XMLResourceError as error:
        raise AssertionError(f"the answer is not XML: {error}") from None
    errors = list(schema().iter_errors(root))
    assert not errors, "the answer is not valid Subsonic 1.16.1:\n" + "\n".join(
        f"{error.path}: {error.reason}" for error in errors[:10]
    )
    assert root.tag == f"{{{NAMESPACE}}}subsonic-response"
    assert root.get("version") == API_VERSION
    assert root.get("openSubsonic") == "true"
    assert root.get("type") and root.get("serverVersion")
    return root


def assert_opensubsonic_json(document: Any) -> dict[str, Any]:
    """Checks OpenSubsonic's envelope on a decoded JSON answer; returns its inside."""
    assert isinstance(document, dict) and list(document) == ["subsonic-response"], document
    body = document["subsonic-response"]
    assert isinstance(body, dict), body
    assert body.get("status") in ("ok", "failed"), body
    assert body.get("version") == API_VERSION, body
    assert isinstance(body.get("type"), str) and body["type"], body
    assert isinstance(body.get("serverVersion"), str) and body["serverVersion"], body
    assert body.get("openSubsonic") is True, body
    if body["status"] == "failed":
        error = body.get("error")
        assert isinstance(error, dict), body
        code = error.get("code")
        assert isinstance(code, int) and not isinstance(code, bool), error
        assert isinstance(error.get("message"), str) and error["message"], error
    else:
        assert "error" not in body, body
    return body


def xml_as_json(text: str) -> dict[str, Any]:
    """The XML answer in Subsonic's JSON convention, typed by the schema."""
    decoded = schema().decode(
        text,
        attr_prefix="",
        text_key="value",
        cdata_prefix=None,
        strip_namespaces=True,
        decimal_type=float,
        validation="strict",
    )
    return _normal(decoded)


def _normal(value: Any) -> Any:
    """What both renderings agree to mean the same: an empty element is ``{}``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normal(item) for item in value]
    return value


def _json_normal(value: Any) -> Any:
    """JSON's side: an empty array says what an absent element says."""
    if isinstance(value, dict):
        return {key: _json_normal(item) for key, item in value.items() if item != []}
    if isinstance(value, list):
        return [_json_normal(item) for item in value]
    return value


def _same(xml: Any, json_value: Any, path: str, differ: frozenset[str] = frozenset()) -> None:
    if path in differ:  # made anew by each call (a new playlist's id): the type only
        assert type(xml) is type(json_value), f"{path}: {xml!r} in XML, {json_value!r} in JSON"
        return
    if isinstance(xml, dict):
        assert isinstance(json_value, dict), f"{path}: {json_value!r} is not an object"
        assert set(xml) == set(json_value), (
            f"{path}: XML has {sorted(xml)}, JSON has {sorted(json_value)}"
        )
        for key in xml:
            _same(xml[key], json_value[key], f"{path}.{key}", differ)
    elif isinstance(xml, list):
        assert isinstance(json_value, list), f"{path}: {json_value!r} is not an array"
        assert len(xml) == len(json_value), f"{path}: {len(xml)} in XML, {len(json_value)} in JSON"
        for index, (a, b) in enumerate(zip(xml, json_value, strict=True)):
            _same(a, b, f"{path}[{index}]", differ)
    elif isinstance(xml, str) and not isinstance(json_value, str):
        # an attribute the schema leaves open (OpenSubsonic's lax ones) decodes untyped
        rendered = json.dumps(json_value) if isinstance(json_value, bool) else str(json_value)
        assert rendered == xml, f"{path}: {xml!r} in XML, {json_value!r} in JSON"
    elif isinstance(xml, float) and type(json_value) is int:
        # an xs:double written without a fraction ("4") is the same number in JSON
        assert xml == json_value, f"{path}: {xml!r} in XML, {json_value!r} in JSON"
    else:
        assert type(xml) is type(json_value) and xml == json_value, (
            f"{path}: {xml!r} in XML, {json_value!r} in JSON"
        )


def assert_same_answer(
    xml_text: str, json_text: str, differ: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Both formats of one call: valid, OpenSubsonic, and the same content (but for the
    paths in ``differ``, such as ``subsonic-response.playlist.id``, which a call that makes
    something makes anew). Returns the JSON answer's inside."""
    assert_valid_xml(xml_text)
    body = assert_opensubsonic_json(json.loads(json_text))
    _same(xml_as_json(xml_text), _json_normal(body), "subsonic-response", differ)
    return body


async def call_both(
    client: Client, method: str, params: dict[str, str | int | list[str]] | None = None,
    *, credentials: dict[str, str] | None = None,
    json_params: dict[str, str | int | list[str]] | None = None,
    differ: frozenset[str] = frozenset(),
) -> tuple[ElementTree.Element, dict[str, Any]]:  # fmt: skip
    """Calls ``method`` in XML and in JSON over the in-process ``client`` and checks both
    answers (:func:`assert_same_answer`). Returns the XML root and the JSON inside. A
    call that uses up what it names (a deletion) gets ``json_params`` for its second
    call."""

    def query(chosen: dict[str, str | int | list[str]] | None) -> list[tuple[str, str]]:
        base = [(key, str(value)) for key, value in (credentials or {}).items()]
        for key, value in (chosen or {}).items():
            for item in value if isinstance(value, list) else [value]:
                base.append((key, str(item)))
        return [*base, ("c", "contract-test")]

    second = query(params if json_params is None else json_params)
    xml_answer = await client.get(
        f"/rest/{method}.view?{urlencode([*query(params), ('v', API_VERSION)])}"
    )
    json_answer = await client.get(f"/rest/{method}?{urlencode([*second, ('f', 'json')])}")
    assert xml_answer.content_type.startswith("text/xml"), xml_answer.content_type
    assert json_answer.content_type.startswith("application/json"), json_answer.content_type
    xml_text = await xml_answer.get_data(as_text=True)
    json_text = await json_answer.get_data(as_text=True)
    body = assert_same_answer(xml_text, json_text, differ)
    return parse_xml(xml_text), body


def call_both_over_http(
    http: httpx.Client, method: str, params: dict[str, str], credentials: dict[str, str]
) -> tuple[ElementTree.Element, dict[str, Any]]:
    """:func:`call_both` against a running instance (``http`` has its base URL)."""
    query = {**credentials, **params, "c": "contract-test"}
    xml_answer = http.get(f"/rest/{method}.view", params={**query, "v": API_VERSION})
    json_answer = http.get(f"/rest/{method}", params={**query, "f": "json"})
    assert xml_answer.headers["content-type"].startswith("text/xml"), xml_answer.headers
    assert json_answer.headers["content-type"].startswith("application/json"), json_answer.headers
    body = assert_same_answer(xml_answer.text, json_answer.text)
    return parse_xml(xml_answer.text), body
