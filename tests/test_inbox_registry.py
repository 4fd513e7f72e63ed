"""The inbox's route table (server/services/inbox_routes.py, keyed as registry.py says):
every activity our own code sends, and every recorded one from other software, has
exactly one handler, in the area it concerns; a key cannot be taken twice; what no route
takes is kept and ignored, as before the registry; and the dispatcher imports no area."""

from __future__ import annotations

import ast
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grimp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from federation.keys import generate, public_pem
from federation.objects import (
    ActorInfo,
    ReleaseInfo,
    TrackInfo,
    activity,
    announce_release,
    create_release,
    delete_release,
    move_actor,
    update_actor,
    update_release,
)
from federation.parse import ACTIVITY_TYPES, id_of, parse_activity, parse_actor
from federation.proofs import sign_object
from federation.royalties import (
    DisputedLine,
    ListenRecord,
    Period,
    answer_document,
    build_statement,
    listen_activity,
    pseudonymous_listener,
    settle,
    settlement_document,
    statement_document,
)
from models.federation import InboxItem, InboxState, Interaction, RemotePost
from models.keys import KeyAlgorithm
from models.remote_plays import RoyaltyStatementRecord, StatementDirection, StatementState
from server.runtime.resources import Resources
from server.services.activitypub import handlers, partners
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import record_activity
from server.services.activitypub.inbox import store
from server.services.activitypub.registry import (
    ANY,
    HUB_COPY,
    PARTNERSHIP,
    DuplicateRoute,
    InboxRoute,
    Incoming,
    Registry,
    route_of,
    sent_type,
)
from server.services.activitypub.remote import store_actor
from server.services.inbox_routes import handle_item, inbox_registry

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "fediverse"
A = "https://a.example"  # another playfair: the sender
B = "https://b.example"  # us, unless a case says otherwise
HUB = "https://hub.example"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
PEM = public_pem(generate(KeyAlgorithm.RSA_2048))


def signed(document: dict[str, Any], signer: str) -> dict[str, Any]:
    return sign_object(document, KEY, f"{signer}#ed25519-key", created=T0)


def handler_of(
    document: dict[str, Any], *, us: str = B, sent: str | None = None, hub_role: bool = False
) -> str | None:
    """The handler our inbox at ``us`` runs for the document, as module.function."""
    received = parse_activity(json.loads(json.dumps(document)))
    route = route_of(received, instance_actor=f"{us}/actor", hub_role=hub_role, sent=sent)
    handler = inbox_registry().handler_for(route)
    return f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}" if handler else None


# --- what our own code sends, built as it builds it ----------------------------------------


def _follow(actor: str, followed: str, uri: str) -> dict[str, Any]:
    return activity(uri, "Follow", actor, followed, to=[followed])


def _undo(inner: dict[str, Any]) -> dict[str, Any]:
    inner = {k: v for k, v in inner.items() if k != "@context"}  # as follows.unfollow
    to = [str(id_of(inner["object"]))]
    return activity(f"{inner['id']}/undo", "Undo", inner["actor"], inner, to=to)


def _answer(kind: str, follow: dict[str, Any]) -> dict[str, Any]:
    """An Accept or Reject of a Follow, with the Follow embedded (handlers.answer_follow,
    partners._answer)."""
    inner = {k: follow[k] for k in ("id", "type", "actor", "object")}
    return activity(f"{follow['object']}/answers/1/{kind.lower()}", kind, follow["object"], inner)


def _release() -> ReleaseInfo:
    track = TrackInfo(1, "Tide", 1, 61_000, "CC-BY-4.0", "pay-per-play", "aurora", "audio/ogg")
    return ReleaseInfo(
        1, "Low Tide", "aurora", "Aurora", "nightlabel", "", "CC-BY-4.0", T0, None, None, (),
        (track,),
    )  # fmt: skip


def _listen(number: int) -> ListenRecord:
    return ListenRecord(
        f"{A}/listens/{number}", f"{A}/actor", f"{B}/tracks/1",
        pseudonymous_listener(b"0" * 32, 1, "b.example"), 1, 2, False,
        T0 + timedelta(minutes=number),
    )  # fmt: skip


def _statement() -> Any:
    period = Period(T0, T0 + timedelta(days=1))
    return build_statement(
        f"{A}/statements/1", f"{A}/actor", f"{B}/actor", period, [_listen(1)], None, 7000
    )


LISTENER_FOLLOW = _follow(f"{B}/users/lena", f"{A}/artists/aurora", f"{B}/users/lena/follows/1")
OUR_PARTNERSHIP = _follow(f"{B}/actor", f"{A}/actor", f"{B}/actor/follows/1")
THEIR_FOLLOW = _follow(f"{A}/users/lena", f"{B}/artists/aurora", f"{A}/users/lena/follows/1")
THEIR_PARTNERSHIP = _follow(f"{A}/actor", f"{B}/actor", f"{A}/actor/follows/1")
STATEMENT = _statement()
STATEMENT_CREATE = activity(  # as statements._state_one
    f"{STATEMENT.id}/create",
    "Create",
    f"{A}/actor",
    signed(statement_document(STATEMENT), f"{A}/actor"),
    to=[f"{B}/actor"],
    cc=[f"{HUB}/actor"],
)
ACCEPT_STATEMENT = signed(
    answer_document("Accept", STATEMENT.id, f"{B}/actor", [], id=f"{B}/actor/answers/1"),
    f"{B}/actor",
)
REJECT_STATEMENT = signed(
    answer_document(
        "Reject", STATEMENT.id, f"{B}/actor", [DisputedLine("share")], id=f"{B}/actor/a/2"
    ),
    f"{B}/actor",
)
SETTLEMENT = settlement_document(
    settle(Period(T0, T0 + timedelta(days=1)), [STATEMENT]),
    f"{HUB}/actor",
    f"{HUB}/settlements/1",
)
REPLY = activity(
    f"{A}/users/lena/notes/1/create",
    "Create",
    f"{A}/users/lena",
    {
        "id": f"{A}/users/lena/notes/1",
        "type": "Note",
        "attributedTo": f"{A}/users/lena",
        "inReplyTo": f"{B}/releases/1",
        "content": "<p>lovely</p>",
    },
)

# (what is sent, the document, where it arrives: keyword arguments of handler_of, handler)
SENT: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("a listener follows an artist", THEIR_FOLLOW, {}, "handlers.on_follow"),
    ("an instance asks for partnership", THEIR_PARTNERSHIP, {}, "partners.on_follow"),
    ("a listener unfollows", _undo(THEIR_FOLLOW), {}, "handlers.on_undo"),
    ("a partnership ends", _undo(THEIR_PARTNERSHIP), {}, "partners.on_undo"),
    ("an artist accepts, by id", _answer("Accept", LISTENER_FOLLOW), {"sent": "Follow"},
     "handlers.on_follow_answer"),
    ("an artist rejects, by id", _answer("Reject", LISTENER_FOLLOW), {"sent": "Follow"},
     "handlers.on_follow_answer"),
    ("an artist accepts a Follow we kept no record of", _answer("Accept", LISTENER_FOLLOW), {},
     "handlers.on_follow_answer"),
    ("an instance accepts us", _answer("Accept", OUR_PARTNERSHIP), {"sent": PARTNERSHIP},
     "partners.on_answer"),
    ("an instance refuses us", _answer("Reject", OUR_PARTNERSHIP), {"sent": PARTNERSHIP},
     "partners.on_answer"),
    ("a listener likes a post",
     activity(f"{A}/users/lena/likes/1", "Like", f"{A}/users/lena", f"{B}/releases/1"), {},
     "handlers.on_like"),
    ("a listener replies", REPLY, {}, "handlers.on_create"),
    ("an artist publishes", create_release(A, _release()), {}, "handlers.on_create"),
    ("an artist edits", update_release(A, _release(), T0 + timedelta(hours=1)), {},
     "handlers.on_update"),
    ("an artist withdraws", delete_release(A, 1, "aurora", T0), {}, "handlers.on_delete"),
    ("a label announces", announce_release(A, "nightlabel", 1, "aurora", T0), {},
     "handlers.on_announce"),
    ("a Listen", listen_activity(_listen(1), to=[f"{B}/actor"]), {}, "listens.on_listen"),
    ("a statement to us", STATEMENT_CREATE, {}, "statements.on_statement"),
    ("a statement to us, a hub as well", STATEMENT_CREATE, {"hub_role": True},
     "statements.on_statement"),
    ("a statement copied to the hub", STATEMENT_CREATE, {"us": HUB, "hub_role": True},
     "hub.on_statement_copy"),
    ("a payee accepts our statement", ACCEPT_STATEMENT, {"us": A, "sent": "RoyaltyStatement"},
     "statements.on_answer"),
    ("a payee rejects our statement", REJECT_STATEMENT, {"us": A, "sent": "RoyaltyStatement"},
     "statements.on_answer"),
    ("an answer copied to the hub", ACCEPT_STATEMENT, {"us": HUB, "hub_role": True},
     "hub.on_answer_copy"),
    ("a rejection copied to the hub", REJECT_STATEMENT, {"us": HUB, "hub_role": True},
     "hub.on_answer_copy"),
    ("an artist moves", move_actor(A, "artists", "aurora", f"{B}/artists/nova", T0), {},
     "moves.on_move"),
    ("an artist's profile changes",
     update_actor(A, ActorInfo("artists", "aurora", "Aurora", "", "Group", "PEM"), T0), {},
     "handlers.on_update"),
    ("the hub settles",
     activity(f"{HUB}/settlements/1/create", "Create", f"{HUB}/actor", SETTLEMENT), {},
     "hub.on_settlement"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "document", "where", "expected"), SENT, ids=[c[0] for c in SENT])
def test_what_we_send_has_one_handler_in_its_area(
    case: str, document: dict[str, Any], where: dict[str, Any], expected: str
) -> None:
    assert handler_of(document, **where) == expected


def _sending_sources() -> list[Path]:
    return [
        *sorted((ROOT / "server" / "services").rglob("*.py")),
        ROOT / "federation" / "objects.py",
        ROOT / "federation" / "royalties.py",
    ]


def _types_sent_in(source: str) -> set[str]:
    """Activity types our code builds: ``activity(id, "Type", …)`` calls, and dict
    displays whose ``"type"`` is an activity type."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and len(node.args) > 1:
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            kind = node.args[1]
            if (
                name == "activity"
                and isinstance(kind, ast.Constant)
                and isinstance(kind.value, str)
            ):
                found.add(kind.value)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "type"
                    and isinstance(value, ast.Constant)
                    and value.value in ACTIVITY_TYPES
                ):
                    found.add(value.value)
    return found


def test_every_activity_type_our_code_sends_is_in_the_table_above() -> None:
    """A new kind of send fails here until it is in SENT (and so has a handler)."""
    sent = set().union(*(_types_sent_in(path.read_text()) for path in _sending_sources()))
    assert {"Follow", "Undo", "Like", "Create", "Update", "Delete", "Announce", "Listen"} <= sent
    assert sent <= {document["type"] for _case, document, _where, _handler in SENT}


FROM_OTHERS = {
    "mastodon/follow.json": "handlers.on_follow",
    "mastodon/undo_follow.json": "handlers.on_undo",
    "mastodon/like.json": "handlers.on_like",
    "mastodon/announce.json": "handlers.on_announce",
    "mastodon/create_note_reply.json": "handlers.on_create",
    "mastodon/update_actor.json": "handlers.on_update",
    "mastodon/delete_actor.json": "handlers.on_delete",
    "mastodon/flag.json": "handlers.on_flag",
    "funkwhale/create_audio.json": "handlers.on_create",
}


def test_every_recorded_payload_of_other_software_has_its_handler() -> None:
    recorded = {
        str(path.relative_to(FIXTURES))
        for path in FIXTURES.rglob("*.json")
        if json.loads(path.read_text()).get("type") in ACTIVITY_TYPES
    }
    assert recorded == set(FROM_OTHERS)
    for name, expected in FROM_OTHERS.items():
        document = json.loads((FIXTURES / name).read_text())
        assert handler_of(document, us="https://music.example") == expected, name


def test_each_route_of_the_assembled_table_has_one_handler() -> None:
    routes = inbox_registry().routes
    assert len(routes) == len(set(routes))  # keys are unique by construction; and:
    claimed = {route.activity_type for route in routes}
    assert {"Follow", "Accept", "Reject", "Undo", "Create", "Listen", "Flag"} <= claimed
    for route, handler in routes.items():
        assert inbox_registry().handler_for(route) is handler, route


async def _noop(incoming: Incoming) -> str:
    return "nothing"


def test_a_key_cannot_be_taken_twice() -> None:
    registry = Registry()
    partners.register(registry)
    with pytest.raises(DuplicateRoute, match=r"Follow of Partnership is handled by .*partners"):
        registry.register("Follow", PARTNERSHIP, _noop)
    handlers.register(registry)  # the social keys are free: taken now
    with pytest.raises(DuplicateRoute, match=r"Follow of anything is handled by .*on_follow"):
        handlers.register(registry)
    with pytest.raises(ValueError, match="needs an activity type and an object type"):
        registry.register("Follow", "", _noop)


def test_the_exact_key_comes_before_the_catch_all() -> None:
    registry = Registry()
    registry.register("Undo", ANY, handlers.on_undo)
    registry.register("Undo", PARTNERSHIP, partners.on_undo)
    assert registry.handler_for(InboxRoute("Undo", PARTNERSHIP)) is partners.on_undo
    assert registry.handler_for(InboxRoute("Undo", "Like")) is handlers.on_undo
    assert registry.handler_for(InboxRoute("Undo", "")) is handlers.on_undo
    assert registry.handler_for(InboxRoute("Accept", "Follow")) is None
    assert registry.handles("Undo") and not registry.handles("Accept")


def test_what_no_route_takes() -> None:
    follow_by_id = {**_answer("Accept", LISTENER_FOLLOW), "object": LISTENER_FOLLOW["id"]}
    unsigned = {k: v for k, v in ACCEPT_STATEMENT.items() if k != "proof"}
    create_event = {**REPLY, "object": {**REPLY["object"], "type": "Event"}}
    assert handler_of(follow_by_id) is None  # an answer to nothing we sent, by id only
    assert handler_of(unsigned, us=HUB, hub_role=True) is None  # hubs log signed answers
    assert handler_of(ACCEPT_STATEMENT, us=HUB) is None  # only a hub takes copies
    assert handler_of(create_event) is None
    assert handler_of({**create_event, "object": f"{A}/events/1"}) is None


def test_a_sender_cannot_name_our_own_object_types() -> None:
    """Partnership, HubCopy and ANY are derived here, never read from a document."""
    copy_named = {**STATEMENT_CREATE, "object": {**STATEMENT_CREATE["object"], "type": HUB_COPY}}
    assert handler_of(copy_named, us=HUB, hub_role=True) is None
    assert handler_of(copy_named) is None
    undo = _undo(THEIR_FOLLOW)
    named = {**undo, "object": {**undo["object"], "type": PARTNERSHIP}}
    assert handler_of(named) == "handlers.on_undo"  # of something given by id only
    answer = _answer("Accept", OUR_PARTNERSHIP)
    named = {**answer, "object": {**answer["object"], "type": PARTNERSHIP}}
    assert handler_of(named) is None  # we sent nothing under that id
    for ours in (ANY, PARTNERSHIP, HUB_COPY):
        assert handler_of({**REPLY, "object": {**REPLY["object"], "type": ours}}) is None


# --- with a database ------------------------------------------------------------------------


async def test_sent_type_is_what_we_stored_when_we_sent_it(resources: Resources) -> None:
    fed = federation_of(resources)
    ours = fed.base_url
    listener_follow = _follow(f"{ours}/users/lena", f"{A}/artists/aurora", f"{ours}/u/f/1")
    partnership = _follow(fed.instance_actor, f"{A}/actor", f"{ours}/actor/follows/1")
    async with resources.sessionmaker() as session:
        await record_activity(session, listener_follow, "lena")
        await record_activity(session, partnership, None)
        like = activity(f"{ours}/u/likes/1", "Like", f"{ours}/users/lena", f"{A}/notes/1")
        await record_activity(session, like, "lena")
        payee = await store_actor(session, parse_actor(_actor(f"{A}/actor")))
        for uri, direction in (
            (f"{ours}/statements/1", StatementDirection.OUTGOING),
            (f"{A}/statements/9", StatementDirection.INCOMING),
        ):
            session.add(
                RoyaltyStatementRecord(
                    uri=uri, direction=direction, counterpart_id=payee.id, period_start=T0,
                    period_end=T0 + timedelta(days=1), total_charged=2, total_owed=1,
                    document={}, state=StatementState.SENT,
                )
            )  # fmt: skip
        await session.commit()
    async with resources.read_sessionmaker() as session:
        assert await sent_type(session, listener_follow["id"]) == "Follow"
        assert await sent_type(session, partnership["id"]) == PARTNERSHIP
        assert await sent_type(session, like["id"]) == "Like"
        assert await sent_type(session, f"{ours}/statements/1") == "RoyaltyStatement"
        assert await sent_type(session, f"{A}/statements/9") is None  # theirs, not ours
        assert await sent_type(session, f"{ours}/never/sent") is None


def _actor(uri: str) -> dict[str, Any]:
    return {
        "id": uri,
        "type": "Application",
        "preferredUsername": "a.example",
        "inbox": f"{uri}/inbox",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": PEM},
    }


async def test_what_no_route_takes_is_kept_and_ignored_as_before(resources: Resources) -> None:
    """As before the registry: an activity no handler takes is stored, marked ignored
    with the reason, and changes nothing else; an unknown type says "not handled"."""
    fed = federation_of(resources)
    unknown = {"id": f"{A}/odd/1", "type": "Arrive", "actor": f"{A}/users/lena", "object": A}
    create_event = copy.deepcopy(REPLY)
    create_event["object"]["type"] = "Event"
    accept_by_id = {**_answer("Accept", LISTENER_FOLLOW), "object": f"{fed.base_url}/x/1"}
    stored = []
    for document in (unknown, create_event, accept_by_id):
        answer = await store(fed, None, parse_activity(document))
        assert answer.item_id is not None
        stored.append(answer.item_id)
    assert [await handle_item(fed, item) for item in stored] == [InboxState.IGNORED] * 3
    async with resources.read_sessionmaker() as session:
        items = (await session.scalars(select(InboxItem).order_by(InboxItem.id))).all()
        written = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Interaction, RemotePost)
        ]
    assert [item.result for item in items] == [
        "activities of type Arrive are not handled",
        "Create of Event is not handled",
        "Accept of an object given by id only is not handled",
    ]
    assert all(item.state is InboxState.IGNORED and item.processed_at for item in items)
    assert written == [0, 0]
    # handled once: a second run changes nothing
    assert await handle_item(fed, stored[0]) is InboxState.IGNORED


# --- the import graph -----------------------------------------------------------------------


def test_the_dispatcher_imports_no_area() -> None:
    """The contract in pyproject.toml, on the graph itself: the dispatcher and the
    registry reach no area, directly or not; only inbox_routes.py knows them all."""
    graph = grimp.build_graph("server", "federation", "models", "subsonic")
    areas = (  # what inbox_routes.py assembles
        "server.services.royalties",
        "server.services.activitypub.partners",
        "server.services.activitypub.handlers",
    )
    for area in areas:  # the check sees the chains there are
        assert graph.chain_exists("server.services.inbox_routes", area, as_packages=True)
    for source in ("server.services.activitypub.inbox", "server.services.activitypub.registry"):
        for area in (*areas, "server.services.activitypub.follows"):
            assert not graph.chain_exists(source, area, as_packages=True), (source, area)
    assert not graph.chain_exists(
        "server.services.royalties.hub", "server.services.royalties.statements"
    )
    assert graph.chain_exists("server.services.royalties.hub", "server.services.royalties.signing")
