"""What federation code needs from a running process, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from federation.fetch import GuardedClient, Signer
from federation.keys import InstanceKeys, KeyCache
from federation.signatures import sign_request
from server.runtime.config import FederationSettings
from server.runtime.resources import Resources


@dataclass(frozen=True)
class Federation:
    base_url: str
    settings: FederationSettings
    sessionmaker: async_sessionmaker[AsyncSession]  # units of work that write
    read_sessionmaker: async_sessionmaker[AsyncSession]  # and those that only read
    fetcher: GuardedClient
    keys: InstanceKeys
    secret: str
    key_cache: KeyCache
    artist_share_bp: int = 7000  # the money settings' share, for royalty bookings

    @property
    def instance_actor(self) -> str:
        return f"{self.base_url}/actor"

    @property
    def instance_key_id(self) -> str:
        return f"{self.instance_actor}#{self.keys.rsa_name}"

    def instance_signer(self) -> Signer:
        """Signs fetches with the instance actor, so servers in secure mode answer."""

        def sign(method: str, url: str, body: bytes | None) -> Mapping[str, str]:
            return sign_request(method, url, body, self.instance_key_id, self.keys.rsa)

        return sign


def federation_of(resources: Resources) -> Federation:
    return Federation(
        resources.settings.instance.base_url,
        resources.settings.federation,
        resources.sessionmaker,
        resources.read_sessionmaker,
        resources.fetcher,
        resources.keys,
        resources.secret,
        resources.key_cache,
        resources.settings.money.artist_share_bp,
    )
