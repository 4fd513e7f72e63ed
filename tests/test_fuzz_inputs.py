"""Our own fuzzer: hostile JSON (tests/hostile_json.py) and hostile forms, queries and
headers against the inbox and the OAuth endpoints of the real app, on both databases.
Zero 5xx is the assertion.

Unsigned activities are refused before they are stored, so the same hostile documents are
also sent correctly signed by a known actor: those reach the activity parser, the domain
policy, the signature check and the store.

Hypothesis is derandomized, so CI runs the same examples every time;
``PLAYFAIR_FUZZ_SCALE=20`` runs twenty times as many, and ``PLAYFAIR_FUZZ_SEED`` a
different (random, reproducible) set.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from quart import Quart
from quart.typing import TestClientProtocol as Client

from federation.signatures import sign_request
from models.users import Role
from server.runtime.config import Settings
from tests.catalogue_fixtures import make_account
from tests.conftest import make_settings
from tests.hostile_json import ODD_CHARACTERS, hostile_bodies, json_values
from tests.test_account_pages import csrf, log_in
from tests.test_inbox import ALICE, ALICE_KEY_ID, BASE, KEY, fixture, make_scene

SCALE = int(os.environ.get("PLAYFAIR_FUZZ_SCALE", "1"))
SEED = os.environ.get("PLAYFAIR_FUZZ_SEED")


def fuzz(examples: int):  # type: ignore[no-untyped-def]
    """Hypothesis settings for a campaign of ``examples`` × PLAYFAIR_FUZZ_SCALE examples."""

    def apply(test):  # type: ignore[no-untyped-def]
        configured = hypothesis_settings(
            max_examples=examples * SCALE,
            derandomize=SEED is None,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,  # one app for all examples, on purpose
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )(test)
        return seed(int(SEED))(configured) if SEED is not None else configured

    return apply


def no_server_error(status: int, what: str, body: bytes | str) -> None:
    shown = body[:300] if isinstance(body, bytes | str) else body
    assert status < 500, f"{what} answered {status} to {shown!r}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # the inbox tests' base URL (their signatures name it); registrations not throttled
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        accounts={"app_registrations": 10_000, "login_attempts": 10_000},
    )


@pytest.fixture
async def inbox_scene(app: Quart) -> None:
    await make_scene(app)


FOLLOW = fixture("mastodon/follow.json")
CREATE = fixture("mastodon/create_note_reply.json")
INBOXES = ["/inbox", "/artists/the_quiet_hours/inbox", "/actor/inbox"]


def _signed_headers(path: str, body: bytes) -> dict[str, str]:
    headers = sign_request("POST", f"{BASE}{path}", body, ALICE_KEY_ID, KEY)
    headers["Content-Type"] = "application/activity+json"
    return headers


@fuzz(examples=150)
@given(
    body=st.one_of(hostile_bodies(FOLLOW), hostile_bodies(CREATE)),
    path=st.sampled_from(INBOXES),
    sign=st.booleans(),
)
async def test_inbox_answers_hostile_activities_with_a_4xx(
    app: Quart, client: Client, inbox_scene: None, body: bytes, path: str, sign: bool
) -> None:
    headers = _signed_headers(path, body) if sign else {"Content-Type": "application/json"}
    response = await client.post(path, data=body, headers=headers)
    no_server_error(response.status_code, f"POST {path} (signed: {sign})", body)


def _hostile_activity(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Alice's own activity (so its signature and origin checks pass) with hostile values
    in every other field, as decoded JSON."""

    def build(extra: dict[str, Any]) -> dict[str, Any]:
        # a fresh id each time: a known id is "already received" and goes no further
        return {**document, **extra, "actor": ALICE, "id": f"{ALICE}/fuzz/{uuid.uuid4().hex}"}

    hostile = json_values().map(_decoded)
    return st.dictionaries(st.sampled_from(sorted(document)), hostile, max_size=4).map(build)


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@fuzz(examples=100)
@given(activity=st.one_of(_hostile_activity(FOLLOW), _hostile_activity(CREATE)))
async def test_signed_hostile_activities_are_stored_or_refused(
    app: Quart, client: Client, inbox_scene: None, activity: dict[str, Any]
) -> None:
    body = json.dumps(activity).encode("utf-8", "surrogatepass")
    response = await client.post("/inbox", data=body, headers=_signed_headers("/inbox", body))
    no_server_error(response.status_code, "POST /inbox (signed)", body)


REGISTRATION = {
    "client_name": "Fuzzy player",
    "redirect_uris": ["https://player.example/callback"],
    "scope": "read play",
    "token_endpoint_auth_method": "client_secret_basic",
}


@fuzz(examples=100)
@given(body=hostile_bodies(REGISTRATION))
async def test_client_registration_answers_hostile_json_with_a_4xx(
    client: Client, body: bytes
) -> None:
    response = await client.post(
        "/oauth/register", data=body, headers={"Content-Type": "application/json"}
    )
    no_server_error(response.status_code, "POST /oauth/register", body)


def _form_value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.lists(st.sampled_from(ODD_CHARACTERS), max_size=6).map("".join),
        st.sampled_from(["authorization_code", "refresh_token", "client_credentials", "password",
                         "code", "token", "S256", "plain", "read write admin", "https://x/cb"]),
        st.integers(1000, 300_000).map(lambda n: "x" * n),
    )  # fmt: skip


FORM_FIELDS = [
    "grant_type", "code", "redirect_uri", "client_id", "client_secret", "refresh_token",
    "token", "token_type_hint", "scope", "code_verifier", "response_type", "state",
    "code_challenge", "code_challenge_method", "confirm", "csrf_token",
]  # fmt: skip


def form_bodies() -> st.SearchStrategy[bytes]:
    """Form bodies: known fields with odd values, repeated fields, raw bytes that are not
    UTF-8, broken percent-escapes."""
    pair = st.tuples(st.sampled_from(FORM_FIELDS) | st.text(max_size=10), _form_value())

    def encode(pairs: list[tuple[str, str]]) -> bytes:
        from urllib.parse import quote

        return "&".join(
            f"{quote(k, safe='')}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
            for k, v in pairs
        ).encode()

    return st.one_of(
        st.lists(pair, max_size=8).map(encode),
        st.binary(max_size=300),
        st.sampled_from([b"grant_type=%ff%fe", b"code=%", b"a=%zz&&&=", b"=" * 50, b"%00=%00"]),
    )


def authorization_headers() -> st.SearchStrategy[dict[str, str]]:
    """No header, Basic with odd credentials (not base64, not UTF-8, no colon), Bearer junk."""

    def basic(raw: bytes) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    return st.one_of(
        st.just({}),
        st.binary(max_size=60).map(basic),
        st.sampled_from(
            [
                {"Authorization": "Basic"},
                {"Authorization": "Basic !!!not-base64"},
                {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
                {"Authorization": "Bearer"},
                {"Authorization": "Bearer \x7f"},
                {"Authorization": "Digest x"},
                {"Authorization": "Basic " + "A" * 5000},
            ]
        ),
    )


@fuzz(examples=150)
@given(
    path=st.sampled_from(["/oauth/token", "/oauth/revoke", "/oauth/introspect"]),
    body=form_bodies(),
    headers=authorization_headers(),
)
async def test_token_endpoints_answer_hostile_forms_with_a_4xx(
    client: Client, path: str, body: bytes, headers: dict[str, str]
) -> None:
    response = await client.post(
        path,
        data=body,
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    no_server_error(response.status_code, f"POST {path} with {headers}", body)


@pytest.fixture
async def signed_in(app: Quart, client: Client) -> dict[str, str]:
    """A listener signed in on ``client``, a registered client, and the form's CSRF token."""
    await make_account(app, "olga", Role.LISTENER)
    assert (await log_in(client, "olga", "a long password")).status_code == 303
    registered = await client.post("/oauth/register", json=REGISTRATION)
    assert registered.status_code == 201, await registered.get_data(as_text=True)
    client_id = (await registered.get_json())["client_id"]
    return {"client_id": client_id, "csrf_token": await csrf(client, "/settings")}


@fuzz(examples=150)
@given(
    query=form_bodies(),
    form=form_bodies(),
    method=st.sampled_from(["GET", "POST"]),
    valid_start=st.booleans(),
)
async def test_authorize_answers_hostile_queries_with_a_4xx(
    client: Client,
    signed_in: dict[str, str],
    query: bytes,
    form: bytes,
    method: str,
    valid_start: bool,
) -> None:
    if valid_start:  # a real client's request with hostile parameters after it
        start = urlencode({"client_id": signed_in["client_id"], "response_type": "code",
                           "redirect_uri": REGISTRATION["redirect_uris"][0]})  # fmt: skip
        query = f"{start}&".encode() + query
        form = f"csrf_token={signed_in['csrf_token']}&decision=allow&".encode() + form
    raw_query = quote_from_bytes(query, safe="=&%+;/:,")  # as sent: bytes beyond ASCII escaped
    response = await client.open(
        f"/oauth/authorize?{raw_query}",
        method=method,
        data=form if method == "POST" else b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    no_server_error(response.status_code, f"{method} /oauth/authorize?{query!r}", form)
