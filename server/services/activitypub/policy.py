"""Who we talk to: domain blocks, allow-list mode, and blocked actors."""

from __future__ import annotations

from sqlalchemy import Exists, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.federation import ActorBlock, DomainPolicy, DomainPolicyKind
from server.runtime.config import FederationMode


def _parents(domain: str) -> list[str]:
    """example.org blocks social.example.org too."""
    parts = domain.lower().strip(".").split(".")
    return [".".join(parts[index:]) for index in range(len(parts) - 1)] or [domain]


async def refusal(
    session: AsyncSession, domain: str, actor_uri: str, mode: FederationMode
) -> str | None:
    """Why this actor, on this domain, may not talk to us, or None when it may: the
    domain's block or allow rows (its parents' too) and the actor's block, in one
    statement."""
    parents = _parents(domain)

    def policy(kind: DomainPolicyKind) -> Exists:
        return exists().where(DomainPolicy.domain.in_(parents), DomainPolicy.policy == kind)

    blocked, allowed, actor_blocked = (
        await session.execute(
            select(
                policy(DomainPolicyKind.BLOCK),
                policy(DomainPolicyKind.ALLOW),
                exists().where(ActorBlock.actor_uri == actor_uri),
            )
        )
    ).one()
    if blocked:
        return f"the domain {domain} is blocked here"
    if mode is FederationMode.ALLOWLIST and not allowed:
        return f"this instance federates only with allowed domains, and {domain} is not one"
    if actor_blocked:
        return "the actor is blocked here"
    return None
