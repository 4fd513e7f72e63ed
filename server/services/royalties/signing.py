"""Integrity proofs on royalty documents (statements, their answers, settlements): ours
signed with the instance's Ed25519 key (FEP-8b32), theirs checked against the key their
signer publishes. Used by the statements of both sides and by the hub."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.fetch import FetchError, FetchFailed
from federation.proofs import multikey_public, sign_object
from models.base import utcnow
from models.jobs import TransientJobError
from server.services.activitypub.context import Federation


class StatementError(Exception):
    """A royalty document (a statement, its answer, a settlement) cannot be made or
    taken, or its signer's key cannot be had; the message says why."""


class PayerUnreachable(TransientJobError):
    """The payer's keys cannot be fetched just now (it is down, restarting after a crash,
    or overloaded): not a verdict on the statement, so the inbox job tries again later
    instead of refusing it for good."""


def sign_document(fed: Federation, document: dict[str, Any]) -> dict[str, Any]:
    method = f"{fed.instance_actor}#{fed.keys.ed25519_name}"
    return sign_object(document, fed.keys.ed25519, method, created=utcnow())


async def signer_key(fed: Federation, method: str, payer: str) -> Ed25519PublicKey:
    """The Ed25519 key named by a proof, from its controller's actor document; the
    controller must be ``payer`` (whoever is expected to have signed)."""
    controller = method.split("#", 1)[0]
    if controller != payer:
        raise StatementError(f"the document is not signed by {payer}")
    try:
        _final, document = await fed.fetcher.get_json(controller, sign=fed.instance_signer())
    except FetchError as error:
        status = error.status if isinstance(error, FetchFailed) else 0
        if status is None or status >= 500 or status == 429:
            raise PayerUnreachable(f"the payer's keys cannot be fetched now: {error}") from None
        raise StatementError(f"the payer's keys cannot be fetched: {error}") from None
    methods = document.get("assertionMethod")
    for entry in methods if isinstance(methods, list) else [methods]:
        if (
            isinstance(entry, dict)
            and entry.get("id") == method
            and entry.get("controller") == controller
            and isinstance(entry.get("publicKeyMultibase"), str)
        ):
            return multikey_public(entry["publicKeyMultibase"])
    raise StatementError(f"the payer does not publish the key {method}")
