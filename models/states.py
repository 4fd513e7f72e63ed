"""Declared state machines: where a row's state may start, which moves are allowed, and
where its life may end.

Each machine is declared next to its enum (``models/jobs.py``, ``models/federation.py``
…) and named after the column it governs (``"Job.state"``). Code that changes a state
says so through it::

    row.state = DELIVERY_STATES.check(row.state, DeliveryState.PENDING)
    update(Job).where(Job.state == JobState.PENDING).values(
        state=JOB_STATES.check_all([JobState.PENDING], JobState.RUNNING)
    )
    Follow(..., state=FOLLOW_STATES.start(FollowState.ACCEPTED))

and an undeclared move raises :class:`IllegalTransition`. A move to the same state is a
move like any other: allowed only where the machine declares it (a job whose lease ran
out is claimed again, ``running`` → ``running``; a repeated Follow is answered again).

``terminal`` states have no way out. ``resting`` states are where a row may stay for
good although moves out of them are declared (a succeeded job that is queued again).
``tests/test_state_machines.py`` walks every graph, and scans ``server/`` and ``models/``
for state changes that do not go through a machine. docs/decisions.md says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Enum)


class IllegalTransition(RuntimeError):
    """A state change the machine does not declare: a bug, not bad input (no handler
    of rule violations, which are ValueErrors, turns it into an answer)."""

    def __init__(self, machine: str, current: Enum | None, target: Enum, allowed: Iterable[Enum]):
        names = ", ".join(sorted(str(state.value) for state in allowed)) or "none"
        if current is None:
            message = f"{machine}: a new row cannot start as {target.value} (it may start: {names})"
        else:
            message = (
                f"{machine}: {current.value} → {target.value} is not a declared transition"
                f" ({current.value} may go to: {names})"
            )
        super().__init__(message)
        self.machine = machine
        self.current = current
        self.target = target


class StateMachine(Generic[S]):
    """The declared life of one state column. Pure: it knows nothing of rows or SQL."""

    __slots__ = ("initial", "name", "resting", "terminal", "transitions")

    def __init__(
        self,
        name: str,
        *,
        initial: Iterable[S],
        transitions: Mapping[S, Iterable[S]],
        terminal: Iterable[S] = (),
        resting: Iterable[S] = (),
    ) -> None:
        self.name = name
        self.initial: frozenset[S] = frozenset(initial)
        self.transitions: dict[S, frozenset[S]] = {
            state: frozenset(targets) for state, targets in transitions.items()
        }
        self.terminal: frozenset[S] = frozenset(terminal)
        self.resting: frozenset[S] = frozenset(resting)
        self._validate()

    def _validate(self) -> None:
        if not self.initial:
            raise ValueError(f"{self.name}: no initial state")
        if len({type(state) for state in self.states}) != 1:
            raise ValueError(f"{self.name}: states of more than one enum")
        for state in self.terminal:
            if self.transitions.get(state):
                raise ValueError(f"{self.name}: terminal state {state.value} has moves out")
        for state in self.resting:
            if not self.transitions.get(state):
                raise ValueError(f"{self.name}: resting state {state.value} has no move out")
        if self.terminal & self.resting:
            raise ValueError(f"{self.name}: a state cannot be both terminal and resting")

    @property
    def states(self) -> frozenset[S]:
        """Every state the machine mentions (a machine may use part of its enum)."""
        moved = {target for targets in self.transitions.values() for target in targets}
        return self.initial | set(self.transitions) | moved | self.terminal | self.resting

    @property
    def enum(self) -> type[S]:
        return type(next(iter(self.initial)))

    def allows(self, current: S | None, target: S) -> bool:
        """May a row go from ``current`` to ``target``? ``None``: a new row, which may
        start in an initial state only."""
        if current is None:
            return target in self.initial
        return target in self.transitions.get(current, frozenset())

    def check(self, current: S | None, target: S) -> S:
        """``target``, if the move is declared; :class:`IllegalTransition` otherwise."""
        if not self.allows(current, target):
            allowed = self.initial if current is None else self.transitions.get(current, ())
            raise IllegalTransition(self.name, current, target, allowed)
        return target

    def check_all(self, sources: Iterable[S], target: S) -> S:
        """``target``, if every one of ``sources`` may move to it: for a bulk ``UPDATE …
        WHERE state IN (sources) SET state = target``, checked where it is built."""
        sources = list(sources)
        if not sources:
            raise ValueError(f"{self.name}: a bulk move needs the states it moves from")
        for source in sources:
            self.check(source, target)
        return target

    def start(self, state: S) -> S:
        """``state``, if a new row may start in it."""
        return self.check(None, state)

    def __repr__(self) -> str:
        return f"StateMachine({self.name!r})"
