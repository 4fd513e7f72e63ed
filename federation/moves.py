"""Account moves, checked as Mastodon checks them (pure; docs/architecture.md#federation).

A ``Move`` says that its actor (the origin) now lives at its ``target``. It is believed
only when both accounts say so: the target's ``alsoKnownAs`` lists the origin (Mastodon's
own check, app/lib/activitypub/activity/move.rb) and the origin's ``movedTo`` names the
target. Both documents are fetched by the caller, not taken from the activity.
"""

from __future__ import annotations

from typing import Any

from federation.parse import as_list, id_of


def also_known_as(actor: dict[str, Any]) -> tuple[str, ...]:
    """The ids in an actor's ``alsoKnownAs`` (one or many, ids or embedded)."""
    return tuple(uri for value in as_list(actor.get("alsoKnownAs")) if (uri := id_of(value)))


def moved_to(actor: dict[str, Any]) -> str | None:
    """The id in an actor's ``movedTo``, or None."""
    return id_of(actor.get("movedTo"))


def move_refusal(
    origin: str, origin_actor: dict[str, Any], target: str, target_actor: dict[str, Any]
) -> str | None:
    """Why a move from ``origin`` to ``target`` is not believed, or None when both
    fetched actor documents confirm it."""
    if origin == target:
        return "the Move's target is its own actor"
    if origin not in also_known_as(target_actor):
        return f"{target} does not list {origin} in alsoKnownAs"
    if moved_to(origin_actor) != target:
        return f"{origin} does not name {target} in movedTo"
    return None
