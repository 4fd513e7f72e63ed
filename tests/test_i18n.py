"""Text ready for translation: the catalogs are in step with the code, and a second
language would work (catalog loading, language choice, plurals, templates and Python)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from quart import Quart, render_template_string, request

from server.web import i18n

ROOT = Path(__file__).resolve().parent.parent
POT = ROOT / "server" / "web" / "translations" / "messages.pot"
ENGLISH = ROOT / "server" / "web" / "translations" / "en" / "LC_MESSAGES" / "messages.po"

FRENCH = """\
msgid ""
msgstr ""
"Language: fr\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"
"Content-Type: text/plain; charset=utf-8\\n"

msgid "Sign up"
msgstr "Inscription"

msgid "%(num)s like"
msgid_plural "%(num)s likes"
msgstr[0] "%(num)s favori"
msgstr[1] "%(num)s favoris"

msgid "There is no such track."
msgstr "Ce morceau n'existe pas."
"""

PAGE = '{{ _("Sign up") }}|{{ ngettext("%(num)s like", "%(num)s likes", n) }}|{{ lang }}'


def _ids(path: Path) -> set[str | tuple[str, ...]]:
    """Every msgid of a catalog; a plural entry is its (singular, plural) pair."""
    with path.open("rb") as handle:
        catalog = read_po(handle)
    return {message.id for message in catalog if message.id}


def _extract_command(output: Path) -> list[str]:
    """The `make messages` extraction, word for word, writing to ``output`` instead."""
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(line for line in makefile.splitlines() if "pybabel extract" in line)
    words = shlex.split(line.strip())
    assert words[0] == "$(BIN)/pybabel" and "$(MESSAGES)/messages.pot" in words, line
    pybabel = Path(sys.executable).parent / "pybabel"
    return [str(pybabel)] + [
        str(output) if word == "$(MESSAGES)/messages.pot" else word for word in words[1:]
    ]


def _describe(ids: set[str | tuple[str, ...]]) -> str:
    return "\n".join(f"  {entry!r}" for entry in sorted(ids, key=str))


def test_messages_pot_is_in_step_with_the_code(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(_extract_command(fresh), cwd=ROOT, check=True, capture_output=True)
    extracted, committed = _ids(fresh), _ids(POT)
    assert ("%(num)s like", "%(num)s likes") in extracted, "extraction found no plurals"
    assert "There is no such track." in extracted, "extraction missed the Python modules"
    missing, stale = extracted - committed, committed - extracted
    assert not missing and not stale, (
        "server/web/translations/messages.pot is out of step with the code; run make messages\n"
        f"missing from it:\n{_describe(missing)}\nno longer in the code:\n{_describe(stale)}"
    )


def test_english_catalog_has_every_message() -> None:
    missing = _ids(POT) - _ids(ENGLISH)
    assert not missing, f"the English catalog lacks (run make messages):\n{_describe(missing)}"


def test_choose_language_honours_q_values_and_falls_back_to_english() -> None:
    assert i18n.choose_language("fr;q=0.9, en;q=0.8", {"en"}) == "en"
    assert i18n.choose_language("fr;q=0.9, en;q=0.8", {"en", "fr"}) == "fr"
    assert i18n.choose_language("fr;q=0.5, en;q=0.8", {"en", "fr"}) == "en"
    assert i18n.choose_language("de, fr-CA;q=0.7", {"en", "fr"}) == "fr"
    assert i18n.choose_language("en;q=x, fr;q=0.1", {"en", "fr"}) == "fr"
    assert i18n.choose_language(";;,=q;q=q, ***", {"en", "fr"}) == "en"
    assert i18n.choose_language(None, {"en", "fr"}) == "en"


def _app(monkeypatch: pytest.MonkeyPatch, folder: Path | None = None) -> Quart:
    """A bare app set up by ``init_app``, optionally reading catalogs from ``folder``."""
    if folder is not None:
        real = i18n.load_catalogs
        monkeypatch.setattr(i18n, "load_catalogs", lambda: real(folder))
    app = Quart(__name__)
    i18n.init_app(app)

    @app.get("/")
    async def page() -> str:
        n = int(request.args.get("n", "1"))
        name = request.args.get("name", "")
        html = await render_template_string(
            PAGE + '|{{ _("Settings for %(name)s", name=name) }}', n=n, name=name
        )
        return f"{html}|{i18n.gettext('There is no such track.')}"

    return app


async def _get(app: Quart, query: str, language: str) -> list[str]:
    response = await app.test_client().get(f"/?{query}", headers={"Accept-Language": language})
    assert response.status_code == 200
    return (await response.get_data(as_text=True)).split("|")


async def test_english_catalog_renders_text_and_plurals(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(i18n.load_catalogs()) == {"en"}
    app = _app(monkeypatch)
    one = await _get(app, "n=1&name=<b>lina", "fr, en;q=0.5")
    assert one == [
        "Sign up",
        "1 like",
        "en",
        "Settings for &lt;b&gt;lina",
        "There is no such track.",
    ]
    assert (await _get(app, "n=2", "en"))[1] == "2 likes"
    assert (await _get(app, "n=0", "en"))[1] == "0 likes"


async def test_a_second_language_translates_text_and_plurals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    po = tmp_path / "fr" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(FRENCH, encoding="utf-8")
    catalogs = i18n.load_catalogs(tmp_path)
    assert set(catalogs) == {"en", "fr"}, "English is always there, French from its .po"
    assert catalogs["fr"].gettext("Sign up") == "Inscription"

    app = _app(monkeypatch, tmp_path)
    assert await _get(app, "n=1", "fr-CH, fr;q=0.9") == [
        "Inscription",
        "1 favori",
        "fr",
        "Settings for ",  # not in the French catalog: the English stays
        "Ce morceau n'existe pas.",
    ]
    assert (await _get(app, "n=0", "fr"))[1] == "0 favori", "French: 0 is singular"
    assert (await _get(app, "n=2", "fr"))[1] == "2 favoris"
    assert (await _get(app, "n=2", "en"))[:3] == ["Sign up", "2 likes", "en"]
