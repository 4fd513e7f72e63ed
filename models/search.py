"""Full-text search over the catalogue, one interface over two engines.

Each searchable thing (artist, label, public release, playable track of a public
release) has one row in ``search_documents`` with a title and a body, both folded
(lower case, accents removed) here in Python so that both engines see the same text:

* SQLite: an FTS5 index (``search_fts``) kept in step by triggers, ranked by bm25 with
  the title weighing ten times the body;
* PostgreSQL: a stored, generated ``search_vector`` column (the weighted ``tsvector`` of
  title and body, ``simple`` configuration: no stemming, which suits names) with a GIN
  index, ranked by ``ts_rank``.

Every query word matches as a prefix ("aur" finds "Aurora"), and all words must match.
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
    if session.get_bind().dialect.name == "postgresql":
        statement = text(
            "SELECT kind, object_id, ts_rank(search_vector, query) AS rank "
            "FROM search_documents, to_tsquery('simple', :tsquery) AS query "
            "WHERE search_vector @@ query AND kind = ANY(:kinds) "
            "ORDER BY rank DESC, id LIMIT :limit OFFSET :offset"
        )
        params = {
            "tsquery": " & ".join(f"{word}:*" for word in words),
            "kinds": kind_values,
        }
    else:
        placeholders = ", ".join(f":kind{i}" for i in range(len(kind_values)))
        statement = text(
            "SELECT d.kind, d.object_id, -bm25(search_fts, 10.0, 1.0) AS rank "  # noqa: S608
            "FROM search_fts JOIN search_documents AS d ON d.id = search_fts.rowid "
            f"WHERE search_fts MATCH :match AND d.kind IN ({placeholders}) "
            "ORDER BY rank DESC, d.id LIMIT :limit OFFSET :offset"
        )
        params = {
            "match": " ".join(f'"{word}"*' for word in words),
            **{f"kind{i}": value for i, value in enumerate(kind_values)},
        }
    rows = await session.execute(statement, {**params, "limit": limit, "offset": offset})
    return [Hit(DocumentKind(kind), int(object_id), float(rank)) for kind, object_id, rank in rows]
