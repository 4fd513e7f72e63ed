"""Text ready for translation: gettext catalogs, one per language, chosen per request.

Templates mark their text with ``_()`` / ``{% trans %}`` (Jinja's i18n extension);
Python code with :func:`gettext`. Catalogs are ``server/web/translations/{lang}/LC_MESSAGES/
messages.po``, read with Babel when the app starts (no compiled ``.mo`` files to keep
in step). English is shipped; ``messages.pot`` is the template a translator starts from,
and a test keeps it in step with the code (``make messages`` regenerates it).
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from quart import Quart, g, request

CATALOGS = Path(__file__).parent / "translations"
DEFAULT = "en"


def load_catalogs(folder: Path = CATALOGS) -> dict[str, NullTranslations]:
    """Every language with a messages.po, compiled in memory."""
    found: dict[str, NullTranslations] = {}
    for po in sorted(folder.glob("*/LC_MESSAGES/messages.po")):
        language = po.parent.parent.name
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        found[language] = Translations(buffer)
    found.setdefault(DEFAULT, NullTranslations())
    return found


def choose_language(accept_language: str | None, available: set[str]) -> str:
    """The best of ``available`` for an Accept-Language header (q-values honoured)."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            choices.append((-quality, index, tag.strip().lower()))
    for _quality, _index, tag in sorted(choices):
        for candidate in (tag, tag.split("-", 1)[0]):
            if candidate in available:
                return candidate
    return DEFAULT


def _translations() -> NullTranslations:
    current: NullTranslations | None = g.get("translations")
    if current is None:
        catalogs: dict[str, NullTranslations] = g.get("_catalogs") or {}
        return catalogs.get(DEFAULT, NullTranslations())
    return current


def gettext(message: str, **values: object) -> str:
    text = _translations().gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, number: int, **values: object) -> str:
    text = _translations().ngettext(singular, plural, number)
    return text % {"num": number, **values}


def init_app(app: Quart) -> None:
    catalogs = load_catalogs()
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, ngettext, newstyle=True
    )

    @app.before_request
    async def _choose() -> None:
        language = choose_language(request.headers.get("Accept-Language"), set(catalogs))
        g.lang = language
        g.translations = catalogs[language]

    @app.context_processor
    async def _language() -> dict[str, str]:
        return {"lang": g.get("lang", DEFAULT)}
