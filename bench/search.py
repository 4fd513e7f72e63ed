"""Search: p50/p95 latency of searches for words and prefixes of what is there, in a
generated catalogue grown from 10,000 to 100,000 to 1,000,000 tracks (10 per release, 50
releases per artist), on SQLite and on PostgreSQL, to show how latency grows with size.
The first 10,000 tracks are imported through the catalogue and its index (their rate is a
figure); the catalogue is then grown by inserting the index's documents in bulk, the same
folded text ``index_document`` writes (a search reads only the index).
Reference in the same run, at each size: the same queries answered by a plain LIKE scan of
the indexed text (what a naive implementation would do)."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.setup import init_instance, instance_env, on_both_databases
from models.catalogue import Release, ReleaseKind, Track, TrackStatus, Visibility
from models.database import create_engine, create_sessionmaker
from models.search import DocumentKind, SearchDocument, fold, index_document, search
from models.users import Role
from server.runtime.resources import database_options
from server.services.account_rules import create_user
from server.services.catalogue import create_artist

SIZES = (10_000, 100_000, 1_000_000)  # tracks; the first is imported, the rest bulk-inserted
PER_RELEASE = 10
RELEASES_PER_ARTIST = 50
QUERIES = 300
NAIVE_QUERIES = 30
BULK_ROWS = 20_000
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zo", "ae", "bri", "dun",
             "fel", "gor", "hal", "jin", "kor", "lum", "mar", "nox", "pel", "quin", "ros",
             "sul", "tam", "ul", "ver", "wyn", "xan", "yor", "zel", "ém", "øl", "çi"]  # fmt: skip


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def title(rng: random.Random) -> str:
    return " ".join(word(rng).capitalize() for _ in range(rng.randint(1, 4)))


async def _import(
    sessionmaker: async_sessionmaker[AsyncSession], rng: random.Random, tracks: int
) -> list[str]:
    """``tracks`` tracks through the catalogue and ``index_document``; their titles."""
    titles: list[str] = []
    async with sessionmaker() as session:
        owner = await create_user(session, "bench", "a long password", Role.ARTIST)
        for number in range(tracks // PER_RELEASE):
            if number % RELEASES_PER_ARTIST == 0:
                artist = await create_artist(
                    session, f"artist{number}", owner, display_name=title(rng)
                )
            release = Release(artist_id=artist.id, title=title(rng), slug=f"r{number}",
                              kind=ReleaseKind.ALBUM, visibility=Visibility.PUBLIC)  # fmt: skip
            session.add(release)
            await session.flush()
            await index_document(session, DocumentKind.RELEASE, release.id, release.title,
                                 artist.display_name)  # fmt: skip
            for position in range(1, PER_RELEASE + 1):
                track = Track(
                    release_id=release.id, artist_id=artist.id, title=title(rng),
                    slug="t", position=position, status=TrackStatus.READY,
                )  # fmt: skip
                session.add(track)
                await session.flush()
                titles.append(track.title)
                await index_document(session, DocumentKind.TRACK, track.id, track.title,
                                     f"{artist.display_name} {release.title}")  # fmt: skip
            if number % 100 == 99:
                await session.commit()
        await session.commit()
    return titles


async def _grow(
    sessionmaker: async_sessionmaker[AsyncSession], rng: random.Random, start: int, end: int
) -> list[str]:
    """Index documents for tracks ``start``..``end`` (and their releases and artists),
    inserted in bulk; their titles. Object ids are made up: the index holds only them."""
    titles: list[str] = []
    rows: list[dict[str, object]] = []
    artist_name = ""
    async with sessionmaker() as session:
        for number in range(start // PER_RELEASE, end // PER_RELEASE):
            if number % RELEASES_PER_ARTIST == 0:
                artist_name = title(rng)
                rows.append({"kind": DocumentKind.ARTIST, "object_id": 10_000_000 + number,
                             "title": fold(artist_name), "body": ""})  # fmt: skip
            release_title = title(rng)
            rows.append({"kind": DocumentKind.RELEASE, "object_id": 10_000_000 + number,
                         "title": fold(release_title), "body": fold(artist_name)})  # fmt: skip
            body = fold(f"{artist_name} {release_title}")
            for position in range(PER_RELEASE):
                track_title = title(rng)
                titles.append(track_title)
                rows.append({"kind": DocumentKind.TRACK,
                             "object_id": 10_000_000 + number * PER_RELEASE + position,
                             "title": fold(track_title), "body": body})  # fmt: skip
            if len(rows) >= BULK_ROWS:
                await session.execute(insert(SearchDocument), rows)
                await session.commit()
                rows = []
        if rows:
            await session.execute(insert(SearchDocument), rows)
        await session.commit()
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ANALYZE search_documents"))
            await session.commit()
    return titles


def _queries(rng: random.Random, titles: list[str]) -> list[str]:
    queries = []
    for _ in range(QUERIES):
        words = rng.choice(titles).split()
        chosen = rng.sample(words, min(len(words), rng.randint(1, 2)))
        queries.append(" ".join(w[: rng.randint(3, len(w))] for w in chosen))
    return queries


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


async def _latency(
    sessionmaker: async_sessionmaker[AsyncSession], queries: list[str]
) -> tuple[list[float], list[float], int]:
    ours, naive, found = [], [], 0
    async with sessionmaker() as session:
        for query in queries:
            begin = time.perf_counter()
            hits = await search(session, query, limit=20)
            ours.append(time.perf_counter() - begin)
            found += bool(hits)
        for query in queries[:NAIVE_QUERIES]:
            conditions = " AND ".join(
                f"(title LIKE :w{i} OR body LIKE :w{i})" for i in range(len(query.split()))
            )
            params = {f"w{i}": f"%{fold(w)}%" for i, w in enumerate(query.split())}
            begin = time.perf_counter()
            await session.execute(
                text(f"SELECT kind, object_id FROM search_documents WHERE {conditions} "
                     "LIMIT 20"), params,
            )  # fmt: skip
            naive.append(time.perf_counter() - begin)
    return ours, naive, found


async def _measure(url: str, data_dir: Path) -> list[str]:
    env = instance_env(data_dir, url)
    settings = init_instance(env)
    engine = create_engine(database_options(settings))
    sessionmaker = create_sessionmaker(engine)
    rng = random.Random(7)  # noqa: S311 - generated names
    figures: list[str] = []
    p95s: list[float] = []
    try:
        started = time.perf_counter()
        titles = await _import(sessionmaker, rng, SIZES[0])
        figures.append(
            f"catalogue import with indexing: {SIZES[0] / (time.perf_counter() - started):8.0f}"
            f" tracks/s ({SIZES[0]:,} tracks)"
        )
        for previous, size in zip((0, *SIZES), SIZES, strict=False):
            if previous:
                started = time.perf_counter()
                titles += await _grow(sessionmaker, rng, previous, size)
                figures.append(
                    f"bulk insert of the index to {size:,} tracks: "
                    f"{(size - previous) / (time.perf_counter() - started):8.0f} tracks/s"
                )
            ours, naive, found = await _latency(sessionmaker, _queries(rng, titles))
            p95s.append(_pct(ours, 0.95))
            figures.append(
                f"{size:>9,} tracks: search p50 {statistics.median(ours) * 1000:7.2f} ms, "
                f"p95 {p95s[-1]:7.2f} ms ({found}/{QUERIES} queries found something); "
                f"reference, LIKE scan p50 {statistics.median(naive) * 1000:8.2f} ms, "
                f"p95 {_pct(naive, 0.95):8.2f} ms"
            )
        figures.append(
            f"growth of search p95 from {SIZES[0]:,} to {SIZES[-1]:,} tracks: "
            f"{p95s[-1] / p95s[0]:.2f}×"
        )
    finally:
        await engine.dispose()
    return figures


async def run() -> list[str]:
    return await on_both_databases("search_bench", _measure)
