"""Run every benchmark (or those named: ``python -m bench inbox fanout``) and append the
figures to bench/RESULTS.md."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    fanout,
    footprint,
    http,
    inbox,
    jobs,
    plays,
    royalties,
    search,
    streaming,
    subsonic,
)

RESULTS = Path(__file__).parent / "RESULTS.md"
MODULES = (jobs, http, footprint, streaming, search, plays, inbox, fanout, royalties, subsonic)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(names: list[str]) -> None:
    known = {module.__name__.removeprefix("bench."): module for module in MODULES}
    if unknown := [name for name in names if name not in known]:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[name] for name in names] or list(MODULES)
    alone = f" ({', '.join(module.__name__ for module in chosen)} alone)" if names else ""
    lines = [f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}{alone}", ""]
    for module in chosen:
        print(f"# {module.__name__}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        figures = asyncio.run(module.run())
        for figure in figures:
            print(figure, flush=True)
        lines += [f"### {module.__name__}", "", *[f"- {figure}" for figure in figures], ""]
    with RESULTS.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
