"""What other sites' robots read from our pages: the link previews (Open Graph and Twitter
card tags, the canonical URL, feed and oEmbed discovery) that chat apps and social sites
draw when someone shares a page, and ``robots.txt``
(docs/architecture.md#outside-the-fediverse).

The builders are pure (:func:`newest_cover` apart, a read): a page's route makes a
:class:`LinkPreview` and ``templates/_preview.html`` (included by ``base.html``) writes
the tags. Every URL in them is absolute: previews are read by servers that never saw
our page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from quart import Blueprint, Response, current_app
from quart.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.objects import ReleaseInfo, TrackInfo, tag_url
from federation.urls import cover_url, embed_url, feed_url, page_url, preview_url
from models.catalogue import FileRole, MediaFile
from server.web.current import resources_of

robots = Blueprint("robots", __name__)

DESCRIPTION_CHARS = 200
# The embed pages' size (oEmbed's defaults and twitter:player's), width × height in px.
EMBED_SIZES = {"releases": (480, 360), "tracks": (480, 180)}
SITE_TEXT = "A music co-operative on the fediverse: stream to own, fair to artists."


@dataclass(frozen=True)
class Alternate:
    """A ``<link rel="alternate">``: a feed, or an oEmbed endpoint."""

    type: str
    href: str
    title: str


@dataclass(frozen=True)
class LinkPreview:
    title: str
    description: str
    url: str  # canonical
    og_type: str  # website, profile, music.album, music.song
    site_name: str
    image: str | None = None
    image_alt: str | None = None
    audio: str | None = None
    audio_type: str | None = None
    player: str | None = None  # an embed page: twitter:player
    player_size: tuple[int, int] = (0, 0)
    alternates: tuple[Alternate, ...] = ()

    @property
    def twitter_card(self) -> str:
        if self.player:
            return "player"
        return "summary_large_image" if self.image else "summary"


def short(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """One line of at most ``limit`` characters, cut at a word with an ellipsis."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0] or line[: limit - 1]
    return cut.rstrip(" ,.;:") + "…"


def oembed_link(base_url: str, page: str, title: str) -> Alternate:
    query = urlencode({"url": page, "format": "json"})
    return Alternate("application/json+oembed", f"{base_url}/oembed?{query}", title)


def feed_links(
    base_url: str, kind: str | None, name: str | None, title: str
) -> tuple[Alternate, ...]:
    return tuple(
        Alternate(
            f"application/{fmt}+xml", feed_url(base_url, kind, name, fmt), f"{title} ({shown})"
        )
        for fmt, shown in (("rss", "RSS"), ("atom", "Atom"))
    )


def release_preview(base_url: str, site_name: str, release: ReleaseInfo) -> LinkPreview:
    page = page_url(base_url, "releases", release.id)
    count = len(release.tracks)
    summary = release.description or (
        f"{count} track{'s' if count != 1 else ''} by {release.artist_display_name}"
    )
    clip = next((track for track in release.tracks if track.preview_type), None)
    title = f"{release.title} · {release.artist_display_name}"
    return LinkPreview(
        title=title,
        description=short(summary),
        url=page,
        og_type="music.album",
        site_name=site_name,
        image=cover_url(base_url, release.id) if release.cover_type else None,
        image_alt=f"Cover of {release.title}" if release.cover_type else None,
        audio=preview_url(base_url, clip.id) if clip else None,
        audio_type=clip.preview_type if clip else None,
        player=embed_url(base_url, "releases", release.id),
        player_size=EMBED_SIZES["releases"],
        alternates=(oembed_link(base_url, page, title),),
    )


def track_preview(
    base_url: str, site_name: str, release: ReleaseInfo, track: TrackInfo
) -> LinkPreview:
    page = page_url(base_url, "tracks", track.id)
    title = f"{track.title} · {release.artist_display_name}"
    return LinkPreview(
        title=title,
        description=short(
            f"From {release.title} by {release.artist_display_name}. {release.description}"
        ),
        url=page,
        og_type="music.song",
        site_name=site_name,
        image=cover_url(base_url, release.id) if release.cover_type else None,
        image_alt=f"Cover of {release.title}" if release.cover_type else None,
        audio=preview_url(base_url, track.id) if track.preview_type else None,
        audio_type=track.preview_type,
        player=embed_url(base_url, "tracks", track.id),
        player_size=EMBED_SIZES["tracks"],
        alternates=(oembed_link(base_url, page, title),),
    )


async def newest_cover(session: AsyncSession, release_ids: Sequence[int]) -> int | None:
    """The first of ``release_ids`` (newest first) that has a cover: an actor's picture
    (actors have no avatars of their own)."""
    if not release_ids:
        return None
    covered = set(
        await session.scalars(
            select(MediaFile.release_id).where(
                MediaFile.role == FileRole.COVER, MediaFile.release_id.in_(release_ids)
            )
        )
    )
    return next((release for release in release_ids if release in covered), None)


def actor_preview(
    base_url: str,
    site_name: str,
    kind: str,
    name: str,
    display_name: str,
    summary: str,
    cover_release: int | None = None,
) -> LinkPreview:
    """An artist's, label's or listener's page (only artists and labels have feeds),
    pictured by the cover of ``cover_release``."""
    what = {"artists": "Artist", "labels": "Label"}.get(kind, "Listener")
    return LinkPreview(
        title=display_name,
        description=short(summary or f"{what} on {site_name}"),
        url=page_url(base_url, kind, name),
        og_type="profile",
        site_name=site_name,
        image=cover_url(base_url, cover_release) if cover_release is not None else None,
        image_alt=f"Cover of a release by {display_name}" if cover_release is not None else None,
        alternates=feed_links(base_url, kind, name, display_name) if what != "Listener" else (),
    )


def home_preview(base_url: str, site_name: str) -> LinkPreview:
    return LinkPreview(
        title=site_name,
        description=SITE_TEXT,
        url=f"{base_url}/",
        og_type="website",
        site_name=site_name,
        alternates=feed_links(base_url, None, None, f"New releases on {site_name}"),
    )


def tag_preview(
    base_url: str, site_name: str, tag: str, total: int, releases: Sequence[ReleaseInfo]
) -> LinkPreview:
    """A tag's page, at the tag's one URL whatever case it was asked in, pictured by the
    newest cover among ``releases`` (newest first)."""
    covered = next((release for release in releases if release.cover_type), None)
    return LinkPreview(
        title=f"#{tag}",
        description=short(
            f"{total} release{'s' if total != 1 else ''} tagged #{tag} on {site_name}"
        ),
        url=tag_url(base_url, tag),
        og_type="website",
        site_name=site_name,
        image=cover_url(base_url, covered.id) if covered else None,
        image_alt=f"Cover of {covered.title}" if covered else None,
    )


# Pages for a signed-in person, the API, and what crawlers would only churn through.
PRIVATE_PATHS = (
    "/api/", "/settings", "/admin", "/dashboard", "/oauth", "/authorize", "/login",
    "/signup", "/logout", "/library", "/wallet", "/playlists", "/follow", "/search",
    "/inbox", "/tracks/*/stream",
)  # fmt: skip


def robots_txt(base_url: str) -> str:
    lines = ["User-agent: *", "Allow: /", *(f"Disallow: {path}" for path in PRIVATE_PATHS)]
    return "\n".join(lines) + f"\n\nSitemap: {base_url}/feed.rss\n"


@robots.get("/robots.txt")
async def robots_route() -> ResponseReturnValue:
    base = resources_of(current_app).settings.instance.base_url
    return Response(
        robots_txt(base),
        200,
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "public, max-age=86400"},
    )
