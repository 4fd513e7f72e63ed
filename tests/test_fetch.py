"""The guarded HTTP client against real HTTP servers on loopback addresses.

127.0.0.2 plays a lab server that the test policy allows; 127.0.0.1 plays the private
address an attacker wants us to reach. Names like ``fed.example`` only exist in the fake
resolvers handed to the client, so a request can only reach a server through the address
the guard checked.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation.fetch import (
    AddressRefused,
    FetchFailed,
    FetchPolicy,
    GuardedClient,
    ResponseTooLarge,
    is_public_address,
)
from federation.http import HttpClientOptions, create_http_client

LAB = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False
    declared_length: int | None = None  # a Content-Length that differs from the body
    hang: bool = False  # answer nothing until the test ends


def redirect(status: int, location: str) -> Reply:
    return Reply(status, {"Location": location})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class Server:
    """A ThreadingHTTPServer on ``host`` with an OS-chosen port, answering from ``routes``
    and recording every request it receives."""

    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.scheme = "https" if tls else "http"
        self.routes: dict[str, Reply] = {}
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer((host, 0), _handler(self))
        self.httpd.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _handler(owner: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            owner.seen.append(Seen(self.command, self.path, headers, body))
            reply = owner.routes.get(self.path, Reply(404, body=b"no such page"))
            if reply.hang:
                owner.release.wait(30)
                self.close_connection = True
                return
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_POST = do_PUT = do_GET

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(reply.body), 1000):
                    piece = reply.body[start : start + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
                return
            length = len(reply.body) if reply.declared_length is None else reply.declared_length
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(reply.body)
            if reply.declared_length is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class FakeDNS:
    """Answers from a table; a host with several answers gives the next one on each call
    and then keeps giving the last."""

    def __init__(self, answers: Mapping[str, list[list[str]]]) -> None:
        self.answers = {host: list(seq) for host, seq in answers.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        sequence = self.answers.get(host)
        if not sequence:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return sequence.pop(0) if len(sequence) > 1 else sequence[0]


class RecordingSigner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes | None]] = []

    def __call__(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        self.calls.append((method, url, body))
        return {"Signature": f"signed {method} {url}"}


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(host: str, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(host, tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
async def httpx_client() -> AsyncIterator[httpx.AsyncClient]:
    client = create_http_client(HttpClientOptions("https://test.example", timeout_seconds=5))
    yield client
    await client.aclose()


def guarded(
    client: httpx.AsyncClient, policy: FetchPolicy = LAB, dns: FakeDNS | None = None
) -> GuardedClient:
    return GuardedClient(client, policy, dns)


# --- addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("127.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("0.1.2.3", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 around 8.8.8.8
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_loopback_refused_by_default(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient, host: str, scheme: str
) -> None:
    server = servers("127.0.0.1")
    server.routes["/"] = Reply(body=b"secret")
    client = GuardedClient(httpx_client, FetchPolicy())  # the real resolver
    with pytest.raises(AddressRefused, match="private"):
        await client.request("GET", f"{scheme}://{host}:{server.port}/")
    assert server.seen == []


async def test_allowed_network_is_fetched(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.2")
    server.routes["/hello"] = Reply(body=b"hi")
    response = await guarded(httpx_client).request("GET", server.url("/hello"))
    assert (response.status, response.content, response.url) == (200, b"hi", server.url("/hello"))
    assert server.seen[0].headers["user-agent"].startswith("playfair/")


async def test_allow_private_allows_loopback(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.1")
    server.routes["/"] = Reply(body=b"lab")
    client = GuardedClient(httpx_client, FetchPolicy(allow_private=True))
    assert (await client.request("GET", server.url("/"))).content == b"lab"


async def test_private_resolution_refused(httpx_client: httpx.AsyncClient) -> None:
    dns = FakeDNS({"evil.example": [["10.0.0.5"]], "mixed.example": [["8.8.8.8", "127.0.0.1"]]})
    client = guarded(httpx_client, FetchPolicy(), dns)
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.5"):
        await client.request("GET", "https://evil.example/")
    # one bad address among good ones is enough to refuse
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        await client.request("GET", "https://mixed.example/")


@pytest.mark.parametrize(
    "url", ["ftp://fed.example/file", "file:///etc/passwd", "gopher://fed.example/", "/relative"]
)
async def test_other_schemes_refused(httpx_client: httpx.AsyncClient, url: str) -> None:
    dns = FakeDNS({"fed.example": [["8.8.8.8"]]})
    with pytest.raises(AddressRefused, match="only https"):
        await guarded(httpx_client, FetchPolicy(), dns).request("GET", url)
    assert dns.calls == []


async def test_plain_http_refused_on_public_address(httpx_client: httpx.AsyncClient) -> None:
    dns = FakeDNS({"fed.example": [["8.8.8.8"]]})
    with pytest.raises(AddressRefused, match="plain http"):
        await guarded(httpx_client, LAB, dns).request("GET", "http://fed.example/")


# --- pinning ---------------------------------------------------------------------------


async def test_host_header_kept_when_pinned(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.2")
    server.routes["/actor?x=1"] = Reply(body=b"ok")
    dns = FakeDNS({"fed.example": [["127.0.0.2"]]})
    signer = RecordingSigner()
    url = server.url("/actor?x=1", host="fed.example")
    response = await guarded(httpx_client, LAB, dns).request("GET", url, sign=signer)
    assert response.content == b"ok"
    assert response.url == url
    [seen] = server.seen
    assert seen.headers["host"] == f"fed.example:{server.port}"
    assert seen.path == "/actor?x=1"
    assert signer.calls == [("GET", url, None)]  # signed for the name, not the address


async def test_dns_rebinding_uses_the_checked_address(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.2")
    server.routes["/"] = Reply(body=b"checked")
    dns = FakeDNS({"fed.example": [["127.0.0.2"], ["127.0.0.1"]]})
    response = await guarded(httpx_client, LAB, dns).request(
        "GET", server.url("/", host="fed.example")
    )
    assert response.content == b"checked"
    assert dns.calls == ["fed.example"]  # resolved once; a second lookup would say 127.0.0.1
    assert len(server.seen) == 1


async def test_dns_rebinding_on_a_redirect_hop_refused(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.2")
    private = servers("127.0.0.1")
    server.routes["/a"] = redirect(302, "/b")
    server.routes["/b"] = Reply(body=b"allowed")
    private.routes["/b"] = Reply(body=b"secret")
    dns = FakeDNS({"fed.example": [["127.0.0.2"], ["127.0.0.1"]]})
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        await guarded(httpx_client, LAB, dns).request(
            "GET", server.url("/a", host="fed.example"), follow_redirects=True
        )
    assert dns.calls == ["fed.example", "fed.example"]  # once per hop
    assert [seen.path for seen in server.seen] == ["/a"]
    assert private.seen == []


# --- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_redirect_to_private_address_refused(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient, scheme: str
) -> None:
    allowed = servers("127.0.0.2")
    private = servers("127.0.0.1")
    allowed.routes["/start"] = redirect(302, f"{scheme}://127.0.0.1:{private.port}/secret")
    private.routes["/secret"] = Reply(body=b"secret")
    client = guarded(httpx_client)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is at 127\.0\.0\.1, a private"):
        await client.request("GET", allowed.url("/start"), follow_redirects=True)
    assert len(allowed.seen) == 1
    assert private.seen == []


async def test_redirect_not_followed_unless_asked(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.2")
    server.routes["/a"] = redirect(302, "/b")
    response = await guarded(httpx_client).request("GET", server.url("/a"))
    assert (response.status, response.headers["location"]) == (302, "/b")
    assert [seen.path for seen in server.seen] == ["/a"]


async def test_redirect_chain_followed_and_signed_per_hop(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    first = servers("127.0.0.2")
    second = servers("127.0.0.2")
    first.routes["/a"] = redirect(301, "/b")  # relative to the current URL
    first.routes["/b"] = redirect(307, second.url("/c"))
    second.routes["/c"] = Reply(body=b"done")
    signer = RecordingSigner()
    response = await guarded(httpx_client).request(
        "GET", first.url("/a"), sign=signer, follow_redirects=True
    )
    assert (response.status, response.content, response.url) == (200, b"done", second.url("/c"))
    urls = [first.url("/a"), first.url("/b"), second.url("/c")]
    assert [url for _, url, _ in signer.calls] == urls
    seen = first.seen + second.seen
    assert [s.headers["signature"] for s in seen] == [f"signed GET {url}" for url in urls]


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        (301, "GET", b""),
        (302, "GET", b""),
        (303, "GET", b""),
        (307, "POST", b'{"type": "Follow"}'),
        (308, "POST", b'{"type": "Follow"}'),
    ],
)
async def test_post_redirect_method(
    servers: Callable[..., Server],
    httpx_client: httpx.AsyncClient,
    status: int,
    method: str,
    body: bytes,
) -> None:
    server = servers("127.0.0.2")
    server.routes["/inbox"] = redirect(status, "/new-inbox")
    server.routes["/new-inbox"] = Reply(202)
    signer = RecordingSigner()
    response = await guarded(httpx_client).request(
        "POST",
        server.url("/inbox"),
        headers={"Content-Type": "application/activity+json"},
        content=b'{"type": "Follow"}',
        sign=signer,
        follow_redirects=True,
    )
    assert response.status == 202
    hop = server.seen[1]
    assert (hop.method, hop.body) == (method, body)
    assert ("content-type" in hop.headers) is (method == "POST")
    assert signer.calls[1] == (method, server.url("/new-inbox"), body or None)


async def test_too_many_redirects(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    server = servers("127.0.0.2")
    for n in range(4):
        server.routes[f"/r{n}"] = redirect(302, f"/r{n + 1}")
    server.routes["/r4"] = Reply(body=b"end")
    client = guarded(httpx_client)  # max_redirects=3
    response = await client.request("GET", server.url("/r1"), follow_redirects=True)
    assert response.content == b"end"
    server.seen.clear()
    with pytest.raises(FetchFailed, match="more than 3"):
        await client.request("GET", server.url("/r0"), follow_redirects=True)
    assert [seen.path for seen in server.seen] == ["/r0", "/r1", "/r2", "/r3"]


# --- size cap, errors --------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_over_cap(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient, chunked: bool
) -> None:
    server = servers("127.0.0.2")
    server.routes["/fits"] = Reply(body=b"x" * 10_000, chunked=chunked)
    server.routes["/big"] = Reply(body=b"x" * 10_001, chunked=chunked)
    client = guarded(httpx_client, FetchPolicy(max_bytes=10_000, allow_private=True))
    assert len((await client.request("GET", server.url("/fits"))).content) == 10_000
    with pytest.raises(ResponseTooLarge, match="more than 10000 bytes"):
        await client.request("GET", server.url("/big"))


async def test_declared_length_over_cap_refused_before_reading(
    servers: Callable[..., Server], httpx_client: httpx.AsyncClient
) -> None:
    # The server promises a gigabyte and hangs up after a few bytes: reading the body
    # would fail as a broken connection, so only an early check gives ResponseTooLarge.
    server = servers("127.0.0.2")
    server.routes["/"] = Reply(body=b"tiny", declared_length=10**9)
    with pytest.raises(ResponseTooLarge):
        await guarded(httpx_client).request("GET", server.url("/"))


async def test_connection_refused(httpx_client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchFailed, match="could not be fetched"):
        await guarded(httpx_client).request("GET", f"http://127.0.0.2:{port}/")


async def test_timeout(servers: Callable[..., Server]) -> None:
    server = servers("127.0.0.2")
    server.routes["/slow"] = Reply(hang=True)
    async with create_http_client(HttpClientOptions("https://t.example", 0.2)) as client:
        with pytest.raises(FetchFailed, match="timed out"):
            await guarded(client).request("GET", server.url("/slow"))


async def test_unresolvable_host(httpx_client: httpx.AsyncClient) -> None:
    with pytest.raises(FetchFailed, match="could not be resolved"):
        await guarded(httpx_client, LAB, FakeDNS({})).request("GET", "https://nowhere.example/")


# --- get_json ----------------------------------------------------------------------------


async def test_get_json(servers: Callable[..., Server], httpx_client: httpx.AsyncClient) -> None:
    server = servers("127.0.0.2")
    server.routes["/old"] = redirect(308, "/actor")
    server.routes["/actor"] = Reply(body=b'{"type": "Person"}')
    url, document = await guarded(httpx_client).get_json(server.url("/old"))
    assert (url, document) == (server.url("/actor"), {"type": "Person"})
    assert server.seen[1].headers["accept"].startswith("application/activity+json")


@pytest.mark.parametrize(
    ("reply", "message", "status"),
    [
        (Reply(body=b"<html>hello</html>"), "not answer with JSON", 200),
        (Reply(body=b"\xff\xfe"), "not answer with JSON", 200),
        (Reply(body=b'[{"type": "Person"}]'), "not an object", 200),
        (Reply(404, body=b'{"error": "gone"}'), "status 404", 404),
    ],
)
async def test_get_json_failures(
    servers: Callable[..., Server],
    httpx_client: httpx.AsyncClient,
    reply: Reply,
    message: str,
    status: int,
) -> None:
    server = servers("127.0.0.2")
    server.routes["/thing"] = reply
    with pytest.raises(FetchFailed, match=message) as caught:
        await guarded(httpx_client).get_json(server.url("/thing"))
    assert caught.value.status == status


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A self-signed certificate for fed.example only (no IP address in it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fed.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("fed.example")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem", cert_pem.decode()


async def test_tls_verifies_the_real_name_when_pinned(
    servers: Callable[..., Server], certificate: tuple[Path, Path, str]
) -> None:
    cert_file, key_file, cert_pem = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    server = servers("127.0.0.2", server_context)
    server.routes["/"] = Reply(body=b"over tls")
    dns = FakeDNS({"fed.example": [["127.0.0.2"]], "other.example": [["127.0.0.2"]]})
    trust = ssl.create_default_context(cadata=cert_pem)
    async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
        fetch = guarded(client, LAB, dns)
        # connected to 127.0.0.2, but the certificate was checked for fed.example
        response = await fetch.request("GET", server.url("/", host="fed.example"))
        assert response.content == b"over tls"
        assert server.sni == ["fed.example"]
        assert server.seen[0].headers["host"] == f"fed.example:{server.port}"
        # another name on the same address gets its own handshake, which fails, instead
        # of riding on the pooled connection verified for fed.example
        with pytest.raises(FetchFailed, match="could not be fetched"):
            await fetch.request("GET", server.url("/", host="other.example"))
    assert server.sni == ["fed.example", "other.example"]
    assert len(server.seen) == 1
