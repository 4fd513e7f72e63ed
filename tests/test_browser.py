"""The website and the player in a real browser: Debian's Chromium driven by Playwright
against a real running instance (`playfair run` on 127.0.0.5).

Every page visited must load without a console error or a failed same-origin request,
make no third-party request, and weigh less than 200 KB before cover art and audio.
Screenshots of the main pages at phone and desktop width go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, sync_playwright

from tests.audio import make_audio
from tests.instances import Instance, make_instance
from tests.processes import ROOT

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "a long password 1"
PAGE_BUDGET = 200 * 1024
TRACK_SECONDS = 1.5  # min(45 s, length): a play is claimable after the whole track


@dataclass
class Site:
    instance: Instance
    vouchers: list[str]
    release_id: int = 0

    @property
    def base(self) -> str:
        return self.instance.base


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("site")
    instance = make_instance(folder / "data", "127.0.0.5", f"sqlite+aiosqlite:///{folder}/s.db")
    instance.cli("user", "add", "boss", "--role", "admin", stdin=PASSWORD + "\n")
    instance.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD + "\n")
    instance.cli("artist", "add", "aurora", "--owner", "mira", "--display-name", "Aurora Lane")
    codes = instance.cli("voucher", "issue", "--tokens", "1022", "--count", "4").split()
    album = folder / "Harbour Songs"
    album.mkdir()
    genre = {"genre": "Harbour Folk"}  # the release's tag: its tag page is walked too
    make_audio(album / "01 - Low Water.mp3", "mp3", seconds=TRACK_SECONDS, tags=genre)
    make_audio(album / "02 - Salt Light.mp3", "mp3", seconds=TRACK_SECONDS, frequency=660,
               tags=genre)  # fmt: skip
    instance.cli("import", str(album), "--artist", "aurora")
    instance.start()
    release = int(instance.wait_for(r"release (\d+) announced").group(1))
    yield Site(instance, codes, release)
    output = instance.stop()
    assert "Traceback" not in output, output


@dataclass
class Watch:
    """What a page did that it should not: console errors, failed requests, foreign hosts."""

    origin: str
    errors: list[str] = field(default_factory=list)
    bytes_by_url: dict[str, int] = field(default_factory=dict)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("requestfinished", self._finished)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _failed(self, request: Request) -> None:
        failure = request.failure or ""
        # a navigation or the media element moving on cancels requests still in flight
        if failure == "net::ERR_ABORTED":
            return
        self.errors.append(f"request failed: {request.url} {failure}")

    def _finished(self, request: Request) -> None:
        if not request.url.startswith(self.origin) and not request.url.startswith("data:"):
            self.errors.append(f"third-party request: {request.url}")
        sizes = request.sizes()
        self.bytes_by_url[request.url] = (
            self.bytes_by_url.get(request.url, 0)
            + sizes["responseBodySize"]
            + sizes["responseHeadersSize"]
        )


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by tools/system-packages.sh"
    browser = playwright.chromium.launch(
        executable_path=chromium, args=["--autoplay-policy=no-user-gesture-required"]
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[tuple[Page, Watch]]:
    context = browser.new_context(viewport=PHONE, base_url=site.base)
    page = context.new_page()
    watch = Watch(site.base)
    watch.attach(page)
    yield page, watch
    context.close()
    assert watch.errors == []


def accessible(page: Page) -> None:
    """axe-core (bundled by axe-playwright-python, run inside the page: no request goes
    out) finds no WCAG 2 A/AA violations."""
    results = Axe().run(page, options={"runOnly": ["wcag2a", "wcag2aa", "wcag21aa"]})
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]
    assert violations == [], (page.url, violations)


def screenshot(page: Page, name: str) -> None:
    accessible(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)


def sign_up(page: Page, name: str) -> None:
    page.goto("/signup")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_again]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(re.compile(r"/$|/settings|/library"))


def log_in(page: Page, name: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state()


def balance(page: Page) -> int:
    return int(page.locator("header [data-balance]").inner_text().strip())


def wait_until(page: Page, condition: str, timeout: float = 20_000) -> None:
    """Wait (up to ``timeout`` ms) until the JavaScript ``condition`` holds in the page.

    Playwright's wait_for_function compiles its predicate with eval inside the page, which
    the site's Content-Security-Policy refuses (no 'unsafe-eval'), as it should. A whole
    expression given to page.evaluate is compiled by the browser's debugger instead, which
    the policy does not cover; it re-checks the condition on every animation frame."""
    page.evaluate(
        f"""(timeout) => new Promise((resolve, reject) => {{
            const started = performance.now();
            const check = () => {{
                let done = false;
                try {{ done = Boolean({condition}); }} catch (err) {{ done = false; }}
                if (done) resolve(true);
                else if (performance.now() - started > timeout) {{
                    reject(new Error("timed out waiting for: " + {condition!r}));
                }} else requestAnimationFrame(check);
            }};
            check();
        }})""",
        timeout,
    )


def player_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("window.playfairPlayer.state()")
    return state


def test_visitor_pages_are_light_and_previews_play(page: tuple[Page, Watch], site: Site) -> None:
    page_, watch = page
    for path, name in (
        ("/", "home"),
        (f"/releases/{site.release_id}", "release"),
        ("/artists/aurora", "artist"),
        ("/search?q=salt", "search"),
        ("/tags/harbour-folk", "tag"),
        ("/signup", "signup"),
    ):
        watch.bytes_by_url.clear()
        page_.goto(path)
        page_.wait_for_load_state("networkidle")
        weight = sum(
            size
            for url, size in watch.bytes_by_url.items()
            if "/cover" not in url and "/preview" not in url and "/stream" not in url
        )
        assert weight < PAGE_BUDGET, (path, weight, watch.bytes_by_url)
        screenshot(page_, name)

    page_.goto(f"/releases/{site.release_id}")
    page_.click("button[data-play-track]")
    wait_until(page_, "window.playfairPlayer && window.playfairPlayer.state().mode")
    assert player_state(page_)["mode"] == "preview"
    assert page_.locator("#player a[href='/signup']").count() >= 1


def test_listener_signs_up_redeems_plays_and_owns(page: tuple[Page, Watch], site: Site) -> None:
    """Issue 5's done-when through the browser player: ten plays, 1022 tokens, owned
    after the ninth paid play."""
    page_, _watch = page
    sign_up(page_, "lena")
    page_.goto("/wallet")
    starting = balance(page_)
    page_.fill("input[name=code]", site.vouchers[0])
    page_.click("form[action='/wallet/voucher'] button")
    page_.wait_for_url(re.compile(r"/wallet\?message="))
    assert balance(page_) == starting + 1022
    screenshot(page_, "wallet")

    page_.goto(f"/releases/{site.release_id}")
    track_id = int(
        page_.locator("button[data-play-track]").first.get_attribute("data-play-track") or 0
    )
    assert "2 tokens" in page_.locator(f"[data-price-for='{track_id}']").inner_text()
    # on the track's own page the queue is that track alone (the release page would go on
    # to the next track when this one ends, and that play would cost tokens too)
    page_.goto(f"/tracks/{track_id}")
    first = page_.locator("button[data-play-track]")
    price = page_.locator(f"[data-price-for='{track_id}']")
    paid = []
    for _play in range(10):
        before = balance(page_)
        first.click()
        # a new session starts unclaimed; the claim comes once the track has been heard
        wait_until(page_, "!window.playfairPlayer.state().claimed")
        wait_until(page_, "window.playfairPlayer.state().claimed", timeout=30_000)
        paid.append(before - balance(page_))
    assert paid == [2, 4, 8, 16, 32, 64, 128, 256, 512, 0]
    assert sum(paid) == 1022
    assert balance(page_) == starting
    assert "yours" in price.inner_text().lower()
    page_.goto("/library")
    assert page_.locator("#owned-heading + ol.tracks li").count() == 1
    screenshot(page_, "library")

    # the wallet's history: the voucher and the nine paid plays, each with the balance it
    # left, adding up to the balance above it
    page_.goto("/wallet")
    rows = page_.locator("table.history tbody tr")
    kinds = [row.get_attribute("data-kind") for row in rows.all()]
    assert kinds[:10] == ["play"] * 9 + ["voucher"], kinds
    after = [int(cell) for cell in page_.locator("table.history td[data-after]").all_inner_texts()]
    tokens = [int(cell) for cell in page_.locator("table.history td.number:not([data-after])")
              .all_inner_texts()]  # fmt: skip
    assert after[0] == balance(page_) == starting
    assert all(a == b + t for a, b, t in zip(after, [*after[1:], 0], tokens, strict=True))
    assert sorted(-t for t in tokens[:9]) == [2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert rows.first.locator(f"a[href='/tracks/{track_id}']").count() == 1
    for size in (PHONE, DESKTOP):
        page_.set_viewport_size(size)
        no_overflow(page_)
    page_.set_viewport_size(PHONE)
    screenshot(page_, "wallet-history")  # axe-core's checks included

    # where the 1022 tokens went this year: the artist and the instance, adding up
    page_.click("a[href='/wallet/summary']")
    page_.wait_for_url(re.compile(r"/wallet/summary$"))
    shares = {row.get_attribute("data-kind"): int(row.locator("td[data-tokens]").inner_text())
              for row in page_.locator("table.summary tbody tr").all()}  # fmt: skip
    assert set(shares) == {"artist", "instance"} and sum(shares.values()) == 1022
    # 70 % to the artist, rounded over all the artist's plays so far (other tests' too)
    assert abs(shares["artist"] - 1022 * 0.7) < 1
    for size in (PHONE, DESKTOP):
        page_.set_viewport_size(size)
        no_overflow(page_)
    page_.set_viewport_size(PHONE)
    screenshot(page_, "wallet-summary")


def test_listener_favourites_follows_and_searches(page: tuple[Page, Watch], site: Site) -> None:
    page_, _watch = page
    sign_up(page_, "omar")
    page_.goto("/search?q=salt")
    page_.click("ol.tracks a")
    page_.click("form[action$='/favourite'] button")
    page_.wait_for_load_state()
    assert page_.locator("form[action$='/favourite'] button[aria-pressed=true]").count() == 1
    page_.goto("/library")
    page_.fill("input[name=account]", "aurora")
    page_.click("form[action='/follow'] button")
    page_.wait_for_url(re.compile(r"/library\?followed="))
    assert "Harbour Songs" in page_.locator("#feed-heading + ul.feed").inner_text()
    assert page_.locator("#favourites-heading + ol.tracks li").count() == 1

    # a playlist: made in the library, filled from a track's page, played from its page
    page_.fill("form[action='/playlists'] input[name=title]", "Evening")
    page_.click("form[action='/playlists'] button")
    page_.wait_for_url(re.compile(r"/playlists/\d+$"))
    playlist_url = page_.url
    page_.goto("/search?q=salt")
    page_.click("ol.tracks a")
    page_.select_option("#add-to-playlist select", label="Evening")
    page_.click("#add-to-playlist button")
    page_.wait_for_load_state()
    page_.goto(playlist_url)
    assert page_.locator("ol.tracks li").count() == 1
    assert "Salt Light" in page_.locator("ol.tracks").inner_text()
    screenshot(page_, "playlist")


def test_keyboard_only(page: tuple[Page, Watch], site: Site) -> None:
    """Reach a play button with Tab alone, start it with Enter, pause it with the
    player's shortcut."""
    page_, _watch = page
    page_.goto(f"/releases/{site.release_id}")
    for _ in range(40):
        page_.keyboard.press("Tab")
        if page_.evaluate("document.activeElement.matches('button[data-play-track]')"):
            break
    else:
        pytest.fail("no play button is reachable with Tab")
    focused = page_.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none"
    page_.keyboard.press("Enter")
    wait_until(page_, "window.playfairPlayer.state().mode")
    assert player_state(page_)["trackId"] is not None


def test_artist_uploads_and_sees_it(page: tuple[Page, Watch], site: Site, tmp_path: Path) -> None:
    page_, _watch = page
    log_in(page_, "mira")
    page_.goto("/dashboard")
    approval = page_.locator("input[name=approves_followers]")
    assert not approval.is_checked()
    approval.check()
    page_.click("form[action$='/settings'] button")
    page_.wait_for_url(re.compile(r"/dashboard\?message="))
    assert page_.locator("input[name=approves_followers]").is_checked()
    audio = tmp_path / "03 - Night Ferry.flac"
    make_audio(audio, "flac", seconds=TRACK_SECONDS)
    form = page_.locator("form[data-upload]")
    form.locator("input[name=album]").fill("Night Ferry EP")
    form.locator("input[type=file]").set_input_files(str(audio))
    form.locator("button[type=submit]").click()
    page_.wait_for_url(re.compile(r"/dashboard\?message=[^&]*Night"))
    assert "Night Ferry" in page_.locator("main").inner_text()
    # the draft's Publish button (it once waited 30 s on its own database session)
    draft = page_.locator("li", has=page_.locator("a", has_text="Night Ferry EP"))
    started = time.monotonic()
    draft.locator("form[action$='/publish'] button").click()
    page_.wait_for_url(re.compile(r"/dashboard\?message="), timeout=5000)
    assert time.monotonic() - started < 5
    assert draft.locator(".state").inner_text() == "public"
    assert page_.locator("svg.chart").count() >= 2
    screenshot(page_, "dashboard")


def test_artist_profile_walks(page: tuple[Page, Watch], site: Site, tmp_path: Path) -> None:
    """The dashboard's Profile on a phone and a desktop: a header uploaded, cut by the
    worker, then shown on the dashboard and across the artist's page."""
    page_, _watch = page
    log_in(page_, "mira")
    page_.goto("/dashboard")
    header = tmp_path / "header.jpg"
    Image.new("RGB", (2000, 900), (180, 90, 40)).save(header)
    form = page_.locator("form[action='/dashboard/profiles/aurora/header']")
    form.locator("input[type=file]").set_input_files(str(header))
    form.locator("button[type=submit]").click()
    page_.wait_for_url(re.compile(r"/dashboard\?message="))
    site.instance.wait_for(r"header of aurora is ready")
    page_.goto("/dashboard")
    assert page_.evaluate("document.querySelector('img.header').naturalWidth") == 1500
    screenshot(page_, "dashboard-profile")
    page_.goto("/artists/aurora")
    assert page_.evaluate("document.querySelector('img.actor-header').naturalHeight") == 500
    screenshot(page_, "artist-with-header")


def test_admin_issues_vouchers(page: tuple[Page, Watch], site: Site) -> None:
    page_, _watch = page
    log_in(page_, "boss")
    page_.goto("/admin/vouchers")
    page_.fill("input[name=tokens]", "500")
    page_.fill("input[name=count]", "3")
    page_.click("form[action='/admin/vouchers'] button")
    page_.wait_for_load_state()
    codes = page_.locator("#voucher-codes code").all_inner_texts()
    assert len(codes) == 3 and len(set(codes)) == 3
    screenshot(page_, "admin-vouchers")
    page_.goto("/admin/federation")
    for heading in ("#partners-heading", "#domains-heading", "#deliveries-heading"):
        assert page_.locator(heading).is_visible()
    page_.fill("input[name=domain]", "spam.example")
    page_.click("button[name=action][value=block]")
    page_.wait_for_url(re.compile(r"/admin/federation\?message="))
    assert "spam.example" in page_.locator("#domains-heading + form + table").inner_text()
    screenshot(page_, "admin-federation")
    page_.goto("/admin/statements")
    assert page_.locator("h1").inner_text() == "Royalty statements"
    screenshot(page_, "admin-statements")


def test_listener_downloads_their_data_and_leaves(page: tuple[Page, Watch], site: Site) -> None:
    """The settings page's data section: the export downloads, and deletion gives the
    remaining tokens to another listener, without waiting on anything."""
    page_, _watch = page
    sign_up(page_, "nadia")
    page_.goto("/wallet")
    page_.fill("input[name=code]", site.vouchers[3])
    page_.click("form[action='/wallet/voucher'] button")
    page_.wait_for_url(re.compile(r"/wallet\?message="))
    page_.goto("/settings")
    with page_.expect_download() as download:
        page_.click("a[href='/settings/export']")
    document = json.loads(Path(download.value.path()).read_text())
    assert document["tables"]["users"][0]["username"] == "nadia"
    assert "Where your other 1022 tokens go" in page_.inner_text("#data-heading + p + form")
    page_.check("input[name=balance][value=listener]")
    page_.fill("input[name=recipient]", "mira")
    page_.fill("form[action='/settings/delete'] input[name=password]", PASSWORD)
    screenshot(page_, "settings-delete")
    started = time.monotonic()
    page_.click("form[action='/settings/delete'] button")
    page_.wait_for_url(re.compile(r"/$"))
    assert time.monotonic() - started < 10, "the deletion waited on something"
    page_.goto("/settings")
    page_.wait_for_url(re.compile(r"/login"))  # signed out: the account is gone


def test_a_partners_track_plays_in_full_from_the_library(browser: Browser, tmp_path: Path) -> None:
    """Two instances: a listener on A follows an artist on B (a partner of A), finds the
    release in the library feed, makes it playable here and plays it through the player:
    A charges its own listener (issue 7 in the browser)."""
    a = make_instance(tmp_path / "a", "127.0.0.6", f"sqlite+aiosqlite:///{tmp_path}/a.db")
    b = make_instance(tmp_path / "b", "127.0.0.7", f"sqlite+aiosqlite:///{tmp_path}/b.db")
    b.env["PLAYFAIR_FEDERATION__PARTNERSHIPS"] = "auto"
    b.cli("user", "add", "mira", "--role", "artist", stdin=PASSWORD + "\n")
    b.cli("artist", "add", "aurora", "--owner", "mira", "--display-name", "Aurora Lane")
    a.cli("user", "add", "lena", stdin=PASSWORD + "\n")
    try:
        a.start()
        b.start()
        a.cli("partners", "request", b.base.split("://", 1)[1])
        a.wait_for(r"\(Accept from .*/actor\): done: Accept of our partnership")
        context = browser.new_context(viewport=PHONE, base_url=a.base)
        page_ = context.new_page()
        watch = Watch(a.base)
        watch.attach(page_)
        log_in(page_, "lena")
        page_.goto("/library")
        page_.fill("input[name=account]", f"@aurora@{b.base.split('://', 1)[1]}")
        page_.click("form[action='/follow'] button")
        a.wait_for(r"\(Accept from .*/artists/aurora\): done")
        album = tmp_path / "Far Shore"
        album.mkdir()
        make_audio(album / "01 - Distant.mp3", "mp3", seconds=TRACK_SECONDS)
        b.cli("import", str(album), "--artist", "aurora")
        a.wait_for(r"\(Create from .*/artists/aurora\): done")
        page_.goto("/library")
        page_.click("form[action='/library/remote-release'] button")
        page_.wait_for_load_state()
        button = page_.locator("button[data-play-kind=remote]")
        assert button.count() == 1
        before = balance(page_)
        button.click()
        wait_until(page_, "window.playfairPlayer.state().claimed", timeout=30_000)
        assert before - balance(page_) == 2
        # one id space: the partner's track is played by its own id, through /api/v1/tracks
        assert player_state(page_)["trackId"] == button.get_attribute("data-play-track")
        screenshot(page_, "library-partner-track")
        context.close()
        # B learns of the play from A's Listen
        b.wait_for(r"\(Listen from .*/actor\): done: Listen of track")
        assert watch.errors == []
    finally:
        for instance in (a, b):
            if instance.process is not None:
                instance.stop()


def test_the_shell_works_offline(browser: Browser, site: Site) -> None:
    """Installable and offline (issue 8): the manifest is served, the service worker takes
    over, and with the network gone a page seen before still opens, and one never seen
    gets the offline page instead of the browser's error."""
    context = browser.new_context(viewport=PHONE, base_url=site.base)
    page_ = context.new_page()
    manifest = page_.request.get("/manifest.webmanifest")
    assert manifest.ok and manifest.json()["start_url"] == "/"
    page_.goto(f"/releases/{site.release_id}")
    page_.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page_.reload()  # now under the worker's control, which keeps a copy of the page
    wait_until(page_, "navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    page_.reload()
    assert page_.locator("h1").inner_text() == "Harbour Songs"
    page_.goto("/search?q=never-seen")
    assert "offline" in page_.locator("h1").inner_text().lower()
    context.close()


class _Elsewhere(BaseHTTPRequestHandler):
    """Another site: an app's OAuth callback, a visitor's own fediverse server (WebFinger
    with a follow page), and a page that tries to frame the instance."""

    site = ""

    def do_GET(self) -> None:  # the name http.server calls
        host = self.headers["Host"]
        if self.path.startswith("/.well-known/webfinger"):
            body = json.dumps(
                {
                    "links": [
                        {
                            "rel": "http://ostatus.org/schema/1.0/subscribe",
                            "template": f"http://{host}/follow?uri={{uri}}",
                        }
                    ]
                }
            )
            kind = "application/jrd+json"  # fmt: skip
        elif self.path.startswith("/frame"):
            body = f'<title>framing</title><iframe src="{self.site}/settings"></iframe>'
            kind = "text/html"
        elif self.path.startswith("/blog/"):  # a blog post with our player in it
            embed = self.path.removeprefix("/blog")
            body = (f'<title>a post</title><iframe src="{self.site}{embed}" width="480" '
                    'height="360" title="player"></iframe>')  # fmt: skip
            kind = "text/html"
        else:
            body, kind = f"<title>landed</title><p>{self.path}</p>", "text/html"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


def test_forms_that_lead_elsewhere_get_there_and_nobody_frames_the_site(
    browser: Browser, site: Site
) -> None:
    """The strict policy in a real browser: the OAuth consent answer reaches the app's
    loopback callback (its page allows it in form-action), remote follow reaches the
    visitor's server (through the page that moves on by itself), and a page of another
    site cannot frame the settings (frame-ancestors 'none')."""
    _Elsewhere.site = site.base
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Elsewhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{server.server_address[1]}"
    made = site.instance.cli("oauth", "add-client", "Pocket", "--public",
                             "--redirect-uri", f"{elsewhere}/callback")  # fmt: skip
    client_id = made.split("client_id: ", 1)[1].split()[0]
    context = browser.new_context(viewport=PHONE, base_url=site.base)
    page_ = context.new_page()
    console: list[str] = []
    page_.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    try:
        sign_up(page_, "nora")
        query = urlencode({"response_type": "code", "client_id": client_id, "state": "s1",
                           "redirect_uri": f"{elsewhere}/callback",
                           "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                           "code_challenge_method": "S256"})  # fmt: skip
        page_.goto(f"/oauth/authorize?{query}")
        page_.click("button[name=decision][value=allow]")
        page_.wait_for_url(f"{elsewhere}/callback?*")
        assert "code=" in page_.url and "state=s1" in page_.url

        page_.goto(f"{site.base}/artists/aurora")
        page_.fill("input[name=account]", f"@nora@127.0.0.1:{server.server_address[1]}")
        page_.click("form[action$='/remote-follow'] button")
        page_.wait_for_url(f"{elsewhere}/follow?*")
        assert "artists%2Faurora" in page_.url

        page_.goto(f"{elsewhere}/frame")
        frame = page_.frames[-1]
        page_.wait_for_load_state()
        assert frame != page_.main_frame
        assert "Settings" not in frame.content()
        assert any("frame-ancestors" in text for text in console), console
        console.clear()
    finally:
        context.close()
        server.shutdown()
    assert console == []


def test_skipping_early_is_free_and_pausing_lets_the_stream_go(
    page: tuple[Page, Watch], site: Site, tmp_path: Path
) -> None:
    """Stream-to-own enforced by the server, as the player meets it: a track skipped
    before min(45 s, length) costs nothing; a track paused early is let go (no buffering
    into the paid part) and picks up where it was; heard to the end, it costs its play,
    charged by the server when the player asks for the paid part."""
    page_, _watch = page
    album = tmp_path / "Long Walks"
    album.mkdir()
    make_audio(album / "01 - First Mile.mp3", "mp3", seconds=8)
    make_audio(album / "02 - Second Mile.mp3", "mp3", seconds=8, frequency=520)
    site.instance.cli("import", str(album), "--artist", "aurora")
    sign_up(page_, "pia")
    found = page_.request.get("/api/v1/search?q=long walks").json()["items"]
    [release] = [hit["release"]["id"] for hit in found if hit["kind"] == "release"]
    # announced once its tracks are ready; by its id: other tests of the module publish
    # releases of their own, so a count of announcements says nothing about this one
    site.instance.wait_for(rf"release {release} announced")
    page_.goto(f"/releases/{release}")
    assert page_.locator("h1").inner_text() == "Long Walks"
    start = balance(page_)
    buttons = page_.locator("button[data-play-track]")
    buttons.first.click()
    wait_until(page_, "window.playfairPlayer.state().heardSeconds >= 1.5")
    page_.keyboard.press("Shift+N")  # skip to the second track after 1.5 s of the first
    second = buttons.nth(1).get_attribute("data-play-track")
    wait_until(page_, f"window.playfairPlayer.state().trackId === '{second}'")
    wait_until(page_, "window.playfairPlayer.state().heardSeconds >= 1")
    page_.keyboard.press("k")  # pause
    wait_until(page_, "window.playfairPlayer.state().released", 15_000)
    assert balance(page_) == start  # nothing charged so far
    page_.keyboard.press("k")  # play again: the same session, from where it was
    wait_until(page_, "!window.playfairPlayer.state().released")
    wait_until(page_, "window.playfairPlayer.state().claimed", 30_000)
    assert start - balance(page_) == 2  # the second track's play, once; the first is free
    wallet = page_.request.get("/api/v1/me/wallet").json()
    assert [play["tokens"] for play in wallet["plays"]] == [2]


def no_overflow(page: Page) -> None:
    wide = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert wide <= 0, (page.url, page.viewport_size, wide)


def test_the_embed_player_is_accessible_plays_and_can_be_framed(
    page: tuple[Page, Watch], site: Site, browser: Browser
) -> None:
    """The embeddable player (issue 14): passes the pages' checks at phone and desktop
    width, its audio loads in Chromium, and another site may frame it (where it may
    frame no other page)."""
    page_, _watch = page
    page_.goto(f"/embed/releases/{site.release_id}")
    page_.wait_for_load_state("networkidle")
    assert page_.locator("h1").inner_text() == "Harbour Songs"
    wait_until(page_, "document.querySelector('audio').readyState >= 1")
    assert page_.evaluate("document.querySelector('audio').duration") > 0
    for size in (PHONE, DESKTOP):
        page_.set_viewport_size(size)
        no_overflow(page_)
    page_.set_viewport_size(PHONE)
    screenshot(page_, "embed-release")
    page_.locator("audio").first.evaluate("audio => audio.play()")
    wait_until(page_, "document.querySelector('audio').currentTime > 0")
    assert page_.context.cookies() == []
    track_id = page_.request.get(f"/api/v1/releases/{site.release_id}").json()["tracks"][0]["id"]
    page_.goto(f"/embed/tracks/{track_id}")
    wait_until(page_, "document.querySelector('audio').readyState >= 1")
    no_overflow(page_)
    accessible(page_)

    _Elsewhere.site = site.base
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Elsewhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{server.server_address[1]}"
    context = browser.new_context(viewport=DESKTOP)
    other = context.new_page()
    console: list[str] = []
    other.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    try:
        other.goto(f"{elsewhere}/blog/embed/releases/{site.release_id}")
        other.wait_for_load_state("networkidle")
        [frame] = [f for f in other.frames if f != other.main_frame]
        assert "Harbour Songs" in frame.locator("h1").inner_text()
        frame.evaluate(
            """() => new Promise((resolve) => {
                const audio = document.querySelector('audio');
                if (audio.readyState >= 1) resolve(true);
                else audio.addEventListener('loadedmetadata', () => resolve(true));
            })"""
        )
    finally:
        context.close()
        server.shutdown()
    assert console == []
