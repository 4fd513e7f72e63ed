"""The security headers of every response: pages, API answers, media, static files and
errors alike.

The Content-Security-Policy allows nothing inline: scripts and styles come only from
``/static`` (no ``<script>`` blocks, no ``on…=`` handlers, no ``style=`` attributes in
templates or in the dashboard's SVG charts), images only from this origin (cover art is
served here), audio from here and, for the previews of remote posts in the library feed,
from other servers. Pages cannot be framed (``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``), content types are never sniffed, and the referrer is sent to
this origin only (``back()`` redirects need it; other servers learn nothing of the page
a link was on). HSTS is sent only when the instance is served over https.

The one exception to framing is the embeddable player (``server/web/embed.py``), which
exists to be put in other sites' pages: its responses call :func:`allow_framing`, which
makes that response's policy ``frame-ancestors *`` and drops ``X-Frame-Options``.

Forms post to this origin only. The one page whose form must end elsewhere, the OAuth
consent page (the answer is a redirect to the app's redirect URI, and browsers apply
``form-action`` to redirects), adds the app's redirect URI to ``form-action`` for its own
response with :func:`allow_form_target`. Forms that send people to other sites (remote
follow, card checkout) answer with a page that moves on by itself (see
``server/web/templates/leaving.html``) instead of a redirect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from quart import g

HSTS = "max-age=31536000"
REFERRER_POLICY = "same-origin"
# A CSP source expression may hold none of the characters that separate directives or
# sources; a redirect URI that would need one is left out rather than escaped.
_SAFE_SOURCE = re.compile(r"^[A-Za-z0-9.+\-]+:(//[A-Za-z0-9.\-]+(:\d{1,5})?)?$")
_LOOPBACK_LITERALS = ("::1", "[::1]")


def content_security_policy(
    *,
    remote_media_schemes: Iterable[str] = ("https:",),
    form_targets: Iterable[str] = (),
    framable: bool = False,
) -> str:
    """The policy: nothing inline, nothing from elsewhere except remote audio."""
    directives: list[tuple[str, list[str]]] = [
        ("default-src", ["'none'"]),
        ("script-src", ["'self'"]),
        ("style-src", ["'self'"]),
        ("img-src", ["'self'"]),
        ("media-src", ["'self'", *remote_media_schemes]),
        ("connect-src", ["'self'"]),
        ("font-src", ["'self'"]),
        ("manifest-src", ["'self'"]),
        ("worker-src", ["'self'"]),
        ("form-action", ["'self'", *dict.fromkeys(form_targets)]),
        ("frame-ancestors", ["*"] if framable else ["'none'"]),
        ("base-uri", ["'none'"]),
        ("object-src", ["'none'"]),
    ]
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives)


def security_headers(*, https: bool, csp: str, framable: bool = False) -> Mapping[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": REFERRER_POLICY,
    }
    if not framable:
        headers["X-Frame-Options"] = "DENY"
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def form_source(uri: str) -> str | None:
    """The CSP source that lets a form's answer redirect to ``uri``: its origin, or its
    scheme for an app's private-use scheme (and for IPv6 loopback, which CSP host
    sources cannot write). None when no safe source expression fits."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return None
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if host in _LOOPBACK_LITERALS:
            source = f"{scheme}:"
        else:
            try:
                port = parts.port
            except ValueError:
                return None
            source = f"{scheme}://{host}" + (f":{port}" if port else "")
    else:
        source = f"{scheme}:"
    return source if _SAFE_SOURCE.match(source) else None


def allow_form_target(uri: str) -> None:
    """Let this response's forms end in a redirect to ``uri`` (see the module text)."""
    source = form_source(uri)
    if source is not None:
        g.setdefault("csp_form_targets", []).append(source)


def form_targets() -> list[str]:
    found: list[str] = g.get("csp_form_targets", [])
    return found


def allow_framing() -> None:
    """Let other sites frame this response (the embed pages only; see the module text)."""
    g.csp_framable = True


def framing_allowed() -> bool:
    return bool(g.get("csp_framable", False))
