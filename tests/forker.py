"""Short `playfair` commands for the tests, run by forking a process that has imported the
command line once, instead of starting a new interpreter for each (which spends about a
second importing before the command does anything; the suite runs hundreds of commands).

Each command is still a process of its own: its own pid, environment, working directory,
standard input, output and error, exit status, and nothing it does reaches the next one.
The forking process is started lazily, one per test process, and only imports modules
(they have no import-time side effects). Long-running commands (`run`, `serve`,
`worker`) and the tests of the entry point itself start a real interpreter
(``tests.processes``). ``PLAYFAIR_TEST_FORK=0`` turns forking off.

The protocol, over a Unix socket: the test side sends one JSON request (argv, environment,
working directory) with three file descriptors (standard input, output, error); a handler
forked for the connection forks the command, answers its pid, waits for it and answers its
exit status."""

from __future__ import annotations

import atexit
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

    def run(
        self, args: Sequence[str], env: dict[str, str], stdin: str, timeout: float, cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        """As ``subprocess.run`` of ``playfair ARGS`` with output captured as text."""
        self._started({k: v for k, v in os.environ.items() if not k.startswith("PLAYFAIR_")})
        with (
            tempfile.TemporaryFile("w+", encoding="utf-8") as given,
            tempfile.TemporaryFile("w+", encoding="utf-8") as out,
            tempfile.TemporaryFile("w+", encoding="utf-8") as err,
            socket.socket(socket.AF_UNIX) as connection,
        ):
            given.write(stdin)
            given.flush()
            given.seek(0)
            connection.connect(self.path)
            connection.settimeout(timeout)
            request = {"args": list(args), "env": env, "cwd": str(cwd)}
            socket.send_fds(
                connection,
                [json.dumps(request).encode()],
                [given.fileno(), out.fileno(), err.fileno()],
            )
            answers = connection.makefile("r")
            pid = int(answers.readline())
            try:
                code = int(answers.readline())
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["playfair", *args], timeout) from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["playfair", *args], code, out.read(), err.read())
