"""A Funkwhale-shaped peer for tests: a small real server that subscribes to an artist as
Funkwhale subscribes to a remote channel, and files each ``Create{Audio}`` by the rules
Funkwhale's own serializers apply (read in Funkwhale's source; docs/decisions.md, the
Funkwhale section, names the files). Started with ``mastodon`` it is a Mastodon-shaped
follower instead, which only captures what its inbox gets.

    python -m tests.funkwhale_peer HOST PORT funkwhale|mastodon

Control, for tests: ``POST /_peer/subscribe {"handle": "@name@host"}`` (WebFinger, actor
fetch, channel check, signed Follow) and ``GET /_peer/state``. Log lines to wait on:
``peer listening at URL``, ``follow accepted: ACTOR``, ``upload filed: ID``,
``received TYPE{OBJECT TYPE}``, ``refused TYPE: REASON``.

The rules read documents by their keys. Funkwhale itself expands them as JSON-LD with
its own context appended after the sender's, so its terms (``position``, ``license``,
``album``, ``disc``, …) win over ours and a key means what Funkwhale means by it; the one
thing that would break that, a ``@protected`` term in our context (expansion then fails
on the redefinition), is refused here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import sys
import uuid
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from quart import Quart, request

from federation.signatures import IncomingRequest, PublicKey, http_date, verify_request

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
# federation.models.TYPE_CHOICES: the actor types Funkwhale stores
ACTOR_TYPES = frozenset({"Person", "Tombstone", "Application", "Group", "Organization", "Service"})
# common.models.CONTENT_TEXT_SUPPORTED_TYPES
TEXT_TYPES = frozenset({"text/html", "text/markdown", "text/plain"})
MAX_URL = 500  # every URLField in the federation serializers
AUDIO_MAGIC = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")


class Invalid(ValueError):
    """A document Funkwhale's serializers would not take; the message says why."""


def _url(value: Any, what: str) -> str:
    """Django's URLField: an http(s) URL with a host, at most 500 characters."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise Invalid(f"{what} must be a URL of at most {MAX_URL} characters: {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{what} is not a valid URL: {value!r}")
    return value


def _integer(value: Any, what: str, low: int) -> int:
    """DRF's IntegerField: a whole number (digits in a string too), at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid(f"{what} must be an integer, not {value!r}")
    if isinstance(value, str) and not re.fullmatch(r"-?\d+", value.strip()):
        raise Invalid(f"{what} must be an integer, not {value!r}")
    number = int(value)
    if number < low:
        raise Invalid(f"{what} must be at least {low}")
    return number


def _datetime(value: Any, what: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{what} is not a date and time: {value!r}") from None


def _no_protected_terms(document: dict[str, Any]) -> None:
    if "@protected" in json.dumps(document.get("@context", [])):
        raise Invalid("a @protected term in the @context would stop Funkwhale's own terms")


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [t for t in value or [] if isinstance(t, str)]


# --- the rules (Funkwhale's federation/serializers.py) -------------------------------------


def channel_feed(actor: dict[str, Any]) -> str | None:
    """``ActorSerializer``: the actor's own checks, then the RSS link whose presence makes
    ``save`` call ``create_or_update_channel``. None: an actor, but not a channel."""
    _no_protected_terms(actor)
    _url(actor.get("id"), "the actor id")
    if not set(_types(actor.get("type"))) & ACTOR_TYPES:
        raise Invalid(f"{actor.get('type')!r} is not an actor type")
    if not isinstance(actor.get("preferredUsername"), str):
        raise Invalid("the actor has no preferredUsername")
    for key in ("inbox", "outbox", "followers"):
        if key in actor:
            _url(actor[key], f"the actor's {key}")
    public_key = actor.get("publicKey")
    if not isinstance(public_key, dict) or not isinstance(public_key.get("publicKeyPem"), str):
        raise Invalid("the actor has no publicKey.publicKeyPem")
    links = actor.get("url", [])
    links = links if isinstance(links, list) else [links]
    feed = None
    for link in links:
        href = link if isinstance(link, str) else link.get("href")
        _url(href, "a url entry's href")
        # get_by_media_type: a link without mediaType counts as text/html
        media = "text/html" if isinstance(link, str) else link.get("mediaType", "text/html")
        if feed is None and media == "application/rss+xml":
            feed = href
    return feed


def check_accept(document: dict[str, Any], *, followed: str, follower: str) -> None:
    """``AcceptFollowSerializer``: by the followed actor, embedding the ``Follow`` (the
    nested ``FollowSerializer`` takes a dict with id, type, actor and object)."""
    if document.get("type") != "Accept":
        raise Invalid("not an Accept")
    if document.get("actor") != followed:
        raise Invalid("Actor mismatch: the Accept is not by the followed actor")
    follow = document.get("object")
    if not isinstance(follow, dict):
        raise Invalid("the Accept must embed the Follow")
    if follow.get("type") != "Follow":
        raise Invalid("the Accept's object is not a Follow")
    _url(follow.get("id"), "the Follow id")
    if follow.get("object") != followed:
        raise Invalid("Invalid target: the Follow's object is not the followed actor")
    if follow.get("actor") != follower:
        raise Invalid("the Follow's actor is not the follower")


def _image(image: Any, what: str) -> str:
    """``ImageSerializer``: an Image or Link with a URL (``url`` or ``href``), its
    mediaType image/* when given; returns the URL."""
    if not isinstance(image, dict) or image.get("type") not in ("Image", "Link"):
        raise Invalid(f"{what} must be an Image or a Link")
    url = _url(image.get("url", image.get("href")), f"the {what} URL")
    if image.get("mediaType") and not str(image["mediaType"]).startswith("image/"):
        raise Invalid(f"the {what}'s mediaType is not image/*")
    return url


def check_audio(audio: dict[str, Any]) -> dict[str, Any]:
    """``ChannelUploadSerializer`` on an ``Audio``; returns what Funkwhale stores of it
    (the upload's source is the first audio link)."""
    _url(audio.get("id"), "the Audio id")
    if audio.get("type") != "Audio":
        raise Invalid("the object is not an Audio")
    links = audio.get("url")
    if not isinstance(links, list):
        raise Invalid("url must be a list of Links")
    audio_links = []
    for link in links:  # LinkListSerializer: each child a valid Link, then audio/* kept
        if not isinstance(link, dict) or link.get("type") != "Link":
            raise Invalid(f"every url entry must be a Link: {link!r}")
        _url(link.get("href"), "a Link's href")
        if not isinstance(link.get("mediaType"), str) or not link["mediaType"]:
            raise Invalid("every Link needs a mediaType")
        for key in ("bitrate", "size"):
            if key in link:
                _integer(link[key], f"a Link's {key}", 0)
        if link["mediaType"].startswith("audio/"):
            audio_links.append(link)
    if not audio_links:
        raise Invalid("no Link with an audio/* mediaType")
    if not isinstance(audio.get("name"), str) or not audio["name"]:
        raise Invalid("the Audio has no name")
    filed: dict[str, Any] = {
        "id": audio["id"],
        "name": audio["name"],
        "source": audio_links[0]["href"],
        "mimetype": audio_links[0]["mediaType"],
        "position": 1,
        "disc": 1,
    }
    if "published" in audio:
        filed["published"] = _datetime(audio["published"], "published").isoformat()
    if "duration" in audio:
        filed["duration"] = _integer(audio["duration"], "duration", 0)
    if audio.get("position") is not None:
        filed["position"] = _integer(audio["position"], "position", 0)
    if audio.get("disc") is not None:
        filed["disc"] = _integer(audio["disc"], "disc", 1)
    for key in ("album", "attributedTo"):
        if key in audio:
            filed[key] = _url(audio[key], key)
    if audio.get("license") is not None:
        filed["license"] = _url(audio["license"], "license")
    if "mediaType" in audio and audio["mediaType"] not in TEXT_TYPES:
        raise Invalid(f"mediaType {audio['mediaType']!r} is not a text type Funkwhale renders")
    if audio.get("image") is not None:
        filed["image"] = _image(audio["image"], "image")
    return filed


def check_upload(document: dict[str, Any], *, channel: str) -> dict[str, Any]:
    """The inbox route ``Create`` + ``object.type: Audio`` with no ``library`` in the object
    (a channel upload), by the channel's own actor, with recipients
    (``BaseActivitySerializer``), the object as ``check_audio`` takes it."""
    _no_protected_terms(document)
    if document.get("type") != "Create":
        raise Invalid("not a Create")
    audio = document.get("object")
    if not isinstance(audio, dict) or audio.get("type") != "Audio":
        raise Invalid("the Create does not embed an Audio")
    if "library" in audio:
        raise Invalid("an Audio with a library is a library upload, not a channel's")
    if document.get("actor") != channel:
        raise Invalid("the sender is not the channel")
    if not document.get("to") and not document.get("cc"):
        raise Invalid("We cannot handle an activity with no recipient")
    filed = check_audio(audio)
    if filed.get("attributedTo", channel) != channel:
        raise Invalid("the Audio is attributed to someone else than the channel")
    return filed


def check_album(document: dict[str, Any], *, channel: str) -> dict[str, Any]:
    """``AlbumSerializer`` on the fetched ``album``: its artist an actor (not an
    ``Artist``), which must be the channel (``actor.channel.artist``)."""
    _no_protected_terms(document)
    _url(document.get("id"), "the album id")
    name = document.get("name")
    if not isinstance(name, str) or not name or len(name) > 1000:
        raise Invalid("the album needs a name of at most 1000 characters")
    published = _datetime(document.get("published"), "the album's published")
    artists = document.get("artists")
    if not isinstance(artists, list) or not artists:
        raise Invalid("the album needs at least one entry in artists")
    first = artists[0]
    if not isinstance(first, dict) or not set(_types(first.get("type"))) & ACTOR_TYPES:
        raise Invalid("the album's artist is not an actor, so it is not a channel's album")
    if first.get("id") != channel:
        raise Invalid("the album's artist is not the channel")
    if "attributedTo" in document:
        _url(document["attributedTo"], "the album's attributedTo")
    released = document.get("released")
    if released is not None:
        try:
            date.fromisoformat(str(released))
        except ValueError:
            raise Invalid(f"released is not a date: {released!r}") from None
    album = {"id": document["id"], "name": name, "published": published.isoformat()}
    if document.get("cover") is not None:
        album["cover"] = _image(document["cover"], "cover")
    return album


# --- signatures, as Funkwhale makes them -----------------------------------------------------

SIGNED_HEADERS = ["(request-target)", "user-agent", "host", "date", "digest"]


def sign(method: str, url: str, body: bytes, key_id: str, key: rsa.RSAPrivateKey) -> dict[str, str]:
    """requests-http-signature as Funkwhale's ``signing.get_auth`` sets it up: user-agent,
    host and date, and the digest it adds for a body."""
    parts = urlsplit(url)
    headers = {
        "User-Agent": "funkwhale-peer/1.0 (+tests)",
        "Host": parts.netloc,
        "Date": http_date(datetime.now(UTC)),
        "Digest": "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "Content-Type": "application/activity+json",
    }
    target = f"{method.lower()} {parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    lines = [f"(request-target): {target}"] + [
        f"{name}: {headers[name.title()]}" for name in SIGNED_HEADERS[1:]
    ]
    signature = key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(SIGNED_HEADERS)}",'
        f'signature="{base64.b64encode(signature).decode()}"'
    )
    return headers


# --- the server --------------------------------------------------------------------------------


def build_app(base: str, mode: str) -> Quart:
    app = Quart(__name__)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    actor_path = "/federation/actors/" if mode == "funkwhale" else "/users/"
    me = f"{base}{actor_path}dana"
    shared_inbox = f"{base}/federation/shared/inbox" if mode == "funkwhale" else f"{base}/inbox"
    state: dict[str, Any] = {
        "actor": me,
        "follows": {},  # followed actor → {"id", "state", "feed", "followers"}
        "uploads": [],
        "albums": {},
        "audio": {},  # source URL → {"status", "type", "bytes"}
        "received": [],  # "Type{ObjectType}" in arrival order
        "refused": [],
    }
    client = httpx.AsyncClient(timeout=30)
    tasks: set[asyncio.Task[None]] = set()

    def log(line: str) -> None:
        print(line, flush=True)

    @app.before_serving
    async def ready() -> None:
        log(f"peer listening at {base}")

    @app.get(f"{actor_path}dana")
    async def actor() -> Any:
        return (
            {
                "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
                "id": me,
                "type": "Person",
                "preferredUsername": "dana",
                "name": "Dana",
                "inbox": f"{me}/inbox",
                "outbox": f"{me}/outbox",
                "followers": f"{me}/followers",
                "following": f"{me}/following",
                "endpoints": {"sharedInbox": shared_inbox},
                "url": [{"type": "Link", "mediaType": "text/html", "href": f"{base}/@dana"}],
                "publicKey": {"id": f"{me}#main-key", "owner": me, "publicKeyPem": pem.decode()},
            },
            200,
            {"Content-Type": "application/activity+json"},
        )

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        answer = await client.get(
            key_id.split("#", 1)[0], headers={"Accept": "application/activity+json"}
        )
        if answer.status_code != 200:
            return None
        found = answer.json().get("publicKey") or {}
        return PublicKey(found.get("id", key_id), found.get("owner", ""), found["publicKeyPem"])

    @app.get("/_peer/state")
    async def peer_state() -> Any:
        return state

    @app.post("/_peer/subscribe")
    async def subscribe() -> Any:
        handle = str((await request.get_json())["handle"]).lstrip("@")
        name, host = handle.split("@", 1)
        finger = await client.get(
            f"http://{host}/.well-known/webfinger", params={"resource": f"acct:{name}@{host}"}
        )
        finger.raise_for_status()
        target = next(
            link["href"]
            for link in finger.json()["links"]
            if link.get("rel") == "self" and "json" in link.get("type", "")
        )
        document = (
            await client.get(target, headers={"Accept": "application/activity+json"})
        ).json()
        try:
            feed = channel_feed(document)
        except Invalid as error:
            return {"error": str(error)}, 422
        if mode == "funkwhale" and feed is None:
            return {"error": "not a channel: no application/rss+xml link in url"}, 409
        follow_id = f"{base}/federation/follows/{uuid.uuid4()}"
        follow = {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1", "https://funkwhale.audio/ns"],
            "id": follow_id,
            "type": "Follow",
            "actor": me,
            "object": target,
            "to": [target],
        }
        state["follows"][target] = {
            "id": follow_id,
            "state": "pending",
            "feed": feed,
            "followers": document.get("followers"),
        }
        body = json.dumps(follow).encode()
        inbox = document["inbox"]
        sent = await client.post(
            inbox, content=body, headers=sign("POST", inbox, body, f"{me}#main-key", key)
        )
        log(f"follow sent to {target}: {sent.status_code}")
        return {"follow": follow_id, "channel": feed, "status": sent.status_code}

    async def fetch_json(url: str) -> dict[str, Any]:
        answer = await client.get(url, headers={"Accept": "application/activity+json"})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def file_upload(document: dict[str, Any], sender: str) -> None:
        """What the inbox task does with a channel upload, and then a listener's play."""
        try:
            follow = state["follows"].get(sender)
            if not follow or follow["state"] != "accepted" or not follow["feed"]:
                raise Invalid("the sender is not a channel we follow")
            upload = check_upload(document, channel=sender)
            if "album" in upload:
                album = check_album(await fetch_json(upload["album"]), channel=sender)
                state["albums"][album["id"]] = album
            played = await client.get(upload["source"])
            state["audio"][upload["source"]] = {
                "status": played.status_code,
                "type": played.headers.get("content-type", ""),
                "bytes": len(played.content),
                "looks_like_mp3": played.content[:3] == b"ID3" or played.content[:2] in AUDIO_MAGIC,
            }
            if played.status_code != 200:
                raise Invalid(f"the audio answered {played.status_code}")
        except (Invalid, httpx.HTTPError) as error:
            state["refused"].append({"id": document.get("id"), "reason": str(error)})
            log(f"refused Create: {error}")
            return
        state["uploads"].append(upload)
        log(f"upload filed: {upload['id']}")

    async def inbox() -> Any:
        raw = await request.get_data()
        body = raw if isinstance(raw, bytes) else raw.encode()
        incoming = IncomingRequest(
            request.method, request.full_path.rstrip("?"), dict(request.headers), body, "http"
        )
        try:
            document = json.loads(body)
            signer = await verify_request(incoming, lookup, actor=document.get("actor"))
        except Exception as error:  # noqa: BLE001 - a peer answers 401 to anything unsigned
            log(f"refused unsigned or forged delivery: {error}")
            return {"error": str(error)}, 401
        inner = document.get("object")
        inner_type = inner.get("type") if isinstance(inner, dict) else None
        label = f"{document.get('type')}{{{inner_type}}}" if inner_type else document.get("type")
        state["received"].append(label)
        log(f"received {label} from {signer.owner}")
        if document.get("type") == "Accept":
            followed = str(document.get("actor"))
            try:
                check_accept(document, followed=followed, follower=me)
                if followed not in state["follows"]:
                    raise Invalid("No follow to accept")
            except Invalid as error:
                state["refused"].append({"id": document.get("id"), "reason": str(error)})
                log(f"refused Accept: {error}")
                return {}, 202
            state["follows"][followed]["state"] = "accepted"
            log(f"follow accepted: {followed}")
        elif mode == "funkwhale" and label == "Create{Audio}":
            task = asyncio.create_task(file_upload(document, signer.owner))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif mode == "funkwhale":
            log(f"dropped {label}: Funkwhale has no route for it")
        return {}, 202

    app.post(f"{actor_path}dana/inbox")(inbox)
    app.post(urlsplit(shared_inbox).path, endpoint="shared_inbox")(inbox)
    return app


async def main(host: str, port: int, mode: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    await serve(build_app(f"http://{host}:{port}", mode), config)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
