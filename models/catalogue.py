"""The catalogue: artists, labels, releases, tracks, their audio files, tags, and what
listeners keep (favourites, playlists)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, str_enum, utcnow


class ArtistKind(StrEnum):
    SOLO = "solo"  # ActivityStreams Person
    BAND = "band"  # ActivityStreams Group


class ReleaseKind(StrEnum):
    ALBUM = "album"
    EP = "ep"
    SINGLE = "single"
    COMPILATION = "compilation"


class Visibility(StrEnum):
    DRAFT = "draft"
    PUBLIC = "public"


class PriceModel(StrEnum):
    STREAM_TO_OWN = "stream2own"
    FREE = "free"


class TrackStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class FileRole(StrEnum):
    ORIGINAL = "original"
    STREAM_OPUS = "stream_opus"
    STREAM_MP3 = "stream_mp3"
    PREVIEW_MP3 = "preview_mp3"
    COVER = "cover"
    # A release's sampler: excerpts of its tracks' previews in one MP3 (release_id set).
    SAMPLER = "sampler"


label_artists = Table(
    "label_artists",
    Base.metadata,
    Column("label_id", BigIntId, ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
    Column("artist_id", BigIntId, ForeignKey("artists.id", ondelete="CASCADE"), primary_key=True),
)

release_tags = Table(
    "release_tags",
    Base.metadata,
    Column("release_id", BigIntId, ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", BigIntId, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_release_tags_tag_id", "tag_id"),
)


class Artist(Base):
    __tablename__ = "artists"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(30), ForeignKey("handles.name"), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ArtistKind] = mapped_column(str_enum(ArtistKind, 16), default=ArtistKind.SOLO)
    summary: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    # Follows wait for the artist's approval instead of being accepted at once.
    approves_followers: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    releases: Mapped[list[Release]] = relationship(back_populates="artist", lazy="raise")


class Label(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(30), ForeignKey("handles.name"), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    artists: Mapped[list[Artist]] = relationship(secondary=label_artists, lazy="raise")


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # lower-case, accents kept, spaces as hyphens: "post-punk", "musique-concrète"
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (
        Index("ix_releases_public_new", "visibility", "published_at"),
        Index("ix_releases_artist_title", "artist_id", "title"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    artist_id: Mapped[int] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"))
    label_id: Mapped[int | None] = mapped_column(
        ForeignKey("labels.id", ondelete="SET NULL"), default=None, index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(80))
    kind: Mapped[ReleaseKind] = mapped_column(str_enum(ReleaseKind, 16), default=ReleaseKind.ALBUM)
    release_date: Mapped[date | None] = mapped_column(Date, default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    license: Mapped[str] = mapped_column(String(64), default="all-rights-reserved")
    visibility: Mapped[Visibility] = mapped_column(
        str_enum(Visibility, 16), default=Visibility.DRAFT
    )
    staff_pick: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    artist: Mapped[Artist] = relationship(back_populates="releases", lazy="raise")
    tracks: Mapped[list[Track]] = relationship(
        back_populates="release", order_by="[Track.disc, Track.position]", lazy="raise",
        foreign_keys="Track.release_id",
    )  # fmt: skip
    tags: Mapped[list[Tag]] = relationship(secondary=release_tags, lazy="raise")


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (Index("ix_tracks_release_order", "release_id", "disc", "position"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    artist_id: Mapped[int] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"), index=True)
    # Who the tags credit when that differs from the artist (guests, compilations).
    artist_credit: Mapped[str] = mapped_column(String(300), default="")
    title: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=1)
    disc: Mapped[int] = mapped_column(Integer, default=1)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    isrc: Mapped[str | None] = mapped_column(String(12), default=None)
    genre: Mapped[str] = mapped_column(String(100), default="")
    license: Mapped[str | None] = mapped_column(String(64), default=None)  # None: the release's
    price_model: Mapped[PriceModel] = mapped_column(
        str_enum(PriceModel, 16), default=PriceModel.STREAM_TO_OWN
    )
    status: Mapped[TrackStatus] = mapped_column(
        str_enum(TrackStatus, 16), default=TrackStatus.PROCESSING
    )
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    release: Mapped[Release] = relationship(
        back_populates="tracks", lazy="raise", foreign_keys=[release_id]
    )
    artist: Mapped[Artist] = relationship(lazy="raise")
    files: Mapped[list[MediaFile]] = relationship(
        back_populates="track", lazy="raise", foreign_keys="MediaFile.track_id"
    )


class MediaFile(Base):
    """A stored file: a track's original or one of its renditions, or a release's cover
    or sampler."""

    __tablename__ = "media_files"
    __table_args__ = (
        UniqueConstraint("track_id", "role"),
        UniqueConstraint("release_id", "role"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    track_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), default=None, index=True
    )
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), default=None, index=True
    )
    role: Mapped[FileRole] = mapped_column(str_enum(FileRole, 16))
    # Where the storage backend keeps it, relative: "originals/ab/ab12….flac".
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    mime_type: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    bitrate: Mapped[int | None] = mapped_column(Integer, default=None)  # bits per second
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # For a cover: its BlurHash (a placeholder sent with the release post), made once.
    blurhash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # For streaming renditions: which byte holds which moment (models.stream_gate), made
    # from the file on first use, so that the free part of a paid track can be enforced.
    timeline: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)

    track: Mapped[Track | None] = relationship(
        back_populates="files", lazy="raise", foreign_keys=[track_id]
    )


class Favourite(Base):
    __tablename__ = "favourites"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Playlist(Base):
    __tablename__ = "playlists"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[Visibility] = mapped_column(
        str_enum(Visibility, 16), default=Visibility.DRAFT
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the last change of its title, visibility or tracks (None: none since it was made);
    # apps of the Subsonic API sync a playlist again when this moves
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PlaylistItem(Base):
    __tablename__ = "playlist_items"

    playlist_id: Mapped[int] = mapped_column(
        ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
