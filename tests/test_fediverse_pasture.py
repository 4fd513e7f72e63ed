"""The `fediverse-pasture` package's actor verification (funfedi.dev) run against a real
instance: its test actors fetch our artist and post to its inbox, unsigned (must be
refused) and signed (must be accepted), and our WebFinger must lead back to the actor.

The pasture runs as its own process on another loopback address; we start its Quart app
with uvicorn ourselves because its `get_app` factory has a bug in 0.2.25 (it omits the
`timeout` argument of `build_app`) and its command binds every interface.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from tests.instances import free_port, make_instance
from tests.processes import PlayfairProcess

LAUNCH = """
import sys, uvicorn
from fediverse_pasture.verify_actor import build_app
host, port = sys.argv[1], int(sys.argv[2])
app = build_app(False, f"{host}:{port}", False, 20)
uvicorn.run(app, host=host, port=port, log_level="info")
"""


def test_pasture_verifies_an_artist_actor(tmp_path: Path) -> None:
    ours = make_instance(tmp_path / "ours", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/o.db")
    ours.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    ours.cli("artist", "add", "aurora", "--owner", "mira")
    pasture_host, pasture_port = "127.0.0.4", free_port("127.0.0.4")
    workdir = tmp_path / "pasture"
    workdir.mkdir()  # it writes its generated actors to data.toml in the current folder
    pasture = PlayfairProcess(
        [],
        {},
        argv=[sys.executable, "-c", LAUNCH, pasture_host, str(pasture_port)],
        cwd=workdir,
    )
    try:
        ours.start()
        pasture.wait_for(r"Uvicorn running on")
        answer = httpx.get(
            f"http://{pasture_host}:{pasture_port}/",
            params={"actor_uri": f"{ours.base}/artists/aurora"},
            headers={"Accept": "application/json"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()["result"]
        messages = json.loads(answer.json()["messages"])
        context = json.dumps(result, indent=1) + "\n" + "\n".join(map(str, messages))
        assert result["webfinger"] is True, context
        for name in ("alice", "bob", "claire", "dean", "emily", "frank"):
            assert result[name]["get_actor"] is True, (name, context)
        # unsigned posts are refused; signed ones, also from actors that only answer
        # signed fetches of their keys (claire, frank), are accepted
        for name in ("alice", "dean"):
            assert result[name]["post_inbox"] is False, (name, context)
        for name in ("bob", "claire", "emily", "frank"):
            assert result[name]["post_inbox"] is True, (name, context)
    finally:
        pasture.stop()
        output = ours.stop()
    assert "Traceback" not in output, output
