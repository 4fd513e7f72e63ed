"""Throttling of password guesses (and of other things one address may do too often),
made so that an attacker cannot turn it against an account's owner.

Counters live in ``rate_counters`` (fixed windows of ``accounts.rate_window``); their
keys are keyed hashes, so neither addresses nor names are stored. Every attempt counts,
before the password is checked, so that parallel guesses cannot outrun the counter.

Log-in (OWASP's "device cookies"):

* A browser that signed in to an account before holds a device cookie for it
  (``pf_device``: a random id and its HMAC under the instance secret and the account
  name; only sent to ``/login``). Its attempts at that account count against that
  device alone: ``accounts.login_attempts`` per window. Nobody else's guesses, from any
  address, can use up the owner's allowance.
* Any other browser counts against its address (IPv6 by /64, which one host usually
  has whole) and against the account's allowance for browsers it does not know, both
  ``accounts.login_attempts`` per window. Guessing from many addresses therefore gets
  no further than from one; the cost is that, while such an attack lasts, the owner
  signs in only from a browser they used before.

Subsonic apps (``/rest/``, app passwords) send their credentials with every call,
often with a fresh salt each time, so counting every call would lock out plain use.
There only failures count (:func:`subsonic_failed`), against the address (as above)
with ``accounts.login_attempts`` per window and against the account name with
:data:`SUBSONIC_NAME_FACTOR` times that, and a call is refused before its credentials
are checked once either is full (:func:`subsonic_wait`). Parallel guesses can outrun
the count by as many as are in flight; app passwords are random (about 99 bits), so the
throttle is a brake on noise, not what keeps them from being guessed.

Password checks in the settings (change password, delete account) count against the
browser session that asks, ``accounts.login_attempts`` per window: a stolen session can
guess that often and no more, and cannot lock the owner's own sessions.
"""

from __future__ import annotations

import ipaddress
import secrets

from quart import current_app, request
from werkzeug.exceptions import TooManyRequests
from werkzeug.sansio.response import Response as BaseResponse

from models.accounts import attempts_so_far, count_attempt, keyed_digest
from server.runtime.net import client_address, parse_networks
from server.web.current import resources_of
from server.web.sessions import SESSION_COOKIE

DEVICE_COOKIE = "pf_device"
DEVICE_COOKIE_PATH = "/login"
DEVICES_PER_BROWSER = 5  # accounts one browser is known for (a shared family computer)
DEVICE_LIFETIME_SECONDS = 180 * 24 * 3600
# Failed Subsonic log-ins an account name takes per window, in login_attempts: above
# what one address may fail, so that one app that keeps a revoked password meets its
# own address's limit first, and a stranger needs many addresses to hold a name off.
SUBSONIC_NAME_FACTOR = 10


def client_ip() -> str:
    trusted = parse_networks(resources_of(current_app).settings.server.trusted_proxies)
    return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted)


def address_bucket(address: str) -> str:
    """What one party controls: an IPv4 address, or the /64 of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _counter_key(kind: str, value: str) -> str:
    return f"{kind}:{keyed_digest(resources_of(current_app).secret, value)[:32]}"


async def limit_attempts(kind: str, value: str, allowed: int) -> None:
    """Count an attempt of ``kind`` by ``value`` (an address, a name, a device); refuse
    it with 429 once more than ``allowed`` were made in this window."""
    resources = resources_of(current_app)
    settings = resources.settings.accounts
    key = _counter_key(kind, value)
    async with resources.sessionmaker() as session:
        count = await count_attempt(session, key, settings.rate_window)
    if count > allowed:
        raise TooManyRequests(
            "too many attempts: wait a few minutes and try again",
            retry_after=int(settings.rate_window.total_seconds()),
        )


async def limit_address(kind: str, allowed: int) -> None:
    await limit_attempts(f"{kind}:addr", address_bucket(client_ip()), allowed)


def _device_signature(secret: str, name: str, device: str) -> str:
    return keyed_digest(secret, f"device:{name}:{device}")[:32]


def _device_entries() -> list[tuple[str, str]]:
    raw = request.cookies.get(DEVICE_COOKIE, "")
    entries = []
    for entry in raw.split(":")[:DEVICES_PER_BROWSER]:
        device, _, signature = entry.partition(".")
        if device and signature:
            entries.append((device, signature))
    return entries


def known_device(name: str) -> str | None:
    """The id of this browser's device cookie for account ``name``, if it has one."""
    secret = resources_of(current_app).secret
    for device, signature in _device_entries():
        if secrets.compare_digest(signature, _device_signature(secret, name, device)):
            return device
    return None


async def limit_login(name: str) -> None:
    """Count a log-in attempt at account ``name`` (see the module text)."""
    allowed = resources_of(current_app).settings.accounts.login_attempts
    device = known_device(name)
    if device is not None:
        await limit_attempts("login:device", device, allowed)
        return
    await limit_address("login", allowed)
    await limit_attempts("login:user", name, allowed)


def remember_device(response: BaseResponse, name: str) -> None:
    """After a successful sign-in (or sign-up): this browser is known for ``name``."""
    resources = resources_of(current_app)
    if known_device(name) is not None:
        return
    device = secrets.token_hex(12)
    entry = f"{device}.{_device_signature(resources.secret, name, device)}"
    others = [f"{d}.{s}" for d, s in _device_entries()][: DEVICES_PER_BROWSER - 1]
    response.set_cookie(
        DEVICE_COOKIE, ":".join([entry, *others]), max_age=DEVICE_LIFETIME_SECONDS,
        httponly=True, secure=resources.settings.instance.base_url.startswith("https://"),
        samesite="Strict", path=DEVICE_COOKIE_PATH,
    )  # fmt: skip


async def limit_password_check() -> None:
    """Count a check of the signed-in account's password in the settings."""
    allowed = resources_of(current_app).settings.accounts.login_attempts
    await limit_attempts("password:session", request.cookies.get(SESSION_COOKIE, ""), allowed)


def _subsonic_counters(name: str) -> list[tuple[str, int]]:
    allowed = resources_of(current_app).settings.accounts.login_attempts
    return [
        (_counter_key("subsonic:addr", address_bucket(client_ip())), allowed),
        (_counter_key("subsonic:user", name), allowed * SUBSONIC_NAME_FACTOR),
    ]


async def subsonic_wait(name: str) -> int | None:
    """Seconds at most until Subsonic log-ins as ``name`` from this address are checked
    again, if too many failed in this window; None if they may be checked now."""
    resources = resources_of(current_app)
    window = resources.settings.accounts.rate_window
    async with resources.read_sessionmaker() as session:
        for key, allowed in _subsonic_counters(name):
            if await attempts_so_far(session, key, window) >= allowed:
                return int(window.total_seconds())
    return None


async def subsonic_failed(name: str) -> None:
    """Count a failed Subsonic log-in as ``name`` from this address."""
    resources = resources_of(current_app)
    window = resources.settings.accounts.rate_window
    async with resources.sessionmaker() as session:
        for key, _allowed in _subsonic_counters(name):
            await count_attempt(session, key, window)
