"""Demo content for a fresh instance (`playfair demo`, and `make run` on an empty one):
accounts, three artists, and releases of short tracks synthesized with ffmpeg, imported
through the same path as real files."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.catalogue import Artist, ArtistKind, PriceModel, Release
from models.pricing import FULL_PRICE
from models.users import Role, User
from server.runtime.config import Settings
from server.runtime.instance import read_secret
from server.services import app_passwords
from server.services.account_rules import create_user, generate_password
from server.services.catalogue import create_artist
from server.services.importer import import_files
from server.services.media.ffmpeg import FfmpegError, run_ffmpeg
from server.services.money import issue_vouchers

DEMO_ACCOUNTS = (("demo_artist", Role.ARTIST), ("demo_listener", Role.LISTENER))


@dataclass(frozen=True)
class DemoTrack:
    title: str
    seconds: int
    notes: tuple[float, ...]  # Hz: a chord, slowly pulsing


@dataclass(frozen=True)
class DemoRelease:
    artist: str
    display_name: str
    kind: ArtistKind
    title: str
    genre: str
    year: int
    cover: str  # an ffmpeg lavfi video source for the cover picture
    tracks: tuple[DemoTrack, ...]
    free: bool = False
    featured: bool = False
    staff_pick: bool = False


CATALOGUE = (
    DemoRelease(
        "aurora_lane", "Aurora Lane", ArtistKind.SOLO, "Tidal Hours", "Ambient", 2025,
        "mandelbrot=size=480x480", (
            DemoTrack("Low Water", 30, (220.0, 277.2, 329.6)),
            DemoTrack("Salt Light", 24, (196.0, 246.9, 293.7)),
            DemoTrack("Night Swim", 36, (174.6, 220.0, 261.6)),
        ), staff_pick=True,
    ),
    DemoRelease(
        "brownout_collective", "Brownout Collective", ArtistKind.BAND, "Power Cut Dance",
        "Techno", 2026, "cellauto=size=480x480:rule=110", (
            DemoTrack("Generator Hum", 28, (110.0, 164.8, 220.0)),
            DemoTrack("Candle Rave", 20, (130.8, 196.0, 261.6)),
            DemoTrack("Grid Returns", 32, (146.8, 220.0, 293.7)),
        ), featured=True,
    ),
    DemoRelease(
        "emile_sauvage", "Émile Sauvage", ArtistKind.SOLO, "Chansons du Soir", "Chanson", 2024,
        "life=size=480x480:mold=10:ratio=0.5", (
            DemoTrack("Les Lampes Éteintes", 26, (261.6, 329.6, 392.0)),
        ), free=True, featured=True,
    ),
)  # fmt: skip


def _chord(notes: tuple[float, ...], seconds: int) -> str:
    voices = " + ".join(
        f"{0.25 / len(notes):.3f}*sin(2*PI*{freq}*t)*(0.6+0.4*sin(2*PI*{0.2 + i * 0.13:.2f}*t))"
        for i, freq in enumerate(notes)
    )
    fade = f"min(min(1\\,t/2)\\,({seconds}-t)/2)"  # commas escaped for the filter graph
    return f"aevalsrc=({voices})*{fade}:s=44100:d={seconds}"


async def synthesize(release: DemoRelease, folder: Path, ffmpeg: str) -> list[Path]:
    cover = folder / "cover.png"
    code, _out, err = await run_ffmpeg(
        [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", release.cover,
         "-frames:v", "1", str(cover)], 60,
    )  # fmt: skip
    if code:
        raise FfmpegError(err.decode(errors="replace").strip() or "cover failed")
    files = []
    for number, track in enumerate(release.tracks, start=1):
        target = folder / f"{number:02d} {track.title}.mp3"
        code, _out, err = await run_ffmpeg(
            [ffmpeg, "-nostdin", "-v", "error", "-y",
             "-f", "lavfi", "-i", _chord(track.notes, track.seconds), "-i", str(cover),
             "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-b:a", "160k",
             "-c:v", "png", "-disposition:v", "attached_pic", "-id3v2_version", "3",
             "-metadata", f"title={track.title}", "-metadata", f"artist={release.display_name}",
             "-metadata", f"album={release.title}", "-metadata", f"date={release.year}",
             "-metadata", f"genre={release.genre}",
             "-metadata", f"track={number}/{len(release.tracks)}", str(target)], 120,
        )  # fmt: skip
        if code:
            raise FfmpegError(err.decode(errors="replace").strip() or "synthesis failed")
        files.append(target)
    return files


async def add_demo_content(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    only_if_empty: bool,
) -> list[str]:
    """Make what is missing of the demo; return what to tell the admin."""
    async with sessionmaker() as session:
        if only_if_empty and await session.scalar(select(func.count()).select_from(Release)):
            return ["the catalogue has releases already; no demo content added"]
        lines = await _accounts(session, settings)
        owner = await session.scalar(select(User).where(User.username == "demo_artist"))
        assert owner is not None
        todo = []
        for release in CATALOGUE:
            artist_id = await session.scalar(select(Artist.id).where(Artist.name == release.artist))
            if artist_id is None:
                await create_artist(
                    session, release.artist, owner, display_name=release.display_name,
                    kind=release.kind,
                )  # fmt: skip
            elif await session.scalar(select(Release.id).where(Release.artist_id == artist_id)):
                continue  # this part of the demo is there already
            todo.append(release)
        await session.commit()
    with tempfile.TemporaryDirectory(prefix="playfair-demo-") as folder:
        for release in todo:
            release_folder = Path(folder) / release.artist
            release_folder.mkdir()
            files = await synthesize(release, release_folder, settings.media.ffmpeg)
            report = await import_files(
                settings, sessionmaker, release.artist, files, publish=True,
                price_model=PriceModel.FREE if release.free else PriceModel.STREAM_TO_OWN,
            )  # fmt: skip
            if report.failures:
                raise FfmpegError(f"demo import failed: {report.failures[0][1]}")
            async with sessionmaker() as session:
                await session.execute(
                    update(Release)
                    .where(Release.id.in_(report.release_ids))
                    .values(staff_pick=release.staff_pick)
                )
                await session.execute(
                    update(Artist)
                    .where(Artist.name == release.artist)
                    .values(featured=release.featured)
                )
                await session.commit()
            tracks = f"{report.imported} track{'' if report.imported == 1 else 's'}"
            lines.append(
                f"demo release {release.title!r} by {release.display_name}: {tracks} "
                "(the worker transcodes them)"
            )
    return lines


async def _accounts(session: AsyncSession, settings: Settings) -> list[str]:
    """The demo accounts; the listener starts like anyone who signs up, and a voucher of
    one track's worth of tokens is printed, to try the wallet and stream-to-own with, and
    an app password, to try a Subsonic music app with."""
    starter_balance = settings.money.starter_balance
    lines = []
    for name, role in DEMO_ACCOUNTS:
        if await session.scalar(select(User.id).where(User.username == name)):
            lines.append(f"demo {role} {name} exists already")
            continue
        password = generate_password()
        starter = starter_balance if role is Role.LISTENER else 0
        user = await create_user(session, name, password, role, starter_balance=starter)
        lines.append(f"demo {role} {name}, password {password}")
        if role is Role.LISTENER:
            [code] = await issue_vouchers(session, FULL_PRICE, 1, None)
            lines.append(f"demo voucher {code}: {FULL_PRICE} tokens, to redeem on /wallet")
            made = await app_passwords.create(session, user, "Music app", read_secret(settings))
            lines.append(
                f"demo music app (Subsonic): server {settings.instance.base_url}, user {name}, "
                f"app password {made.password}"
            )
    return lines
