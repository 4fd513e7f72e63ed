"""What makes a local actor look like an account elsewhere: its avatar and header
images, whether search may find it, its links, and the accounts it moved from or to
(docs/architecture.md#actor-profiles).

Rows are keyed by the actor's name: the handle of an artist, label or listener, or
:data:`INSTANCE_ACTOR` for the instance actor (``/actor``; "actor" is a reserved name,
so no handle can take it). An actor with no profile row has the defaults.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, str_enum, utcnow
from models.states import StateMachine

INSTANCE_ACTOR = "actor"
MAX_LINKS = 4  # as Mastodon's profile fields
MAX_ALIASES = 10


class ImageRole(StrEnum):
    AVATAR = "avatar"  # ActivityStreams icon: square
    HEADER = "header"  # ActivityStreams image: a wide banner


class ImageState(StrEnum):
    PENDING = "pending"  # checked and kept; the worker has not cut it to size yet
    READY = "ready"


IMAGE_STATES: StateMachine[ImageState] = StateMachine(
    "ActorImage.state",
    initial=[ImageState.PENDING],
    # the worker cuts it to size once; a ready version stays until a newer one replaces it
    transitions={ImageState.PENDING: [ImageState.READY]},
    terminal=[ImageState.READY],
)


class ActorImage(Base):
    """One version of an actor's avatar or header. The newest ready one is shown; its id
    is the version in its URL, so a new picture has a new URL and caches may keep each
    one for ever. Older versions are removed once a newer one is ready."""

    __tablename__ = "actor_images"
    __table_args__ = (Index("ix_actor_images_actor_role", "actor", "role", "state"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(30))
    role: Mapped[ImageRole] = mapped_column(str_enum(ImageRole, 16))
    state: Mapped[ImageState] = mapped_column(str_enum(ImageState, 16), default=ImageState.PENDING)
    # The re-encoded upload, until the worker has cut it; then the served file.
    source_key: Mapped[str | None] = mapped_column(String(255), default=None)
    storage_key: Mapped[str | None] = mapped_column(String(255), default=None, unique=True)
    mime_type: Mapped[str] = mapped_column(String(100), default="image/jpeg")
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    size_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ActorProfile(Base):
    """The choices an actor's owner made; without a row, the defaults of its kind."""

    __tablename__ = "actor_profiles"

    actor: Mapped[str] = mapped_column(String(30), primary_key=True)
    # Mastodon's meanings: shown in directories and suggestions; its public posts may
    # be found by full-text search.
    discoverable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    indexable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # [{"name": "Bandcamp", "url": "https://…"}], at most MAX_LINKS, http(s) only.
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    # Actor ids of the accounts that may move here (resolved when added).
    also_known_as: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    moved_to: Mapped[str | None] = mapped_column(String(2048), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
