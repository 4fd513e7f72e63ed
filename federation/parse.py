"""Pure parsers for incoming ActivityPub JSON: activities, actors and notes.

Each parser takes the decoded JSON (``json.loads`` output), checks it and returns a frozen
dataclass, or raises :class:`InvalidObject` whose message says in plain words what is
wrong (docs/architecture.md#bad-input: a rejected activity gets a clear 4xx and changes
nothing). Nothing here does I/O; dereferencing, signatures and storage happen elsewhere.

Decisions worth knowing:

* **Origin rules.** An activity's ``id`` must be on the same origin (scheme, host, port) as
  its ``actor``. For activities that act on the actor's *own* object (``Create``,
  ``Update``, ``Delete``, ``Undo``, ``Move``: :data:`OWN_OBJECT_TYPES`) the object's id,
  embedded or given as a string, must be on the actor's origin too; an embedded ``Undo``
  object that names an actor must name this one, and an ``Update`` of an actor may only
  update the actor itself. Activities that point at someone else's object
  (:data:`REFERENCING_TYPES`: ``Announce``, ``Accept``/``Reject`` of our ``Follow``,
  ``Follow``, ``Like``, ``Flag``, ``Listen``, ``Block``, ``Add``, …) are exempt: their
  embedded object is only a hint and handlers must dereference it before trusting it. Any
  other (unknown) type with an embedded object that has an id gets the same-origin rule.
* **Object ids.** Types in :data:`TYPES_NEEDING_OBJECT` must have an object with an id
  (``Accept``/``Reject`` may embed a ``Follow`` without one). When
  ``object`` is a list (``Flag`` reports an account and some posts), ``object_id`` is the
  first entry's id and the rest is in ``raw``.
* **URLs.** Ids and other required URLs must be absolute ``http``/``https`` URLs of at most
  :data:`MAX_URL_CHARS` characters, with a host and no user-info part. Optional links
  (``outbox``, ``followers``, ``url``, ``icon``, attachment URLs, …) that are not such URLs
  are ignored (``None`` or left out) rather than rejecting the whole document.
* **Lengths.** Plain-text fields (names, usernames, content warnings) are cut to
  :data:`MAX_NAME_CHARS` characters; HTML (``content``, ``summary`` of actors) longer than
  :data:`MAX_HTML_CHARS` is *rejected*, because a silently shortened post would misquote
  its author. At most :data:`MAX_ATTACHMENTS` attachments and :data:`MAX_ADDRESSES`
  addresses in ``to``/``cc`` are kept.
* **Public.** ``as:Public`` and ``Public`` in ``to``/``cc`` become :data:`PUBLIC`.
* **Types.** ``type`` may be a string or a list (the first known type wins, else the first
  string); ``as:Note`` and the full ActivityStreams IRI are shortened to ``Note``.
* **Dates.** ``published`` is read as ISO 8601; a date without a zone is taken as UTC; an
  unreadable date gives ``None``.
* **Durations.** ``duration`` is an ISO 8601 duration (``PT3M21S``, AS2) or a number of
  seconds (what Funkwhale sends); anything else gives ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from federation import urls
from federation.sanitize import MAX_HTML_CHARS, plain_text, sanitize_html

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})
_AS_PREFIXES = ("https://www.w3.org/ns/activitystreams#", "as:")

MAX_URL_CHARS = urls.MAX_URL_CHARS
MAX_NAME_CHARS = 500
MAX_PEM_CHARS = 16_384
MAX_ATTACHMENTS = 32
MAX_ADDRESSES = 1000
MAX_MEDIA_TYPE_CHARS = 255


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


AUDIO_TYPES = frozenset({"Audio"})
NOTE_TYPES = frozenset({"Note", "Article", "Page", "Question"})
ACTOR_TYPES = frozenset({"Person", "Group", "Organization", "Application", "Service"})
ACTIVITY_TYPES = _names(
    "Accept Add Announce Block Create Delete Dislike EmojiReact Flag Follow Invite Join "
    "Leave Like Listen Move Offer Read Reject Remove TentativeAccept TentativeReject Undo "
    "Update View"
)
ATTACHMENT_TYPES = frozenset({"Document", "Image", "Audio", "Video", "Link"})
_KNOWN_TYPES = (
    AUDIO_TYPES | NOTE_TYPES | ACTOR_TYPES | ACTIVITY_TYPES | ATTACHMENT_TYPES | {"Tombstone"}
)

TYPES_NEEDING_OBJECT = _names(
    "Follow Like Announce Undo Accept Reject Create Update Delete Flag Listen Add Remove Block Move"
)
OWN_OBJECT_TYPES = frozenset({"Create", "Update", "Delete", "Undo", "Move"})
# Accept and Reject embed the Follow they answer; some servers send it without an id, and
# handlers then match it by its actor and object.
_ID_OPTIONAL = frozenset({"Accept", "Reject"})
REFERENCING_TYPES = _names(
    "Accept Add Announce Block Dislike EmojiReact Flag Follow Invite Join Leave Like "
    "Listen Offer Read Reject Remove TentativeAccept TentativeReject View"
)

_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600


class InvalidObject(ValueError):
    """The JSON is not an acceptable object; str() says why in plain words."""


@dataclass(frozen=True)
class ParsedKey:
    id: str
    owner: str
    pem: str


@dataclass(frozen=True)
class ParsedActor:
    id: str
    type: str  # Person, Group, Organization, Application, Service
    preferred_username: str | None
    name: str  # plain text; falls back to preferred_username
    summary_html: str  # sanitised
    url: str | None  # profile page (first text/html link if url is a list)
    icon_url: str | None
    inbox: str
    shared_inbox: str | None
    outbox: str | None
    followers: str | None
    key: ParsedKey | None
    manually_approves_followers: bool


@dataclass(frozen=True)
class Attachment:
    url: str
    media_type: str | None
    name: str | None
    kind: str  # "audio" | "image" | "video" | "other" (from mediaType or type)


@dataclass(frozen=True)
class ParsedNote:
    """A Note, Article, Page, Question, or a Funkwhale (or other) Audio."""

    id: str
    type: str
    attributed_to: str
    content_html: str  # sanitised
    summary: str | None  # plain text (content warning)
    name: str | None  # plain text (Audio titles)
    in_reply_to: str | None
    url: str | None  # first text/html link, else first link
    published: datetime | None  # aware UTC
    # for Audio: the audio links from `url` too; an audio or video attachment's `icon` (its
    # poster) follows it as an image
    attachments: tuple[Attachment, ...]
    duration_seconds: int | None  # ISO 8601 duration "PT3M21S" (or seconds) for Audio
    release: str | None  # playfair's own property "release" (the release object id)
    to: tuple[str, ...]
    cc: tuple[str, ...]


@dataclass(frozen=True)
class ParsedActivity:
    id: str
    type: str
    actor: str
    object_id: str | None  # object's id whether the object is a string or embedded
    object: dict[str, Any] | None = field(hash=False)  # the embedded object, when embedded
    target: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    raw: dict[str, Any] = field(hash=False)


# --- small helpers ------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """AS2 "one or many": ``None`` → ``[]``, a list → itself, anything else → ``[value]``."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _first(value: Any) -> Any:
    items = as_list(value)
    return items[0] if items else None


def id_of(value: Any) -> str | None:
    """A string itself, or a dict's ``id`` when that is a string; otherwise ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        found = value.get("id")
        if isinstance(found, str):
            return found
    return None


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs share scheme, host and port (default ports filled in)."""
    origin_a = urls.origin(a)
    return origin_a is not None and origin_a == urls.origin(b)


def album_link(document: dict[str, Any]) -> str | None:
    """Where a playfair Note (of a release or a track, what a shared page URL answers)
    says its album object is: its ``release`` property, on the Note's own server. None
    for anything else, so callers read the document itself."""
    if document.get("type") == "OrderedCollection":
        return None
    note_id, album = document.get("id"), document.get("release")
    if isinstance(note_id, str) and isinstance(album, str) and same_origin(album, note_id):
        return album
    return None


def track_name(item: dict[str, Any]) -> str | None:
    """The name a playfair track goes by in Listens and statements: its page (the
    ``text/html`` link of the Audio's ``url``, on the Audio's server), else its id (what
    playfair wrote before the Audio object had an id of its own)."""
    uri = item.get("id")
    if not isinstance(uri, str):
        return None
    for link in as_list(item.get("url")):
        if (
            isinstance(link, dict)
            and link.get("mediaType") == "text/html"
            and isinstance(link.get("href"), str)
            and same_origin(link["href"], uri)
        ):
            return str(link["href"])
    return uri


def _is_url(value: Any) -> TypeGuard[str]:
    return urls.is_remote_url(value)


def _require_url(value: Any, what: str) -> str:
    if value is None:
        raise InvalidObject(f"{what} is missing")
    if not isinstance(value, str):
        raise InvalidObject(f"{what} must be a URL string")
    if len(value) > MAX_URL_CHARS:
        raise InvalidObject(f"{what} is longer than {MAX_URL_CHARS} characters")
    if not _is_url(value):
        raise InvalidObject(f"{what} must be an absolute http(s) URL, not {value[:200]!r}")
    return value


def _optional_url(value: Any) -> str | None:
    found = id_of(value)
    return found if _is_url(found) else None


def _require_object(document: Any, what: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InvalidObject(f"the {what} must be a JSON object, not {type(document).__name__}")
    return document


def _short_type(value: str) -> str:
    for prefix in _AS_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _type_of(document: dict[str, Any], what: str) -> str:
    types = [_short_type(t) for t in as_list(document.get("type")) if isinstance(t, str) and t]
    if not types:
        raise InvalidObject(f"the {what} has no type")
    for candidate in types:
        if candidate in _KNOWN_TYPES:
            return candidate
    return types[0][:MAX_NAME_CHARS]


def _text(value: Any) -> str | None:
    """A plain-text field (names, content warnings): tags stripped, cut to length."""
    if isinstance(value, dict):  # a language map such as nameMap
        value = next((v for v in value.values() if isinstance(v, str)), None)
    if not isinstance(value, str):
        return None
    text = plain_text(value)[:MAX_NAME_CHARS].strip()
    return text or None


def _html(document: dict[str, Any], key: str, what: str) -> str:
    value = document.get(key)
    if value is None:  # Mastodon sends contentMap next to content; others may send only it
        language_map = document.get(f"{key}Map")
        if isinstance(language_map, dict):
            value = next((v for v in language_map.values() if isinstance(v, str)), None)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidObject(f"the {what} must be a string of HTML")
    if len(value) > MAX_HTML_CHARS:
        raise InvalidObject(f"the {what} is longer than {MAX_HTML_CHARS} characters")
    return sanitize_html(value)


def _addresses(value: Any) -> tuple[str, ...]:
    found: list[str] = []
    for item in as_list(value)[:MAX_ADDRESSES]:
        address = id_of(item)
        if address is None or len(address) > MAX_URL_CHARS:
            continue
        address = PUBLIC if address in _PUBLIC_ALIASES else address
        if address not in found:
            found.append(address)
    return tuple(found)


def _media_type(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_MEDIA_TYPE_CHARS:
        return None
    value = value.strip()
    return value if _MEDIA_TYPE.match(value) else None


def _links(value: Any) -> list[tuple[str, str | None, str | None]]:
    """(href, mediaType, name) of each usable link in a ``url``-like value: strings, Link
    objects (``href``) and objects with a ``url`` of their own (Image)."""
    links: list[tuple[str, str | None, str | None]] = []
    for item in as_list(value):
        if isinstance(item, str):
            if _is_url(item):
                links.append((item, None, None))
        elif isinstance(item, dict):
            href = item.get("href")
            if href is None:
                nested = item.get("url")
                href = nested if isinstance(nested, str) else id_of(nested)
                if href is None and isinstance(nested, list | dict):
                    inner = _links(nested)
                    href = inner[0][0] if inner else None
            if _is_url(href):
                links.append((href, _media_type(item.get("mediaType")), _text(item.get("name"))))
    return links


def _page_link(value: Any) -> str | None:
    """The first text/html link (a link without mediaType counts), else the first link."""
    links = _links(value)
    for href, media_type, _ in links:
        if media_type is None or media_type.split(";")[0].strip().lower() == "text/html":
            return href
    return links[0][0] if links else None


def _published(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # "0001-01-01T00:00+01:00" has no UTC equivalent
        return None


def duration_seconds(value: Any) -> Decimal | None:
    """A duration as servers write it, exactly: seconds (a number or a numeric string) or
    ISO 8601 (``PT3M21S``, ``P1DT2S``). None when it is unknown, negative or absurd (over
    ten years: a stranger's number could otherwise overflow a float or a BIGINT column).
    The one parser for every duration we read (notes, partners' tracks)."""
    seconds: Decimal
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = Decimal(str(value))
        except InvalidOperation:
            return None
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        match = _ISO_DURATION.match(text)
        if match and text not in {"P", "PT"} and not text.endswith("T"):
            parts = {k: Decimal(v) for k, v in match.groupdict().items() if v is not None}
            seconds = (
                parts.get("days", Decimal(0)) * 86400
                + parts.get("hours", Decimal(0)) * 3600
                + parts.get("minutes", Decimal(0)) * 60
                + parts.get("seconds", Decimal(0))
            )
        else:
            try:
                seconds = Decimal(text)
            except InvalidOperation:
                return None
    else:
        return None
    if not seconds.is_finite() or seconds < 0 or seconds > _MAX_DURATION_SECONDS:
        return None
    return seconds


def duration_ms(value: Any) -> int | None:
    """:func:`duration_seconds` in whole milliseconds."""
    seconds = duration_seconds(value)
    return None if seconds is None else int(seconds * 1000)


def _duration(value: Any) -> int | None:
    seconds = duration_seconds(value)
    return None if seconds is None else int(seconds.to_integral_value())


def _kind(media_type: str | None, as_type: str | None) -> str:
    major = media_type.split("/", 1)[0].lower() if media_type else ""
    if major in {"audio", "image", "video"}:
        return major
    by_type = {"Audio": "audio", "Image": "image", "Video": "video"}
    return by_type.get(as_type or "", "other")


# --- activities ---------------------------------------------------------------------------


def parse_activity(document: Any) -> ParsedActivity:
    """An incoming activity, checked for shape and origin (see the module docstring)."""
    activity = _require_object(document, "activity")
    activity_id = _require_url(activity.get("id"), "the activity id")
    activity_type = _type_of(activity, "activity")

    actor_value = activity.get("actor")
    actors = as_list(actor_value)
    if not actors:
        raise InvalidObject("the activity has no actor")
    if len(actors) != 1:
        raise InvalidObject("the activity must have exactly one actor")
    actor = _require_url(id_of(actors[0]), "the activity's actor")
    if not same_origin(activity_id, actor):
        raise InvalidObject("the activity id is not on the same host as its actor")

    raw_object = activity.get("object")
    first_object = _first(raw_object)
    embedded = raw_object if isinstance(raw_object, dict) else None
    object_id = id_of(first_object)
    if object_id is not None:
        _require_url(object_id, "the activity's object id")
    if activity_type in TYPES_NEEDING_OBJECT and object_id is None:
        if first_object is None:
            raise InvalidObject(f"a {activity_type} activity needs an object")
        if activity_type not in _ID_OPTIONAL or embedded is None:
            raise InvalidObject(f"the object of a {activity_type} activity has no id")

    if object_id is not None:
        needs_same_origin = activity_type in OWN_OBJECT_TYPES or (
            embedded is not None and activity_type not in REFERENCING_TYPES
        )
        if needs_same_origin and not same_origin(object_id, actor):
            raise InvalidObject(
                f"the object of this {activity_type} is on a different host than its actor"
            )
    if embedded is not None:
        _check_embedded(activity_type, actor, object_id, embedded)

    return ParsedActivity(
        id=activity_id,
        type=activity_type,
        actor=actor,
        object_id=object_id,
        object=embedded,
        target=_optional_url(_first(activity.get("target"))),
        to=_addresses(activity.get("to")),
        cc=_addresses(activity.get("cc")),
        raw=activity,
    )


def _check_embedded(
    activity_type: str, actor: str, object_id: str | None, embedded: dict[str, Any]
) -> None:
    embedded_type = _first(embedded.get("type"))
    embedded_type = _short_type(embedded_type) if isinstance(embedded_type, str) else ""
    undone_by = id_of(_first(embedded.get("actor")))
    if activity_type == "Undo" and "actor" in embedded and undone_by != actor:
        raise InvalidObject("an Undo can only undo the actor's own activity")
    if activity_type == "Update" and embedded_type in ACTOR_TYPES and object_id != actor:
        raise InvalidObject("an actor can only update itself")


# --- actors -------------------------------------------------------------------------------


def parse_actor(document: Any) -> ParsedActor:
    """A remote actor (Person, Group, Organization, Application, Service)."""
    actor = _require_object(document, "actor")
    actor_id = _require_url(actor.get("id"), "the actor id")
    actor_type = _type_of(actor, "actor")
    if actor_type not in ACTOR_TYPES:
        raise InvalidObject(f"a {actor_type} is not an actor")
    inbox = _require_url(id_of(actor.get("inbox")), "the actor's inbox")

    endpoints = actor.get("endpoints")
    shared_inbox = (
        _optional_url(endpoints.get("sharedInbox")) if isinstance(endpoints, dict) else None
    )
    if shared_inbox is None:  # some older software put it at the top level
        shared_inbox = _optional_url(actor.get("sharedInbox"))

    username_value = actor.get("preferredUsername")
    preferred_username = None
    if isinstance(username_value, str) and username_value.strip():
        preferred_username = username_value.strip()[:MAX_NAME_CHARS]

    icon_links = _links(actor.get("icon"))
    return ParsedActor(
        id=actor_id,
        type=actor_type,
        preferred_username=preferred_username,
        name=_text(actor.get("name")) or preferred_username or "",
        summary_html=_html(actor, "summary", "actor's summary"),
        url=_page_link(actor.get("url")),
        icon_url=icon_links[0][0] if icon_links else None,
        inbox=inbox,
        shared_inbox=shared_inbox,
        outbox=_optional_url(actor.get("outbox")),
        followers=_optional_url(actor.get("followers")),
        key=_parse_key(actor_id, actor.get("publicKey")),
        manually_approves_followers=actor.get("manuallyApprovesFollowers") is True,
    )


def _parse_key(actor_id: str, value: Any) -> ParsedKey | None:
    keys = [k for k in as_list(value) if isinstance(k, dict)]
    if not keys:
        if value is not None and as_list(value):
            raise InvalidObject("the actor's publicKey must be an object")
        return None
    key = next((k for k in keys if id_of(k.get("owner")) == actor_id), keys[0])
    key_id = _require_url(key.get("id"), "the key id")
    if id_of(key.get("owner")) != actor_id:
        raise InvalidObject("the key's owner is not the actor that publishes it")
    if not same_origin(key_id, actor_id):
        raise InvalidObject("the key id is not on the same host as its actor")
    pem = key.get("publicKeyPem")
    if not isinstance(pem, str) or "-----BEGIN" not in pem:
        raise InvalidObject("the key has no publicKeyPem")
    if len(pem) > MAX_PEM_CHARS:
        raise InvalidObject(f"the publicKeyPem is longer than {MAX_PEM_CHARS} characters")
    return ParsedKey(id=key_id, owner=actor_id, pem=pem)


# --- notes and audio ----------------------------------------------------------------------


def parse_note(document: Any) -> ParsedNote:
    """A Note, Article, Page or Question, or an Audio (Funkwhale tracks, playfair tracks)."""
    note = _require_object(document, "object")
    note_id = _require_url(note.get("id"), "the object id")
    note_type = _type_of(note, "object")
    if note_type not in NOTE_TYPES | AUDIO_TYPES:
        raise InvalidObject(f"a {note_type} is not a post or an audio track")

    authors = as_list(note.get("attributedTo"))
    if not authors:
        raise InvalidObject("the object has no attributedTo")
    attributed_to = _require_url(id_of(authors[0]), "the object's attributedTo")
    if not same_origin(attributed_to, note_id):
        raise InvalidObject("the object's attributedTo is on a different host than the object")

    attachments = _attachments(note.get("attachment"))
    if note_type in AUDIO_TYPES:
        title = _text(note.get("name"))
        known = {a.url for a in attachments}
        for href, media_type, link_name in _links(note.get("url")):
            if _kind(media_type, None) == "audio" and href not in known:
                attachments.append(Attachment(href, media_type, link_name or title, "audio"))
                known.add(href)

    in_reply_to = as_list(note.get("inReplyTo"))
    return ParsedNote(
        id=note_id,
        type=note_type,
        attributed_to=attributed_to,
        content_html=_html(note, "content", "content"),
        summary=_text(note.get("summary")),
        name=_text(note.get("name")),
        in_reply_to=_optional_url(in_reply_to[0]) if in_reply_to else None,
        url=_page_link(note.get("url")),
        published=_published(note.get("published")),
        attachments=tuple(attachments[:MAX_ATTACHMENTS]),
        duration_seconds=_duration(note.get("duration")),
        release=_optional_url(note.get("release")),
        to=_addresses(note.get("to")),
        cc=_addresses(note.get("cc")),
    )


def _attachments(value: Any) -> list[Attachment]:
    found: list[Attachment] = []
    for item in as_list(value)[: MAX_ATTACHMENTS * 4]:
        if isinstance(item, str):
            if _is_url(item):
                found.append(Attachment(item, None, None, "other"))
            continue
        if not isinstance(item, dict):
            continue
        as_type = next(
            (_short_type(t) for t in as_list(item.get("type")) if isinstance(t, str)), None
        )
        links = _links(item.get("url")) if "url" in item else _links(item)
        if not links:
            continue
        href, link_media_type, _ = links[0]
        media_type = _media_type(item.get("mediaType")) or link_media_type
        found.append(
            Attachment(href, media_type, _text(item.get("name")), _kind(media_type, as_type))
        )
        if _kind(media_type, as_type) in ("audio", "video") and (poster := _poster(item)):
            found.append(poster)
    return found[:MAX_ATTACHMENTS]


def _poster(item: dict[str, Any]) -> Attachment | None:
    """An audio or video attachment's ``icon`` (its poster, as Mastodon reads it: the
    cover of a release post) as an image of its own."""
    links = _links(item.get("icon"))
    if not links:
        return None
    href, media_type, _ = links[0]
    return Attachment(href, media_type, None, "image")
