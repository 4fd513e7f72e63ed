"""The wheel is the whole instance: built from the sources, installed in a fresh virtual
environment, it migrates a database and serves pages from its templates, its static
files and its translations (pyproject.toml's package-data). Our own package comes from
the wheel, never from the checkout: the commands run from a temporary folder and the test
asserts where ``server`` was imported from.

The third-party dependencies come from this environment (a ``.pth`` line in the fresh
environment points at its site-packages; a path given that way is searched after the
fresh environment's own packages, and the editable install's hooks in it do not run), so
the test needs no network and no second copy of every dependency."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.processes import PlayfairProcess, playfair_env

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "server", "models", "federation", "subsonic")

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; its bin/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a clean copy: no build/ left over, nothing untracked
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(work)], source)
    (wheel,) = work.glob("playfair-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], work)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], work)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", where], work).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def _env(data: Path) -> dict[str, str]:
    return playfair_env({"PLAYFAIR_INSTANCE__DATA_DIR": str(data)})


def test_the_installed_package_is_the_wheels(installed: Path, tmp_path: Path) -> None:
    found = _run(
        [str(installed / "python"), "-c",
         "import server, models, federation; from server.web import i18n; "
         "catalogs = i18n.load_catalogs(); "
         "print(server.__file__); print(models.__file__); print(federation.__file__); "
         "print(i18n.CATALOGS); print(type(catalogs['en']).__name__)"],
        tmp_path, _env(tmp_path / "data"),
    ).split()  # fmt: skip
    venv = installed.parent.resolve()
    for path in found[:4]:
        assert Path(path).resolve().is_relative_to(venv), (path, venv)
    assert found[4] == "Translations", "the English catalog was read from the wheel"
    catalogs = Path(found[3])
    assert (catalogs / "messages.pot").is_file()
    assert (catalogs / "en" / "LC_MESSAGES" / "messages.po").is_file()


def test_the_installed_instance_serves_its_pages(installed: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    playfair = str(installed / "playfair")
    initialised = _run([playfair, "init"], tmp_path, env)
    assert "instance ready" in initialised
    process = PlayfairProcess(
        [],
        {"PLAYFAIR_INSTANCE__DATA_DIR": str(tmp_path / "data")},
        argv=[playfair, "run", "--bind", "127.0.0.1:0"],
        cwd=tmp_path,
    )
    try:
        address = process.address()
        home = httpx.get(f"{address}/", headers={"Accept-Language": "en"}, timeout=60)
        assert home.status_code == 200, home.text
        assert '<html lang="en"' in home.text
        assert "New releases" in home.text  # text of home.html, through the catalog
        style = httpx.get(f"{address}/static/style.css", timeout=60)
        assert style.status_code == 200
        assert style.text == (ROOT / "server/web/static/style.css").read_text()
    finally:
        code = process.stop()
    assert code == 0, process.output
    assert "Traceback" not in process.output
