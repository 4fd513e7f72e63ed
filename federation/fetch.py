"""The guarded client every remote request goes through (docs/architecture.md#federation).

A remote server chooses the URLs we fetch (actor ids, key ids, inboxes, redirects), so each
hop is checked before anything is sent:

* the URL must pass :func:`federation.urls.checked_url` (the one rule for remote URLs), and
  its scheme be https; plain http only on a lab network (``allow_private``) or when the
  host resolves into ``allowed_networks``;
* the host is resolved once, and every address it resolves to must be public (or allowed);
* the request is then sent to the address that was checked, not to the name, so a DNS
  answer that changes between check and connect (DNS rebinding) cannot steer us to a private
  address. The URL carries the IP, the ``Host`` header carries the original ``host[:port]``
  and the ``sni_hostname`` request extension makes httpcore send SNI for, and verify the
  certificate against, the real name;
* redirects are followed by us, not by httpx, so every hop is checked and signed again;
* the body is streamed and reading stops at ``max_bytes``.

httpcore pools connections by scheme, IP and port. A pooled TLS connection whose certificate
was verified for one name would be reused for another name on the same IP without any
verification, so pinned https requests say ``Connection: close`` and never share a
connection.

Every failure is a ``FetchError`` with a plain-words message; no httpx exception escapes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from federation import safejson, urls

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
Signer = Callable[[str, str, bytes | None], Mapping[str, str]]

ACTIVITY_JSON = (
    "application/activity+json, "
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "digest")
_CREDENTIAL_HEADERS = ("authorization", "cookie")

# Never public, whatever the running Python's ipaddress tables say.
_NOT_PUBLIC: tuple[Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, and the broadcast address
        "64:ff9b:1::/48",  # local-use NAT64
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class FetchError(Exception):
    """A remote request that did not give a usable answer; the message says why."""


class AddressRefused(FetchError):
    """The URL's scheme or the address its host resolves to is not allowed."""


class ResponseTooLarge(FetchError):
    """The answer is larger than the policy's ``max_bytes``."""


class FetchFailed(FetchError):
    """A network error, timeout, too many redirects, or an unusable answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 3
    allowed_networks: tuple[Network, ...] = ()
    # The whole request, redirects and body included: httpx's timeouts are per step, so
    # a server trickling bytes could otherwise hold a fetch for ever.
    deadline_seconds: float = 30.0


@dataclass(frozen=True)
class FetchResponse:
    url: str
    status: int
    headers: httpx.Headers
    content: bytes


def is_public_address(ip: IPAddress) -> bool:
    """True for an address on the public internet; IPv4 embedded in IPv6 (mapped, 6to4,
    NAT64) is judged by the IPv4 address inside."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_public_address(ip.sixtofour)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.is_site_local:
            return False
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        return False
    return not any(ip in net for net in _NOT_PUBLIC)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedClient:
    def __init__(
        self, client: httpx.AsyncClient, policy: FetchPolicy, resolver: Resolver | None = None
    ) -> None:
        self._client = client
        self._policy = policy
        self._resolve = resolver or _getaddrinfo

    def with_policy(self, policy: FetchPolicy) -> GuardedClient:
        """The same client and resolver under another policy (a larger size cap for audio)."""
        return GuardedClient(self._client, policy, self._resolve)

    @property
    def policy(self) -> FetchPolicy:
        return self._policy

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        sign: Signer | None = None,
        follow_redirects: bool = False,
        deadline_seconds: float | None = None,
    ) -> FetchResponse:
        """One request through the guard, within the policy's deadline (or the one given)."""
        deadline = deadline_seconds or self._policy.deadline_seconds
        try:
            async with asyncio.timeout(deadline):
                return await self._request(method, url, headers, content, sign, follow_redirects)
        except TimeoutError:
            raise FetchFailed(f"{url} took longer than {deadline:g} s") from None

    async def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        sign: Signer | None,
        follow_redirects: bool,
    ) -> FetchResponse:
        _acceptable(url)
        try:
            current = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise AddressRefused(f"{url!r} is not a valid URL: {exc}") from exc
        method = method.upper()
        hop_headers = httpx.Headers(headers)
        redirects = 0
        while True:
            response = await self._hop(
                method, current, hop_headers, content, sign, follow_redirects
            )
            location = response.headers.get("location")
            if not follow_redirects or response.status not in _REDIRECTS or location is None:
                return response
            if redirects >= self._policy.max_redirects:
                raise FetchFailed(
                    f"{url} redirected more than {self._policy.max_redirects} times",
                    status=response.status,
                )
            redirects += 1
            try:
                target = current.join(location)
            except httpx.InvalidURL as exc:
                raise FetchFailed(f"{current} redirected to an invalid URL {location!r}") from exc
            if _becomes_get(response.status, method):
                method, content = "GET", None
                for name in _BODY_HEADERS:
                    hop_headers.pop(name, None)
            if _origin(target) != _origin(current):
                for name in _CREDENTIAL_HEADERS:
                    hop_headers.pop(name, None)
            current = target

    async def get_json(
        self, url: str, *, sign: Signer | None = None, accept: str = ACTIVITY_JSON
    ) -> tuple[str, dict[str, Any]]:
        """GET a JSON object, following redirects; answers the final URL and the object."""
        response = await self.request(
            "GET", url, headers={"Accept": accept}, sign=sign, follow_redirects=True
        )
        if not 200 <= response.status < 300:
            raise FetchFailed(
                f"{response.url} answered with status {response.status}", status=response.status
            )
        try:
            document = safejson.loads(response.content)
        except safejson.UnsafeJSON as exc:
            raise FetchFailed(
                f"{response.url} did not answer with JSON within our limits: {exc}",
                status=response.status,
            ) from exc
        if not isinstance(document, dict):
            raise FetchFailed(
                f"{response.url} answered with JSON that is not an object", status=response.status
            )
        return response.url, document

    async def _hop(
        self,
        method: str,
        url: httpx.URL,
        headers: httpx.Headers,
        content: bytes | None,
        sign: Signer | None,
        follow_redirects: bool,
    ) -> FetchResponse:
        """Check one URL, send one request to the checked address, read the answer."""
        address, pinned = await self._checked_address(url)
        host = url.raw_host.decode("ascii")
        request_headers = httpx.Headers(headers)
        if sign is not None:
            request_headers.update(sign(method, str(url), content))
        request_headers["Host"] = url.netloc.decode("ascii")
        extensions: dict[str, Any] = {}
        if pinned:
            extensions["sni_hostname"] = host
            if url.scheme == "https":
                request_headers["Connection"] = "close"
        request = self._client.build_request(
            method,
            url.copy_with(host=address),
            headers=request_headers,
            content=content,
            extensions=extensions,
        )
        request.headers.pop("Cookie", None)  # the shared jar is keyed by IP, not by host
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                redirect = (
                    follow_redirects
                    and response.status_code in _REDIRECTS
                    and "location" in response.headers
                )
                body = b"" if redirect else await self._read_capped(response, url)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise FetchFailed(f"{url} timed out ({type(exc).__name__})") from exc
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise FetchFailed(f"{url} could not be fetched: {exc or type(exc).__name__}") from exc
        return FetchResponse(str(url), response.status_code, response.headers, body)

    async def _checked_address(self, url: httpx.URL) -> tuple[str, bool]:
        """The address to connect to for ``url``, after checking scheme and addresses, and
        whether it came from resolving a name (rather than being an IP literal)."""
        _acceptable(str(url))
        host = url.raw_host.decode("ascii")
        try:
            addresses, pinned = [ipaddress.ip_address(host)], False
        except ValueError:
            addresses = await self._resolved(host, url.port or _default_port(url.scheme))
            pinned = True
        for ip in addresses:
            if not self._allowed(ip):
                raise AddressRefused(
                    f"{host} is at {ip}, a private, local or reserved address; refused"
                )
        if (
            url.scheme == "http"
            and not self._policy.allow_private
            and not all(self._in_allowed_network(ip) for ip in addresses)
        ):
            raise AddressRefused(f"{url}: plain http is refused outside lab networks; use https")
        return str(addresses[0]), pinned

    async def _resolved(self, host: str, port: int) -> list[IPAddress]:
        try:
            answers = await self._resolve(host, port)
        except OSError as exc:
            raise FetchFailed(f"{host} could not be resolved: {exc}") from exc
        if not answers:
            raise FetchFailed(f"{host} did not resolve to any address")
        addresses: list[IPAddress] = []
        for answer in dict.fromkeys(answers):
            try:
                addresses.append(ipaddress.ip_address(answer))
            except ValueError as exc:
                raise AddressRefused(f"{host} resolved to {answer!r}, not an address") from exc
        return addresses

    def _allowed(self, ip: IPAddress) -> bool:
        return self._policy.allow_private or is_public_address(ip) or self._in_allowed_network(ip)

    def _in_allowed_network(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._policy.allowed_networks)

    async def _read_capped(self, response: httpx.Response, url: httpx.URL) -> bytes:
        cap = self._policy.max_bytes
        too_large = f"{url} answered with more than {cap} bytes"
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise ResponseTooLarge(too_large)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ResponseTooLarge(too_large)
            chunks.append(chunk)
        return b"".join(chunks)


def _acceptable(url: str) -> None:
    """The one URL rule (:func:`federation.urls.checked_url`), before anything is resolved;
    whether plain http may be used is decided per address by the caller."""
    try:
        urls.checked_url(url, allow_http=True)
    except urls.UnacceptableURL as exc:
        raise AddressRefused(str(exc)) from None


def _becomes_get(status: int, method: str) -> bool:
    """Whether a redirect with ``status`` turns ``method`` into a GET without a body."""
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or _default_port(url.scheme)
