"""Subsonic methods: browse (being built)."""

from __future__ import annotations

from server.web.subsonic.call import Methods

METHODS: Methods = {}
