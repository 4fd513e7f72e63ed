"""Who we talk to: domain blocks, allow-list mode, and blocked actors."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.federation import ActorBlock, DomainPolicy, DomainPolicyKind
from server.runtime.config import FederationMode


def _parents(domain: str) -> list[str]:
    """example.org blocks social.example.org too."""
    parts = domain.lower().strip(".").split(".")
    return [".".join(parts[index:]) for index in range(len(parts) - 1)] or [domain]


async def domain_refusal(session: AsyncSession, domain: str, mode: FederationMode) -> str | None:
    """Why this domain may not talk to us, or None when it may."""
    rows = (
        await session.scalars(select(DomainPolicy).where(DomainPolicy.domain.in_(_parents(domain))))
    ).all()
    if any(row.policy is DomainPolicyKind.BLOCK for row in rows):
        return f"the domain {domain} is blocked here"
    if mode is FederationMode.ALLOWLIST and not any(
        row.policy is DomainPolicyKind.ALLOW for row in rows
    ):
        return f"this instance federates only with allowed domains, and {domain} is not one"
    return None


async def actor_blocked(session: AsyncSession, actor_uri: str) -> bool:
    return (
        await session.scalar(select(ActorBlock.id).where(ActorBlock.actor_uri == actor_uri))
    ) is not None
