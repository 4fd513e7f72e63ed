"""Storage keys name paths under the media folder and nothing outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.services.media.storage import LocalStorage, plain_key


def test_plain_keys_name_paths_under_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    (tmp_path / "media").mkdir()
    assert storage.path("tracks/1/stream_mp3.mp3") == (tmp_path / "media").resolve() / (
        "tracks/1/stream_mp3.mp3"
    )
    assert plain_key("tracks/1/stream_mp3.mp3") and plain_key("remote/ab/abcdef")
    # a key that is not plain is resolved, and allowed only inside the root
    assert storage.path("tracks/../covers/x.jpg") == (tmp_path / "media").resolve() / "covers/x.jpg"


@pytest.mark.parametrize(
    "key", ["../outside.mp3", "tracks/../../outside.mp3", "/etc/passwd", "tracks/../../../etc"]
)
def test_keys_that_leave_the_root_are_refused(tmp_path: Path, key: str) -> None:
    assert not plain_key(key)
    with pytest.raises(ValueError, match="leaves the media folder"):
        LocalStorage(tmp_path / "media").path(key)


@pytest.mark.parametrize("key", ["a//b", ".hidden", "a/./b", "a b", "a/", "x" * 513])
def test_only_plain_segments_are_plain(key: str) -> None:
    assert not plain_key(key)
