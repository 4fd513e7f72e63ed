"""The `playfair` commands of the tests, run by forking a process that has imported the
command line once, instead of starting a new interpreter for each (which spends about a
second importing before the command does anything; the suite runs hundreds of commands).

Each command is still a process of its own: its own pid, environment, working directory,
standard input, output and error, exit status, and nothing it does reaches the next one.
The forking process is started lazily, one per test process, and only imports modules
(they have no import-time side effects). Long-running commands (`run`, `serve`,
`worker`) are forked the same way; the tests of the entry point and of the process tree
start a new interpreter (``spawn`` in ``tests.processes``), and ``PLAYFAIR_TEST_FORK=0``
turns forking off.

The protocol, over a Unix socket: the test side sends one JSON request (argv, environment,
working directory) with three file descriptors (standard input, output, error); a handler
forked for the connection forks the command, answers its pid, waits for it and answers its
exit status."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

# What the commands import lazily, imported once here too.
WARM = (
    "server.cli",
    "models.migrate",
    "server.runtime.resources",
    "server.services.account_rules",
    "server.services.catalogue",
    "server.services.importer",
    "server.services.demo",
    "server.services.money",
    "server.services.app_passwords",
    "server.services.oauth_clients",
    "server.services.profiles",
    "server.serve",
    "server.web.app",
)


def _run_command(request: dict[str, object], fds: list[int]) -> None:
    """In the command's process: becomes it, runs it, never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        os.chdir(str(request["cwd"]))
        sys.argv = ["playfair", *request["args"]]  # type: ignore[misc]
        from server.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as the interpreter would: printed, status 1
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _handle(connection: socket.socket) -> None:
    """In a handler forked for one connection: forks the command, reports on it."""
    message, fds, _flags, _address = socket.recv_fds(connection, 1 << 20, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        connection.close()
        _run_command(request, fds)
    for fd in fds:
        os.close(fd)
    connection.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())


def serve(path: str) -> None:
    """The forking process: imports, then forks a handler per connection."""
    for module in WARM:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(64)
        print("ready", flush=True)
        while True:
            connection, _ = listener.accept()
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this one waits for its child
                try:
                    _handle(connection)
                finally:
                    os._exit(0)
            connection.close()


class Forker:
    """The test side: one forking process per test process, started on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="playfair-forker-")
        self.path = os.path.join(self._folder.name, "socket")

    def _started(self, env: dict[str, str]) -> None:
        with self._lock:
            if self._process is not None:
                return
            self._process = subprocess.Popen(
                [sys.executable, "-c", f"from tests.forker import serve; serve({self.path!r})"],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._process.stdout is not None
            line = self._process.stdout.readline()
            assert line == "ready\n", f"the forking process did not start: {line!r}"
            atexit.register(self.close)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._folder.cleanup()

    def _send(
        self, args: Sequence[str], env: dict[str, str], cwd: Path, fds: Sequence[int]
    ) -> tuple[socket.socket, int]:
        """Starts a command with these standard input, output and error: the connection
        that will answer its exit status, and its pid."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PLAYFAIR_")}
        # unbuffered standard streams, as tests.processes gives a new interpreter: the
        # commands inherit them
        self._started({**base, "PYTHONUNBUFFERED": "1"})
        connection = socket.socket(socket.AF_UNIX)
        connection.connect(self.path)
        request = {"args": list(args), "env": env, "cwd": str(cwd)}
        socket.send_fds(connection, [json.dumps(request).encode()], list(fds))
        return connection, int(_line(connection, None))

    def start(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> Forked:
        """A long-running command, its output and error on one pipe (as
        ``subprocess.Popen`` with ``stdout=PIPE, stderr=STDOUT``)."""
        read, write = os.pipe()
        with open(os.devnull, "rb") as nothing:
            try:
                connection, pid = self._send(args, env, cwd, [nothing.fileno(), write, write])
            finally:
                os.close(write)
        return Forked(pid, connection, os.fdopen(read, "r", encoding="utf-8"))

    def run(
        self, args: Sequence[str], env: dict[str, str], stdin: str, timeout: float, cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        """As ``subprocess.run`` of ``playfair ARGS`` with output captured as text."""
        with (
            tempfile.TemporaryFile("w+", encoding="utf-8") as given,
            tempfile.TemporaryFile("w+", encoding="utf-8") as out,
            tempfile.TemporaryFile("w+", encoding="utf-8") as err,
        ):
            given.write(stdin)
            given.flush()
            given.seek(0)
            connection, pid = self._send(
                args, env, cwd, [given.fileno(), out.fileno(), err.fileno()]
            )
            with connection:
                try:
                    code = int(_line(connection, timeout))
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(["playfair", *args], timeout) from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["playfair", *args], code, out.read(), err.read())


def _line(connection: socket.socket, timeout: float | None) -> str:
    """One answer line of the forking process (its answers are short and one at a time)."""
    connection.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(64)
        if not chunk:
            raise ConnectionError("the forking process hung up")
        data += chunk
    return data.decode()


class Forked:
    """A running forked command, with what ``tests.processes`` uses of ``Popen``."""

    def __init__(self, pid: int, connection: socket.socket, stdout: TextIO) -> None:
        self.pid = pid
        self.stdout = stdout
        self._connection = connection
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(TimeoutError):
                self._ended(int(_line(self._connection, 0.0001)))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self._ended(int(_line(self._connection, timeout)))
            except TimeoutError:
                raise subprocess.TimeoutExpired(["playfair"], timeout or 0) from None
        assert self.returncode is not None
        return self.returncode

    def _ended(self, code: int) -> None:
        self.returncode = code
        self._connection.close()

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
