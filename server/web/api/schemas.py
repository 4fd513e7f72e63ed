"""What the catalogue API answers, as typed models (they also make the OpenAPI document)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class Error(BaseModel):
    error: str
    reason: str
    status: int


class ArtistRef(BaseModel):
    name: str
    display_name: str
    url: str


class Artist(BaseModel):
    name: str
    display_name: str
    kind: str = Field(description="solo or band")
    summary: str
    url: str
    api_url: str
    releases_url: str
    top_tracks_url: str
    featured: bool


class Label(BaseModel):
    name: str
    display_name: str
    summary: str
    url: str
    artists: list[ArtistRef]


class TrackOrigin(BaseModel):
    kind: str = Field(description="local (this instance's) or partner (a partner instance's)")
    host: str = Field(description="the host of the instance the track comes from")
    actor: str = Field(description="that instance's actor, which is owed for plays")


class Track(BaseModel):
    id: int = Field(description="one id space for every track here, local or a partner's")
    title: str
    artist: ArtistRef
    artist_credit: str
    release_id: int | None = Field(description="the release here; null for a partner's track")
    release_title: str
    position: int
    disc: int
    duration_ms: int
    isrc: str | None
    genre: str
    license: str
    price_model: str = Field(description="stream2own or free")
    status: str = Field(description="processing, ready or failed")
    failure_reason: str | None = None
    url: str = Field(description="its page (a partner's track: on the partner's server)")
    api_url: str
    preview_url: str | None = Field(description="45-second preview, public; null until ready")
    stream_url: str | None = Field(
        description="the full track (Opus; add ?format=mp3 for MP3; a partner's track is "
        "MP3): free tracks, owned tracks and the artist's own; others through a play session"
    )
    origin: TrackOrigin
    listener: ListenerPrice | None = Field(
        default=None, description="for a signed-in listener: the next price and plays until owned"
    )


class ListenerPrice(BaseModel):
    next_play_price: int = Field(description="tokens the next play costs this listener")
    plays_until_owned: int
    owned: bool


class ReleaseSummary(BaseModel):
    id: int
    title: str
    kind: str
    artist: ArtistRef
    release_date: date | None
    published_at: datetime | None
    visibility: str
    tags: list[str]
    cover_url: str | None
    url: str
    api_url: str


class Release(ReleaseSummary):
    description: str
    license: str
    label: str | None
    tracks: list[Track]


class Page(BaseModel):
    total: int
    limit: int
    offset: int
    next: str | None


class ReleasePage(Page):
    items: list[ReleaseSummary]


class TrackPage(Page):
    items: list[Track]


class ArtistPage(Page):
    items: list[Artist]


class SearchHit(BaseModel):
    kind: str
    rank: float
    artist: Artist | None = None
    label: Label | None = None
    release: ReleaseSummary | None = None
    track: Track | None = None


class SearchResults(BaseModel):
    query: str
    items: list[SearchHit]
    limit: int
    offset: int
    next: str | None


class Upload(BaseModel):
    track: Track
    release: ReleaseSummary


class PageQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=100_000)


class ReleaseQuery(PageQuery):
    tag: str | None = Field(default=None, max_length=64)


class SearchQuery(PageQuery):
    q: str = Field(min_length=1, max_length=200)
    kind: str | None = Field(default=None, pattern="^(artist|label|release|track)$")


class ReleaseChange(BaseModel):
    """What an artist may change on a release; omitted fields stay as they are."""

    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=20)
