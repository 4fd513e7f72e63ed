"""Paid top-ups through Stripe Checkout.

A listener picks a credit pack; we create a Checkout Session with Stripe's API and send
them to its page. Stripe then calls our webhook with ``checkout.session.completed``; we
verify the ``Stripe-Signature`` header (HMAC-SHA256 over ``timestamp.payload`` with the
endpoint's secret, five minutes' tolerance) and credit the wallet once per Checkout
Session, whatever the number of deliveries. The rate is recorded with the top-up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from federation import safejson
from models import ledger
from models.ledger import AccountKind, DuplicateTransaction
from models.users import User
from server.runtime.config import CreditPack, MoneySettings

SIGNATURE_TOLERANCE = 300
log = logging.getLogger(__name__)


class PaymentError(ValueError):
    """Refused; ``status`` fits an HTTP answer, nothing was credited."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def find_pack(settings: MoneySettings, name: str) -> CreditPack:
    for pack in settings.packs:
        if pack.name == name:
            return pack
    known = ", ".join(pack.name for pack in settings.packs)
    raise PaymentError(f"there is no credit pack {name!r}; choose one of {known}", 422)


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header Stripe would send (used by tests and by ``verify``)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    payload: bytes, header: str | None, secret: str, now: float | None = None
) -> None:
    if not secret:
        raise PaymentError("the Stripe webhook secret is not configured", 404)
    if not header:
        raise PaymentError("the Stripe-Signature header is missing")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise PaymentError("the Stripe-Signature header has no timestamp") from None
    if abs((now or time.time()) - timestamp) > SIGNATURE_TOLERANCE:
        raise PaymentError("the Stripe-Signature timestamp is too old or in the future")
    expected = sign(payload, secret, timestamp).split("v1=", 1)[1]
    given = [value.encode() for value in parts.get("v1", [])]  # bytes: any text compares
    if not any(hmac.compare_digest(expected.encode(), value) for value in given):
        raise PaymentError("the Stripe-Signature does not match")


@dataclass(frozen=True)
class Checkout:
    id: str
    url: str


async def create_checkout(
    http: httpx.AsyncClient,
    settings: MoneySettings,
    pack: CreditPack,
    user_id: int,
    success_url: str,
    cancel_url: str,
) -> Checkout:
    if settings.provider != "stripe" or not settings.stripe_secret_key:
        raise PaymentError("card payments are not set up on this instance; use a voucher", 404)
    form = {
        "mode": "payment",
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": str(user_id),
        "metadata[pack]": pack.name,
        "metadata[tokens]": str(pack.tokens),
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": settings.currency.lower(),
        "line_items[0][price_data][unit_amount]": str(pack.price_cents),
        "line_items[0][price_data][product_data][name]": f"{pack.tokens} playfair tokens",
    }
    try:
        response = await http.post(
            f"{settings.stripe_api_base}/v1/checkout/sessions",
            data=form,
            auth=(settings.stripe_secret_key, ""),
            timeout=20,
        )
    except httpx.HTTPError as exc:
        raise PaymentError(f"Stripe could not be reached: {type(exc).__name__}", 502) from None
    if response.status_code != 200:
        raise PaymentError(f"Stripe refused the checkout ({response.status_code})", 502)
    body = response.json()
    return Checkout(body["id"], body["url"])


async def handle_event(
    session: AsyncSession, settings: MoneySettings, event: dict[str, Any]
) -> str:
    """Credit a completed checkout once; return what was done (for the log)."""
    if event.get("type") != "checkout.session.completed":
        return f"ignored {event.get('type')}"
    checkout = (event.get("data") or {}).get("object") or {}
    if checkout.get("payment_status") != "paid":
        return "ignored an unpaid checkout"
    metadata = checkout.get("metadata") or {}
    pack = find_pack(settings, str(metadata.get("pack", "")))
    if (
        checkout.get("amount_total") != pack.price_cents
        or str(checkout.get("currency", "")).upper() != settings.currency
    ):
        raise PaymentError("the paid amount does not match the pack", 422)
    try:
        user_id = int(checkout["client_reference_id"])
    except (KeyError, TypeError, ValueError):
        raise PaymentError("the checkout names no account", 422) from None
    if not 0 < user_id < 2**63 or await session.get(User, user_id) is None:
        # Signed by Stripe, so paid, but for an account that is not (or no longer) here:
        # credit nothing, and acknowledge it so that Stripe does not deliver it again
        # (a later delivery could credit whoever gets that number next). The admin
        # refunds it from the log line.
        log.warning(
            "Stripe checkout %s was paid for account %s, which does not exist: "
            "nothing credited, refund it in Stripe",
            checkout.get("id"),
            user_id,
        )
        return f"ignored: there is no account {user_id}"
    provider = await ledger.account(session, "provider:stripe", AccountKind.PROVIDER)
    wallet = await ledger.account(session, ledger.wallet_key(user_id), AccountKind.WALLET, user_id)
    try:
        await ledger.post(
            session,
            "top-up",
            f"stripe:{checkout['id']}",
            [(provider, -pack.tokens), (wallet, pack.tokens)],
            {
                "method": "stripe",
                "pack": pack.name,
                "event": event.get("id"),
                "amount_cents": pack.price_cents,
                "currency": settings.currency,
                "rate": {"tokens": settings.rate_tokens, "cents": settings.rate_cents},
            },
        )
    except DuplicateTransaction:
        await session.rollback()
        return "already credited"
    await session.commit()
    return f"credited {pack.tokens} tokens"


def parse_event(payload: bytes) -> dict[str, Any]:
    try:
        event = safejson.loads(payload)
    except safejson.UnsafeJSON as error:
        raise PaymentError(f"the event is not acceptable JSON: {error}") from None
    if not isinstance(event, dict):
        raise PaymentError("the event is not a JSON object")
    return event
