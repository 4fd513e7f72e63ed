"""How a domain operation says no, without knowing about HTTP requests.

``Refused`` carries the status that fits an HTTP answer; the web floor turns it into the
same JSON or page as any other client error (``server.web.errors``).
"""

from __future__ import annotations


class Refused(Exception):
    """The operation was refused; ``status`` is the HTTP status that fits (4xx)."""

    status = 409

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFoundError(Refused):
    """What was asked for does not exist (for this viewer)."""

    status = 404
