"""WebFinger, host-meta, NodeInfo and the instance actor, on both databases."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from quart import Quart
from quart.typing import TestClientProtocol as Client

from federation.discovery import base58btc, ed25519_multikey, parse_acct
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist
from server.web.current import resources_of


def test_base58_and_multikey() -> None:
    assert base58btc(b"") == ""
    assert base58btc(b"\0\0\x01") == "112"
    assert base58btc(b"Hello World!") == "2NEpo7TZRRrLZSi2U"
    # every Ed25519 Multikey starts with z6Mk (FEP-521a)
    assert ed25519_multikey(bytes(32)).startswith("z6Mk")


def test_parse_acct() -> None:
    assert parse_acct("acct:Aurora@music.example:8443") == ("aurora", "music.example:8443")
    assert parse_acct("@aurora@music.example") == ("aurora", "music.example")
    for bad in ("aurora", "acct:@host", "acct:a@", "a@b@c", "a@host/path"):
        assert parse_acct(bad) is None


async def test_webfinger(app: Quart, client: Client) -> None:
    base = resources_of(app).settings.instance.base_url
    host = base.split("://")[1]
    async with resources_of(app).sessionmaker() as session:
        owner = await create_user(session, "mira", "a long password", Role.ARTIST)
        await create_artist(session, "aurora", owner)
        await session.commit()
    response = await client.get(
        "/.well-known/webfinger", query_string={"resource": f"acct:Aurora@{host}"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jrd+json"
    document = await response.get_json()
    assert document["subject"] == f"acct:aurora@{host}"
    [self_link] = [link for link in document["links"] if link["rel"] == "self"]
    assert self_link == {
        "rel": "self",
        "type": "application/activity+json",
        "href": f"{base}/artists/aurora",
    }
    by_url = await client.get(
        "/.well-known/webfinger", query_string={"resource": f"{base}/artists/aurora"}
    )
    assert (await by_url.get_json())["subject"] == f"acct:aurora@{host}"
    user = await (
        await client.get("/.well-known/webfinger", query_string={"resource": f"acct:mira@{host}"})
    ).get_json()
    assert user["links"][0]["href"] == f"{base}/users/mira"
    instance = await client.get(
        "/.well-known/webfinger", query_string={"resource": f"acct:{host}@{host}"}
    )
    assert (await instance.get_json())["links"][0]["href"] == f"{base}/actor"
    for resource, status in (
        (f"acct:nobody@{host}", 404),
        ("acct:aurora@elsewhere.example", 404),
        ("not a handle", 404),
    ):
        refused = await client.get("/.well-known/webfinger", query_string={"resource": resource})
        assert refused.status_code == status, resource
    assert (await client.get("/.well-known/webfinger")).status_code == 400


async def test_host_meta_and_nodeinfo(app: Quart, client: Client) -> None:
    base = resources_of(app).settings.instance.base_url
    meta = await client.get("/.well-known/host-meta")
    assert meta.headers["Content-Type"] == "application/xrd+xml"
    assert f"{base}/.well-known/webfinger?resource={{uri}}" in await meta.get_data(as_text=True)
    links = await (await client.get("/.well-known/nodeinfo")).get_json()
    assert [link["href"] for link in links["links"]] == [
        f"{base}/nodeinfo/2.0",
        f"{base}/nodeinfo/2.1",
    ]
    async with resources_of(app).sessionmaker() as session:
        await create_user(session, "lina", "a long password", Role.LISTENER)
    for version in ("2.0", "2.1"):
        response = await client.get(f"/nodeinfo/{version}")
        assert f"schema/{version}#" in response.headers["Content-Type"]
        info = await response.get_json()
        assert info["version"] == version
        assert info["software"]["name"] == "playfair"
        assert info["protocols"] == ["activitypub"]
        assert info["usage"]["users"]["total"] == 1
        assert info["metadata"]["instanceActor"] == f"{base}/actor"
        assert info["openRegistrations"] is True
    assert (await client.get("/nodeinfo/1.0")).status_code == 404


async def test_instance_actor(app: Quart, client: Client) -> None:
    base = resources_of(app).settings.instance.base_url
    response = await client.get("/actor", headers={"Accept": "application/activity+json"})
    assert response.headers["Content-Type"] == "application/activity+json"
    actor = await response.get_json()
    assert actor["type"] == "Application"
    assert actor["id"] == f"{base}/actor"
    assert actor["publicKey"]["owner"] == actor["id"]
    keys = resources_of(app).keys
    expected = (
        keys.rsa.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert actor["publicKey"]["publicKeyPem"] == expected
    [method] = actor["assertionMethod"]
    assert method["type"] == "Multikey"
    assert method["publicKeyMultibase"].startswith("z6Mk")
    assert actor["endpoints"]["sharedInbox"] == f"{base}/inbox"
