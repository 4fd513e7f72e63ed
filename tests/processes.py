"""Real playfair processes for tests: started with their settings in the environment,
read line by line with a deadline, stopped with SIGTERM (or killed with SIGKILL, as a
crash would)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.forker import Forked, Forker

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = re.compile(r"playfair is running at (http://\S+?)/ ")


def playfair_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYFAIR_")}
    env["PLAYFAIR_DATABASE__NESTED_SESSIONS"] = "raise"  # a bug the tests must not miss
    env.update(settings_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


_FORKER = Forker(ROOT)
FORK = os.environ.get("PLAYFAIR_TEST_FORK", "1") != "0"


def run_playfair(
    args: Sequence[str],
    env: dict[str, str],
    stdin: str | None = None,
    timeout: float = 120,
    *,
    spawn: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``playfair ARGS`` run to its end, output captured: forked from a process that has
    imported the command line (``tests.forker``), or with ``spawn`` (or
    ``PLAYFAIR_TEST_FORK=0``) in a new interpreter, as an admin's shell starts it."""
    if FORK and not spawn:
        return _FORKER.run(args, playfair_env(env), stdin or "", timeout, ROOT)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=playfair_env(env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


class PlayfairProcess:
    """A long-running command (`run`, `serve`, `worker`) whose output we can wait on."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        *,
        argv: Sequence[str] | None = None,
        cwd: Path = ROOT,
        spawn: bool = False,
    ) -> None:
        """Runs ``playfair ARGS`` (forked as ``run_playfair`` does unless ``spawn``), or
        any other command given as ``argv``."""
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process: subprocess.Popen[str] | Forked
        if argv is None and FORK and not spawn:
            self.process = _FORKER.start(args, playfair_env(env), cwd)
        else:
            self.process = subprocess.Popen(
                list(argv) if argv is not None else [sys.executable, "-m", "server.cli", *args],
                env=playfair_env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=cwd,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        """Block until a line matches (or fail with everything printed so far)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines:
            if match := regex.search(line):
                return match
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {regex.pattern!r} within {timeout}s:\n" + self.output
                ) from None
            if line is None:
                raise AssertionError(
                    f"process ended (code {self.process.wait()}) before printing "
                    f"{regex.pattern!r}:\n" + self.output
                )
            self.lines.append(line)
            if match := regex.search(line):
                return match

    def wait_for_count(
        self, pattern: str | re.Pattern[str], count: int, timeout: float = 60
    ) -> None:
        """Block until ``count`` lines match (each line counts once)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        while sum(1 for line in self.lines if regex.search(line)) < count:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"fewer than {count} lines matching {regex.pattern!r} within {timeout}s:\n"
                    + self.output
                ) from None
            if line is None:
                raise AssertionError(f"process ended before {count} × {regex.pattern!r}")
            self.lines.append(line)

    def address(self, timeout: float = 60) -> str:
        return self.wait_for(ADDRESS, timeout).group(1)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._drain(timeout)
        return code

    def kill(self, timeout: float = 60) -> None:
        """SIGKILL: nothing of the process's own clean-up runs. Its output so far stays
        readable."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=timeout)
        self._drain(timeout)

    def _drain(self, timeout: float) -> None:
        self._reader.join(timeout=timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
