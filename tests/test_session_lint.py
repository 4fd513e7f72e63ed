"""A lint over the source for sessions opened inside sessions, on every code path (the
sessions themselves catch it at run time, but only on the paths the tests take).

Inside an ``async with …sessionmaker() as session:`` block, and inside any function that
is handed an open ``session``, no call may lead to a function that opens a session of its
own, renders a page (the page context reads the wallet in a session) or looks up the
viewer (``current_viewer``, ``user_for_session``): do those before the session opens, or
pass the session down. Calls are followed through each module's imports and its own
functions; calls on other objects are not (the run-time check covers those).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPENERS = ("sessionmaker", "read_sessionmaker")
# Open a session (or render, whose page context opens one) whatever their body says.
SESSION_USERS = {
    "server.web.sessions.user_for_session",
    "server.web.auth.current_viewer",
    "quart.render_template",
}


def opens_session(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in OPENERS:
        return True
    # engine.connect() / engine.begin() take a connection just the same
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ("connect", "begin")
        and isinstance(func.value, ast.Attribute)
        and func.value.attr in ("engine", "read_engine")
    )


@dataclass
class Module:
    name: str
    tree: ast.Module
    names: dict[str, str] = field(default_factory=dict)  # local name -> qualified name

    def resolve(self, call: ast.Call) -> str | None:
        func = call.func
        if isinstance(func, ast.Name):
            return self.names.get(func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            base = self.names.get(func.value.id)
            return f"{base}.{func.attr}" if base else None
        return None


def parse_module(name: str, source: str) -> Module:
    module = Module(name, ast.parse(source))
    for node in module.tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                module.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module.names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            module.names[node.name] = f"{name}.{node.name}"
    return module


def load_modules() -> list[Module]:
    return [
        parse_module(".".join(path.relative_to(ROOT).with_suffix("").parts), path.read_text())
        for package in ("server", "models", "federation")
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def functions(module: Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        node
        for node in module.tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def session_openers(modules: list[Module]) -> set[str]:
    """Qualified names of the functions that open a session, directly or through others."""
    calls: dict[str, set[str]] = {}
    found = set(SESSION_USERS)
    for module in modules:
        for function in functions(module):
            qualified = f"{module.name}.{function.name}"
            calls[qualified] = set()
            for node in ast.walk(function):
                if opens_session(node):
                    found.add(qualified)
                elif isinstance(node, ast.Call) and (target := module.resolve(node)):
                    calls[qualified].add(target)
    growing = True
    while growing:
        growing = False
        for name, targets in calls.items():
            if name not in found and targets & found:
                found.add(name)
                growing = True
    return found


def nested_calls(modules: list[Module], openers: set[str]) -> list[str]:
    found = []

    def check(module: Module, body: list[ast.stmt], where: str) -> None:
        for statement in body:
            for node in ast.walk(statement):
                target = module.resolve(node) if isinstance(node, ast.Call) else None
                if opens_session(node) or target in openers:
                    found.append(f"{module.name}:{node.lineno} ({where}): {target or 'a session'}")

    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.AsyncWith) and any(
                opens_session(item.context_expr) for item in node.items
            ):
                check(module, node.body, "inside an open session")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "session" in {
                argument.arg for argument in node.args.args + node.args.kwonlyargs
            }:
                check(module, node.body, f"{node.name} is handed an open session")
    return sorted(found)


def test_no_session_is_opened_inside_another() -> None:
    modules = load_modules()
    openers = session_openers(modules)
    assert "server.services.plays.open_session" not in openers  # a name is not an opener
    assert "server.web.sessions.start_session" in openers
    assert nested_calls(modules, openers) == []


def test_the_lint_finds_a_nested_session() -> None:
    """The shape the Publish button had."""
    source = """
from server.web.current import resources_of

async def own(user):
    async with resources_of(app).sessionmaker() as session:
        return await session.get(Artist, 1)

async def publish(user):
    async with resources_of(app).sessionmaker() as session:
        await own(user)

async def helper(session):
    return await own(None)
"""
    module = parse_module("example", source)
    openers = session_openers([module])
    assert nested_calls([module], openers) == [
        "example:10 (inside an open session): example.own",
        "example:13 (helper is handed an open session): example.own",
    ]
