"""The Subsonic / OpenSubsonic API at ``/rest/``: the routes (``routes``), credentials
(``auth``), and one module of methods per area (``system``, ``browse``, ``library``,
``playing``); the protocol's values are in the top-level ``subsonic`` package."""

from server.web.subsonic.routes import subsonic

__all__ = ["subsonic"]
