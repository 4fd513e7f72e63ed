"""One stream-to-own over every track here, local or a partner's (issue 13): one parser
for durations, one claim code, one API, one decision for the stream."""

from __future__ import annotations

from typing import Any

import pytest

from federation.parse import duration_ms, parse_note
from server.services.remote_plays import parse_release_tracks


def _partner_track(duration: Any) -> int:
    release = {
        "id": "https://music.example/releases/1", "type": "OrderedCollection", "name": "R",
        "orderedItems": [{"type": "Audio", "id": "https://music.example/tracks/1", "name": "T",
                          "attributedTo": "https://music.example/artists/a",
                          "duration": duration}],
    }  # fmt: skip
    [track] = parse_release_tracks(release)[2]
    return track.duration_ms


def _note(duration: Any) -> int | None:
    return parse_note(
        {
            "id": "https://music.example/notes/1",
            "type": "Audio",
            "attributedTo": "https://music.example/artists/a",
            "duration": duration,
        }
    ).duration_seconds


@pytest.mark.parametrize(
    ("duration", "milliseconds"),
    [
        ("PT3M21S", 201_000),
        ("P1DT2S", 86_402_000),  # a partner's track had 0 here: days were not read
        ("201", 201_000),  # and 0 here: nor numbers written as text
        ("PT2.6S", 2_600),
        (2.3, 2_300),  # not 2299, as float arithmetic made it
        (" PT1H ", 3_600_000),
        ("PT", None),
        ("P1Y", None),
        (-5, None),
        (True, None),
        (1e308, None),
    ],
)
def test_a_duration_reads_the_same_in_a_note_and_on_a_partners_track(
    duration: Any, milliseconds: int | None
) -> None:
    assert duration_ms(duration) == milliseconds
    assert _partner_track(duration) == (milliseconds or 0)
    seconds = _note(duration)
    assert (seconds is None) == (milliseconds is None)
    if milliseconds is not None:
        assert seconds == round(milliseconds / 1000)
