"""The command line as an admin uses it: real processes, real databases."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.postgres import free_port
from tests.processes import PlayfairProcess, run_playfair

COMMANDS = [
    [], ["init"], ["migrate"], ["run"], ["serve"], ["worker"], ["user"], ["user", "add"],
    ["demo"],
]  # fmt: skip


def env_for(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    env = {"PLAYFAIR_INSTANCE__DATA_DIR": str(tmp_path / "data")}
    if database_url:
        env["PLAYFAIR_DATABASE__URL"] = database_url
    return env


def assert_one_line_error(result_stderr: str, expected: str) -> None:
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1, result_stderr
    assert lines[0].startswith("playfair: error: "), result_stderr
    assert expected in lines[0], result_stderr
    assert "Traceback" not in result_stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "playfair")
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    # a broken config must not stop --help
    # a real interpreter, as a shell starts it: the entry point itself
    result = run_playfair([*command, "--help"], {"PLAYFAIR_SERVER__BIND": "broken"}, spawn=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: playfair")


def test_a_wrong_config_value_is_one_line(tmp_path: Path) -> None:
    result = run_playfair(["init"], {**env_for(tmp_path), "PLAYFAIR_SERVER__BIND": "nowhere"})
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "config error: server.bind: expected HOST:PORT")
    assert not (tmp_path / "data").exists(), "a failed start-up leaves nothing behind"


def test_an_unknown_key_in_the_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "instance.toml"
    config.write_text('[instance]\nnmae = "typo"\n')
    result = run_playfair(["--config", str(config), "init"], {})
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"instance.nmae: unknown setting (from {config})")


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://someone:hunter2hunter2@127.0.0.1:{port}/playfair"
    for command in (["init"], ["migrate"], ["serve"], ["worker"]):
        result = run_playfair(command, env_for(tmp_path, url))
        assert result.returncode == 1, command
        assert_one_line_error(result.stderr, "cannot connect to database postgresql+asyncpg://")
        assert "hunter2" not in result.stderr, "the password is never printed"


@pytest.fixture
def initialised(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = env_for(tmp_path, database_url)
    result = run_playfair(["init"], env)
    assert result.returncode == 0, result.stderr
    assert "instance ready" in result.stdout
    assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o777 == 0o600
    return env


def test_init_is_idempotent_and_keeps_the_secret(
    initialised: dict[str, str], tmp_path: Path
) -> None:
    secret = (tmp_path / "data" / "secret.key").read_text()
    again = run_playfair(["init"], initialised)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "data" / "secret.key").read_text() == secret


def test_user_add(initialised: dict[str, str]) -> None:
    piped = run_playfair(
        ["user", "add", "Mira", "--role", "artist"], initialised, "a long password\n"
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == "added account mira (artist)"

    generated = run_playfair(["user", "add", "sol"], initialised)
    assert generated.returncode == 0, generated.stderr
    assert "added account sol (listener)" in generated.stdout
    assert "password: " in generated.stdout

    duplicate = run_playfair(["user", "add", "MIRA"], initialised, "another long one\n")
    assert duplicate.returncode == 1
    assert_one_line_error(duplicate.stderr, "the name 'mira' is already taken")

    reserved = run_playfair(["user", "add", "admin", "--role", "admin"], initialised)
    assert reserved.returncode == 1
    assert_one_line_error(reserved.stderr, "the name 'admin' is reserved")

    weak = run_playfair(["user", "add", "tiny"], initialised, "short\n")
    assert weak.returncode == 1
    assert_one_line_error(weak.stderr, "at least 10 characters")

    bad_role = run_playfair(["user", "add", "x1", "--role", "king"], initialised)
    assert bad_role.returncode == 2
    assert "Invalid value for '--role'" in bad_role.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path, empty_database_url: str) -> None:
    env = {**env_for(tmp_path, empty_database_url), "PLAYFAIR_INSTANCE__SECRET": TEST_SECRET}
    result = run_playfair(["serve"], env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "run `playfair migrate`")


def test_a_port_in_use_is_one_line(initialised: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("run", "serve"):
            result = run_playfair([command, "--bind", f"127.0.0.1:{port}"], initialised)
            assert result.returncode == 1, command
            assert_one_line_error(
                result.stderr, f"cannot listen on 127.0.0.1:{port}: the address is already in use"
            )


def test_run_serves_pages_with_the_worker_and_stops_cleanly(initialised: dict[str, str]) -> None:
    process = PlayfairProcess(["run", "--bind", "127.0.0.1:0"], initialised)
    try:
        address = process.address()
        process.wait_for(r"playfair\.worker: worker \S+ started")
        health = httpx.get(f"{address}/healthz", timeout=30)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok"}
        home = httpx.get(f"{address}/", timeout=30)
        assert home.status_code == 200
        assert "New releases" in home.text
    finally:
        code = process.stop()
    assert code == 0, process.output
    assert "Traceback" not in process.output
    process.wait_for(r"worker \S+ stopped")


def test_worker_alone_starts_and_stops(initialised: dict[str, str]) -> None:
    process = PlayfairProcess(["worker"], initialised)
    try:
        process.wait_for(r"worker \S+ started")
    finally:
        code = process.stop()
    assert code == 0, process.output
    process.wait_for(r"worker \S+ stopped")


async def _work_off_jobs(env: dict[str, str]) -> int:
    from server.runtime.config import load_settings
    from server.runtime.resources import open_resources
    from server.services.jobs import build_worker

    resources = await open_resources(load_settings(None, environ=env))
    try:
        return await build_worker(resources).run_until_idle()
    finally:
        await resources.close()


async def test_import_a_folder(initialised: dict[str, str], tmp_path: Path) -> None:
    from tests.audio import make_audio

    user = run_playfair(["user", "add", "mira", "--role", "artist"], initialised, "long password")
    assert user.returncode == 0
    added = run_playfair(["artist", "add", "aurora", "--owner", "mira", "--band"], initialised)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added artist aurora (owner mira)"
    folder = tmp_path / "Tidal Hours"
    folder.mkdir()
    make_audio(folder / "01 - Low Water.flac", "flac", seconds=1)
    make_audio(folder / "02 - Salt Light.mp3", "mp3", seconds=1)
    (folder / "03 - notes.mp3").write_text("not audio")
    result = run_playfair(["import", str(folder), "--artist", "aurora"], initialised)
    assert result.returncode == 1, "a skipped file makes the exit status 1"
    assert "imported 2 of 3 files into 1 releases (published)" in result.stdout
    assert "skipped" in result.stderr and "03 - notes.mp3" in result.stderr
    assert "importing" in result.stderr  # the progress bar
    # two transcodes, the release's sampler, then the release announced to its (no)
    # followers
    assert await _work_off_jobs(initialised) == 4

    process = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], initialised)
    try:
        address = process.address()
        releases = httpx.get(f"{address}/api/v1/releases", timeout=30).json()
        assert [r["title"] for r in releases["items"]] == ["Tidal Hours"]
        release = httpx.get(releases["items"][0]["api_url"], timeout=30).json()
        assert [t["title"] for t in release["tracks"]] == ["Low Water", "Salt Light"]
        preview = release["tracks"][0]["preview_url"]
        full = httpx.get(preview, timeout=30)
        head = httpx.head(preview, timeout=30)
        assert head.status_code == 200
        length = str(len(full.content))
        assert head.headers["content-length"] == full.headers["content-length"] == length
        ranged = httpx.get(preview, headers={"Range": "bytes=10-19"}, timeout=30)
        assert ranged.status_code == 206
        assert ranged.content == full.content[10:20]
    finally:
        assert process.stop() == 0

    missing = run_playfair(["import", str(folder), "--artist", "nobody"], initialised)
    assert missing.returncode == 1
    assert_one_line_error(missing.stderr, "there is no artist 'nobody'")


def test_token_issue(initialised: dict[str, str]) -> None:
    assert run_playfair(["user", "add", "sol"], initialised, "a long password\n").returncode == 0
    issued = run_playfair(["token", "issue", "sol", "--scopes", "read play"], initialised)
    assert issued.returncode == 0, issued.stderr
    assert issued.stdout.startswith("pf_")
    bad = run_playfair(["token", "issue", "sol", "--scopes", "read fly"], initialised)
    assert bad.returncode == 1
    assert_one_line_error(bad.stderr, "unknown scope 'fly'")
    nobody = run_playfair(["token", "issue", "nobody"], initialised)
    assert_one_line_error(nobody.stderr, "there is no account 'nobody'")
    # admin is for admins: never handed to a listener, even mixed with other scopes
    refused = run_playfair(["token", "issue", "sol", "--scopes", "read admin"], initialised)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert_one_line_error(refused.stderr, "only admin accounts can have the admin scope")
    boss = ["user", "add", "boss", "--role", "admin"]
    assert run_playfair(boss, initialised, "a long password\n").returncode == 0
    admin = run_playfair(["token", "issue", "boss", "--scopes", "admin"], initialised)
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.startswith("pf_")


async def test_demo_makes_a_living_catalogue(initialised: dict[str, str]) -> None:
    result = run_playfair(["demo", "--if-empty"], initialised, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "demo release 'Tidal Hours' by Aurora Lane: 3 tracks" in result.stdout
    # seven transcodes, the samplers of the two releases of several tracks, and three
    # releases announced
    assert await _work_off_jobs(initialised) == 12
    again = run_playfair(["demo", "--if-empty"], initialised)
    assert "no demo content added" in again.stdout
    process = PlayfairProcess(["serve", "--bind", "127.0.0.1:0"], initialised)
    try:
        address = process.address()
        found = httpx.get(f"{address}/api/v1/search", params={"q": "emile"}, timeout=30).json()
        assert any(item["kind"] == "artist" for item in found["items"])
        releases = httpx.get(f"{address}/api/v1/releases", timeout=30).json()
        assert releases["total"] == 3
        for release in releases["items"]:
            assert release["cover_url"]
            detail = httpx.get(release["api_url"], timeout=30).json()
            assert all(track["status"] == "ready" for track in detail["tracks"])
        home = httpx.get(f"{address}/", timeout=30)
        assert "Tidal Hours" in home.text
        # the demo listener can try stream-to-own: a starter balance, and a voucher
        password = re.search(r"demo listener demo_listener, password (\S+)", result.stdout)
        voucher = re.search(r"demo voucher (\S+): 1022 tokens", result.stdout)
        assert password and voucher, result.stdout
        async with httpx.AsyncClient(base_url=address, timeout=30) as browser:
            form = await browser.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf
            fields = {"username": "demo_listener", "password": password.group(1),
                      "csrf_token": csrf.group(1)}  # fmt: skip
            signed_in = await browser.post("/login", data=fields)
            assert signed_in.status_code in (302, 303)
            wallet = (await browser.get("/api/v1/me/wallet")).json()
            assert wallet["balance"] == 128
            redeemed = await browser.post("/api/v1/me/vouchers", json={"code": voucher.group(1)},
                                          headers={"X-CSRF-Token": csrf.group(1)})  # fmt: skip
            assert redeemed.json()["balance"] == 128 + 1022
        # and can point a music app at the instance with the printed app password
        app = re.search(r"demo music app \(Subsonic\): server \S+, user demo_listener, "
                        r"app password (\S+)", result.stdout)  # fmt: skip
        assert app, result.stdout
        salt = "demo-salt"
        token = hashlib.md5((app.group(1) + salt).encode(), usedforsecurity=False).hexdigest()
        ping = httpx.get(
            f"{address}/rest/ping",
            timeout=30,
            params={
                "u": "demo_listener",
                "t": token,
                "s": salt,
                "f": "json",
                "v": "1.16.1",
                "c": "t",
            },
        )
        assert ping.json()["subsonic-response"]["status"] == "ok", ping.text
    finally:
        assert process.stop() == 0


def test_oauth_add_client(initialised: dict[str, str]) -> None:
    public = run_playfair(["oauth", "add-client", "Player", "--redirect-uri",
                           "http://127.0.0.1:8000/cb", "--public", "--scopes", "read play"],
                          initialised)  # fmt: skip
    assert public.returncode == 0, public.stderr
    assert public.stdout.startswith("client_id: ")
    assert "client_secret" not in public.stdout
    confidential = run_playfair(["oauth", "add-client", "Stats", "--redirect-uri",
                                 "https://stats.example/cb", "--trusted"], initialised)  # fmt: skip
    assert "client_secret: " in confidential.stdout
    # (every scheme is tried in tests/test_oauth_hardening.py; the command uses that rule)
    for uri in ("http://evil.example/cb", "vbscript:msgbox(1)"):
        bad = run_playfair(["oauth", "add-client", "Evil", "--redirect-uri", uri], initialised)
        assert bad.returncode == 1
        assert_one_line_error(bad.stderr, "must be https, http on loopback, or an app's own")
    native = run_playfair(["oauth", "add-client", "Phone", "--public", "--redirect-uri",
                           "org.example.phone:/callback"], initialised)  # fmt: skip
    assert native.returncode == 0, native.stderr


def test_a_voucher_valid_too_long_is_one_line(tmp_path: Path) -> None:
    """``--expires`` goes through the settings' duration parser; a duration past any date
    was an OverflowError with a traceback."""
    for expires, expected in (("9999999999999d", "at most 36500 days"), ("soon", "30s, 15m")):
        result = run_playfair(
            ["voucher", "issue", "--tokens", "10", "--expires", expires], env_for(tmp_path)
        )
        assert result.returncode == 1, result.stdout
        assert_one_line_error(result.stderr, "--expires: ")
        assert expected in result.stderr
