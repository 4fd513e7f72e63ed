"""Royalties: one day of 100,000, then of one million recorded plays (Listens) across 1,000
tracks on 20 payee instances, all played by listeners of one payer instance A
(docs/architecture.md#a-royalty-period).
Figures: the time to build and sign the period's 20 statements (``build_statement``,
``statement_document``, ``sign_object``), to verify them at the hub (``verify_object``
with the key from its Multikey, ``parse_statement``, the listens digest against the id
list), to compute the settlement (``settle``), and to reconcile the largest statement at
its payee (``reconcile``). All in one process, on one core, wall and CPU time.

References in the same run: the raw Ed25519 sign and verify rate, SHA-256 over the same
canonical bytes, the C ``json.dumps`` of the same documents (byte-identical to RFC 8785
here), and one bare Python pass over the million records.

The plays are generated (seeded) before the clock starts: listeners play tracks with
Zipf-like popularity; each (listener, track) pair may already have paid plays from earlier
days, so the day's plays continue the stream-to-own curve (paid play k costs 2^k tokens
for k = 1..9, then the track is owned and plays are free). Free plays are Listens too,
but only paid ones go into statements."""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import random
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from federation.discovery import ed25519_multikey
from federation.proofs import canonical_json, multikey_public, sign_object, verify_object
from federation.royalties import (
    ListenRecord,
    Period,
    Statement,
    build_statement,
    digest_of,
    listen_tokens,
    parse_statement,
    pseudonymous_listener,
    reconcile,
    settle,
    settlement_document,
    statement_document,
)
from models.pricing import PAID_PLAYS_TO_OWN

SIZES = (100_000, 1_000_000)  # Listens in the period; the goal is for the larger
TRACKS = 1_000
PAYEES = 20
ZIPF = 0.8  # track popularity: weight 1 / rank^ZIPF
PAIRS_PER_LISTENER = 12  # mean distinct tracks a listener plays in the day
SHARE_BP = 7000
SEED = 20261123
PAYER = "https://a.example/actor"
HUB = "https://hub.example/actor"
PERIOD = Period(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))
PRIMITIVE_SECONDS = 1.0


@dataclass
class Plays:
    by_payee: dict[str, list[ListenRecord]]
    hosted: dict[str, set[str]]
    pairs: int
    listeners: int

    def records(self) -> Iterator[ListenRecord]:
        for listens in self.by_payee.values():
            yield from listens


@dataclass
class Lap:
    wall: float = 0.0
    cpu: float = 0.0

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s (CPU {self.cpu:6.2f} s)"


@contextmanager
def clock(lap: Lap) -> Iterator[Lap]:
    """Add the wall and process time of the block to ``lap``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield lap
    finally:
        lap.wall += time.perf_counter() - wall
        lap.cpu += time.process_time() - cpu


def generate(rng: random.Random, listens_wanted: int) -> Plays:
    """``listens_wanted`` Listens of the period from payer A to the payees' tracks."""
    payees = [f"https://p{number:02d}.example/actor" for number in range(1, PAYEES + 1)]
    hosts = [payee.split("/")[2] for payee in payees]
    tracks = [f"https://{hosts[n % PAYEES]}/tracks/{n}" for n in range(TRACKS)]
    popularity = list(itertools.accumulate(1 / (rank + 1) ** ZIPF for rank in range(TRACKS)))
    by_payee: dict[str, list[ListenRecord]] = {payee: [] for payee in payees}
    hosted: dict[str, set[str]] = {payee: set() for payee in payees}
    for number, track in enumerate(tracks):
        hosted[payees[number % PAYEES]].add(track)
    secret = b"payer A's listener secret"
    span = int((PERIOD.end - PERIOD.start) / timedelta(microseconds=1))
    made = pairs = listener = 0
    while made < listens_wanted:
        listener += 1
        pseudonyms: dict[int, str] = {}
        wanted = rng.randint(1, 2 * PAIRS_PER_LISTENER - 1)
        chosen = set(rng.choices(range(TRACKS), cum_weights=popularity, k=wanted))
        for track_number in sorted(chosen):
            payee_number = track_number % PAYEES
            pseudonym = pseudonyms.get(payee_number)
            if pseudonym is None:
                pseudonym = pseudonymous_listener(secret, listener, hosts[payee_number])
                pseudonyms[payee_number] = pseudonym
            # paid plays of this pair on earlier days: most pairs are new today
            before = 0 if rng.random() < 0.6 else rng.randint(1, 12)
            count = min(1 + int(rng.expovariate(1 / 3)), listens_wanted - made)
            moments = sorted(rng.randrange(span) for _ in range(count))
            listens = by_payee[payees[payee_number]]
            for offset, moment in enumerate(moments):
                number = before + offset + 1
                play_number = number if number <= PAID_PLAYS_TO_OWN else None
                listens.append(
                    ListenRecord(
                        id=f"https://a.example/listens/{rng.getrandbits(128):032x}",
                        payer=PAYER,
                        track=tracks[track_number],
                        listener=pseudonym,
                        play_number=play_number,
                        tokens=listen_tokens(play_number),
                        owned=number >= PAID_PLAYS_TO_OWN,
                        at=PERIOD.start + timedelta(microseconds=moment),
                    )
                )
            made += count
            pairs += 1
            if made >= listens_wanted:
                break
    return Plays(by_payee, hosted, pairs, listener)


def rate(operation: Callable[[], object]) -> float:
    """Calls per second of ``operation`` on one core, over about PRIMITIVE_SECONDS."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < PRIMITIVE_SECONDS:
        for _ in range(200):
            operation()
        done += 200
    return done / elapsed


def _figures(size: int) -> tuple[list[str], float]:
    """The figures for a period of ``size`` Listens, and the seconds of build, sign and
    verify in all."""
    rng = random.Random(SEED)  # noqa: S311 - generated plays, not secrets
    generation = Lap()
    with clock(generation):
        plays = generate(rng, size)
    records = list(plays.records())
    paid = sum(1 for record in records if record.paid)
    gc.collect()
    payer_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"A").digest())
    hub_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"hub").digest())
    method = f"{PAYER}#ed25519-key"
    multikeys = {  # what the hub holds: the payer's verificationMethod → Multikey
        method: ed25519_multikey(
            payer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
    }

    # 1. the payer: build, turn into documents, sign
    build, document, signing = Lap(), Lap(), Lap()
    signed: list[dict[str, Any]] = []
    statements: list[Statement] = []
    for number, (payee, listens) in enumerate(plays.by_payee.items(), start=1):
        with clock(build):
            statement = build_statement(
                f"https://a.example/statements/2026-11-23/{number}",
                PAYER,
                payee,
                PERIOD,
                listens,
                None,
                SHARE_BP,
            )
        with clock(document):
            unsigned = statement_document(statement)
        with clock(signing):
            signed.append(sign_object(unsigned, payer_key, method, created=PERIOD.end))
        statements.append(statement)

    # 2. the hub: verify the proof, parse, check the digest
    def resolve(verification_method: str) -> Any:
        multikey = multikeys.get(verification_method)
        return None if multikey is None else multikey_public(multikey)

    proofs, parsing, digests = Lap(), Lap(), Lap()
    accepted: list[Statement] = []
    for received in signed:
        with clock(proofs):
            verify_object(received, resolve, expected_controller=received["payer"])
        with clock(parsing):
            statement = parse_statement(received)
        with clock(digests):
            if digest_of(statement.listen_ids) != statement.listens_digest:
                raise AssertionError(f"the digest of {statement.id} does not match")
        accepted.append(statement)
    if accepted != statements:
        raise AssertionError("the hub read other statements than the payer built")

    # 3. the hub: settle, and publish the signed Settlement
    settling, publishing = Lap(), Lap()
    with clock(settling):
        settlement = settle(PERIOD, accepted)
    with clock(publishing):
        sign_object(
            settlement_document(settlement, HUB, "https://hub.example/settlements/2026-11-23"),
            hub_key,
            f"{HUB}#ed25519-key",
            created=PERIOD.end,
        )
    if sum(net.tokens for net in settlement.nets if net.member != PAYER) != sum(
        statement.total_owed for statement in statements
    ):
        raise AssertionError("the settlement does not pay the payees what they are owed")

    # 4. the payee of the largest statement reconciles it with the Listens it holds
    largest = max(statements, key=lambda s: len(s.listen_ids))
    held = {record.id: record for record in plays.by_payee[largest.payee]}
    reconciling = Lap()
    with clock(reconciling):
        outcome = reconcile(largest, held, plays.hosted[largest.payee], SHARE_BP, None)
    if not outcome.accepted:
        raise AssertionError(f"the payee rejects the statement: {outcome.disputed[:3]}")

    # references, at the same data size
    unsigned_documents = [statement_document(statement) for statement in statements]
    jcs, dumps, sha, python_pass = Lap(), Lap(), Lap(), Lap()
    with clock(jcs):
        canonical = [canonical_json(document) for document in unsigned_documents]
    with clock(dumps):
        encoded = [
            json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            for document in unsigned_documents
        ]
    if encoded != canonical:
        raise AssertionError("json.dumps and JCS differ on these documents")
    total_bytes = sum(map(len, canonical))
    with clock(sha):
        for blob in canonical:
            hashlib.sha256(blob).digest()
    with clock(python_pass):
        sum(record.tokens for record in records)
    message = hashlib.sha256(b"x").digest() * 2  # hashData is two SHA-256 digests
    signature = payer_key.sign(message)
    public = payer_key.public_key()
    sign_rate = rate(lambda: payer_key.sign(message))
    verify_rate = rate(lambda: public.verify(signature, message))

    sizes = [len(s.listen_ids) for s in statements]
    wire = [len(json.dumps(document).encode()) for document in signed]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_build = Lap(
        build.wall + document.wall + signing.wall, build.cpu + document.cpu + signing.cpu
    )
    total_verify = Lap(
        proofs.wall + parsing.wall + digests.wall, proofs.cpu + parsing.cpu + digests.cpu
    )
    figures = [
        f"data: {size:,} Listens from 1 payer to {PAYEES} payees ({TRACKS:,} tracks, "
        f"{plays.listeners:,} listeners, {plays.pairs:,} listener-track pairs), "
        f"{paid:,} paid ({paid / size:.0%}); generated in {generation.wall:.1f} s "
        f"(not in the figures); peak RSS {peak_mib:,.0f} MiB",
        f"statements: paid listens per statement min {min(sizes):,}, median "
        f"{statistics.median(sizes):,.0f}, max {max(sizes):,}; largest signed document "
        f"{max(wire) / 1e6:.2f} MB, all {PAYEES} {sum(wire) / 1e6:.1f} MB",
        f"build and sign {PAYEES} statements: {total_build}, "
        f"{total_build.wall / size * 1e6:.1f} µs per Listen",
        f"  of which build_statement: {build}, statement_document: {document}, "
        f"sign_object: {signing}",
        f"verify at the hub: {total_verify}, {total_verify.wall / paid * 1e6:.1f} µs per "
        "listed Listen",
        f"  of which verify_object: {proofs}, parse_statement: {parsing}, "
        f"listens digest: {digests}",
        f"settlement: settle {settling.wall * 1e3:.2f} ms; settlement_document and "
        f"sign_object {publishing.wall * 1e3:.2f} ms ({len(settlement.transfers)} transfers)",
        f"reconcile the largest statement at its payee ({len(largest.listen_ids):,} paid "
        f"of {len(held):,} Listens held): {reconciling}",
        f"reference, RFC 8785 (JCS) of the {PAYEES} unsigned documents: {jcs}; C json.dumps "
        f"of the same (byte-identical): {dumps}",
        f"reference, SHA-256 of the same {total_bytes / 1e6:.1f} MB: {sha.wall * 1e3:.1f} ms; "
        f"Ed25519 sign {sign_rate:,.0f} /s, verify {verify_rate:,.0f} /s on one core",
        f"reference, one Python pass over the {size:,} records (sum of tokens): {python_pass}",
    ]
    return figures, total_build.wall + total_verify.wall


async def run() -> list[str]:
    out: list[str] = []
    totals = []
    for size in SIZES:
        figures, total = _figures(size)
        out += [f"{size:,} Listens: {figure}" for figure in figures]
        totals.append(f"{total:.2f} s at {size:,}")
        gc.collect()
    out.append(f"build, sign and verify in all: {', '.join(totals)} (goal: ≤ 10 s at 1,000,000)")
    return out
