"""Search: a generated catalogue of 100,000 tracks (10 per release, 50 releases per
artist), the rate at which the catalogue and its index take them, and p50/p95 latency
of searches for words and prefixes of what is there; on SQLite and on PostgreSQL.
Reference in the same run: the same queries answered by a plain LIKE scan of the
indexed text (what a naive implementation would do)."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from sqlalchemy import text

from bench.setup import init_instance, instance_env, on_both_databases
from models.catalogue import Release, ReleaseKind, Track, TrackStatus, Visibility
from models.database import create_engine, create_sessionmaker
from models.search import DocumentKind, fold, index_document, search
from models.users import Role
from server.runtime.resources import database_options
from server.services.account_rules import create_user
from server.services.catalogue import create_artist

TRACKS = 100_000
PER_RELEASE = 10
RELEASES_PER_ARTIST = 50
QUERIES = 300
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zo", "ae", "bri", "dun",
             "fel", "gor", "hal", "jin", "kor", "lum", "mar", "nox", "pel", "quin", "ros",
             "sul", "tam", "ul", "ver", "wyn", "xan", "yor", "zel", "ém", "øl", "çi"]  # fmt: skip


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def title(rng: random.Random) -> str:
    return " ".join(word(rng).capitalize() for _ in range(rng.randint(1, 4)))


async def _measure(url: str, data_dir: Path) -> list[str]:
    env = instance_env(data_dir, url)
    settings = init_instance(env)
    engine = create_engine(database_options(settings))
    sessionmaker = create_sessionmaker(engine)
    rng = random.Random(7)  # noqa: S311 - generated names
    titles: list[str] = []
    try:
        started = time.perf_counter()
        async with sessionmaker() as session:
            owner = await create_user(session, "bench", "a long password", Role.ARTIST)
            releases = TRACKS // PER_RELEASE
            for number in range(releases):
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
        import_rate = TRACKS / (time.perf_counter() - started)

        queries = []
        for _ in range(QUERIES):
            words = rng.choice(titles).split()
            chosen = rng.sample(words, min(len(words), rng.randint(1, 2)))
            queries.append(" ".join(w[: rng.randint(3, len(w))] for w in chosen))
        ours, naive, found = [], [], 0
        async with sessionmaker() as session:
            for query in queries:
                begin = time.perf_counter()
                hits = await search(session, query, limit=20)
                ours.append(time.perf_counter() - begin)
                found += bool(hits)
            for query in queries[:60]:
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
    finally:
        await engine.dispose()

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000

    return [
        f"catalogue import with indexing: {import_rate:8.0f} tracks/s ({TRACKS} tracks)",
        f"search: p50 {statistics.median(ours) * 1000:7.2f} ms, p95 {pct(ours, 0.95):7.2f} ms "
        f"({found}/{QUERIES} queries found something)",
        f"reference, LIKE scan: p50 {statistics.median(naive) * 1000:7.2f} ms, "
        f"p95 {pct(naive, 0.95):7.2f} ms",
    ]


async def run() -> list[str]:
    return await on_both_databases("search_bench", _measure)
