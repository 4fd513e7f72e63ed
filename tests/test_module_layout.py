"""How the modules of server/, models/ and federation/ refer to each other, beyond the
import contract (pyproject.toml, `lint-imports`): no module imports another's private
(``_name``) helper, since what is shared belongs in a module meant for sharing (for the
pages, server/web/pages/common.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("server", "models", "federation")


def _sources() -> list[Path]:
    return [
        path
        for package in OURS
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def private_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS:
            found += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_the_check_finds_a_private_import() -> None:
    assert private_imports("from server.web.pages.listener import render, _signed_in") == [
        "server.web.pages.listener._signed_in"
    ]
    assert private_imports("from os import _exit\nfrom models import __doc__") == []


def test_no_module_imports_a_private_name_of_another() -> None:
    sources = _sources()
    assert len(sources) > 100
    found = {
        str(path.relative_to(ROOT)): names
        for path in sources
        if (names := private_imports(path.read_text()))
    }
    assert found == {}
