"""Kill tests (issue 12): real `playfair run` processes are killed with SIGKILL in the
middle of a fan-out, a transcode and a royalty statement run, started again, and what
they were doing must finish exactly once: every delivery delivered (receivers
de-duplicate by activity id), no row left `delivering`, no orphan ffmpeg, no stray file,
the ledger as it was.

The receiving side of a fan-out is a small real HTTP server standing for many followers;
it records the id of every activity posted to it and can hold one request unanswered, so
that a delivery is in flight when the sender is killed. Where the kill falls is drawn
from a seed printed at the start (``PLAYFAIR_CRASH_SEED=… pytest …`` runs it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from quart import Quart
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from federation.delivery import Verdict
from models import jobs
from models.base import utcnow
from models.catalogue import FileRole, MediaFile, Track, TrackStatus
from models.federation import (
    Delivery,
    DeliveryState,
    Follow,
    FollowState,
    InboxItem,
    OutboundActivity,
    RemoteActor,
)
from models.jobs import Job, JobState
from models.ledger import LedgerAccount, LedgerTransaction
from models.remote_plays import RoyaltyStatementRecord, StatementDirection, StatementState
from server.runtime import subprocesses
from server.runtime.config import Settings
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import attempt_delivery, deliver, recover, replay
from server.services.jobs import build_worker
from server.services.media.storage import LOCK_NAME, LOOSE_FILE_AGE, LocalStorage
from server.services.royalties.signing import PayerUnreachable, StatementError, signer_key
from server.web.current import resources_of
from tests.audio import make_audio
from tests.conftest import make_settings
from tests.instances import Instance, database_of, make_instance
from tests.processes import ROOT, PlayfairProcess
from tests.test_account_pages import csrf, make_admin
from tests.test_delivery import BASE, queue_delivery

T = TypeVar("T")

# Short leases and timeouts, so that a takeover comes within seconds of a restart.
CONCURRENCY = 4
FAST = {
    "PLAYFAIR_WORKER__CONCURRENCY": str(CONCURRENCY),
    "PLAYFAIR_FEDERATION__DELIVERY_CONCURRENCY": str(CONCURRENCY),
    "PLAYFAIR_WORKER__LEASE": "3s",
    "PLAYFAIR_WORKER__RETRY_BASE": "1s",
    "PLAYFAIR_WORKER__RETRY_MAX": "2s",
    "PLAYFAIR_FEDERATION__DELIVERY_TIMEOUT": "3s",
    "PLAYFAIR_FEDERATION__DELIVERY_RETRY_BASE": "1s",
    "PLAYFAIR_FEDERATION__DELIVERY_RETRY_MAX": "2s",
}
PASSWORD = "a long password\n"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


def crash_seed() -> int:
    seed = int(os.environ.get("PLAYFAIR_CRASH_SEED") or random.randrange(2**32))  # noqa: S311
    print(f"crash seed: {seed} (PLAYFAIR_CRASH_SEED={seed} repeats this run)")
    return seed


def wait_until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` until it gives something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)


# --- a recording inbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    number: int  # 1 for the first request the server got
    path: str
    activity_id: str
    type: str


@dataclass
class Hold:
    """The first request ``wanted`` picks is not answered until ``released`` is set."""

    wanted: Callable[[Received], bool]
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    request: Received | None = None


class Inboxes:
    """A real HTTP server: every POST is recorded (path, activity id, type) and answered
    202; GETs are answered from ``documents`` (actor documents)."""

    def __init__(self, host: str) -> None:
        self.received: list[Received] = []
        self.documents: dict[str, dict[str, Any]] = {}
        self.holds: list[Hold] = []
        self._lock = threading.Lock()
        inboxes = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                document = json.loads(body)
                hold = inboxes._record(self.path, document)
                if hold is not None:
                    hold.arrived.set()
                    hold.released.wait(120)
                self._answer(202, b"")

            def do_GET(self) -> None:
                document = inboxes.documents.get(self.path)
                if document is None:
                    self._answer(404, b"")
                else:
                    self._answer(200, json.dumps(document).encode(), "application/activity+json")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender was killed while we held its request

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, path: str, document: dict[str, Any]) -> Hold | None:
        with self._lock:
            received = Received(
                len(self.received) + 1, path, str(document.get("id")), str(document.get("type"))
            )
            self.received.append(received)
            for hold in self.holds:
                if hold.request is None and hold.wanted(received):
                    hold.request = received
                    return hold
        return None

    def hold(self, wanted: Callable[[Received], bool]) -> Hold:
        hold = Hold(wanted)
        with self._lock:
            self.holds.append(hold)
        return hold

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        for hold in self.holds:
            hold.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inboxes() -> Iterator[Inboxes]:
    server = Inboxes("127.0.0.5")
    yield server
    server.close()


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    """Instances a test starts: whatever is still running at the end is stopped, and
    must have logged no traceback."""
    started: list[Instance] = []
    yield started
    for instance in started:
        if instance.process is not None:
            output = instance.stop()
            assert "Traceback" not in output, output


# --- processes, as /proc shows them ---------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)", which may hold spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie is dead, not reaped


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def children_of(pid: int) -> list[int]:
    return [child for child in _pids() if (_stat(child) or ("", 0))[1] == pid]


def running_on(folder: Path) -> list[tuple[int, list[str]]]:
    """Living processes (other than this one) whose command line names a file in
    ``folder``."""
    found = []
    for pid in _pids():
        args = _cmdline(pid)
        if pid != os.getpid() and alive(pid) and any(str(folder) in arg for arg in args):
            found.append((pid, args))
    return found


# --- the instance's database ----------------------------------------------------------------


def query(instance: Instance, work: Callable[[Any], Any]) -> Any:
    """Run ``await work(session)`` on the instance's own database."""

    async def run() -> Any:
        async with database_of(instance) as session:
            return await work(session)

    return asyncio.run(run())


async def _delivery_states(session: Any) -> list[tuple[str, DeliveryState, int]]:
    rows = await session.execute(select(Delivery.inbox, Delivery.state, Delivery.attempts))
    return [tuple(row) for row in rows]


def settled(instance: Instance) -> list[tuple[str, DeliveryState, int]] | None:
    """The deliveries once none is pending or in flight any more."""
    rows: list[tuple[str, DeliveryState, int]] = query(instance, _delivery_states)
    unfinished = (DeliveryState.PENDING, DeliveryState.DELIVERING)
    return rows if rows and not any(state in unfinished for _i, state, _a in rows) else None


async def _seed_followers(session: Any, base: str, count: int) -> None:
    """Remote followers of the artist 'aurora', each with an inbox of its own on the
    recording server (as if their Follows had been accepted)."""
    for number in range(count):
        actor = RemoteActor(
            uri=f"{base}/users/u{number}",
            domain="127.0.0.5",
            type="Person",
            inbox=f"{base}/users/u{number}/inbox",
        )
        session.add(actor)
        await session.flush()
        session.add(
            Follow(
                activity_uri=f"{base}/users/u{number}/follows/1",
                follower_actor_id=actor.id,
                followed_name="aurora",
                state=FollowState.ACCEPTED,
            )
        )
    await session.commit()


FOLLOWERS = 24


def test_a_fan_out_killed_at_a_random_point_delivers_everything_once(
    tmp_path: Path, database_url: str, inboxes: Inboxes, instances: list[Instance]
) -> None:
    """A release announced to 24 followers' inboxes; the sender is killed when the N-th
    delivery arrives (held unanswered: it is in flight), then started again. Every
    inbox gets the Create; only attempts in flight at the kill are sent twice (the
    receiver de-duplicates them by id), and no delivery is left behind."""
    kill_at = random.Random(crash_seed()).randint(1, FOLLOWERS)  # noqa: S311
    print(f"SIGKILL when delivery {kill_at} of {FOLLOWERS} arrives")
    a = make_instance(tmp_path / "a", "127.0.0.2", database_url)
    a.spawn = True  # a real interpreter: these tests are about its process tree
    a.env.update(FAST)
    instances.append(a)
    a.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD)
    a.cli("artist", "add", "aurora", "--owner", "mira")
    query(a, lambda session: _seed_followers(session, inboxes.base, FOLLOWERS))
    folder = tmp_path / "Tide Tables"
    folder.mkdir()
    make_audio(folder / "01 - Ebb.mp3", "mp3", seconds=1.0)
    a.cli("import", str(folder), "--artist", "aurora")  # published: announced once transcoded
    hold = inboxes.hold(lambda received: received.number == kill_at)

    a.start()
    assert hold.arrived.wait(60), "the fan-out did not reach the kill point"
    killed = a.kill()
    hold.released.set()
    assert "release 1 announced: 24 deliveries queued" in killed.output
    a.start()
    rows = wait_until(lambda: settled(a), 60, "every delivery delivered after the restart")

    assert len(rows) == FOLLOWERS
    assert {state for _inbox, state, _attempts in rows} == {DeliveryState.DELIVERED}
    received = inboxes.snapshot()
    assert {r.type for r in received} == {"Create"}
    [activity_id] = {r.activity_id for r in received}
    assert activity_id.startswith(f"{a.base}/")
    per_inbox = Counter(r.path for r in received)
    assert set(per_inbox) == {f"/users/u{n}/inbox" for n in range(FOLLOWERS)}  # each once…
    attempts = {inbox.removeprefix(inboxes.base): count for inbox, _state, count in rows}
    assert all(per_inbox[path] <= attempts[path] for path in per_inbox)  # a copy per attempt
    twice = {path for path, count in per_inbox.items() if count > 1}
    assert hold.request is not None and hold.request.path in twice  # …the held one again
    assert len(twice) <= CONCURRENCY, per_inbox  # only the wave that was in flight
    a.wait_for(r"delivery \d+: taking over attempt 1")


# --- a transcode ----------------------------------------------------------------------------

LONG_SECONDS = 120  # a few seconds of ffmpeg work: enough to find it running


def _transcoding(worker: int) -> tuple[int, Path] | None:
    """The worker's ffmpeg child making the Opus rendition, once its output has bytes."""
    for child in children_of(worker):
        args = _cmdline(child)
        if args and args[0].endswith("ffmpeg") and "libopus" in args:
            output = Path(args[-1])
            if output.is_file() and output.stat().st_size > 0:
                return child, output
    return None


async def _track_files(session: Any) -> tuple[TrackStatus, list[tuple[FileRole, str, int]]]:
    track = await session.get(Track, 1)
    files = await session.execute(
        select(MediaFile.role, MediaFile.storage_key, MediaFile.size_bytes).where(
            MediaFile.track_id == 1
        )
    )
    return track.status, sorted(tuple(row) for row in files)


async def _jobs_of(session: Any, kind: str) -> list[tuple[JobState, int]]:
    rows = await session.execute(select(Job.state, Job.attempts).where(Job.kind == kind))
    return [tuple(row) for row in rows]


@pytest.mark.slow
def test_a_worker_killed_while_ffmpeg_runs_leaves_no_orphan_and_no_stray_file(
    tmp_path: Path, instances: list[Instance]
) -> None:
    """SIGKILL while ffmpeg writes a rendition: ffmpeg dies with its worker, its partial
    output is swept when the instance starts again, the job is taken over after its
    lease and the track becomes ready once, with one file per rendition. (Processes and
    files: run once, on the default SQLite; the fan-out test takes jobs over on both
    databases.)"""
    a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")
    a.spawn = True  # a real interpreter: these tests are about its process tree
    a.env.update(FAST)
    instances.append(a)
    a.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD)
    a.cli("artist", "add", "aurora", "--owner", "mira")
    folder = tmp_path / "Long Player"
    folder.mkdir()
    make_audio(folder / "01 - Drone.flac", "flac", seconds=LONG_SECONDS)
    a.cli("import", str(folder), "--artist", "aurora")  # the worker transcodes it on start
    media = tmp_path / "a" / "media"

    a.start()
    assert a.process is not None
    ffmpeg, partial = wait_until(lambda: _transcoding(a.process.pid), 60, "ffmpeg at work")
    assert partial.is_relative_to(media / "incoming")
    children = children_of(a.process.pid)
    assert ffmpeg in children
    killed = a.kill()
    # the kernel kills ffmpeg as its parent dies: gone at once, not when its work is done
    wait_until(lambda: not any(map(alive, children)), 2, f"{children} to die with their parent")
    assert running_on(tmp_path) == []
    cut_at = partial.stat().st_size  # nobody cleaned up: the process was killed

    a.start()
    a.wait_for(r"track 1 ready: 3 renditions", timeout=90)
    assert not partial.exists() and not partial.parent.exists()  # swept on start-up
    assert f"removed {partial.parent}, left behind by a process that stopped" in a.process.output

    status, files = query(a, _track_files)
    assert status is TrackStatus.READY
    roles = [role for role, _key, _size in files]
    assert sorted(roles) == sorted(
        [FileRole.ORIGINAL, FileRole.STREAM_OPUS, FileRole.STREAM_MP3, FileRole.PREVIEW_MP3]
    )
    for _role, key, size in files:
        assert (media / key).stat().st_size == size > 0
    [opus_size] = [size for role, _key, size in files if role is FileRole.STREAM_OPUS]
    assert cut_at < opus_size * 0.9, "ffmpeg went on writing after its worker was killed"
    on_disk = sorted(
        p.relative_to(media).as_posix()
        for p in media.rglob("*")
        if p.is_file() and not (p.name == LOCK_NAME and p.parent.parent == media / "incoming")
    )
    assert on_disk == sorted(key for _role, key, _size in files)  # nothing stray anywhere
    # the worker logs "ready" and then records the job's outcome: wait for that, bounded
    done = [(JobState.SUCCEEDED, 2)]
    wait_until(lambda: query(a, lambda s: _jobs_of(s, "media.transcode")) == done, 30,
               "the transcode job to be recorded as succeeded")  # fmt: skip
    outputs = killed.output + "\n" + a.process.output
    assert outputs.count("track 1 ready") == 1
    a.wait_for(r"release 1 announced")
    assert outputs.count("release 1 announced") <= 1  # not before the track was ready
    assert len(query(a, _creates_of_release_1)) == 1


async def _creates_of_release_1(session: Any) -> list[str]:
    return list(
        await session.scalars(
            select(OutboundActivity.uri).where(
                OutboundActivity.release_id == 1, OutboundActivity.type == "Create"
            )
        )
    )


# --- a royalty statement run ----------------------------------------------------------------

TRACK_SECONDS = 1.0


def host_of(instance: Instance) -> str:
    return instance.base.split("://", 1)[1]


async def _ledger(session: Any) -> tuple[list[tuple[str, int]], list[str]]:
    balances = await session.execute(select(LedgerAccount.key, LedgerAccount.balance))
    references = await session.scalars(select(LedgerTransaction.reference))
    return sorted(tuple(row) for row in balances), sorted(references)


async def _statements(session: Any) -> list[tuple[str, StatementDirection, StatementState]]:
    rows = await session.execute(
        select(
            RoyaltyStatementRecord.uri,
            RoyaltyStatementRecord.direction,
            RoyaltyStatementRecord.state,
        )
    )
    return [tuple(row) for row in rows]


async def _inbox_count(session: Any, activity_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(InboxItem).where(InboxItem.activity_uri == activity_id)
        )
    )


@pytest.mark.mixed_databases
@pytest.mark.slow
def test_a_statement_run_killed_on_both_sides_is_made_and_sent_once(
    tmp_path: Path, database_url: str, inboxes: Inboxes, instances: list[Instance]
) -> None:
    """A listener on A pays for two plays of a track on B; A states them to B with the
    co-op hub in copy (the recording server stands for the hub). A is killed while its
    statement is in flight to the hub, B while its Accept is; both start again. One
    statement is made, B takes it once and A gets one answer; the hub has each once
    after de-duplication; neither ledger moves; the next run states nothing."""
    hub_actor = f"{inboxes.base}/actor"
    inboxes.documents["/actor"] = {
        "@context": AS_CONTEXT,
        "id": hub_actor,
        "type": "Application",
        "preferredUsername": "hub",
        "inbox": f"{inboxes.base}/inbox",
    }
    folder = tmp_path / "Tide Tables"
    folder.mkdir()
    make_audio(folder / "01 - Ebb.mp3", "mp3", seconds=TRACK_SECONDS)
    # B's inbox job retries (5 attempts) while A is down: room for a slow restart
    patient = {**FAST, "PLAYFAIR_WORKER__RETRY_BASE": "2s", "PLAYFAIR_WORKER__RETRY_MAX": "8s"}

    def payee() -> Instance:  # an artist with a short track
        b = make_instance(tmp_path / "b", "127.0.0.3", database_url)
        b.spawn = True  # a real interpreter: these tests are about its process tree
        instances.append(b)  # stopped at the end whatever happens
        b.env.update(patient, PLAYFAIR_FEDERATION__HUB=hub_actor)
        b.env["PLAYFAIR_FEDERATION__PARTNERSHIPS"] = "auto"
        b.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD)
        b.cli("artist", "add", "aurora", "--owner", "mira")
        b.cli("import", str(folder), "--artist", "aurora")
        b.start()
        return b

    def payer() -> tuple[Instance, dict[str, str], str]:  # a listener with a voucher
        a = make_instance(tmp_path / "a", "127.0.0.2", f"sqlite+aiosqlite:///{tmp_path}/a.db")
        a.spawn = True  # a real interpreter: these tests are about its process tree
        instances.append(a)
        a.env.update(patient, PLAYFAIR_FEDERATION__HUB=hub_actor)
        a.cli("user", "add", "lena", stdin=PASSWORD)
        token = a.cli("token", "issue", "lena", "--scopes", "read write play")
        [voucher] = a.cli("voucher", "issue", "--tokens", "100").split()
        a.start()
        return a, {"Authorization": f"Bearer {token}"}, voucher

    with ThreadPoolExecutor(2) as pool:  # the two set-ups are independent
        making_b = pool.submit(payee)
        a, lena, voucher = pool.submit(payer).result()
        b = making_b.result()
    b.wait_for(r"release (\d+) announced")
    a.cli("partners", "request", host_of(b))
    a.wait_for(r"\(Accept from .*/actor\): done: Accept of our partnership")

    with httpx.Client(timeout=30) as http:
        redeemed = http.post(f"{a.base}/api/v1/me/vouchers", json={"code": voucher}, headers=lena)
        assert redeemed.status_code == 200, redeemed.text
        [track] = http.post(
            f"{a.base}/api/v1/remote-releases", json={"uri": f"{b.base}/releases/1"}, headers=lena
        ).json()["items"]
        for _ in range(2):
            play = http.post(f"{a.base}/api/v1/tracks/{track['id']}/plays", headers=lena).json()
            assert http.get(play["stream_url"], headers=lena).status_code == 200
            time.sleep(TRACK_SECONDS)  # the rule itself: a play counts after min(45 s, length)
            assert http.post(play["claim_url"], headers=lena).status_code == 200
    b.wait_for_count(r"\(Listen from .*/actor\): done: Listen of track", 2)
    ledgers = query(a, _ledger), query(b, _ledger)

    statement_copy = inboxes.hold(lambda received: received.type == "Create")
    answer_copy = inboxes.hold(lambda received: received.type == "Accept")
    [statement_uri, summary] = a.cli("statements", "send").splitlines()
    assert summary == "1 statements queued for delivery"
    assert statement_copy.arrived.wait(60), "A's statement did not reach the hub"
    a.kill()  # while its copy to the hub is in flight
    statement_copy.released.set()
    if answer_copy.arrived.is_set():  # B answered already: kill it too, mid-delivery
        b.kill()
        answer_copy.released.set()
    a.start()
    assert answer_copy.arrived.wait(60), "B's answer did not reach the hub"
    if b.process is not None:
        b.kill()  # while its copy of the Accept to the hub is in flight
        answer_copy.released.set()
    b.start()

    def accepted() -> bool:
        return query(a, _statements) == [
            (statement_uri, StatementDirection.OUTGOING, StatementState.ACCEPTED)
        ]

    wait_until(accepted, 60, "A's statement accepted")
    for instance in (a, b):
        rows = wait_until(lambda i=instance: settled(i), 60, f"{instance.base} delivered all")
        assert {state for _inbox, state, _attempts in rows} == {DeliveryState.DELIVERED}
    assert query(b, _statements) == [
        (statement_uri, StatementDirection.INCOMING, StatementState.ACCEPTED)
    ]
    create_id, accept_id = statement_copy.request.activity_id, answer_copy.request.activity_id  # type: ignore[union-attr]
    assert query(b, lambda s: _inbox_count(s, create_id)) == 1  # received once, whatever came
    assert query(a, lambda s: _inbox_count(s, accept_id)) == 1
    at_hub = Counter((r.type, r.activity_id) for r in inboxes.snapshot())
    assert set(at_hub) == {("Create", create_id), ("Accept", accept_id)}
    assert min(at_hub.values()) >= 2  # the copies in flight were sent again
    assert (query(a, _ledger), query(b, _ledger)) == ledgers  # a statement books nothing
    assert a.cli("statements", "send") == "0 statements queued for delivery"


# --- the pieces, one at a time --------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        federation={"allow_private_addresses": True, "delivery_timeout": "5s"},
    )


async def _get_delivery(app: Quart, delivery_id: int) -> Delivery:
    async with resources_of(app).sessionmaker() as session:
        return await session.get_one(Delivery, delivery_id)


async def test_an_attempt_in_flight_is_taken_over_after_its_lease_and_its_late_answer_dropped(
    app: Quart, inboxes: Inboxes
) -> None:
    hold = inboxes.hold(lambda received: received.number == 1)
    delivery_id = await queue_delivery(app, f"{inboxes.base}/inbox")
    fed = federation_of(resources_of(app))
    before = utcnow()
    first = asyncio.create_task(attempt_delivery(fed, delivery_id))
    assert await asyncio.to_thread(hold.arrived.wait, 30)
    row = await _get_delivery(app, delivery_id)
    assert (row.state, row.attempts) == (DeliveryState.DELIVERING, 1)
    assert row.leased_until is not None
    assert before + timedelta(seconds=10) <= row.leased_until <= utcnow() + timedelta(seconds=10)

    # while the lease holds, the attempt may be alive: its job waits until then
    with pytest.raises(jobs.Postponed) as postponed:
        await attempt_delivery(fed, delivery_id)
    assert postponed.value.until == row.leased_until
    # after it, the holder is over (dead, or past its deadline): taken over, sent again
    later = row.leased_until + timedelta(seconds=1)
    assert await attempt_delivery(fed, delivery_id, now=later) is Verdict.DELIVERED
    # the first attempt's answer comes late: it does not write over the second's
    hold.released.set()
    assert await first is None
    row = await _get_delivery(app, delivery_id)
    assert (row.state, row.attempts, row.leased_until) == (DeliveryState.DELIVERED, 2, None)
    ids = [r.activity_id for r in inboxes.snapshot()]
    assert len(ids) == 2 and len(set(ids)) == 1  # at least once: the receiver de-duplicates


async def test_replay_and_the_recovery_requeue_what_dead_workers_left(
    app: Quart, inboxes: Inboxes
) -> None:
    hold = inboxes.hold(lambda received: received.number == 1)
    resources = resources_of(app)
    fed = federation_of(resources)
    delivery_id = await queue_delivery(app, f"{inboxes.base}/inbox")
    attempt = asyncio.create_task(attempt_delivery(fed, delivery_id))
    assert await asyncio.to_thread(hold.arrived.wait, 30)
    attempt.cancel()  # the process running it is gone: nothing of it is recorded
    with contextlib.suppress(asyncio.CancelledError):
        await attempt
    hold.released.set()
    stuck = await _get_delivery(app, delivery_id)
    assert stuck.state is DeliveryState.DELIVERING and stuck.leased_until is not None

    async with resources.sessionmaker() as session:
        assert await replay(session) == 0  # its lease holds: the attempt may still be alive
        later = stuck.leased_until + timedelta(seconds=1)
        assert await replay(session, now=later) == 1
    row = await _get_delivery(app, delivery_id)
    assert (row.state, row.attempts, row.leased_until) == (DeliveryState.PENDING, 1, None)
    assert await build_worker(resources).run_until_idle() >= 1
    assert (await _get_delivery(app, delivery_id)).state is DeliveryState.DELIVERED

    # what the periodic recovery finds: a row left `delivering` by a version without
    # leases, and a pending one whose timer job failed for good
    async with resources.sessionmaker() as session:
        row = await session.get_one(Delivery, delivery_id)
        activity = await session.get_one(OutboundActivity, row.activity_id)
        await deliver(session, activity, [f"{inboxes.base}/second", f"{inboxes.base}/third"])
        await session.commit()
        second, third = await session.scalars(
            select(Delivery).where(Delivery.id != delivery_id).order_by(Delivery.id)
        )
        second.state, second.attempts, second.leased_until = DeliveryState.DELIVERING, 1, None
        third.next_attempt_at = utcnow() - timedelta(hours=1)
        await session.execute(
            update(Job).where(Job.unique_key == f"deliver:{third.id}:0").values(state="failed")
        )
        await session.commit()
        assert await recover(session) == 2
        assert await recover(session) == 0  # nothing left to put right
    assert await build_worker(resources).run_until_idle() >= 2
    async with resources.sessionmaker() as session:
        states = set(await session.scalars(select(Delivery.state)))
    assert states == {DeliveryState.DELIVERED}
    # the first was received by the attempt that died, and again after the replay
    assert Counter(r.path for r in inboxes.snapshot()) == {"/inbox": 2, "/second": 1, "/third": 1}


async def test_the_admin_page_shows_a_stuck_delivery_and_replays_it(app: Quart) -> None:
    delivery_id = await queue_delivery(app, "http://127.0.0.1:9/inbox")
    async with resources_of(app).sessionmaker() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(state=DeliveryState.DELIVERING, attempts=1, leased_until=utcnow())
        )
        await session.commit()
    admin = await make_admin(app)
    page = await (await admin.get("/admin/federation")).get_data(as_text=True)
    assert "delivering (stuck)" in page
    assert f'name="id" value="{delivery_id}"' in page
    token = await csrf(admin, "/admin/federation")
    answer = await admin.post(
        "/admin/federation/deliveries/replay", form={"csrf_token": token, "id": str(delivery_id)}
    )
    assert answer.status_code == 303 and "1+deliveries+queued+again" in answer.headers["Location"]
    row = await _get_delivery(app, delivery_id)
    assert (row.state, row.leased_until) == (DeliveryState.PENDING, None)


async def test_one_unanswered_statement_per_payee(app: Quart) -> None:
    async with resources_of(app).sessionmaker() as session:
        payee = RemoteActor(uri="https://b.example/actor", domain="b.example", type="Service",
                            inbox="https://b.example/inbox")  # fmt: skip
        session.add(payee)
        await session.flush()

        def statement(number: int, state: StatementState) -> RoyaltyStatementRecord:
            return RoyaltyStatementRecord(
                uri=f"{BASE}/statements/{number}", direction=StatementDirection.OUTGOING,
                counterpart_id=payee.id, period_start=utcnow(), period_end=utcnow(),
                total_charged=2, total_owed=1, document={}, state=state,
            )  # fmt: skip

        session.add_all([statement(1, StatementState.REJECTED), statement(2, StatementState.SENT)])
        await session.commit()
        session.add(statement(3, StatementState.SENT))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_a_payer_that_cannot_be_reached_is_tried_again_not_refused(
    app: Quart, inboxes: Inboxes
) -> None:
    """The payer restarting after a crash is no verdict on its statement: the inbox job
    retries. An answer that says no (404) is one."""
    fed = federation_of(resources_of(app))
    nobody = "http://127.0.0.1:9/actor"  # nothing listens there
    with pytest.raises(PayerUnreachable):
        await signer_key(fed, f"{nobody}#ed25519-key", nobody)
    missing = f"{inboxes.base}/nobody"
    with pytest.raises(StatementError, match="cannot be fetched"):
        await signer_key(fed, f"{missing}#ed25519-key", missing)


# --- child processes ------------------------------------------------------------------------


def _sleeping_children(parent: int) -> list[int]:
    return [pid for pid in children_of(parent) if _cmdline(pid)[:1] == ["sleep"] and alive(pid)]


async def test_a_cancelled_or_timed_out_run_kills_its_child() -> None:
    run = asyncio.create_task(subprocesses.run(["sleep", "60"], 120))
    [child] = await asyncio.to_thread(
        wait_until, lambda: _sleeping_children(os.getpid()), 10, "sleep started"
    )
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not alive(child)  # killed and reaped before the cancellation went on

    with pytest.raises(TimeoutError):
        await subprocesses.run(["sleep", "60"], 0.2)
    assert _sleeping_children(os.getpid()) == []


def test_a_child_dies_with_its_parent_killed_with_sigkill() -> None:
    """The parent runs `sleep 60` through subprocesses.run and is SIGKILLed: no Python
    clean-up runs, yet the kernel kills the sleep at once."""
    parent = PlayfairProcess(
        [],
        {},
        argv=[sys.executable, "-c",
              "import asyncio; from server.runtime import subprocesses; "
              "print('started', flush=True); asyncio.run(subprocesses.run(['sleep', '60'], 120))"],
    )  # fmt: skip
    try:
        parent.wait_for("started")
        [child] = wait_until(lambda: _sleeping_children(parent.pid), 10, "sleep started")
        parent.kill()
        wait_until(lambda: not alive(child), 2, "the sleep to die with its parent")
    finally:
        parent.kill()


# --- temporary files ------------------------------------------------------------------------

WRITER = """
import signal
import sys
from pathlib import Path
from server.services.media.storage import LocalStorage
partial = LocalStorage(Path(sys.argv[1])).temporary_file(".opus")
partial.write_bytes(b"half a rendition")
print("writing", partial, flush=True)
signal.pause()
"""


def test_the_sweep_removes_what_dead_processes_were_writing_and_nothing_else(
    tmp_path: Path,
) -> None:
    root = tmp_path / "media"
    storage = LocalStorage(root)
    ours = storage.temporary_file(".mp3")  # this process is alive: kept
    writer = PlayfairProcess([], {}, argv=[sys.executable, "-c", WRITER, str(root)])
    try:
        theirs = Path(writer.wait_for(r"writing (\S+)").group(1))
        assert storage.sweep() == []  # a living process's file is kept
        writer.kill()
    finally:
        writer.kill()
    now = time.time()
    loose_old, loose_new = root / "incoming" / "tmp-old", root / "incoming" / "tmp-new"
    for loose in (loose_old, loose_new):
        loose.write_bytes(b"from a version before scratch folders")
    os.utime(loose_old, (now - 2 * LOOSE_FILE_AGE, now - 2 * LOOSE_FILE_AGE))

    assert sorted(storage.sweep()) == sorted([theirs.parent, loose_old])
    assert ours.exists() and loose_new.exists() and not theirs.parent.exists()
    assert storage.sweep() == []
    storage.put(ours, "tracks/1/stream_mp3.mp3")
    assert storage.exists("tracks/1/stream_mp3.mp3") and not ours.exists()


def test_a_process_that_ends_normally_takes_its_scratch_folder_with_it(tmp_path: Path) -> None:
    """`playfair demo` or `import` before `run` must not leave a folder for the next start
    to sweep with a warning (a newcomer's first `make run` showed one)."""
    root = tmp_path / "media"
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from server.services.media.storage import LocalStorage\n"
        "LocalStorage(Path(sys.argv[1])).temporary_file('.mp3').write_bytes(b'done')\n"
    )
    finished = subprocess.run([sys.executable, "-c", script, str(root)], check=True,
                              cwd=ROOT, capture_output=True)  # fmt: skip
    assert finished.returncode == 0
    assert list((root / "incoming").iterdir()) == []
    assert LocalStorage(root).sweep() == []
