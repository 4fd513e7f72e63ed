/* playfair player: continuous playback, the play-session protocol and the stream-to-own
   price shown before each play (docs/architecture.md#money-stream-to-own, issue 8 point 2).
   Plain JavaScript, no framework, no build step, no third-party requests.
   A classic deferred script; without it every page still works (the track page has a
   plain <audio controls> preview and the play buttons are type="button").

   PAGE CONTRACT (the templates follow exactly this)
   * <head> of every page:
       <meta name="csrf-token" content="{{ csrf_token() }}">   sent as X-CSRF-Token on POSTs
       <link rel="stylesheet" href="/static/player.css">
       <script src="/static/player.js" defer></script>
   * <body data-signed-in="{{ username or '' }}" data-signup-url="/signup"
           data-wallet-url="/wallet">          data-signed-in empty or absent for visitors
   * <main id="main">…</main> holds everything that changes from page to page; right after
     it:  <div id="player" hidden></div>
          <div id="player-status" class="visually-hidden" aria-live="polite"></div>
     (the player builds its bar inside #player and un-hides it on first use).
   * Playable track:
       <button type="button" data-play-track="{id}" data-title="…" data-artist="…"
               [data-play-kind="remote" data-preview="{url}"]   (a partner's track)
               data-duration-ms="{ms}" data-cover="{url or ''}">Play …</button>
     Play buttons inside one element with the attribute data-queue form a list: pressing
     one plays it, queues the following ones and keeps the earlier ones for "previous".
     The button of the loaded track gets data-player-state="playing" or "paused"; pressing
     it pauses and resumes, and once the track has ended it starts a new play.
   * <span data-balance>128</span>   text content = the wallet balance, a bare number
     <span data-price-for="{id}">…</span>   the player replaces its content with what the
     price_note macro (templates/_macros.html) renders: <span class="price">N tokens ·
     M plays until yours</span>, <span class="price owned">yours</span> or
     <span class="price">free</span>.
   * Links and GET forms: while the player has a track, same-origin links and GET forms
     load the next page into <main id="main"> so playback continues. Opt out with
     data-no-pjax on the element or an ancestor; /static, /api, /logout, audio files,
     links with target or download, and in-page # links are never intercepted.
   * Test hook: window.playfairPlayer.state() →
       {trackId, mode, heardSeconds, claimed, released, queueLength}
*/
(function () {
  "use strict";

  const CLAIM_SECONDS = 45; // a play counts after min(45 s, track length)
  const CLAIM_RETRY_MS = 1000; // after a 425 from the server
  const CLAIM_MAX_ATTEMPTS = 8;
  const CLAIM_MARGIN_MS = 300; // wait this much beyond the server's minimum
  // Paused before its play is charged, a stream is let go after this long: the server
  // sends the free part at listening speed whatever the player does with it, so a
  // browser that kept buffering during a long pause would reach the paid part unheard.
  const PAUSE_RELEASE_MS = 4000;
  const MAX_TICK = 2; // seconds; a bigger jump between timeupdates is a seek
  const SEEK_STEP = 10;
  const PLAYS_TO_OWN = 9;
  const SKIP_PATHS = /^\/(static|api|logout)(\/|$)/;
  const AUDIO_PATHS = /\/(stream|preview)\/?$/;
  const NOT_TEXT = ["button", "checkbox", "radio", "range", "submit", "reset", "file",
    "color", "image"];
  const HELP = "Keyboard: Space or K play or pause, J back 10 seconds, L forward 10 " +
    "seconds, Shift+N next, Shift+P previous, M mute.";
  const INVITE = ["You are hearing a 45-second preview. ", "Sign up",
    " to hear whole tracks — every play brings you closer to owning it."];

  const player = { ui: null, audio: null, queue: [], index: -1, play: null, gen: 0,
    invited: false };
  let pjaxUsed = false;
  let shownPage = location.pathname + location.search;
  let navGen = 0;
  let navAbort = null;

  /* ---------- small helpers ---------- */

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach((key) => {
      const value = attrs[key];
      if (key === "text") node.textContent = value;
      else if (value === true) node.setAttribute(key, "");
      else if (value !== false && value != null) node.setAttribute(key, String(value));
    });
    (children || []).forEach((child) => node.append(child));
    return node;
  }

  function signedIn() {
    return Boolean(document.body.getAttribute("data-signed-in"));
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function bodyUrl(name, fallback) {
    return document.body.getAttribute(name) || fallback;
  }

  /* The server writes absolute URLs from its configured base; use them on this origin. */
  function localPath(url) {
    const parsed = new URL(url, location.href);
    return parsed.pathname + parsed.search;
  }

  function clock(seconds) {
    if (!isFinite(seconds) || seconds < 0) seconds = 0;
    const s = Math.floor(seconds);
    const rest = String(s % 60).padStart(2, "0");
    if (s >= 3600) {
      return Math.floor(s / 3600) + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") +
        ":" + rest;
    }
    return Math.floor(s / 60) + ":" + rest;
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  async function api(method, url) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    const response = await fetch(url, { method, headers, credentials: "same-origin" });
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    return { status: response.status, ok: response.ok, body: body || {} };
  }

  function priceUrl(track) {
    return track.api + "/price";
  }

  function reasonOf(result, fallback) {
    return (result.body && result.body.reason) || fallback;
  }

  /* ---------- the bar ---------- */

  /* Icons are inline SVG (24×24 paths), so they need no font and no request. */
  const ICONS = {
    play: "M8 5v14l11-7z",
    pause: "M6 5h4v14H6zM14 5h4v14h-4z",
    previous: "M6 6h2v12H6zM9.5 12 18 18V6z",
    next: "M16 6h2v12h-2zM6 18l8.5-6L6 6z",
    sound: "M4 9v6h4l5 4V5L8 9zM16 8.5a5 5 0 0 1 0 7l-1.4-1.4a3 3 0 0 0 0-4.2z",
    muted: "M4 9v6h4l5 4V5L8 9zM15.5 9.9l1.4-1.4 2.1 2.1 2.1-2.1 1.4 1.4-2.1 2.1 2.1 2.1" +
      "-1.4 1.4-2.1-2.1-2.1 2.1-1.4-1.4 2.1-2.1z",
  };

  function setIcon(button, name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "20");
    svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    button.replaceChildren(svg);
  }

  function iconButton(cls, label, icon, extra) {
    const button = el("button", Object.assign({ type: "button", class: cls,
      "aria-label": label, title: label }, extra || {}));
    setIcon(button, icon);
    return button;
  }

  function buildUi() {
    let root = document.getElementById("player");
    if (!root) {
      root = el("div", { id: "player", hidden: true });
      document.body.append(root);
    }
    let status = document.getElementById("player-status");
    if (!status) {
      status = el("div", { id: "player-status", class: "visually-hidden",
        "aria-live": "polite" });
      document.body.append(status);
    }
    root.setAttribute("role", "region");
    root.setAttribute("aria-label", "Player");
    root.setAttribute("title", HELP);
    const ui = {
      root, status,
      cover: el("img", { class: "pf-cover", alt: "", width: 48, height: 48, hidden: true }),
      title: el("span", { class: "pf-title" }),
      artist: el("span", { class: "pf-artist" }),
      price: el("span", { class: "pf-price" }),
      prev: iconButton("pf-prev", "Previous track", "previous"),
      toggle: iconButton("pf-toggle", "Play", "play"),
      next: iconButton("pf-next", "Next track", "next"),
      elapsed: el("span", { class: "pf-time", text: "0:00" }),
      seek: el("input", { type: "range", class: "pf-seek-range", min: 0, max: 0, step: 1,
        value: 0, "aria-label": "Seek", "aria-valuetext": "0:00 of 0:00" }),
      total: el("span", { class: "pf-time", text: "0:00" }),
      mute: iconButton("pf-mute", "Mute", "sound", { "aria-pressed": "false" }),
      queueToggle: el("button", { type: "button", class: "pf-queue-toggle",
        "aria-expanded": "false", "aria-controls": "pf-queue", text: "Queue" }),
      message: el("p", { class: "pf-message" }),
      list: el("ol", { class: "pf-queue-list" }),
    };
    ui.queue = el("div", { id: "pf-queue", class: "pf-queue", hidden: true }, [
      el("h2", { class: "pf-queue-heading", text: "Queue" }), ui.list]);
    root.replaceChildren(
      ui.cover,
      el("div", { class: "pf-info" }, [ui.title, ui.artist]),
      ui.price,
      el("div", { class: "pf-controls" }, [ui.prev, ui.toggle, ui.next]),
      el("div", { class: "pf-seek" }, [ui.elapsed, ui.seek, ui.total]),
      el("div", { class: "pf-extra" }, [ui.mute, ui.queueToggle]),
      ui.message,
      el("p", { class: "visually-hidden", text: HELP }),
      ui.queue);
    ui.prev.addEventListener("click", previous);
    ui.toggle.addEventListener("click", togglePlay);
    ui.next.addEventListener("click", next);
    ui.mute.addEventListener("click", toggleMute);
    ui.seek.addEventListener("input", () => seekTo(Number(ui.seek.value)));
    ui.seek.addEventListener("pointerdown", () => { ui.dragging = true; });
    ui.seek.addEventListener("pointerup", () => { ui.dragging = false; });
    ui.seek.addEventListener("pointercancel", () => { ui.dragging = false; });
    ui.queueToggle.addEventListener("click", () => showQueue(ui.queue.hidden));
    ui.queue.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        showQueue(false);
        ui.queueToggle.focus();
      }
    });
    ui.cover.addEventListener("error", () => { ui.cover.hidden = true; });
    return ui;
  }

  function buildAudio() {
    const audio = el("audio", { preload: "none" });
    audio.addEventListener("timeupdate", onTimeUpdate);
    audio.addEventListener("seeking", () => {
      if (player.play) player.play.last = audio.currentTime;
    });
    audio.addEventListener("play", onPlayState);
    audio.addEventListener("pause", onPlayState);
    audio.addEventListener("loadedmetadata", renderTime);
    audio.addEventListener("durationchange", renderTime);
    audio.addEventListener("volumechange", renderMute);
    audio.addEventListener("ended", onEnded);
    audio.addEventListener("error", onAudioError);
    player.ui.root.append(audio);
    return audio;
  }

  function ensurePlayer() {
    if (!player.ui) {
      player.ui = buildUi();
      player.audio = buildAudio();
      setupMediaSession();
    }
    if (player.ui.root.hidden) {
      player.ui.root.hidden = false;
      document.body.classList.add("pf-player-open");
      keepRoomForBar(player.ui.root);
    }
  }

  /* The page gets as much bottom padding as the bar is tall (player.css uses it). */
  function keepRoomForBar(root) {
    if (typeof ResizeObserver !== "function") return;
    new ResizeObserver(() => {
      document.documentElement.style.setProperty("--pf-bar-height", root.offsetHeight + "px");
    }).observe(root);
  }

  function say(text) {
    const status = player.ui ? player.ui.status : document.getElementById("player-status");
    if (!status) return;
    if (status.textContent !== text) {
      status.textContent = text;
      return;
    }
    status.textContent = ""; // the same words again: empty first, so they are read again
    window.setTimeout(() => { status.textContent = text; }, 50);
  }

  /* A plain-words message in the bar; parts are strings or [text, href] links. */
  function showMessage(parts, announce) {
    const box = player.ui.message;
    box.replaceChildren();
    (parts || []).forEach((part) => {
      box.append(Array.isArray(part) ? el("a", { href: part[1], text: part[0] }) : part);
    });
    if (announce && box.textContent) say(box.textContent);
  }

  function priceText(quote) {
    if (!quote) return "Preview";
    if (quote.free) return "Free track";
    if (quote.owned) return "Yours — plays are free";
    if (!quote.price) return "No charge for this play";
    return "Next play: " + plural(quote.price, "token", "tokens") + " · " +
      plural(quote.plays_until_owned, "play", "plays") + " until yours";
  }

  /* The same words as the templates' price_note macro (templates/_macros.html). */
  function priceNote(quote) {
    if (quote.free) return el("span", { class: "price", text: "free" });
    if (quote.owned) return el("span", { class: "price owned", text: "yours" });
    return el("span", { class: "price", text: plural(quote.price, "token", "tokens") + " · " +
      plural(quote.plays_until_owned, "play", "plays") + " until yours" });
  }

  function showPrice(trackId, quote) {
    if (typeof quote.balance === "number") updateAll("[data-balance]", quote.balance);
    if (typeof quote.price === "number") {
      document.querySelectorAll('[data-price-for="' + trackId + '"]').forEach((node) => {
        node.replaceChildren(priceNote(quote));
      });
    }
    if (player.play && player.play.track.id === trackId) {
      player.ui.price.textContent = priceText(quote);
    }
  }

  function updateAll(selector, value) {
    document.querySelectorAll(selector).forEach((node) => { node.textContent = String(value); });
  }

  function renderTrack(track) {
    const ui = player.ui;
    ui.title.textContent = track.title;
    ui.artist.textContent = track.artist;
    ui.price.textContent = signedIn() ? "Checking the price…" : "Preview";
    if (track.cover) {
      ui.cover.src = track.cover;
      ui.cover.hidden = false;
    } else {
      ui.cover.removeAttribute("src");
      ui.cover.hidden = true;
    }
    ui.prev.disabled = player.index <= 0;
    ui.next.disabled = player.index >= player.queue.length - 1;
    renderQueue();
    renderTime();
    updateMediaMetadata(track);
  }

  function duration() {
    const audio = player.audio;
    if (audio && isFinite(audio.duration) && audio.duration > 0) return audio.duration;
    return player.play ? player.play.track.durationMs / 1000 : 0;
  }

  function renderTime() {
    if (!player.ui) return;
    const ui = player.ui;
    const total = duration();
    const released = player.play ? player.play.releasedAt : null;
    const now = released !== null ? released : (player.audio ? player.audio.currentTime || 0 : 0);
    ui.seek.max = String(Math.max(0, Math.floor(total)));
    if (!ui.dragging) ui.seek.value = String(Math.floor(now));
    ui.seek.setAttribute("aria-valuetext", clock(now) + " of " + clock(total));
    ui.elapsed.textContent = clock(now);
    ui.total.textContent = clock(total);
    updatePositionState();
  }

  function onPlayState() {
    const playing = !player.audio.paused;
    schedulePauseRelease(playing);
    const ui = player.ui;
    ui.toggle.setAttribute("aria-label", playing ? "Pause" : "Play");
    ui.toggle.setAttribute("title", playing ? "Pause" : "Play");
    setIcon(ui.toggle, playing ? "pause" : "play");
    if (player.play) player.play.last = player.audio.currentTime;
    if ("mediaSession" in navigator) {
      navigator.mediaSession.playbackState = playing ? "playing" : "paused";
    }
    markButtons();
  }

  /* A full stream paused before its play is charged is let go after a while (its
     position kept); pressing play picks it up again from there in the same session. */
  function schedulePauseRelease(playing) {
    const play = player.play;
    if (!play) return;
    window.clearTimeout(play.pauseTimer);
    if (playing || play.mode !== "full" || play.claimed || !play.streamUrl) return;
    play.pauseTimer = window.setTimeout(() => {
      if (play !== player.play || !player.audio.paused || play.claimed) return;
      if (player.audio.ended || !player.audio.getAttribute("src")) return;
      play.releasedAt = player.audio.currentTime;
      player.audio.removeAttribute("src");
      player.audio.load();
      renderTime();
    }, PAUSE_RELEASE_MS);
  }

  function resumeReleased(play) {
    const audio = player.audio;
    const at = play.releasedAt || 0;
    play.releasedAt = null;
    audio.addEventListener("loadedmetadata", function seekBack() {
      audio.removeEventListener("loadedmetadata", seekBack);
      try {
        audio.currentTime = at;
      } catch (err) {
        return;
      }
      play.last = at;
    });
    audio.src = play.streamUrl;
    play.last = at;
    resume();
  }

  function renderMute() {
    const muted = player.audio.muted;
    player.ui.mute.setAttribute("aria-pressed", muted ? "true" : "false");
    setIcon(player.ui.mute, muted ? "muted" : "sound");
  }

  function markButtons() {
    const id = player.play ? player.play.track.id : null;
    const state = player.audio && !player.audio.paused ? "playing" : "paused";
    document.querySelectorAll("button[data-play-track]").forEach((button) => {
      if (keyOf(button) === id) {
        button.setAttribute("data-player-state", state);
      } else {
        button.removeAttribute("data-player-state");
      }
    });
  }

  function renderQueue() {
    const ui = player.ui;
    ui.queueToggle.textContent = "Queue (" + player.queue.length + ")";
    const hadFocus = ui.list.contains(document.activeElement);
    ui.list.replaceChildren(...player.queue.map((track, i) => {
      const label = track.title + (track.artist ? " — " + track.artist : "");
      const button = el("button", { type: "button", class: "pf-queue-item",
        "aria-current": i === player.index ? "true" : false, text: label });
      button.addEventListener("click", () => start(i));
      return el("li", {}, [button]);
    }));
    const current = ui.list.querySelector('[aria-current="true"]');
    if (hadFocus && current) current.focus(); // a jump keeps focus in the list
  }

  function showQueue(open) {
    player.ui.queue.hidden = !open;
    player.ui.queueToggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      const current = player.ui.list.querySelector('[aria-current="true"]') ||
        player.ui.list.querySelector("button");
      if (current) current.focus();
    }
  }

  /* ---------- starting a track ---------- */

  /* Every track here, ours or a partner's, has an id of one id space and is played
     through the same API (/api/v1/tracks/{id}); a partner's track (data-play-kind="remote")
     is previewed from its data-preview URL, on the partner's server. */
  function keyOf(button) {
    return button.getAttribute("data-play-track") || "";
  }

  function trackFrom(button) {
    const number = keyOf(button);
    if (!/^\d+$/.test(number)) return null;
    return {
      id: number,
      api: "/api/v1/tracks/" + number,
      preview: button.getAttribute("data-preview") || "/tracks/" + number + "/preview",
      title: button.getAttribute("data-title") || "Untitled",
      artist: button.getAttribute("data-artist") || "",
      durationMs: parseInt(button.getAttribute("data-duration-ms"), 10) || 0,
      cover: button.getAttribute("data-cover") || "",
    };
  }

  function onPlayButton(button) {
    const clicked = trackFrom(button);
    if (!clicked) return;
    // the loaded track's own button pauses and resumes; once it has ended it starts a
    // new play (and a new play session)
    const loaded = player.play &&
      (player.audio.getAttribute("src") || player.play.releasedAt !== null);
    if (loaded && player.play.track.id === clicked.id && !player.audio.ended) {
      togglePlay();
      return;
    }
    const list = button.closest("[data-queue]");
    const buttons = list ? list.querySelectorAll("button[data-play-track]") : [button];
    const tracks = [];
    let index = 0;
    buttons.forEach((candidate) => {
      const track = trackFrom(candidate);
      if (!track) return;
      if (candidate === button) index = tracks.length;
      tracks.push(track);
    });
    player.queue = tracks;
    start(index);
  }

  function newPlay(track) {
    return { gen: ++player.gen, track, mode: null, claimUrl: null, heard: 0, last: 0,
      openedAt: 0, claimed: false, claimStarted: false, attempts: 0, streamUrl: null,
      releasedAt: null, pauseTimer: 0 };
  }

  async function start(index) {
    if (index < 0 || index >= player.queue.length) return;
    const play = newPlay(player.queue[index]);
    try {
      ensurePlayer();
      player.index = index;
      player.play = play;
      const audio = player.audio;
      audio.pause();
      audio.removeAttribute("src"); // forget the previous track's length and position
      audio.load();
      renderTrack(play.track);
      showMessage([]);
      if (signedIn()) await openSession(play);
      else startPreview(play, null);
    } catch (err) {
      if (play.gen !== player.gen) return;
      player.ui.price.textContent = "";
      showMessage(["Could not reach the server. Check your connection and try again."], true);
    }
  }

  async function openSession(play) {
    const priced = await api("GET", priceUrl(play.track));
    if (play.gen !== player.gen) return;
    if (priced.status === 401) return signedOut(play);
    if (priced.ok) showPrice(play.track.id, priced.body);
    const opened = await api("POST", play.track.api + "/plays");
    if (play.gen !== player.gen) return;
    if (opened.status === 401) return signedOut(play);
    if (!opened.ok) {
      player.ui.price.textContent = "";
      showMessage(["This track cannot be played now: " +
        reasonOf(opened, "the server said no (" + opened.status + ")") + "."], true);
      return;
    }
    const started = opened.body;
    if (started.quote) showPrice(play.track.id, started.quote);
    play.mode = started.mode === "full" ? "full" : "preview";
    play.claimUrl = started.claim_url ? localPath(started.claim_url) : null;
    play.openedAt = performance.now();
    if (play.mode === "preview") {
      player.ui.price.textContent = "Preview";
      showMessage([(started.reason || "Your balance does not cover this play") + ". ",
        ["Top up your wallet", bodyUrl("data-wallet-url", "/wallet")]], true);
    }
    play.streamUrl = play.mode === "full" ? mp3(localPath(started.stream_url)) : null;
    load(play.streamUrl || localPath(started.stream_url));
  }

  /* The web player asks for the MP3 rendition: browsers read an MP3 from its start in one
     request and seek in it with one more, where Ogg makes them read the file's end and
     search in it (requests that a play session's free part would have to charge). */
  function mp3(url) {
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + "format=mp3";
  }

  function signedOut(play) {
    document.body.setAttribute("data-signed-in", "");
    startPreview(play, ["You are signed out, so here is the preview. ",
      ["Sign in again", "/login"], " to hear whole tracks."]);
  }

  function startPreview(play, message) {
    play.mode = "preview";
    player.ui.price.textContent = "Preview";
    const invite = [INVITE[0], [INVITE[1], bodyUrl("data-signup-url", "/signup")], INVITE[2]];
    showMessage(message || invite, Boolean(message) || !player.invited);
    player.invited = true;
    load(play.track.preview);
  }

  function load(src) {
    const audio = player.audio;
    audio.src = src;
    if (player.play) player.play.last = 0;
    resume();
  }

  function resume() {
    const attempt = player.audio.play();
    if (attempt && attempt.catch) {
      attempt.catch((err) => {
        if (err && err.name === "NotAllowedError") showMessage(["Press play to start."], false);
      });
    }
  }

  /* ---------- counting what was heard, and claiming ---------- */

  /* min(45 s, length): the audio's own length while it is loaded, else the catalogue's */
  function threshold(play) {
    const length = (play === player.play && duration()) || play.track.durationMs / 1000;
    return length > 0 ? Math.min(CLAIM_SECONDS, length) : CLAIM_SECONDS;
  }

  /* Heard time grows by the small steps between timeupdates; a jump is a seek. */
  function countHeard(atEnd) {
    const play = player.play;
    const audio = player.audio;
    if (!play) return;
    const now = audio.currentTime;
    const delta = now - play.last;
    const listening = atEnd || (!audio.paused && !audio.seeking);
    if (listening && delta > 0 && delta <= MAX_TICK) play.heard += delta;
    play.last = now;
  }

  function onTimeUpdate() {
    countHeard();
    const play = player.play;
    if (play && play.mode === "full" && play.heard >= threshold(play)) claim(play);
    renderTime();
  }

  function onEnded() {
    const play = player.play;
    if (play && play.mode === "full") {
      countHeard(true);
      // timeupdate fires a few times a second, so the last moments may be uncounted
      if (play.heard >= threshold(play) - 1) claim(play);
    }
    if (player.index < player.queue.length - 1) start(player.index + 1);
    else say("End of the queue.");
  }

  function claim(play) {
    if (play.claimStarted || !play.claimUrl) return;
    play.claimStarted = true;
    // the server counts from when it opened the session; never ask before that time
    const length = Math.max(threshold(play), play.track.durationMs / 1000);
    const serverSeconds = Math.min(CLAIM_SECONDS, length);
    const wait = play.openedAt + serverSeconds * 1000 + CLAIM_MARGIN_MS - performance.now();
    later(() => sendClaim(play), Math.max(0, wait));
  }

  /* Run an async step later; its failure must never reach the console. */
  function later(step, ms) {
    window.setTimeout(() => { Promise.resolve().then(step).catch(() => {}); }, ms);
  }

  async function sendClaim(play) {
    play.attempts += 1;
    let result;
    try {
      result = await api("POST", play.claimUrl);
    } catch (err) {
      if (play.attempts < CLAIM_MAX_ATTEMPTS) retryClaim(play, CLAIM_RETRY_MS * 3);
      else reportClaimProblem(play, "Could not reach the server to count this play.");
      return;
    }
    if (result.ok) return claimed(play, result.body);
    if (result.status === 425 && play.attempts < CLAIM_MAX_ATTEMPTS) {
      // the server's reason ends "… 1.2 s to go"; else try again in a second
      const left = /([\d.]+) s to go/.exec(reasonOf(result, ""));
      return retryClaim(play, left ? Number(left[1]) * 1000 + 250 : CLAIM_RETRY_MS);
    }
    if (result.status === 409) {
      play.claimed = true;
      return;
    }
    if (result.status === 410) return;
    if (result.status === 401) {
      document.body.setAttribute("data-signed-in", "");
      return reportClaimProblem(play, "You are signed out, so this play was not counted.");
    }
    const reason = reasonOf(result, "error " + result.status);
    reportClaimProblem(play, "This play was not counted: " + reason + ".");
  }

  function retryClaim(play, ms) {
    later(() => sendClaim(play), ms);
  }

  function reportClaimProblem(play, text) {
    if (play.gen === player.gen) showMessage([text], true);
    else say(text);
  }

  async function claimed(play, done) {
    play.claimed = true;
    if (typeof done.balance === "number") updateAll("[data-balance]", done.balance);
    const paid = typeof done.paid_number === "number" ? done.paid_number : null;
    const left = paid === null ? null : Math.max(0, PLAYS_TO_OWN - paid);
    const charged = "Charged " + plural(done.tokens, "token", "tokens") + ". ";
    if (done.outcome === "charged" && done.owned) say(charged + "You own this track now.");
    else if (done.outcome === "charged") say(charged + plural(left, "play", "plays") + " until yours.");
    else say("Play counted — no tokens charged.");
    let quote = null;
    try {
      const fresh = await api("GET", priceUrl(play.track));
      if (fresh.ok) quote = fresh.body;
    } catch (err) {
      quote = null;
    }
    if (!quote && done.outcome === "charged") {
      quote = { price: done.owned ? 0 : Math.pow(2, paid + 1), plays_until_owned: left,
        owned: Boolean(done.owned), free: false, balance: done.balance };
    }
    if (quote) showPrice(play.track.id, quote);
  }

  function onAudioError() {
    const play = player.play;
    if (!play || !player.audio.getAttribute("src")) return;
    if (play.mode === "full" && !play.claimed) {
      later(() => explainStop(play), 0);
      return;
    }
    showMessage(["The audio could not be loaded. Check your connection, then press play " +
      "or choose the track again."], true);
  }

  /* The server refuses the rest of a paid track whose play it cannot charge (the
     balance was spent meanwhile): the free part played, then the audio stopped. */
  async function explainStop(play) {
    let quote = null;
    try {
      const priced = await api("GET", priceUrl(play.track));
      if (priced.ok) quote = priced.body;
    } catch (err) {
      quote = null;
    }
    if (play !== player.play) return;
    if (quote && !quote.owned && !quote.free && quote.balance < quote.price) {
      showPrice(play.track.id, quote);
      updateAll("[data-balance]", quote.balance);
      showMessage(["Your balance (" + plural(quote.balance, "token", "tokens") + ") does not " +
        "cover the rest of this play (" + plural(quote.price, "token", "tokens") + "). ",
        ["Top up your wallet", bodyUrl("data-wallet-url", "/wallet")]], true);
      return;
    }
    showMessage(["The audio could not be loaded. Check your connection, then press play " +
      "or choose the track again."], true);
  }

  /* ---------- transport ---------- */

  function active() {
    return Boolean(player.play && player.audio);
  }

  function togglePlay() {
    if (!active()) return;
    if (player.play.releasedAt !== null) resumeReleased(player.play);
    else if (!player.audio.getAttribute("src")) start(player.index); // it never loaded: try again
    else if (player.audio.paused) resume();
    else player.audio.pause();
  }

  function next() {
    if (active() && player.index < player.queue.length - 1) start(player.index + 1);
  }

  function previous() {
    if (!active()) return;
    if (player.audio.currentTime > 3 || player.index <= 0) seekTo(0);
    else start(player.index - 1);
  }

  function seekTo(seconds) {
    if (!active()) return;
    const total = duration();
    const target = Math.max(0, total ? Math.min(seconds, total) : seconds);
    if (player.play.releasedAt !== null) {
      player.play.releasedAt = target; // picked up from there when play is pressed
      renderTime();
      return;
    }
    try {
      player.audio.currentTime = target;
    } catch (err) {
      return;
    }
    player.play.last = target;
    renderTime();
  }

  function seekBy(seconds) {
    if (active()) seekTo(player.audio.currentTime + seconds);
  }

  function toggleMute() {
    if (active()) player.audio.muted = !player.audio.muted;
  }

  /* ---------- Media Session ---------- */

  function setupMediaSession() {
    if (!("mediaSession" in navigator)) return;
    const handlers = {
      play: () => (player.play && player.play.releasedAt !== null ?
        resumeReleased(player.play) : resume()),
      pause: () => player.audio.pause(),
      previoustrack: previous,
      nexttrack: next,
      seekto: (d) => seekTo(d.seekTime),
      seekbackward: (d) => seekBy(-(d.seekOffset || SEEK_STEP)),
      seekforward: (d) => seekBy(d.seekOffset || SEEK_STEP),
    };
    Object.keys(handlers).forEach((action) => {
      try {
        navigator.mediaSession.setActionHandler(action, handlers[action]);
      } catch (err) {
        /* this browser does not know the action */
      }
    });
  }

  function updateMediaMetadata(track) {
    if (!("mediaSession" in navigator) || typeof MediaMetadata === "undefined") return;
    try {
      const artwork = track.cover ? [{ src: new URL(track.cover, location.href).href }] : [];
      navigator.mediaSession.metadata = new MediaMetadata({ title: track.title,
        artist: track.artist, artwork });
    } catch (err) {
      /* metadata is a nicety */
    }
  }

  function updatePositionState() {
    if (!("mediaSession" in navigator) || !navigator.mediaSession.setPositionState) return;
    const total = duration();
    const position = player.audio ? player.audio.currentTime || 0 : 0;
    if (!(total > 0) || position > total) return;
    try {
      navigator.mediaSession.setPositionState({ duration: total,
        playbackRate: player.audio.playbackRate || 1, position });
    } catch (err) {
      /* an inconsistent state is simply not reported */
    }
  }

  /* ---------- keyboard ---------- */

  function isTextField(node) {
    if (!node || node.nodeType !== 1) return false;
    if (node.isContentEditable) return true;
    const tag = node.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    const type = (node.getAttribute("type") || "text").toLowerCase();
    return tag === "input" && NOT_TEXT.indexOf(type) < 0;
  }

  function onKey(event) {
    if (!active() || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const target = event.target;
    if (isTextField(target)) return;
    const key = event.key;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    let action = null;
    if (key === " " && !event.shiftKey) {
      // Space keeps its own meaning on buttons, links and other controls
      if (target.closest && target.closest("button, a, summary, input, [role=button]")) return;
      action = togglePlay;
    } else if (event.shiftKey && lower === "n") action = next;
    else if (event.shiftKey && lower === "p") action = previous;
    else if (!event.shiftKey && lower === "k") action = togglePlay;
    else if (!event.shiftKey && lower === "j") action = () => seekBy(-SEEK_STEP);
    else if (!event.shiftKey && lower === "l") action = () => seekBy(SEEK_STEP);
    else if (!event.shiftKey && lower === "m") action = toggleMute;
    if (!action) return;
    event.preventDefault();
    if (event.repeat && (action === togglePlay || action === toggleMute)) return;
    action();
  }

  /* ---------- page changes that keep the music playing ---------- */

  function pjaxUrl(href) {
    let url;
    try {
      url = new URL(href, location.href);
    } catch (err) {
      return null;
    }
    if (url.origin !== location.origin || !/^https?:$/.test(url.protocol)) return null;
    if (SKIP_PATHS.test(url.pathname) || AUDIO_PATHS.test(url.pathname)) return null;
    if (url.hash && pageKey(url.href) === pageKey(location.href)) return null;
    return url;
  }

  function onLinkClick(event) {
    if (event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey ||
      event.shiftKey || event.altKey || !active()) return;
    const link = event.target.closest && event.target.closest("a[href]");
    if (!link || link.closest("[data-no-pjax]")) return;
    const target = link.getAttribute("target");
    if ((target && target !== "_self") || link.hasAttribute("download")) return;
    const raw = link.getAttribute("href");
    if (!raw || raw.charAt(0) === "#") return;
    const url = pjaxUrl(link.href);
    if (!url) return;
    event.preventDefault();
    navigate(url.href, true);
  }

  function onFormSubmit(event) {
    if (event.defaultPrevented || !active()) return;
    const form = event.target;
    const submitter = event.submitter || null;
    if (!(form instanceof HTMLFormElement) || form.closest("[data-no-pjax]")) return;
    if ((form.getAttribute("method") || "get").toLowerCase() !== "get") return;
    const target = form.getAttribute("target");
    if (target && target !== "_self") return;
    const overrides = ["formaction", "formmethod", "formtarget"];
    if (submitter && overrides.some((name) => submitter.hasAttribute(name))) return;
    const url = pjaxUrl(form.getAttribute("action") || location.href);
    if (!url) return;
    let data;
    try {
      data = submitter ? new FormData(form, submitter) : new FormData(form);
    } catch (err) {
      data = new FormData(form);
    }
    const params = new URLSearchParams();
    data.forEach((value, name) => { if (typeof value === "string") params.append(name, value); });
    url.search = params.toString();
    url.hash = "";
    event.preventDefault();
    navigate(url.href, true);
  }

  async function navigate(href, push) {
    try {
      await loadPage(href, push);
    } catch (err) {
      if (push) location.assign(href);
      else location.reload();
    }
  }

  async function loadPage(href, push) {
    const gen = ++navGen;
    if (navAbort) navAbort.abort();
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    navAbort = controller;
    let page;
    try {
      page = await fetchPage(href, controller);
    } catch (err) {
      page = null;
      if (err && err.name === "AbortError") return;
    }
    if (gen !== navGen) return;
    if (!page) {
      if (push) location.assign(href);
      else location.reload();
      return;
    }
    if (push) {
      const here = Object.assign({}, history.state, { pf: true, scrollY: window.scrollY });
      history.replaceState(here, "");
      history.pushState({ pf: true, scrollY: 0 }, "", page.url);
      pjaxUsed = true;
      if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    }
    swapPage(page.doc);
    shownPage = pageKey(location.href);
    const hash = new URL(page.url).hash;
    const anchor = hash ? document.getElementById(decodeURIComponent(hash.slice(1))) : null;
    if (anchor) anchor.scrollIntoView();
    else window.scrollTo(0, push ? 0 : (history.state && history.state.scrollY) || 0);
  }

  async function fetchPage(href, controller) {
    const response = await fetch(href, { headers: { Accept: "text/html" },
      credentials: "same-origin", signal: controller ? controller.signal : undefined });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || type.indexOf("text/html") < 0) return null;
    const finalUrl = new URL(response.url || href, location.href);
    if (finalUrl.origin !== location.origin) return null;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    if (!doc.querySelector("main#main")) return null;
    finalUrl.hash = new URL(href, location.href).hash;
    return { doc, url: finalUrl.href };
  }

  function swapPage(doc) {
    const main = document.getElementById("main");
    const fresh = doc.querySelector("main#main");
    main.replaceChildren(...Array.from(fresh.childNodes).map((node) => document.adoptNode(node)));
    document.title = doc.title;
    const meta = document.querySelector('meta[name="csrf-token"]');
    const freshMeta = doc.querySelector('meta[name="csrf-token"]');
    if (meta && freshMeta) meta.setAttribute("content", freshMeta.getAttribute("content") || "");
    ["data-signed-in", "data-signup-url", "data-wallet-url"].forEach((name) => {
      const value = doc.body.getAttribute(name);
      if (value === null) document.body.removeAttribute(name);
      else document.body.setAttribute(name, value);
    });
    markButtons();
    focusMain(main);
    document.dispatchEvent(new CustomEvent("playfair:navigated"));
  }

  function focusMain(main) {
    const heading = main.querySelector("h1, h2, h3, h4, h5, h6") || main;
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }

  function pageKey(href) {
    const url = new URL(href, location.href);
    return url.pathname + url.search;
  }

  function onPopState() {
    // a hash change within the page shown needs nothing; other entries are our pages
    if (!pjaxUsed || pageKey(location.href) === shownPage) return;
    navigate(location.href, false);
  }

  /* ---------- wiring ---------- */

  function onClick(event) {
    const button = event.target.closest && event.target.closest("button[data-play-track]");
    if (button && !button.closest("#player")) {
      event.preventDefault();
      onPlayButton(button);
      return;
    }
    onLinkClick(event);
  }

  function guard(fn) {
    return function (event) {
      try {
        fn(event);
      } catch (err) {
        if (player.ui) showMessage(["Something went wrong in the player. Reload the page."], true);
      }
    };
  }

  function init() {
    document.addEventListener("click", guard(onClick));
    document.addEventListener("submit", guard(onFormSubmit));
    document.addEventListener("keydown", guard(onKey));
    window.addEventListener("popstate", guard(onPopState));
    window.playfairPlayer = Object.freeze({
      state() {
        const play = player.play;
        return {
          trackId: play ? play.track.id : null,
          mode: play ? play.mode : null,
          heardSeconds: play ? Math.round(play.heard * 10) / 10 : 0,
          claimed: play ? play.claimed : false,
          released: play ? play.releasedAt !== null : false,
          queueLength: player.queue.length,
        };
      },
    });
  }

  init();
})();
