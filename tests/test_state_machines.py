"""The declared state machines (models/states.py): each graph walked, each undeclared move
refused, and the source scanned for state changes that do not go through a machine."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from quart import Quart

import models
from federation.parse import parse_activity
from models.base import Base
from models.federation import InboxItem, InboxState
from models.states import IllegalTransition, StateMachine
from server.services.activitypub.context import federation_of
from server.services.activitypub.inbox import handle, store
from server.services.activitypub.registry import ANY, Incoming, Registry
from server.web.current import resources_of

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("server", "models")
MACHINE_METHODS = frozenset({"check", "check_all", "start"})


def declared_machines() -> dict[str, tuple[str, StateMachine[Any]]]:
    """Every machine declared in models/, by the column it names: (variable, machine)."""
    found: dict[str, tuple[str, StateMachine[Any]]] = {}
    for module_info in pkgutil.iter_modules(models.__path__):
        if module_info.name == "migrations":
            continue
        module = importlib.import_module(f"models.{module_info.name}")
        for variable, value in vars(module).items():
            if isinstance(value, StateMachine):
                assert found.get(value.name, (variable, value))[1] is value, value.name
                found[value.name] = (variable, value)
    return found


MACHINES = {name: machine for name, (_variable, machine) in declared_machines().items()}
MACHINE_VARIABLES = frozenset(variable for variable, _machine in declared_machines().values())


def state_columns() -> dict[str, sa.Column[Any]]:
    """Every mapped column holding a ``…State`` enum, or governed by a machine (a
    ``…Status`` may be given one), as ``Class.attribute``."""
    columns: dict[str, sa.Column[Any]] = {}
    for mapper in Base.registry.mappers:
        for key, column in mapper.columns.items():
            enum = getattr(column.type, "enum_class", None)
            name = f"{mapper.class_.__name__}.{key}"
            if enum is not None and (enum.__name__.endswith("State") or name in MACHINES):
                columns[name] = column
    return columns


def reachable(machine: StateMachine[Any], starts: frozenset[Any]) -> set[Any]:
    seen, todo = set(starts), list(starts)
    while todo:
        for target in machine.transitions.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


# The graphs ----------------------------------------------------------------------------


def test_every_state_column_has_its_machine() -> None:
    """A new ``…State`` column (proposals, say) fails here until its machine is declared."""
    columns = state_columns()
    assert set(MACHINES) == set(columns)
    for name, column in columns.items():
        machine = MACHINES[name]
        assert machine.enum is column.type.enum_class, name  # type: ignore[attr-defined]
        if column.default is not None:  # a row made without a state starts in an initial one
            assert column.default.arg in machine.initial, name  # type: ignore[attr-defined]


def test_every_state_of_every_enum_is_entered() -> None:
    """No state that nothing enters: each enum's members are all used by its machines."""
    used: dict[type[Enum], set[Enum]] = {}
    for machine in MACHINES.values():
        used.setdefault(machine.enum, set()).update(machine.states)
    for enum, states in used.items():
        assert set(enum) - states == set(), enum.__name__


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_state_is_reachable_from_an_initial_one(name: str) -> None:
    machine = MACHINES[name]
    assert machine.states - reachable(machine, machine.initial) == set()


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_state_can_reach_an_end(name: str) -> None:
    """An end is a terminal state (no way out) or a resting one (a row may stay there)."""
    machine = MACHINES[name]
    ends = machine.terminal | machine.resting
    assert ends, name
    stuck = {state for state in machine.states if not reachable(machine, frozenset({state})) & ends}
    assert stuck == set()


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_states_without_a_way_out_are_declared_terminal(name: str) -> None:
    machine = MACHINES[name]
    dead_ends = {state for state in machine.states if not machine.transitions.get(state)}
    assert dead_ends == set(machine.terminal)


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_declared_moves_pass_and_undeclared_ones_raise(name: str) -> None:
    machine = MACHINES[name]
    refused = 0
    for current in machine.states:
        for target in machine.states:
            if target in machine.transitions.get(current, ()):
                assert machine.check(current, target) is target
            else:
                with pytest.raises(IllegalTransition) as raised:
                    machine.check(current, target)
                assert name in str(raised.value)
                assert (raised.value.current, raised.value.target) == (current, target)
                refused += 1
    assert refused, f"{name} allows every move: it declares nothing"
    for state in machine.states - machine.initial:
        with pytest.raises(IllegalTransition):
            machine.start(state)


# The module itself ---------------------------------------------------------------------


class Light(StrEnum):
    RED = "red"
    GREEN = "green"
    AMBER = "amber"
    OFF = "off"


class Other(StrEnum):
    ONE = "one"


LIGHTS = StateMachine(
    "Lamp.light",
    initial=[Light.RED],
    transitions={Light.RED: [Light.GREEN], Light.GREEN: [Light.AMBER, Light.OFF]},
    terminal=[Light.AMBER, Light.OFF],
)


def test_a_move_to_the_same_state_is_refused_unless_declared() -> None:
    with pytest.raises(IllegalTransition, match=r"Lamp\.light: red → red"):
        LIGHTS.check(Light.RED, Light.RED)


def test_a_new_row_starts_in_an_initial_state_only() -> None:
    assert LIGHTS.start(Light.RED) is Light.RED
    assert LIGHTS.check(None, Light.RED) is Light.RED
    with pytest.raises(IllegalTransition, match="a new row cannot start as green"):
        LIGHTS.check(None, Light.GREEN)


def test_the_error_says_where_the_state_may_go() -> None:
    with pytest.raises(IllegalTransition, match=r"green may go to: amber, off"):
        LIGHTS.check(Light.GREEN, Light.RED)
    with pytest.raises(IllegalTransition, match=r"amber may go to: none"):
        LIGHTS.check(Light.AMBER, Light.GREEN)


def test_a_bulk_move_is_checked_from_every_source() -> None:
    assert LIGHTS.check_all([Light.GREEN], Light.OFF) is Light.OFF
    with pytest.raises(IllegalTransition, match="red → off"):
        LIGHTS.check_all([Light.GREEN, Light.RED], Light.OFF)
    with pytest.raises(ValueError, match="needs the states it moves from"):
        LIGHTS.check_all([], Light.OFF)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"initial": [], "transitions": {}}, "no initial state"),
        ({"initial": [Light.RED], "transitions": {Light.RED: [Other.ONE]}}, "more than one enum"),
        (
            {
                "initial": [Light.RED],
                "transitions": {Light.RED: [Light.OFF]},
                "terminal": [Light.RED],
            },
            "terminal state red has moves out",
        ),
        ({"initial": [Light.RED], "transitions": {}, "resting": [Light.RED]}, "no move out"),
    ],
)
def test_a_machine_that_contradicts_itself_is_refused(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StateMachine("Lamp.light", **arguments)


# The source scan -----------------------------------------------------------------------


def governed() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(attribute names, model class names, enum names) of every state column."""
    names = [name.split(".") for name in state_columns()]
    enums = {column.type.enum_class.__name__ for column in state_columns().values()}  # type: ignore[attr-defined]
    return (
        frozenset(attribute for _cls, attribute in names),
        frozenset(cls for cls, _attribute in names),
        frozenset(enums),
    )


def _is_machine_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    if node.func.attr not in MACHINE_METHODS:
        return False
    owner = node.func.value
    name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
    return name in MACHINE_VARIABLES


def _names_a_state(node: ast.AST, enums: frozenset[str]) -> bool:
    """Does the expression name a state (``JobState.FAILED``) outside a machine's call?"""
    if _is_machine_call(node):
        return False
    if isinstance(node, ast.Attribute) and isinstance(owner := node.value, ast.Name):
        return owner.id in enums
    return any(_names_a_state(child, enums) for child in ast.iter_child_nodes(node))


def bypasses(source: str, filename: str = "<source>") -> list[str]:
    """Every state change in ``source`` that does not go through a declared machine."""
    attributes, classes, enums = governed()
    found: list[tuple[int, str]] = []

    def flag(node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0)
        found.append((line, f"{filename}:{line}: {what}"))

    def assigned(target: ast.expr, value: ast.expr | None) -> Iterator[tuple[ast.expr, ast.expr]]:
        if isinstance(target, ast.Tuple | ast.List):
            values = value.elts if isinstance(value, ast.Tuple | ast.List) else None
            for index, element in enumerate(target.elts):
                paired = values[index] if values and len(values) == len(target.elts) else None
                yield from assigned(element, paired)
        elif value is not None:
            yield target, value
        else:
            yield target, ast.Constant(None)

    for node in ast.walk(ast.parse(source, filename)):
        pairs: list[tuple[ast.expr, ast.expr]] = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs.extend(assigned(target, node.value))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            pairs.append((node.target, node.value))
        for target, value in pairs:
            if not (isinstance(target, ast.Attribute) and target.attr in attributes):
                continue
            if isinstance(node, ast.AugAssign) or not _is_machine_call(value):
                flag(node, f"assigns .{target.attr} without its machine")
        if isinstance(node, ast.Call):
            func = node.func
            callee = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if callee == "setattr" and len(node.args) > 1:
                name = node.args[1]
                if isinstance(name, ast.Constant) and name.value in attributes:
                    flag(node, f"setattr of {name.value!r}")
            strict = callee == "values" or callee in classes
            for keyword in node.keywords:
                if keyword.arg not in attributes:
                    continue
                if strict and not _is_machine_call(keyword.value):
                    flag(node, f"{callee}({keyword.arg}=…) without its machine")
                elif not strict and _names_a_state(keyword.value, enums):
                    flag(node, f"{callee}({keyword.arg}=…) names a state without its machine")
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if not (isinstance(key, ast.Constant) and key.value in attributes):
                    continue
                if _names_a_state(value, enums):
                    flag(node, f"{{{key.value!r}: …}} names a state without its machine")
    return [message for _line, message in sorted(found)]


def test_no_state_change_bypasses_its_machine() -> None:
    found: list[str] = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts:
                continue  # a migration moves data of its own time, in SQL
            found.extend(bypasses(path.read_text(), str(path.relative_to(ROOT))))
    assert found == []


BYPASSING = """
job.state = JobState.FAILED
row.they_follow, row.their_follow_uri = PartnerState.NONE, None
row.we_follow = PartnerState.ACCEPTED if accepted else PartnerState.REFUSED
row.state = some_other.check(row.state, JobState.FAILED)
setattr(row, "state", JobState.FAILED)
update(Job).values(state=JobState.FAILED)
update(Job).values(state=target)
Follow(activity_uri=uri, state=FollowState.ACCEPTED)
update(Job).values({"state": JobState.FAILED})
values = {"state": JobState.FAILED, "finished_at": now}
dict(state=DeliveryState.PENDING)
"""

THROUGH_MACHINES = """
job.state = JOB_STATES.check(job.state, JobState.FAILED)
row.they_follow = THEY_FOLLOW_STATES.check(row.they_follow, PartnerState.NONE)
update(Job).values(state=JOB_STATES.check_all([JobState.PENDING], JobState.RUNNING))
update(Job).values(state=jobs.JOB_STATES.check(JobState.RUNNING, new_state))
Follow(activity_uri=uri, state=FOLLOW_STATES.start(FollowState.ACCEPTED))
page = render(state=raw or "")
answer = {"state": row.state.value}
if row.state is JobState.FAILED: pass
"""


def test_the_scan_finds_each_kind_of_bypass() -> None:
    found = bypasses(BYPASSING)
    assert [line.split(":")[1] for line in found] == [str(n) for n in range(2, 13)], found


def test_the_scan_lets_machine_moves_and_reads_pass() -> None:
    assert bypasses(THROUGH_MACHINES) == []


# A move the machines refuse, found in the code --------------------------------------------


FLAG = {
    "@context": "https://www.w3.org/ns/activitystreams",
    "id": "https://mastodon.example/flags/1",
    "type": "Flag",
    "actor": "https://mastodon.example/users/alice",
    "content": "spam",
    "object": ["https://music.example/releases/77"],
}


async def test_a_late_attempt_does_not_overwrite_a_handled_inbox_item(app: Quart) -> None:
    """Two attempts at one inbox item (a worker stalled past its lease, another took the
    job over): the one that finishes first records the result; the late one's finish is
    a move from done, which the inbox machine refuses, so it cannot overwrite it."""
    fed = federation_of(resources_of(app))
    stored = await store(fed, None, parse_activity(FLAG))
    assert stored.item_id is not None
    item_id = stored.item_id

    async def finished_meanwhile(incoming: Incoming) -> str:
        async with fed.sessionmaker() as session:
            item = await session.get_one(InboxItem, incoming.item_id)
            item.state, item.result = InboxState.DONE, "the attempt that took over"
            await session.commit()
        return "the late attempt"

    registry = Registry()
    registry.register("Flag", ANY, finished_meanwhile)
    with pytest.raises(IllegalTransition, match=r"InboxItem\.state: done → done"):
        await handle(fed, registry, item_id)
    async with fed.sessionmaker() as session:
        item = await session.get_one(InboxItem, item_id)
        assert (item.state, item.result) == (InboxState.DONE, "the attempt that took over")
