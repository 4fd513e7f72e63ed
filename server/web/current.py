"""The resources of the app that is serving this request (opened in ``before_serving``)."""

from __future__ import annotations

from quart import Quart

from server.runtime.resources import Resources

EXTENSION_KEY = "playfair"


def resources_of(app: Quart) -> Resources:
    """The app's open resources; only valid while it is serving."""
    resources: Resources | None = app.extensions.get(EXTENSION_KEY)
    if resources is None:
        raise RuntimeError("the app is not serving: resources are opened in before_serving")
    return resources
