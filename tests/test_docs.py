"""The design lives in the repository: docs/architecture.md (the floors, where things
live, the flows) and docs/decisions.md (the why). Code and tests point there; every link
into the architecture lands on one of its headings, and every file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
FOLDERS = ("server", "models", "federation", "tools", "tests", "bench")
SUFFIXES = {".py", ".js", ".css", ".html", ".toml", ".cfg", ".ini", ".md", ".sh", ".mako"}
# the old design notes lived outside the repository; spelled in two parts so that this
# file does not name them itself
OUTSIDE = "DESIGN" + ".md"
LINK = re.compile(r"architecture\.md#([a-z0-9_-]+)")
NAMED_FILE = re.compile(r"`((?:server|models|federation|tests|tools|docs)/[\w/.-]+\.\w+)`")


def _files() -> list[Path]:
    found = [ROOT / "pyproject.toml", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in FOLDERS:
        found += [
            path
            for path in sorted((ROOT / folder).rglob("*"))
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts
        ]
    return found


def slug(heading: str) -> str:
    """The anchor GitHub and most Markdown renderers give a heading."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def anchors() -> set[str]:
    return {
        slug(line.lstrip("#"))
        for line in ARCHITECTURE.read_text().splitlines()
        if line.startswith("#")
    }


def test_slugs_are_those_of_the_renderers() -> None:
    assert slug("Money: stream-to-own") == "money-stream-to-own"
    assert slug(" A play of a partner's track") == "a-play-of-a-partners-track"
    assert slug("A Follow, outgoing") == "a-follow-outgoing"


def test_nothing_points_outside_the_repository() -> None:
    files = _files()
    assert len(files) > 150
    mentions = [
        str(path.relative_to(ROOT)) for path in files if OUTSIDE in path.read_text(errors="replace")
    ]
    assert mentions == [], f"point into docs/architecture.md or docs/decisions.md: {mentions}"


def test_every_link_into_the_architecture_lands_on_a_heading() -> None:
    known = anchors()
    assert {"floors-and-arrows", "a-follow-incoming", "a-royalty-period"} <= known
    broken = {
        f"{path.relative_to(ROOT)}#{anchor}"
        for path in _files()
        for anchor in LINK.findall(path.read_text(errors="replace"))
        if anchor not in known
    }
    in_page = set(re.findall(r"\]\(#([a-z0-9_-]+)\)", ARCHITECTURE.read_text())) - known
    assert broken == set() and in_page == set()


def test_every_file_the_architecture_names_exists() -> None:
    named = set(NAMED_FILE.findall(ARCHITECTURE.read_text()))
    assert len(named) > 40
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert missing == []
