"""The one URL rule (federation/urls.py) and the places that hold a URL to it: the remote
ids the parsers keep, the links kept in remote HTML, and the instance's own base URL.
tests/test_input_limits.py has more cases of the rule itself."""

from __future__ import annotations

import pytest

from federation.parse import InvalidObject, parse_actor
from federation.sanitize import sanitize_html
from federation.urls import MAX_URL_CHARS, UnacceptableURL, checked_url, is_remote_url
from server.runtime.config import ConfigError, load_settings

REFUSED = [
    ("javascript:alert(1)", "only https and http"),
    ("JavaScript://music.example/%0aalert(1)", "only https and http"),
    ("data:text/html,<script>alert(1)</script>", "only https and http"),
    ("vbscript:msgbox", "only https and http"),
    ("//music.example/x", "only https and http"),
    ("/releases/1", "only https and http"),
    ("https://user:secret@music.example/", "user name"),
    ("https://@music.example/", "user name"),
    ("https://music.example@evil.example/", "user name"),
    ("https://", "no host"),
    ("https:/music.example", "no host"),
    ("https://:443/", "no host"),
    ("https://music.example /x", "spaces or control"),
    (" https://music.example/", "spaces or control"),
    ("https://music.example/\tx", "spaces or control"),
    ("https://music.example/\n", "spaces or control"),
    ("https://music.example/" + "a" * MAX_URL_CHARS, f"at most {MAX_URL_CHARS}"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_the_rule_refuses(url: str, reason: str) -> None:
    with pytest.raises(UnacceptableURL, match=reason):
        checked_url(url)
    assert not is_remote_url(url)
    assert not is_remote_url(url, allow_http=False)


def test_the_longest_url_is_accepted() -> None:
    url = "https://music.example/"
    url += "a" * (MAX_URL_CHARS - len(url))
    assert checked_url(url) == url


def test_non_strings_are_refused() -> None:
    for value in (None, 42, b"https://music.example/", ["https://music.example/"]):
        with pytest.raises(UnacceptableURL, match="non-empty string"):
            checked_url(value)


def test_http_only_when_allowed() -> None:
    assert is_remote_url("http://music.example/")
    assert not is_remote_url("http://music.example/", allow_http=False)
    assert is_remote_url("https://music.example/", allow_http=False)


@pytest.mark.parametrize(
    "url",
    ["https://music.example/releases", "https://music.example/?a=b", "https://music.example/#x"],
)
def test_origin_only_refuses_paths_queries_and_fragments(url: str) -> None:
    assert is_remote_url(url)
    with pytest.raises(UnacceptableURL, match="without a path, query or fragment"):
        checked_url(url, origin_only=True)


def test_origin_only_accepts_origins() -> None:
    for url in ("https://music.example", "https://music.example/", "http://127.0.0.1:8080"):
        assert checked_url(url, origin_only=True) == url


# The callers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("javascript:alert(1)", "only https and http"),
        ("https://admin@music.example", "user name"),
        ("https://music example", "spaces or control"),
        ("https://", "no host"),
        ("https://music.example:", "no valid port"),
        ("https://music.example/path", "without a path"),
    ],
)
def test_the_base_url_is_held_to_the_rule(base_url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"instance\.base_url: must be an http.*{reason}"):
        load_settings(None, environ={}, overrides={"instance": {"base_url": base_url}})


def test_the_base_url_is_normalised() -> None:
    settings = load_settings(
        None, environ={}, overrides={"instance": {"base_url": "HTTPS://M.Ex/"}}
    )
    assert settings.instance.base_url == "https://m.ex"


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "https://bank.example@evil.example/",
        "https:evil.example",
        "/relative",
        "https://music.example/" + "a" * MAX_URL_CHARS,
    ],
)
def test_links_in_remote_html_that_break_the_rule_are_dropped(href: str) -> None:
    cleaned = sanitize_html(f'<p><a href="{href}">x</a></p>')
    assert "href" not in cleaned, cleaned


def test_links_in_remote_html_that_keep_the_rule_stay() -> None:
    for href in ("https://music.example/a", "http://music.example/a", "mailto:a@music.example"):
        assert f'href="{href}"' in sanitize_html(f'<p><a href="{href}">x</a></p>')


def test_remote_ids_are_held_to_the_rule() -> None:
    actor = {
        "id": "https://user@music.example/actor",
        "type": "Person",
        "inbox": "https://music.example/inbox",
        "preferredUsername": "a",
    }
    with pytest.raises(InvalidObject, match="absolute http"):
        parse_actor(actor)
