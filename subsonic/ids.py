"""Subsonic ids are opaque strings. Ours say what they name, so that one parameter can
name an artist, an album or a song (``getMusicDirectory``, ``getCoverArt``, ``star``):
``ar-12`` an artist, ``al-5`` a release, ``tr-7`` a track, ``pl-3`` a playlist.

A partner's tracks (``models.remote_plays.RemoteTrack``) take their ids from the same
sequence as ours, so ``tr-7`` names one track of either origin. Partners' releases and
artists have no table here: ``pal-7`` is the partner release that track 7 belongs to (any
of its tracks names it; the one shown is its lowest-numbered track), ``par-7`` likewise
the partner artist who made track 7. Music folders are plain numbers, as the XSD has them.
"""

from __future__ import annotations

from enum import StrEnum

from subsonic.errors import Code, SubsonicError
from subsonic.params import INT64_MAX


class Kind(StrEnum):
    ARTIST = "ar"
    ALBUM = "al"
    TRACK = "tr"
    PLAYLIST = "pl"
    PARTNER_ALBUM = "pal"
    PARTNER_ARTIST = "par"


def make(kind: Kind, number: int) -> str:
    return f"{kind.value}-{number}"


def parse(value: str) -> tuple[Kind, int]:
    prefix, _, number = value.partition("-")
    try:
        kind = Kind(prefix)
        parsed = int(number)
    except ValueError:
        raise SubsonicError(Code.NOT_FOUND, f"there is nothing with the id {value!r}") from None
    if not 1 <= parsed <= INT64_MAX or str(parsed) != number:
        raise SubsonicError(Code.NOT_FOUND, f"there is nothing with the id {value!r}")
    return kind, parsed


def parse_as(value: str, *kinds: Kind) -> tuple[Kind, int]:
    """An id of one of ``kinds``; code 70 for any other."""
    kind, number = parse(value)
    if kind not in kinds:
        raise SubsonicError(
            Code.NOT_FOUND, f"there is no {' or '.join(k.name.lower() for k in kinds)} {value!r}"
        )
    return kind, number
