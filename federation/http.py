"""The one outgoing HTTP client: timeouts, a user agent that names the instance, no
automatic redirects (callers that follow them re-check each hop). The address guard and
request signing arrive with the federation issue and wrap this client."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

SOFTWARE = "playfair"
VERSION = "0.1.0"


@dataclass(frozen=True)
class HttpClientOptions:
    base_url: str
    timeout_seconds: float = 10.0
    max_connections: int = 50
    # Idle connections kept for reuse. httpcore checks every idle connection of the pool
    # (a socket call each) whenever a request starts or ends; a fan-out to a thousand
    # hosts left the pool full of idle connections to hosts it was done with, and those
    # checks were 43 % of the worker's time (bench/RESULTS.md, 2026-12-04).
    max_keepalive_connections: int = 16


def user_agent(base_url: str) -> str:
    return f"{SOFTWARE}/{VERSION} (+{base_url}/)"


def create_http_client(options: HttpClientOptions) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(options.timeout_seconds),
        limits=httpx.Limits(
            max_connections=options.max_connections,
            max_keepalive_connections=options.max_keepalive_connections,
        ),
        headers={"User-Agent": user_agent(options.base_url)},
        follow_redirects=False,
        trust_env=False,
    )
