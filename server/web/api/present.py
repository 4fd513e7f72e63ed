"""Catalogue rows to API models (absolute URLs under instance.base_url)."""

from __future__ import annotations

from models import catalogue as m
from server.web.api import schemas as s


def artist_ref(base: str, artist: m.Artist) -> s.ArtistRef:
    return s.ArtistRef(
        name=artist.name, display_name=artist.display_name, url=f"{base}/artists/{artist.name}"
    )


def artist(base: str, row: m.Artist) -> s.Artist:
    api = f"{base}/api/v1/artists/{row.name}"
    return s.Artist(
        name=row.name,
        display_name=row.display_name,
        kind=row.kind.value,
        summary=row.summary,
        url=f"{base}/artists/{row.name}",
        api_url=api,
        releases_url=f"{api}/releases",
        top_tracks_url=f"{api}/top-tracks",
        featured=row.featured,
    )


def label(base: str, row: m.Label, artists: list[m.Artist]) -> s.Label:
    return s.Label(
        name=row.name,
        display_name=row.display_name,
        summary=row.summary,
        url=f"{base}/labels/{row.name}",
        artists=[artist_ref(base, a) for a in artists],
    )


def track(base: str, row: m.Track, release: m.Release, owner: m.Artist) -> s.Track:
    ready = row.status is m.TrackStatus.READY
    return s.Track(
        id=row.id,
        title=row.title,
        artist=artist_ref(base, owner),
        artist_credit=row.artist_credit,
        release_id=release.id,
        release_title=release.title,
        position=row.position,
        disc=row.disc,
        duration_ms=row.duration_ms,
        isrc=row.isrc,
        genre=row.genre,
        license=row.license or release.license,
        price_model=row.price_model.value,
        status=row.status.value,
        failure_reason=row.failure_reason,
        url=f"{base}/tracks/{row.id}",
        api_url=f"{base}/api/v1/tracks/{row.id}",
        preview_url=f"{base}/tracks/{row.id}/preview" if ready else None,
        stream_url=f"{base}/tracks/{row.id}/stream" if ready else None,
    )


def release_summary(
    base: str, row: m.Release, owner: m.Artist, tags: list[str], has_cover: bool
) -> s.ReleaseSummary:
    return s.ReleaseSummary(
        id=row.id,
        title=row.title,
        kind=row.kind.value,
        artist=artist_ref(base, owner),
        release_date=row.release_date,
        published_at=row.published_at,
        visibility=row.visibility.value,
        tags=tags,
        cover_url=f"{base}/releases/{row.id}/cover" if has_cover else None,
        url=f"{base}/releases/{row.id}",
        api_url=f"{base}/api/v1/releases/{row.id}",
    )
