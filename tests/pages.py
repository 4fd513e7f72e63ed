"""Pressing a site's forms and buttons in a real browser, and what stands around such a
test: the table's row type and the parser that finds controls in the templates and scripts
(server/web/templates/, server/web/static/),
a stand-in for the rest of the world (`Elsewhere`), a read-only look at an instance's
database, and a browser visit that presses controls and times every answer.

Used by tests/test_browser_forms.py, on top of tests/test_browser.py's Watch and
screenshot.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import Locator, Page, Request, Response, expect
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models.database import DatabaseOptions
from models.ledger import LedgerAccount, wallet_key
from models.users import User
from server.services.payments import sign
from tests.instances import Instance
from tests.processes import ROOT
from tests.test_browser import PHONE, Watch, screenshot

# No answer may take this long: half of SQLite's busy timeout (models/database.py). A
# request that waits on a lock (another writer's or its own, as the Publish button once
# did) answers after the whole busy timeout or more (a process's single connection is
# waited for three times as long); every honest answer, an upload or two password hashes
# included, comes in far sooner, also on a loaded 2-core machine running other tests.
# Measured in the browser: from the press to the answer of the request it sends, and for
# every other request of the pages, from sending it to the first byte back.
ANSWER_BOUND = DatabaseOptions(url="").busy_timeout_seconds / 2
WAIT_MS = 60_000  # how long to wait for an answer at all (a frozen instance takes 30 s)


@dataclass(frozen=True)
class Control:
    name: str  # how the tests name it
    source: str  # where it is (see controls_in_sources for how these keys are made)
    who: str  # who presses it: visitor, listener, artist, label, admin
    page: str  # the page it is on
    selector: str  # what is clicked ({placeholders} are filled in by the test)
    changes: str  # the visible outcome and the effect behind it, checked by the test
    request: str  # "METHOD /path-regex" of the request it sends ("" for none)
    test: str  # the test that presses it


# ---------------------------------------------------------------------------------------
# Reading the templates and scripts for their controls.

_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
_FIELD = re.compile(r"<(input|select|textarea|button)\b([^>]*)>", re.S)
_BUTTON = re.compile(r"<button\b([^>]*)>", re.S)
_ATTRIBUTE = re.compile(r"""([\w:-]+)\s*=\s*"([^"]*)\"""")
_JS_ICON_BUTTON = re.compile(r"""iconButton\(\s*"([\w-]+)\"""")
_JS_ELEMENT = re.compile(r"""el\(\s*"(button|input)",\s*\{[^}]*?\bclass:\s*"([\w-]+)\"""", re.S)


def _attributes(text: str) -> dict[str, str]:
    return dict(_ATTRIBUTE.findall(text))


def controls_in_template(name: str, text: str) -> set[str]:
    """One key per submit button (or input) of each form, "TEMPLATE METHOD ACTION FIELDS
    [BUTTON]" (the action as written, the names of the form's fields, the button's
    name=value when it has one; a form without a button has one key too), and one per
    button outside a form, "TEMPLATE button[data-play-…]"."""
    found = set()
    for form in _FORM.finditer(text):
        attributes = _attributes(form.group(1))
        method = attributes.get("method", "get").upper()
        action = " ".join(attributes.get("action", ".").split())
        fields: set[str] = set()
        buttons = []
        for tag, raw in _FIELD.findall(form.group(2)):
            field_attributes = _attributes(raw)
            kind = field_attributes.get("type", "submit" if tag == "button" else "text")
            if kind in ("submit", "image") and tag in ("button", "input"):
                named = "name" in field_attributes
                buttons.append(
                    f" {field_attributes['name']}={field_attributes.get('value', '')}"
                    if named
                    else ""
                )
            elif field_attributes.get("name") not in (None, "csrf_token"):
                fields.add(field_attributes["name"])
        for button in buttons or [""]:  # a form without a button is sent with Enter
            found.add(f"{name} {method} {action} {','.join(sorted(fields)) or '-'}{button}")
    for raw in _BUTTON.findall(_FORM.sub("", text)):
        marks = "".join(
            f"[{key}]" if "{" in value else f"[{key}={value}]"
            for key, value in _attributes(raw).items()
            if key.startswith("data-play")
        )
        found.add(f"{name} button{marks}")
    return found


def controls_in_script(name: str, text: str) -> set[str]:
    """Controls a script builds, the player's way (``iconButton("CLASS", …)`` or
    ``el("button"|"input", {… class: "CLASS" …})``): "SCRIPT button.CLASS"."""
    found = {f"{name} button.{cls}" for cls in _JS_ICON_BUTTON.findall(text)}
    found |= {f"{name} {tag}.{cls}" for tag, cls in _JS_ELEMENT.findall(text)}
    return found


def controls_in_sources() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "server" / "web" / "templates").glob("*.html")):
        found |= controls_in_template(path.name, path.read_text())
    for path in sorted((ROOT / "server" / "web" / "static").glob("*.js")):
        found |= controls_in_script(path.name, path.read_text())
    return found


# ---------------------------------------------------------------------------------------
# The rest of the world: Stripe, a visitor's own server, an app.


class Elsewhere(ThreadingHTTPServer):
    """Another site on loopback, standing in for what cannot run here.

    * Stripe's Checkout API (`money.stripe_api_base` points here): POST
      /v1/checkout/sessions makes a session whose page is /pay/<id> here; that page, like
      Stripe once the card is charged, sends the signed checkout.session.completed event
      to the instance's webhook and sends the listener back to the success URL. Set
      `checkout` to "refuse" (HTTP 500) or "hang up" (no answer) to see the failures.
    * A fediverse server with one account, fan: WebFinger (with a remote-follow page),
      its actor, and its inbox, which answers 503 until `inbox_open` is set.
    * Any other GET (an OAuth app's callback, the follow page) lands on a small page.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ElsewhereHandler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.host = self.base.split("://", 1)[1]
        self.checkout = "pay"
        self.checkouts: dict[str, dict[str, str]] = {}
        self.webhook = ""
        self.webhook_secret = ""
        self.inbox_open = False
        self.inbox: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def fan(self) -> str:
        return f"{self.base}/users/fan"


class _ElsewhereHandler(BaseHTTPRequestHandler):
    server: Elsewhere

    def do_GET(self) -> None:  # the name http.server calls
        path = urlsplit(self.path).path
        site = self.server
        if path == "/.well-known/webfinger":
            self._json({"subject": f"acct:fan@{site.host}", "links": [
                {"rel": "self", "type": "application/activity+json", "href": site.fan},
                {"rel": "http://ostatus.org/schema/1.0/subscribe",
                 "template": f"{site.base}/authorize_interaction?uri={{uri}}"},
            ]}, "application/jrd+json")  # fmt: skip
        elif path == "/users/fan":
            self._json({"@context": "https://www.w3.org/ns/activitystreams", "id": site.fan,
                        "type": "Person", "preferredUsername": "fan", "name": "A Fan",
                        "inbox": f"{site.fan}/inbox"}, "application/activity+json")  # fmt: skip
        elif path.startswith("/pay/"):
            self._pay(path.removeprefix("/pay/"))
        else:
            self._send(200, f"<title>landed</title><p>{self.path}</p>".encode(), "text/html")

    def do_POST(self) -> None:
        site = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == "/v1/checkout/sessions":
            if site.checkout == "hang up":
                self.close_connection = True
                return
            if site.checkout == "refuse":
                self._json({"error": {"message": "down for maintenance"}}, status=500)
                return
            form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
            with site.lock:
                checkout_id = f"cs_test_{len(site.checkouts) + 1}"
                site.checkouts[checkout_id] = form
            self._json({"id": checkout_id, "url": f"{site.base}/pay/{checkout_id}"})
        elif path == "/users/fan/inbox":
            with site.lock:
                site.inbox.append(json.loads(body))
            self._send(202 if site.inbox_open else 503, b"", "text/plain")
        else:
            self._send(404, b"", "text/plain")

    def _pay(self, checkout_id: str) -> None:
        """The card is charged: Stripe tells the instance, then sends the payer back."""
        site = self.server
        form = site.checkouts[checkout_id]
        event = {"id": f"evt_{checkout_id}", "type": "checkout.session.completed",
                 "data": {"object": {
                     "id": checkout_id, "payment_status": "paid",
                     "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                     "currency": form["line_items[0][price_data][currency]"],
                     "client_reference_id": form["client_reference_id"],
                     "metadata": {"pack": form["metadata[pack]"]}}}}  # fmt: skip
        payload = json.dumps(event).encode()
        signature = sign(payload, site.webhook_secret, int(time.time()))
        answer = httpx.post(site.webhook, content=payload, timeout=10,
                            headers={"Stripe-Signature": signature,
                                     "Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        self.send_response(303)
        self.send_header("Location", form["success_url"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, document: object, kind: str = "application/json", status: int = 200) -> None:
        self._send(status, json.dumps(document).encode(), kind)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


# ---------------------------------------------------------------------------------------
# The instances.


class Database:
    """The instance's SQLite file read (never written) from the test, to check what a
    press did behind the page. Read-only and one short transaction per question, so it
    takes no lock the instance could wait on."""

    def __init__(self, instance: Instance) -> None:
        path = instance.env["PLAYFAIR_DATABASE__URL"].split(":///", 1)[1]
        self.engine: Engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")

    def scalar(self, query: Any) -> Any:
        with Session(self.engine) as session:
            return session.scalar(query)

    def all(self, query: Any) -> list[Any]:
        with Session(self.engine) as session:
            return list(session.scalars(query))

    def user(self, name: str) -> User | None:
        found: User | None = self.scalar(select(User).where(User.username == name))
        return found

    def user_id(self, name: str) -> int:
        user = self.user(name)
        assert user is not None, f"no account {name}"
        return user.id

    def balance(self, key: str) -> int:
        return int(self.scalar(select(LedgerAccount.balance).where(LedgerAccount.key == key)) or 0)

    def wallet(self, name: str) -> int:
        return self.balance(wallet_key(self.user_id(name)))


# ---------------------------------------------------------------------------------------
# A browser on one instance that presses controls and times every answer.


class LeavingWatch(Watch):
    """test_browser's Watch, for a visit that is meant to leave the site now and then:
    going to `elsewhere` (Stripe's page, an app, a visitor's server) is not a third-party
    request of the site's pages."""

    def __init__(self, origin: str, elsewhere: str) -> None:
        super().__init__(origin)
        self.elsewhere = elsewhere

    def _finished(self, request: Request) -> None:
        if request.url.startswith(self.elsewhere) and request.is_navigation_request():
            return
        super()._finished(request)


@dataclass
class Visit:
    """One person in one browser context on one instance."""

    page: Page
    watch: LeavingWatch
    controls: Mapping[str, Control]  # the test module's table, by name
    pressed: set[str]  # the names pressed in this test (shared by its visits)
    slow: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    timed: int = 0  # requests whose answer time was measured

    def attach(self) -> None:
        self.watch.attach(self.page)
        self.page.on("requestfinished", self._timed)
        self.page.on("response", self._status)

    def _timed(self, request: Request) -> None:
        if not request.url.startswith(self.watch.origin):
            return
        timing = request.timing
        if timing["requestStart"] < 0 or timing["responseStart"] < 0:
            return  # answered from the browser's cache
        waited = (timing["responseStart"] - timing["requestStart"]) / 1000
        self.timed += 1
        if waited >= ANSWER_BOUND:
            self.slow.append(f"{request.method} {request.url}: first byte after {waited:.1f} s")

    def _status(self, response: Response) -> None:
        if response.url.startswith(self.watch.origin) and response.status >= 500:
            self.broken.append(f"{response.request.method} {response.url}: {response.status}")

    def locate(self, name: str, **where: object) -> Locator:
        return self.page.locator(self.controls[name].selector.format(**where))

    def form(self, name: str, **where: object) -> Locator:
        """The form of a control, to fill its fields by their labels."""
        return self.locate(name, **where).locator("xpath=ancestor::form")

    def press(
        self, name: str, *, lands: str | None = None, value: str | None = None, **where: object
    ) -> Response | None:
        """Press a control of the table (or, with ``value``, set it: a slider); wait for
        the answer to the request it sends and check how long it took; then, with
        ``lands``, wait for the page it leads to (a regex searched in its URL)."""
        control = self.controls[name]
        target = self.locate(name, **where)
        expect(target).to_have_count(1)
        main = self.page.main_frame
        navigated: list[str] = []

        def on_navigation(frame: Any) -> None:
            if frame == main:
                navigated.append(frame.url)

        def act() -> None:
            # no waiting for the navigation inside click: the answer's wait is timed
            if value is not None:
                target.fill(value, no_wait_after=True)
            else:
                target.click(no_wait_after=True)

        self.page.on("framenavigated", on_navigation)
        try:
            answer = None
            if control.request:
                answer = self._timed_answer(name, control.request, act)
            else:
                act()
            if lands is not None:
                arrived = re.compile(lands)
                if not any(arrived.search(url) for url in navigated):
                    self.page.wait_for_event(
                        "framenavigated",
                        predicate=lambda frame: frame == main and bool(arrived.search(frame.url)),
                        timeout=WAIT_MS,
                    )
                self.page.wait_for_load_state()
        finally:
            self.page.remove_listener("framenavigated", on_navigation)
        self.pressed.add(name)
        return answer

    def _timed_answer(self, name: str, request: str, act: Callable[[], None]) -> Response:
        method, path = request.split(" ", 1)
        pattern = re.compile(path)

        def sent(response: Response) -> bool:
            return (
                response.request.method == method
                and response.url.startswith(self.watch.origin)
                and pattern.fullmatch(urlsplit(response.url).path) is not None
            )

        started = time.monotonic()
        with self.page.expect_response(sent, timeout=WAIT_MS) as answered:
            act()
        answer = answered.value
        seconds = time.monotonic() - started
        assert seconds < ANSWER_BOUND, f"{name}: answered {answer.status} after {seconds:.1f} s"
        assert answer.status < 500, f"{name}: {answer.status} {answer.url}"
        return answer

    def check(self) -> None:
        assert self.timed > 0, "no answer was timed: the browser gave no timings"
        assert self.watch.errors == []
        assert self.slow == [], "waited on something"
        assert self.broken == []


def snap(page: Page, name: str) -> None:
    """test_browser's screenshot (axe-core first, then phone and desktop width), after
    checking that the page fits a phone's width: nothing but a table scrolls sideways."""
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    wider = page.evaluate(  # what sticks out (a table's own cells scroll inside it)
        """() => [...document.querySelectorAll("body *")]
            .filter((node) => node.getBoundingClientRect().right > window.innerWidth + 0.5
                && (!node.closest("table") || getComputedStyle(node).position === "absolute"))
            .map((node) => node.tagName.toLowerCase() + (node.className ? "." + node.className : "")
                + " " + Math.round(node.getBoundingClientRect().right) + " px")"""
    )
    assert width <= PHONE["width"], f"{name}: {width} px wide on a phone: {wider}"
    screenshot(page, name)


def says(page: Page, text: str) -> None:
    """The page has a status message with ``text`` (what a form's answer tells)."""
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def warns(page: Page, text: str) -> None:
    """The page has an alert with ``text`` (why a form did nothing)."""
    expect(page.get_by_role("alert").filter(has_text=text)).to_be_visible()


def player(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "(() => { const audio = document.querySelector('#player audio');"
        " return Object.assign({}, window.playfairPlayer.state(),"
        " {paused: audio.paused, muted: audio.muted, at: audio.currentTime}); })()"
    )
    return state
