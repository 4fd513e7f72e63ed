"""Footprint: idle memory (RSS of the whole process tree, read from /proc once it answers
and has settled) and cold start (process start to the first 200) of `playfair run`, next to
supysonic (waitress) started the same way in the same run. Both run from a virtual
environment of their own holding what `pip install` brings: playfair's is this checkout
installed with its runtime dependencies only (as an admin installs it; made once,
the code reinstalled on every run), supysonic's is made by bench/subsonic.py. playfair
is also measured from the development environment (with the test tools), for reference."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.subsonic import PASSWORD, supysonic_home
from tests.postgres import free_port
from tests.processes import ROOT, playfair_env

SETTLE = 3.0  # seconds idle after the first answer before memory is read
STARTS = 3  # cold starts of each; the best is reported
PRODUCTION_VENV = ROOT / "bench" / "out" / "playfair-venv"


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _rss_mib(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def _start(
    argv: list[str], env: dict[str, str], cwd: Path, url: str
) -> tuple[subprocess.Popen[bytes], float]:
    """Starts ``argv`` and polls ``url``; the process and the seconds to its first 200."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.005)
    process.kill()
    raise RuntimeError(f"{url} did not come up")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _measure(argv: list[str], env: dict[str, str], cwd: Path, url: str) -> tuple[float, float]:
    """Best cold start of STARTS, and the idle RSS (MiB) of the last one."""
    starts, rss = [], 0.0
    for _ in range(STARTS):
        process, seconds = _start(argv, env, cwd, url)
        try:
            starts.append(seconds)
            time.sleep(SETTLE)
            rss = _rss_mib(process.pid)
        finally:
            _stop(process)
    return min(starts), rss


def production_python(folder: Path) -> Path:
    """The interpreter of a virtual environment where this checkout is installed as an
    admin installs it (``pip install``, runtime dependencies only). The tracked files are
    copied to ``folder`` first, so that the build writes nothing into the checkout."""
    python = PRODUCTION_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PRODUCTION_VENV)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout  # fmt: skip
    source = folder / "source"
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--force-reinstall",
                    str(source)], check=True, capture_output=True)  # fmt: skip
    return python


def _playfair(folder: Path, python: Path, cwd: Path) -> tuple[float, float]:
    """``python -m server.cli run`` started in ``cwd`` (the checkout, or elsewhere for an
    installed copy)."""
    env = playfair_env({
        "PLAYFAIR_INSTANCE__DATA_DIR": str(folder),
        "PLAYFAIR_SERVER__ACCESS_LOG": "false",
        "PLAYFAIR_LOGGING__LEVEL": "WARNING",
    })  # fmt: skip
    env.pop("PYTHONPATH", None)  # the installed copy must not see the checkout
    subprocess.run([str(python), "-m", "server.cli", "init"], env=env, cwd=cwd,
                   capture_output=True, check=True)  # fmt: skip
    port = free_port()
    argv = [str(python), "-m", "server.cli", "run", "--bind", f"127.0.0.1:{port}"]
    return _measure(argv, env, cwd, f"http://127.0.0.1:{port}/healthz")


def _supysonic(folder: Path) -> tuple[float, float]:
    bin_dir, home, env = supysonic_home(folder)
    subprocess.run([str(bin_dir / "supysonic-cli"), "user", "add", "bench", "-p", PASSWORD],
                   cwd=home, env=env, check=True, capture_output=True)  # fmt: skip
    port = free_port()
    argv = [str(bin_dir / "supysonic-server"), "-S", "waitress", "-h", "127.0.0.1",
            "-p", str(port)]  # fmt: skip
    return _measure(argv, env, home, f"http://127.0.0.1:{port}/rest/ping")


async def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="playfair-bench-footprint-") as name:
        folder = Path(name)
        python = await asyncio.to_thread(production_python, folder)
        (folder / "elsewhere").mkdir()
        ours = await asyncio.to_thread(_playfair, folder / "installed", python,
                                       folder / "elsewhere")  # fmt: skip
        dev = await asyncio.to_thread(_playfair, folder / "dev", Path(sys.executable), ROOT)
        theirs = await asyncio.to_thread(_supysonic, folder)
    return [
        f"playfair run (installed: runtime dependencies only): idle {ours[1]:6.1f} MiB RSS "
        f"(process tree), cold start {ours[0]:5.2f} s",
        f"playfair run (the development environment, test tools installed): idle "
        f"{dev[1]:6.1f} MiB RSS, cold start {dev[0]:5.2f} s",
        f"reference, supysonic 0.7.9 (waitress): idle {theirs[1]:6.1f} MiB RSS, "
        f"cold start {theirs[0]:5.2f} s",
        f"playfair / supysonic: {ours[1] / theirs[1]:.2f} of the memory, "
        f"{ours[0] / theirs[0]:.2f} of the cold start",
        f"(best cold start of {STARTS}, process start to first 200 of /healthz or /rest/ping; "
        f"RSS summed over the process and its children after {SETTLE:.0f} s idle)",
    ]
