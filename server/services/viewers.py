"""Who is asking, as the domain sees it: an account, its role and what it may do.

The web floor makes a ``Viewer`` from a bearer token or a browser session
(``server.web.auth``); services only read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.tokens import Scope
from models.users import Role


@dataclass(frozen=True)
class Viewer:
    user_id: int
    username: str
    role: Role
    scopes: frozenset[Scope]
    via_session: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN and Scope.ADMIN in self.scopes

    def has(self, scope: Scope) -> bool:
        if self.is_admin:
            return True
        return scope is not Scope.ADMIN and scope in self.scopes


def session_scopes(role: Role) -> frozenset[Scope]:
    """What a browser session of an account with ``role`` may do."""
    return frozenset(Scope) if role is Role.ADMIN else frozenset(Scope) - {Scope.ADMIN}
