"""Every origin a track here can have: this instance's own, and its partners'."""

from __future__ import annotations

from server.runtime.resources import Resources
from server.services.activitypub.context import federation_of
from server.services.local_plays import LOCAL
from server.services.plays import Origins
from server.services.remote_plays import Partner


def origins(resources: Resources) -> Origins:
    """Local first; the ids never overlap, so the order only saves a query."""
    return (LOCAL, Partner(federation_of(resources)))
