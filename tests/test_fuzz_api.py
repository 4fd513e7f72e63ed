"""The schemathesis campaign: every operation of ``/api/v1/openapi.json`` of a real
``playfair run`` (both databases) fuzzed with a listener's token and with an artist's, and
not one answer may be a 5xx (schemathesis' ``not_a_server_error`` check).

Schemathesis runs as its own command line, as it would against any deployed instance: its
examples, coverage (boundary values, wrong types, missing and extra fields), fuzzing and
stateful phases, with a fixed seed so CI is reproducible. ``PLAYFAIR_FUZZ_SCALE=N`` runs N
times as many examples per operation (a few in CI, many for a longer local run) and
``PLAYFAIR_FUZZ_SEED`` sets another seed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio import make_audio
from tests.instances import Instance, make_instance

SCALE = int(os.environ.get("PLAYFAIR_FUZZ_SCALE", "1"))
EXAMPLES = 4 * SCALE  # per operation and token; CI's run stays within about three minutes
SEED = os.environ.get("PLAYFAIR_FUZZ_SEED", "20261201")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROLES = {"listener": ("lena", "listener"), "artist": ("mira", "artist")}


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Instance:
    """An instance with something to find: a listener, an artist with a published
    release of one track, and a token each for every scope a person can have."""
    made = make_instance(tmp_path / "instance", "127.0.0.1", database_url)
    for name, role in ROLES.values():
        made.cli("user", "add", name, "--role", role, stdin="a long password\n")
    made.cli("artist", "add", "aurora", "--owner", "mira")
    album = tmp_path / "Tide Tables"
    album.mkdir()
    make_audio(album / "01 - Ebb.mp3", "mp3", seconds=1)
    made.cli("import", str(album), "--artist", "aurora")
    return made


def campaign(instance: Instance, token: str, folder: Path) -> subprocess.Popen[str]:
    """One schemathesis run with ``token``, started (the caller waits for it)."""
    command = [
        str(SCHEMATHESIS), "--no-color", "run", f"{instance.base}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error",
        "--max-examples", str(EXAMPLES), "--seed", SEED,
        # one worker: CPython 3.11's ast module is not safe to use from threads, and
        # hypothesis parses lambdas with it while describing strategies
        "--workers", "1",
        "--request-timeout", "30",
        "--suppress-health-check", "all",
        "--warnings", "off",
    ]  # fmt: skip
    return subprocess.Popen(  # in ``folder``: schemathesis keeps a cache where it runs
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder
    )


@pytest.mark.timeout(900 * SCALE)
def test_no_operation_answers_a_server_error(instance: Instance, tmp_path: Path) -> None:
    tokens = {
        role: instance.cli("token", "issue", name, "--scopes", "read write play upload")
        for role, (name, _) in ROLES.items()
    }
    runs: dict[str, subprocess.Popen[str]] = {}
    instance.start()
    try:
        # the listener's and the artist's campaigns at once: one core each, and the
        # instance serves both as it would serve two people
        for role, token in tokens.items():
            (tmp_path / role).mkdir()
            runs[role] = campaign(instance, token, tmp_path / role)
        outputs = {role: run.communicate(timeout=800 * SCALE)[0] for role, run in runs.items()}
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
        output = instance.stop()
    for role, stdout in outputs.items():
        assert runs[role].returncode == 0, f"as the {role}:\n{stdout[-20000:]}"
        tested = re.search(r"Tested: (\d+)", stdout)
        generated = re.search(r"(\d+) generated", stdout)
        assert tested and int(tested.group(1)) >= 100, stdout[-3000:]  # every operation
        assert generated and int(generated.group(1)) >= 1000, stdout[-3000:]
    assert "unhandled error" not in output, output[-20000:]
