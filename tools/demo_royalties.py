"""`make demo-royalties`: issue 7's scenario with three real instances on loopback.

Two music scenes, A and B, and a co-op hub H. A listener on A plays a track of an artist
on B ten times; A charges 2 + 4 + … + 512 = 1022 tokens and the listener owns the track;
B's artist is credited the artist share; A's signed statement to B is accepted; the hub
settles; both book the settlement. Prints every figure and exits 1 if any does not add up.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.audio import make_audio  # noqa: E402 - the harness of the tests, reused
from tests.instances import Instance, make_instance, peer_balances  # noqa: E402

SHARE_PERCENT = 70
TRACK_SECONDS = 1.0
PASSWORD = "a long password\n"  # noqa: S105 - the demo accounts, thrown away


def say(line: str) -> None:
    print(line, flush=True)


def host(instance: Instance) -> str:
    return instance.base.split("://", 1)[1]


def run(folder: Path) -> list[str]:
    """The scenario; returns what did not add up (empty: everything did)."""
    a = make_instance(folder / "a", "127.0.0.2", f"sqlite+aiosqlite:///{folder}/a.sqlite3")
    b = make_instance(folder / "b", "127.0.0.3", f"sqlite+aiosqlite:///{folder}/b.sqlite3")
    hub = make_instance(folder / "h", "127.0.0.4", f"sqlite+aiosqlite:///{folder}/h.sqlite3")
    hub.env.update(
        {"PLAYFAIR_FEDERATION__HUB_ROLE": "true", "PLAYFAIR_FEDERATION__PARTNERSHIPS": "auto"}
    )
    b.env["PLAYFAIR_FEDERATION__PARTNERSHIPS"] = "auto"
    for member in (a, b):
        member.env["PLAYFAIR_FEDERATION__HUB"] = f"{hub.base}/actor"
    problems: list[str] = []
    try:
        b.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD)
        b.cli("artist", "add", "aurora", "--owner", "mira", "--display-name", "Aurora Lane")
        mira = {"Authorization": f"Bearer {b.cli('token', 'issue', 'mira', '--scopes', 'read')}"}
        album = folder / "Tide Tables"
        album.mkdir()
        make_audio(album / "01 - Ebb.mp3", "mp3", seconds=TRACK_SECONDS)
        b.cli("import", str(album), "--artist", "aurora")
        a.cli("user", "add", "lena", stdin=PASSWORD)
        token = a.cli("token", "issue", "lena", "--scopes", "read write play")
        lena = {"Authorization": f"Bearer {token}"}
        [voucher] = a.cli("voucher", "issue", "--tokens", "1022").split()
        for name, instance in (("A", a), ("B", b), ("hub", hub)):
            instance.start()
            say(f"{name}: {instance.base}")
        b.wait_for(r"release (\d+) announced")
        a.cli("partners", "request", host(b))
        a.cli("partners", "request", host(hub))
        b.cli("partners", "request", host(hub))
        a.wait_for_count(r"\(Accept from .*/actor\): done: Accept of our partnership", 2)
        b.wait_for(r"\(Accept from .*/actor\): done: Accept of our partnership")
        say("partnerships: A and B, A and the hub, B and the hub")

        with httpx.Client(timeout=30) as http:
            start = http.get(f"{a.base}/api/v1/me/wallet", headers=lena).json()["balance"]
            http.post(f"{a.base}/api/v1/me/vouchers", json={"code": voucher}, headers=lena)
            [track] = http.post(
                f"{a.base}/api/v1/remote-releases",
                json={"uri": f"{b.base}/releases/1"},
                headers=lena,
            ).json()["items"]
            paid = []
            for number in range(1, 11):
                play = http.post(f"{a.base}/api/v1/tracks/{track['id']}/plays", headers=lena).json()
                http.get(play["stream_url"])
                time.sleep(TRACK_SECONDS)  # a play counts after min(45 s, length)
                done = http.post(play["claim_url"], headers=lena).json()
                paid.append(done["tokens"])
                say(f"play {number} of '{track['title']}' on A: {done['tokens']} tokens"
                    + (", owned" if done["owned"] else ""))  # fmt: skip
            balance = http.get(f"{a.base}/api/v1/me/wallet", headers=lena).json()["balance"]
            b.wait_for_count(r"\(Listen from .*/actor\): done: Listen of track", 10)
            a.cli("statements", "send")
            b.wait_for(r"\(Create from .*/actor\): done: statement .*: accepted")
            hub.wait_for(r"\(Accept from .*/actor\): done: accept of .* logged")
            settlement = hub.cli("hub", "settle").splitlines()
            a.wait_for(r"done: settlement .* booked")
            b.wait_for(r"done: settlement .* booked")
            earned = http.get(f"{b.base}/api/v1/artists/aurora/earnings", headers=mira).json()
    finally:
        for instance in (a, b, hub):
            if instance.process is not None:
                instance.stop()

    expected_share = sum(paid) * SHARE_PERCENT // 100
    say(f"listener on A paid {sum(paid)} tokens: {' + '.join(map(str, paid[:9]))}")
    say(f"artist on B credited {earned['balance_tokens']} tokens ({SHARE_PERCENT} %)")
    say("hub settlement " + settlement[0])
    for line in settlement[1:]:
        say("  " + line)
    if sum(paid) != 1022 or paid[-1] != 0:
        problems.append(f"the listener paid {paid}, not 2 … 512 and then nothing")
    if start + 1022 - sum(paid) != balance:
        problems.append(f"the wallet shows {balance}, not {start}")
    if earned["balance_tokens"] != expected_share:
        problems.append(f"the artist got {earned['balance_tokens']}, not {expected_share}")
    if settlement[1:] != [f"{a.base}/actor pays {b.base}/actor {expected_share} tokens"]:
        problems.append(f"the settlement says {settlement[1:]}, not A pays B {expected_share}")
    for name, instance in (("A", a), ("B", b)):
        balances = asyncio.run(peer_balances(instance))
        if set(balances) != {0}:
            problems.append(f"{name} still owes or is owed after booking: {balances}")
    return problems


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="playfair-royalties-") as folder:
        problems = run(Path(folder))
    for problem in problems:
        print(f"does not add up: {problem}", file=sys.stderr)
    say("everything adds up" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
