"""Catalogue rows to API models (absolute URLs under instance.base_url)."""

from __future__ import annotations

from urllib.parse import urlsplit

from federation.urls import preview_url as local_preview_url
from models import catalogue as m
from models.federation import RemoteActor
from server.services.plays import Playable
from server.services.remote_plays import PartnerTrack
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


def local_origin(base: str) -> s.TrackOrigin:
    return s.TrackOrigin(kind="local", host=urlsplit(base).netloc, actor=f"{base}/actor")


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
        origin=local_origin(base),
    )


def partner_track(base: str, track: PartnerTrack, artist: RemoteActor | None) -> s.Track:
    """A partner's track known here (``artist``: its artist's actor, if we have it)."""
    remote = track.remote
    return s.Track(
        id=remote.id,
        title=remote.title,
        artist=partner_artist(remote.artist_uri, artist),
        artist_credit="",
        release_id=None,
        release_title=remote.release_title,
        position=remote.position,
        disc=1,
        duration_ms=remote.duration_ms,
        isrc=None,
        genre="",
        license="",
        price_model=(m.PriceModel.FREE if remote.free else m.PriceModel.STREAM_TO_OWN).value,
        status=m.TrackStatus.READY.value,
        url=remote.uri,
        api_url=f"{base}/api/v1/tracks/{remote.id}",
        preview_url=remote.preview_url,
        stream_url=f"{base}/tracks/{remote.id}/stream",
        origin=partner_origin(track.payee.uri),
    )


def partner_origin(instance_actor: str) -> s.TrackOrigin:
    return s.TrackOrigin(kind="partner", host=urlsplit(instance_actor).netloc, actor=instance_actor)


def partner_artist(uri: str, actor: RemoteActor | None) -> s.ArtistRef:
    """name: the artist's handle without the leading @ (name@host)."""
    host = urlsplit(uri).netloc
    username = (actor.preferred_username if actor else None) or uri.rstrip("/").rsplit("/")[-1]
    name = f"{username}@{host}"
    return s.ArtistRef(name=name, display_name=(actor.name if actor else "") or username, url=uri)


def preview_url(base: str, track: Playable) -> str | None:
    """Where anybody hears the track's preview (a partner's: on the partner's server)."""
    if isinstance(track, PartnerTrack):
        return track.remote.preview_url
    return local_preview_url(base, track.id)


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
