"""Run every benchmark and append the figures to bench/RESULTS.md."""

from __future__ import annotations

import asyncio
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench import http, jobs, plays, search, streaming

RESULTS = Path(__file__).parent / "RESULTS.md"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    lines = [f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}", ""]
    for module in (jobs, http, streaming, search, plays):
        print(f"# {module.__name__}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        figures = asyncio.run(module.run())
        for figure in figures:
            print(figure, flush=True)
        lines += [f"### {module.__name__}", "", *[f"- {figure}" for figure in figures], ""]
    with RESULTS.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
