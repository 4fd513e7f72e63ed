"""Names of accounts and profiles: one namespace for users, artists and labels.

A name is what goes into ``acct:name@host`` and into URLs, so it is kept to lower-case
ASCII letters, digits and underscores, 1 to 30 characters, not starting with a digit-only
form that could be mistaken for an id, and not one of the words the site uses itself.
"""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,30}$")

RESERVED_NAMES = frozenset(
    {
        "about", "account", "accounts", "activity", "actor", "admin", "administrator",
        "api", "app", "artist", "artists", "auth", "collections", "dashboard", "explore",
        "favicon", "featured", "followers", "following", "healthz", "help", "hub", "inbox",
        "instance", "label", "labels", "library", "login", "logout", "me", "new", "nodeinfo",
        "oauth", "outbox", "playfair", "playlists", "privacy", "public", "release",
        "releases", "root", "search", "settings", "signup", "static", "statements",
        "support", "system", "terms", "track", "tracks", "user", "users", "wallet",
        "webfinger", "well_known", "www",
    }
)  # fmt: skip


class InvalidName(ValueError):
    """The name cannot be used; the message says why."""


def normalise_name(name: str) -> str:
    """Check a proposed name and return its canonical (lower-case) form."""
    candidate = name.strip().lower()
    if not NAME_PATTERN.match(candidate):
        raise InvalidName("a name is 1 to 30 characters: letters a-z, digits and underscores")
    if candidate.isdigit():
        raise InvalidName("a name cannot be only digits")
    if candidate in RESERVED_NAMES:
        raise InvalidName(f"the name {candidate!r} is reserved")
    return candidate
