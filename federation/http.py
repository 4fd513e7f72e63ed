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


def user_agent(base_url: str) -> str:
    return f"{SOFTWARE}/{VERSION} (+{base_url}/)"


def create_http_client(options: HttpClientOptions) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(options.timeout_seconds),
        limits=httpx.Limits(max_connections=options.max_connections),
        headers={"User-Agent": user_agent(options.base_url)},
        follow_redirects=False,
        trust_env=False,
    )
