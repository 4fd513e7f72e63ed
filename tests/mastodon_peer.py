"""A Mastodon-shaped peer for tests: a small real HTTP server, run as its own process
(``python -m tests.mastodon_peer HOST PORT``), that signs, verifies and resolves the way
Mastodon does, written from Mastodon's source (glitch-soc) and not from ours, so it
catches what our own verifier would forgive:

* outgoing requests carry a draft-cavage signature as ``app/lib/request.rb`` and
  ``app/lib/http_signature_draft.rb`` make it: ``rsa-sha256`` over every header set but
  User-Agent, Accept-Encoding and Accept, ``(request-target)`` last (GET: host, date;
  POST: host, date, digest, content-type), ``Digest: SHA-256=…``; GETs signed by the
  instance actor (``Account.representative``);
* the inbox verifies as ``app/lib/signed_request.rb``: date, ``(request-target)`` and
  digest signed (host too on GET), the Date within 12 h + 1 h of clock skew, the body's
  SHA-256 against ``Digest``, the key fetched from its ``keyId``, and the activity's
  actor must be the key's owner; refusals are 401;
* a pasted URL is resolved as ``app/services/fetch_resource_service.rb`` does: GET with
  its Accept header; an ActivityPub document of a supported type whose ``id`` differs
  from the URL is fetched once more by its id (and only once); HTML is followed through
  a ``Link: rel=alternate`` header; only Note and Question, or the types it converts
  (Image, Audio, Video, Article, Page, Event), become a status
  (``app/lib/activitypub/activity/create.rb``);
* an ``Accept`` authorises a follow request only as ``activity/accept.rb`` does: the
  request whose id is the Accept's object and whose target is the Accept's actor, or an
  embedded Follow by our local account of that actor.

The test drives it through ``/_control/…`` (follow, resolve, fetch, received) and waits
on its log lines (``inbox: verified Create from …``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from quart import Quart, Response, jsonify, request

ACCEPT_HEADER = (
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams", '
    "application/activity+json, text/html;q=0.1"
)
AP_CONTENT_TYPES = ("application/activity+json", "application/ld+json")
ACTOR_TYPES = ("Application", "Group", "Organization", "Person", "Service")
SUPPORTED_TYPES = ("Note", "Question")
CONVERTED_TYPES = ("Image", "Audio", "Video", "Article", "Page", "Event")
AS = "https://www.w3.org/ns/activitystreams"
EXPIRATION_WINDOW = timedelta(hours=12)
CLOCK_SKEW = timedelta(hours=1)


class Refused(Exception):
    """A request Mastodon would refuse; the message says why."""


def _digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(
    key: rsa.RSAPrivateKey, key_id: str, method: str, url: str, body: bytes | None
) -> dict[str, str]:
    """The headers Mastodon's Request adds and signs (``perform_cavage_signed_request``)."""
    parts = urlsplit(url)
    headers = {"Host": parts.netloc, "Date": format_datetime(datetime.now(UTC), usegmt=True)}
    if body is not None:
        headers["Content-Type"] = "application/activity+json"
        headers["Digest"] = _digest(body)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    covered = {name.lower(): value for name, value in headers.items()}
    covered["(request-target)"] = f"{method.lower()} {target}"
    text = "\n".join(f"{name}: {value}" for name, value in covered.items())
    signature = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()))
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(covered)}",'
        f'signature="{signature.decode()}"'
    )
    return headers


def _signature_params(header: str) -> dict[str, str]:
    return {k.strip(): v for k, v in re.findall(r'(\w+)="([^"]*)"', header)}


@dataclass
class Peer:
    base: str
    user_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    instance_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    received: list[dict[str, Any]] = field(default_factory=list)
    follow_requests: dict[str, dict[str, str]] = field(default_factory=dict)  # id → target
    following: set[str] = field(default_factory=set)

    @property
    def user(self) -> str:
        return f"{self.base}/users/ada"

    @property
    def instance_actor(self) -> str:
        return f"{self.base}/actor"

    async def signed_get(self, http: httpx.AsyncClient, url: str, accept: str) -> httpx.Response:
        """A GET on behalf of the representative, as every Mastodon fetch is."""
        key_id = f"{self.instance_actor}#main-key"
        headers = sign(self.instance_key, key_id, "GET", url, None)
        return await http.get(url, headers={**headers, "Accept": accept})

    async def verify(self, http: httpx.AsyncClient, method: str, body: bytes) -> str:
        """The owner of the key that signed this request, checked as Mastodon checks."""
        header = request.headers.get("Signature")
        if not header:
            raise Refused("Request not signed")
        params = _signature_params(header)
        if not params.get("keyId") or not params.get("signature"):
            raise Refused("Incompatible request signature. keyId and signature are required")
        algorithm = params.get("algorithm", "hs2019")
        if algorithm not in ("rsa-sha256", "hs2019"):
            raise Refused(f"Unsupported signature algorithm {algorithm}")
        signed = params.get("headers", "date").lower().split()
        if "date" not in signed:
            raise Refused("Mastodon requires the Date header to be signed")
        if "(request-target)" not in signed and "digest" not in signed:
            raise Refused("Mastodon requires the (request-target) pseudo-header to be signed")
        if method == "GET" and "host" not in signed:
            raise Refused("Mastodon requires the Host header to be signed when doing a GET")
        if method == "POST" and "digest" not in signed:
            raise Refused("Mastodon requires the Digest header to be signed when doing a POST")
        try:
            created = parsedate_to_datetime(request.headers.get("Date", ""))
        except (TypeError, ValueError):
            raise Refused("Invalid Date header") from None
        now = datetime.now(UTC)
        if created > now + CLOCK_SKEW or created < now - EXPIRATION_WINDOW - CLOCK_SKEW:
            raise Refused("Signed request date outside acceptable time window")
        if "digest" in signed:
            offered = dict(
                (name.strip().lower(), value.strip())
                for name, _, value in (
                    part.partition("=") for part in request.headers.get("Digest", "").split(",")
                )
            )
            if "sha-256" not in offered:
                raise Refused("Mastodon only supports SHA-256 in Digest header")
            if "SHA-256=" + offered["sha-256"] != _digest(body):
                raise Refused("Invalid Digest value")
        lines = []
        for name in signed:
            if name == "(request-target)":
                full = request.full_path.rstrip("?")
                lines.append(f"(request-target): {method.lower()} {full}")
            else:
                lines.append(f"{name}: {request.headers.get(name, '')}")
        key_id = params["keyId"]
        answer = await self.signed_get(http, key_id.split("#", 1)[0], ACCEPT_HEADER)
        if answer.status_code != 200:
            raise Refused(f"Public key not found for key {key_id}")
        document = answer.json()
        key = document.get("publicKey")
        keys = key if isinstance(key, list) else [key]
        match = next((k for k in keys if isinstance(k, dict) and k.get("id") == key_id), None)
        if match is None:
            raise Refused(f"Public key not found for key {key_id}")
        public = serialization.load_pem_public_key(match["publicKeyPem"].encode())
        assert isinstance(public, rsa.RSAPublicKey)
        try:
            public.verify(
                base64.b64decode(params["signature"]),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise Refused("Verification failed") from None
        if match.get("owner") != document.get("id"):
            raise Refused("the key's owner is not the document that holds it")
        return str(document["id"])

    def take_accept(self, activity: dict[str, Any], sender: str) -> bool:
        """``ActivityPub::Activity::Accept#perform`` for follows."""
        target = activity.get("object")
        object_id = target.get("id") if isinstance(target, dict) else target
        pending = self.follow_requests.get(str(object_id))
        if pending is not None and pending["target"] == sender:
            self.following.add(sender)
            return True
        embedded = (  # accept_embedded_follow
            isinstance(target, dict)
            and target.get("type") == "Follow"
            and target.get("actor") == self.user
        )
        if embedded and any(w["target"] == sender for w in self.follow_requests.values()):
            self.following.add(sender)
            return True
        return False


async def resolve(peer: Peer, http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """``FetchResourceService#call`` then ``ResolveURLService#process_url``: what a URL
    pasted into Mastodon's search becomes."""
    fetched: list[str] = []

    async def process(url: str, terminal: bool) -> tuple[str, dict[str, Any]] | None:
        fetched.append(url)
        answer = await peer.signed_get(http, url, ACCEPT_HEADER)
        if answer.status_code != 200:
            return None
        media = answer.headers.get("content-type", "").split(";", 1)[0].strip()
        if media in AP_CONTENT_TYPES:
            document = answer.json()
            context = document.get("@context")
            contexts = context if isinstance(context, list) else [context]
            if AS not in contexts:
                return None  # supported_context?
            kind = document.get("type")
            wanted = ACTOR_TYPES + SUPPORTED_TYPES + CONVERTED_TYPES + ("FeaturedCollection",)
            if kind not in wanted:
                return None
            if document.get("id") != url:
                return None if terminal else await process(str(document.get("id")), True)
            return url, document
        if terminal:
            return None
        link = answer.headers.get("link", "")
        alternate = re.search(
            r'<([^>]+)>;\s*rel="alternate";\s*type="application/activity\+json"', link
        )
        return await process(alternate.group(1), True) if alternate else None

    result = await process(url, False)
    if result is None:
        return {"found": None, "fetched": fetched}
    final, document = result
    if document.get("type") in SUPPORTED_TYPES + CONVERTED_TYPES:
        attributed = document.get("attributedTo")
        if urlsplit(str(document.get("id"))).hostname != urlsplit(str(attributed)).hostname:
            return {"found": None, "fetched": fetched, "why": "untrustworthy attribution"}
        return {"found": "status", "uri": final, "object": document, "fetched": fetched}
    if document.get("type") in ACTOR_TYPES:
        return {"found": "account", "uri": final, "object": document, "fetched": fetched}
    return {"found": None, "fetched": fetched}


def create_app(peer: Peer) -> Quart:
    app = Quart(__name__)
    http = httpx.AsyncClient(timeout=30)

    def activity_json(document: dict[str, Any]) -> Response:
        return Response(json.dumps(document), 200, {"Content-Type": "application/activity+json"})

    @app.get("/.well-known/webfinger")
    async def webfinger() -> Response:
        host = urlsplit(peer.base).netloc
        if request.args.get("resource") != f"acct:ada@{host}":
            return Response("", 404)
        links = [{"rel": "self", "type": "application/activity+json", "href": peer.user}]
        return jsonify({"subject": f"acct:ada@{host}", "links": links})

    @app.get("/users/ada")
    async def user() -> Response:
        return activity_json({
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": peer.user, "type": "Person", "preferredUsername": "ada",
            "inbox": f"{peer.user}/inbox", "outbox": f"{peer.user}/outbox",
            "followers": f"{peer.user}/followers", "following": f"{peer.user}/following",
            "endpoints": {"sharedInbox": f"{peer.base}/inbox"},
            "publicKey": {"id": f"{peer.user}#main-key", "owner": peer.user,
                          "publicKeyPem": _public_pem(peer.user_key)},
        })  # fmt: skip

    @app.get("/actor")
    async def instance_actor() -> Response:
        return activity_json({
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": peer.instance_actor, "type": "Application",
            "preferredUsername": urlsplit(peer.base).hostname,
            "inbox": f"{peer.instance_actor}/inbox", "outbox": f"{peer.instance_actor}/outbox",
            "publicKey": {"id": f"{peer.instance_actor}#main-key", "owner": peer.instance_actor,
                          "publicKeyPem": _public_pem(peer.instance_key)},
        })  # fmt: skip

    async def inbox() -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        media = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
        try:
            if media not in AP_CONTENT_TYPES:
                raise Refused(f"unsupported content type {media}")
            signer = await peer.verify(http, "POST", body)
            activity = json.loads(body)
            if activity.get("actor") != signer:
                raise Refused("the activity's actor is not the signer")
        except Refused as error:
            print(f"inbox: refused: {error}", flush=True)
            return jsonify({"error": str(error)}), 401  # type: ignore[return-value]
        accepted = activity.get("type") == "Accept" and peer.take_accept(activity, signer)
        peer.received.append({"activity": activity, "signer": signer, "accepted": accepted})
        print(f"inbox: verified {activity.get('type')} from {signer}", flush=True)
        if accepted:
            print(f"follow accepted by {signer}", flush=True)
        return Response("", 202)

    app.add_url_rule("/inbox", "shared_inbox", inbox, methods=["POST"])
    app.add_url_rule("/users/ada/inbox", "user_inbox", inbox, methods=["POST"])

    @app.post("/_control/follow")
    async def follow() -> Response:
        """Ada follows an account by its handle (WebFinger, then the actor, then Follow)."""
        handle = str((await request.get_json())["account"]).removeprefix("@")
        name, _, host = handle.partition("@")
        finger = await http.get(
            f"{urlsplit(peer.base).scheme}://{host}/.well-known/webfinger",
            params={"resource": f"acct:{name}@{host}"},
        )
        finger.raise_for_status()
        self_link = next(
            link["href"] for link in finger.json()["links"]
            if link.get("rel") == "self" and link.get("type") in AP_CONTENT_TYPES
        )  # fmt: skip
        actor = (await peer.signed_get(http, self_link, ACCEPT_HEADER)).json()
        follow_id = f"{peer.base}/{uuid.uuid4()}"
        document = {"@context": AS, "id": follow_id, "type": "Follow",
                    "actor": peer.user, "object": actor["id"]}  # fmt: skip
        peer.follow_requests[follow_id] = {"target": actor["id"]}
        body = json.dumps(document).encode()
        headers = sign(peer.user_key, f"{peer.user}#main-key", "POST", actor["inbox"], body)
        sent = await http.post(actor["inbox"], content=body, headers=headers)
        return jsonify({"follow": follow_id, "status": sent.status_code, "actor": actor})

    @app.get("/_control/resolve")
    async def resolve_route() -> Response:
        return jsonify(await resolve(peer, http, request.args["url"]))

    @app.get("/_control/fetch")
    async def fetch() -> Response:
        """A signed GET with Mastodon's Accept header (or the one given), as it was answered."""
        url = request.args["url"]
        answer = await peer.signed_get(http, url, request.args.get("accept", ACCEPT_HEADER))
        try:
            document: Any = answer.json()
        except ValueError:
            document = None
        return jsonify({
            "status": answer.status_code, "content_type": answer.headers.get("content-type"),
            "length": len(answer.content), "document": document,
            "allow": answer.headers.get("allow"),
        })  # fmt: skip

    @app.get("/_control/received")
    async def received() -> Response:
        return jsonify({"received": peer.received, "following": sorted(peer.following)})

    return app


async def main(host: str, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    base = f"http://{host}:{port}"
    app = create_app(Peer(base))
    print(f"mastodon peer listening on {base}", flush=True)
    await serve(app, config)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
