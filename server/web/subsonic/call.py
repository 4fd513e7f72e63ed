"""What a Subsonic method's handler gets (:class:`Call`) and gives (a :class:`Node` whose
children go into the envelope, or a response of its own for audio and pictures), and how
methods are declared (:class:`Method`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from quart import Response

from models.tokens import Scope
from server.runtime.resources import Resources
from server.services.viewers import Viewer
from subsonic.envelope import Node
from subsonic.errors import Code, SubsonicError
from subsonic.params import Params


@dataclass(frozen=True)
class Call:
    params: Params
    viewer: Viewer | None  # None only for a public method
    resources: Resources
    client: str  # the ``c`` parameter: the app's name, as it gives it

    @property
    def listener(self) -> Viewer:
        """Whose credentials these are."""
        if self.viewer is None:
            raise SubsonicError(Code.WRONG_CREDENTIALS, "this method needs credentials")
        return self.viewer

    def need(self, scope: Scope) -> None:
        """Code 50 unless the credentials carry ``scope`` (an ``apiKey`` may be read-only)."""
        if not self.listener.has(scope):
            raise SubsonicError(
                Code.NOT_AUTHORIZED, f"these credentials lack the {scope.value!r} scope"
            )


Handler = Callable[[Call], Awaitable[Node | Response]]


@dataclass(frozen=True)
class Method:
    """A Subsonic method: its handler and the scope the credentials need for it."""

    handler: Handler
    scope: Scope = Scope.READ
    public: bool = False  # answered without credentials


Methods = dict[str, Method]
