"""What a listener keeps of the catalogue beyond favourites and playlists
(``models.catalogue``): albums and artists they starred, the play queue an app saved
so another app can take it up, and what their apps say they are playing
(docs/architecture.md, "Where things live"; docs/decisions.md).

Favourites of tracks stay ``favourites`` (the web's and the Subsonic API's alike); these
tables hold what only the Subsonic API names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, utcnow

MAX_QUEUE = 1000  # tracks one saved play queue holds


class AlbumStar(Base):
    """A listener starred a release (Subsonic's album)."""

    __tablename__ = "album_stars"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ArtistStar(Base):
    """A listener starred an artist of this instance."""

    __tablename__ = "artist_stars"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    artist_id: Mapped[int] = mapped_column(
        ForeignKey("artists.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlayQueue(Base):
    """The one play queue a listener saved last: track ids in order (ours or partners':
    one id space, so no foreign key; a track gone since is left out when read), the one
    playing, how far into it, and which app saved it."""

    __tablename__ = "play_queues"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    track_ids: Mapped[list[Any]] = mapped_column(JSONDocument, default=list)
    current_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    position_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(100), default="")


class NowPlaying(Base):
    """What an app last said its listener started playing (Subsonic's ``scrobble`` with
    ``submission=false``), one row per listener and app; the id is the ``playerId``."""

    __tablename__ = "now_playing"
    __table_args__ = (UniqueConstraint("user_id", "player", name="uq_now_playing_user_player"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    player: Mapped[str] = mapped_column(String(100))  # the app's name, its ``c`` parameter
    track_id: Mapped[int] = mapped_column(BigInteger)  # ours or a partner's
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
