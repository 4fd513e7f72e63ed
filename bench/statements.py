"""What a piece of work costs the database, counted on the engines' events: the SQL
statements sent (an ``executemany`` is one: a batch) and the transactions begun (a
read-only unit of work is one too). Counts do not depend on the machine's load, so they
sit beside the timings of a benchmark as its steadiest figure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.base import OptionEngine
from sqlalchemy.ext.asyncio import AsyncEngine

# What the engines send on their own around a unit of work: not the work's statements.
_FRAMING = ("BEGIN", "PRAGMA", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass
class Counts:
    statements: int = 0
    transactions: int = 0

    def per(self, units: int, unit: str) -> str:
        """``"11.0 SQL statements in 3.0 transactions per play"``."""
        return (
            f"{self.statements / units:.1f} SQL statements in "
            f"{self.transactions / units:.1f} transactions per {unit}"
        )


@contextmanager
def counting(*engines: AsyncEngine) -> Iterator[Counts]:
    """Count statements and transactions on ``engines`` while the block runs (work done
    by this process only: run the server in-process to count a request)."""
    counts = Counts()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(_FRAMING):
            counts.statements += 1

    def on_begin(_conn: Any) -> None:
        counts.transactions += 1

    # An engine made with ``execution_options`` (PostgreSQL's read-only one) shares its
    # parent's events: listening on both would count each of its statements twice.
    syncs = {id(engine.sync_engine): engine.sync_engine for engine in engines}.values()
    parents = {id(engine.pool) for engine in syncs if not isinstance(engine, OptionEngine)}
    targets = [
        engine
        for engine in syncs
        if not (isinstance(engine, OptionEngine) and id(engine.pool) in parents)
    ]
    for target in targets:
        event.listen(target, "before_cursor_execute", on_execute)
        event.listen(target, "begin", on_begin)
    try:
        yield counts
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", on_execute)
            event.remove(target, "begin", on_begin)
