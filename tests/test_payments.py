"""Stripe Checkout top-ups. Stripe's API is the one thing here that cannot run on this
machine, so the test gives the app an HTTP client whose transport answers as Stripe does
(httpx.MockTransport); the webhook is exercised for real, signatures included."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart
from sqlalchemy import func, select

from models import ledger
from models.ledger import LedgerAccount
from models.users import Role
from server.services.payments import PaymentError, sign, verify_signature
from server.web.app import create_app
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.conftest import make_settings

SECRET = "whsec_test_secret"


def test_signature_rules() -> None:
    payload = b'{"id": "evt_1"}'
    now = int(time.time())
    verify_signature(payload, sign(payload, SECRET, now), SECRET, now)
    cases = [
        (sign(payload, "whsec_other", now), "does not match"),
        (sign(b'{"id": "evt_2"}', SECRET, now), "does not match"),
        (sign(payload, SECRET, now - 3600), "too old"),
        (None, "missing"),
        ("v1=abc", "no timestamp"),
    ]
    for header, reason in cases:
        with pytest.raises(PaymentError, match=reason):
            verify_signature(payload, header, SECRET, now)


@pytest.fixture
async def stripe_app(tmp_path: Path, database_url: str) -> Any:
    settings = make_settings(
        tmp_path, database_url,
        money={"provider": "stripe", "stripe_secret_key": "sk_test_x",
               "stripe_webhook_secret": SECRET},
    )  # fmt: skip
    app = create_app(settings)
    seen: list[dict[str, str]] = []

    def fake_stripe(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/checkout/sessions"
        assert request.headers["Authorization"].startswith("Basic ")
        form = dict(httpx.QueryParams(request.content.decode()))
        seen.append(form)
        return httpx.Response(
            200, json={"id": "cs_test_1", "url": "https://checkout.example/cs_test_1"}
        )

    async with app.test_app() as test_app:
        resources = resources_of(test_app.app)
        await resources.http.aclose()
        resources.http = httpx.AsyncClient(transport=httpx.MockTransport(fake_stripe))
        yield test_app, seen


def event(user_id: int, *, pack: str = "song", amount: int = 125, event_id: str = "evt_1") -> bytes:
    return json.dumps({
        "id": event_id, "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_1", "payment_status": "paid", "amount_total": amount,
                            "currency": "eur", "client_reference_id": str(user_id),
                            "metadata": {"pack": pack}}},
    }).encode()  # fmt: skip


async def balance(app: Quart, user_id: int) -> int:
    async with resources_of(app).sessionmaker() as session:
        return await ledger.balance(session, ledger.wallet_key(user_id))


async def test_checkout_and_webhook(stripe_app: Any) -> None:
    test_app, seen = stripe_app
    app = test_app.app
    client = test_app.test_client()
    listener = await make_account(app, "lina", Role.LISTENER)
    made = await client.post("/api/v1/me/checkout", headers=listener.headers, json={"pack": "song"})
    assert made.status_code == 201
    assert (await made.get_json())["url"] == "https://checkout.example/cs_test_1"
    assert seen[0]["client_reference_id"] == str(listener.user_id)
    assert seen[0]["line_items[0][price_data][unit_amount]"] == "125"
    unknown = await client.post("/api/v1/me/checkout", headers=listener.headers, json={"pack": "x"})
    assert unknown.status_code == 422

    def post(payload: bytes, header: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if header:
            headers["Stripe-Signature"] = header
        return client.post("/payments/stripe/webhook", data=payload, headers=headers)

    now = int(time.time())
    forged = event(listener.user_id)
    assert (await post(forged, sign(forged, "whsec_wrong", now))).status_code == 400
    assert (await post(forged, None)).status_code == 400
    bad_pack = event(listener.user_id, pack="gold")
    assert (await post(bad_pack, sign(bad_pack, SECRET, now))).status_code == 422
    cheap = event(listener.user_id, amount=1)
    assert (await post(cheap, sign(cheap, SECRET, now))).status_code == 422
    assert await balance(app, listener.user_id) == 0, "nothing credited by refused events"

    good = event(listener.user_id)
    first = await post(good, sign(good, SECRET, now))
    assert first.status_code == 200
    assert (await first.get_json())["outcome"] == "credited 1022 tokens"
    replay = await post(good, sign(good, SECRET, now))
    assert (await replay.get_json())["outcome"] == "already credited"
    other_event_same_checkout = event(listener.user_id, event_id="evt_2")
    again = await post(other_event_same_checkout, sign(other_event_same_checkout, SECRET, now))
    assert (await again.get_json())["outcome"] == "already credited"
    assert await balance(app, listener.user_id) == 1022


async def test_checkout_without_a_provider(app: Quart) -> None:
    listener = await make_account(app, "lina", Role.LISTENER)
    response = await app.test_client().post(
        "/api/v1/me/checkout", headers=listener.headers, json={"pack": "song"}
    )
    assert response.status_code == 404  # a 5xx would say the server failed; it did not
    assert "use a voucher" in (await response.get_json())["reason"]
    webhook = await app.test_client().post("/payments/stripe/webhook", data=b"{}")
    assert webhook.status_code == 404


async def test_a_checkout_for_no_account_credits_nothing(stripe_app: Any) -> None:
    """Signed by Stripe but for an account that does not exist (deleted after paying, or
    never here): nothing is credited and no wallet is made; it is acknowledged, so Stripe
    stops delivering it, and logged for a refund."""
    test_app, _seen = stripe_app
    client = test_app.test_client()
    now = int(time.time())
    for nobody in (424242, -1, 2**70):
        payload = event(nobody, event_id=f"evt_{nobody}")
        answer = await client.post(
            "/payments/stripe/webhook", data=payload,
            headers={"Stripe-Signature": sign(payload, SECRET, now),
                     "Content-Type": "application/json"},
        )  # fmt: skip
        assert answer.status_code == 200, await answer.get_data(as_text=True)
        assert (await answer.get_json())["outcome"] == f"ignored: there is no account {nobody}"
    async with resources_of(test_app.app).sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(LedgerAccount)) == 0
