"""Full-text search over the catalogue, one interface over two engines.

Each searchable thing (artist, label, public release, playable track of a public
release) has one row in ``search_documents`` with a title and a body, both folded
(lower case, accents removed) here in Python so that both engines see the same text:

* SQLite: an FTS5 index (``search_fts``) kept in step by triggers, ranked by bm25 with
  the title weighing ten times the body;
* PostgreSQL: a stored, generated ``search_vector`` column (the weighted ``tsvector`` of
  title and body, ``simple`` configuration: no stemming, which suits names) with a GIN
  index, ranked by ``ts_rank``.

Every query word of at least ``PREFIX_MINIMUM`` letters matches as a prefix ("aur" finds
"Aurora"); a shorter one matches only a whole word ("u2", "la" in "Yo La Tengo"), since a
one- or two-letter prefix matches much of any catalogue. All words must match. SQLite
keeps prefix indexes of three and four letters, so a prefix is one index lookup. At most
``CANDIDATES`` whole-word matches and as many prefix matches are ranked, so a search
costs the same however much of the catalogue a short prefix matches.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import String, Text, UniqueConstraint, delete, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, str_enum

MAX_QUERY_WORDS = 8
PREFIX_MINIMUM = 3
# Matches ranked per query, so that a short prefix matching much of the catalogue costs
# the same as a rare word; whole-word matches are gathered first and come before prefix
# matches (then by the text score: bm25 on SQLite, ts_rank on PostgreSQL).
CANDIDATES = 500
_WORD = re.compile(r"\w+", re.UNICODE)


class DocumentKind(StrEnum):
    ARTIST = "artist"
    LABEL = "label"
    RELEASE = "release"
    TRACK = "track"


class SearchDocument(Base):
    __tablename__ = "search_documents"
    __table_args__ = (UniqueConstraint("kind", "object_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[DocumentKind] = mapped_column(str_enum(DocumentKind, 16))
    object_id: Mapped[int] = mapped_column(BigIntId)
    title: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(Text, default="")


def fold(value: str) -> str:
    """Lower-case and strip accents: "Émile Ærø" → "emile aero"."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("æ", "ae").replace("ø", "o").replace("œ", "oe").replace("ł", "l")


def query_words(query: str) -> list[str]:
    return _WORD.findall(fold(query))[:MAX_QUERY_WORDS]


def _as_prefix(word: str) -> bool:
    return len(word) >= PREFIX_MINIMUM


@dataclass(frozen=True)
class Hit:
    kind: DocumentKind
    object_id: int
    rank: float


async def index_document(
    session: AsyncSession, kind: DocumentKind, object_id: int, title: str, body: str = ""
) -> None:
    """Add or replace the searchable text of one thing, in the caller's transaction."""
    await remove_document(session, kind, object_id)
    session.add(
        SearchDocument(kind=kind, object_id=object_id, title=fold(title)[:400], body=fold(body))
    )
    await session.flush()


async def remove_document(session: AsyncSession, kind: DocumentKind, object_id: int) -> None:
    await session.execute(
        delete(SearchDocument).where(
            SearchDocument.kind == kind, SearchDocument.object_id == object_id
        )
    )


async def search(
    session: AsyncSession,
    query: str,
    *,
    kinds: tuple[DocumentKind, ...] = tuple(DocumentKind),
    limit: int = 20,
    offset: int = 0,
) -> list[Hit]:
    words = query_words(query)
    if not words or not kinds:
        return []
    kind_values = [kind.value for kind in kinds]
    cap = max(CANDIDATES, offset + limit)
    if session.get_bind().dialect.name == "postgresql":
        statement = text(
            "WITH candidates AS (("
            "SELECT id, kind, object_id, search_vector, 1 AS whole FROM search_documents "
            "WHERE search_vector @@ to_tsquery('simple', :exact) AND kind = ANY(:kinds) "
            "LIMIT :cap) UNION ALL ("
            "SELECT id, kind, object_id, search_vector, 0 AS whole FROM search_documents "
            "WHERE search_vector @@ to_tsquery('simple', :tsquery) AND kind = ANY(:kinds) "
            "LIMIT :cap)) "
            "SELECT kind, object_id, "
            "max(ts_rank(search_vector, to_tsquery('simple', :tsquery))) AS rank "
            "FROM candidates GROUP BY id, kind, object_id "
            "ORDER BY max(whole) DESC, rank DESC, id LIMIT :limit OFFSET :offset"
        )
        params: dict[str, object] = {
            "exact": " & ".join(words),
            "tsquery": " & ".join(f"{word}:*" if _as_prefix(word) else word for word in words),
            "kinds": kind_values,
        }
    else:
        placeholders = ", ".join(f":kind{i}" for i in range(len(kind_values)))
        candidates = (
            "SELECT f.rowid AS id, {whole} AS whole, -bm25(search_fts, 10.0, 1.0) AS score "  # noqa: S608
            "FROM search_fts AS f JOIN search_documents AS d ON d.id = f.rowid "
            f"WHERE search_fts MATCH {{match}} AND d.kind IN ({placeholders}) LIMIT :cap"
        )
        statement = text(
            "WITH candidates AS ("  # noqa: S608
            f"SELECT * FROM ({candidates.format(whole=1, match=':exact')}) UNION ALL "
            f"SELECT * FROM ({candidates.format(whole=0, match=':match')})) "
            "SELECT d.kind, d.object_id, max(c.score) AS rank "
            "FROM candidates AS c JOIN search_documents AS d ON d.id = c.id "
            "GROUP BY d.id ORDER BY max(c.whole) DESC, rank DESC, d.id "
            "LIMIT :limit OFFSET :offset"
        )
        params = {
            "exact": " ".join(f'"{word}"' for word in words),
            "match": " ".join(f'"{word}"*' if _as_prefix(word) else f'"{word}"' for word in words),
            **{f"kind{i}": value for i, value in enumerate(kind_values)},
        }
    params = {**params, "cap": cap}
    rows = await session.execute(statement, {**params, "limit": limit, "offset": offset})
    return [Hit(DocumentKind(kind), int(object_id), float(rank)) for kind, object_id, rank in rows]
