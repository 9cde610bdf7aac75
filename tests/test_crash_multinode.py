"""`kill -9` of real nodes in the middle of bursts of writes and of sync: nothing acknowledged is lost.

Client threads write to a node through its API (contacts, cases with the other node as
counterpart, notes, case edits, transitions) and record each request that got a 2xx answer,
and the one request each had in flight when the node died. After a SIGKILL at a seeded random
moment and a restart, every acknowledged write must be there exactly once, a write that was
cut may or may not be there, the store must open and take new writes, and the two nodes must
converge to the same versions and the same case content. The seed is in every failure
message (set SEAJUST_CRASH_SEED to replay one).
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from nodeproc import PASSPHRASE, ApiError, NodeProc, dump, introduce, node_env, wait_until

from node.case_index import CaseFilter
from node.runtime import Node, open_node

pytestmark = pytest.mark.processes

# What a request to a node that is being killed can raise: refused, reset, cut mid-answer, timed out.
CUT = (OSError, http.client.HTTPException)


_started = [time.monotonic()]


def phase(what: str) -> None:
    """Where a run is, with the time since it started (shown with a failure, to tell slow from stuck)."""
    print(f"[{time.monotonic() - _started[0]:6.1f}s] {what}")


@contextmanager
def seeded(name: str) -> Iterator[random.Random]:
    """A seeded random source; any failure inside names the seed, so the run can be replayed."""
    seed = int(os.environ.get("SEAJUST_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    _started[0] = time.monotonic()
    phase(f"{name}: seed {seed}")
    try:
        yield random.Random(seed)
    except BaseException as exc:
        exc.add_note(f"{name}: replay with SEAJUST_CRASH_SEED={seed}")
        raise


# -- what the clients were told ---------------------------------------------------------------


@dataclass
class Ledger:
    """The writes one node acknowledged (2xx) to its clients, and those cut by a kill (in flight)."""

    contacts: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> fields last acknowledged
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"status", "summary"}
    notes: dict[str, set[str]] = field(default_factory=dict)  # case id -> texts acknowledged
    cut_contacts: list[dict[str, str]] = field(default_factory=list)  # created or patched, not acknowledged
    cut_cases: list[dict[str, Any]] = field(default_factory=list)  # {"id"?, "status"?, "summary"?}
    cut_notes: dict[str, set[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # refusals a valid request should never get
    tag: str = ""  # every writer of this ledger names what it writes "... {tag}:..."
    acked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cuts(self) -> int:
        """Writes cut by a kill: none may be counted for a node that was never killed."""
        return len(self.cut_contacts) + len(self.cut_cases) + sum(len(t) for t in self.cut_notes.values())


class Writer(threading.Thread):
    """One API client: writes in a seeded random mix until told to stop or its node dies."""

    def __init__(
        self,
        node: NodeProc,
        counterpart: NodeProc,
        ledger: Ledger,
        rng: random.Random,
        tag: str,
        *,
        stop: threading.Event,
        shared_cases: Callable[[], list[str]] = list,
        limit: int | None = None,
        pace: float = 0.0,
    ) -> None:
        super().__init__(daemon=True, name=f"writer-{tag}")
        self.pace = pace  # up to this long between writes: how hard the node is pushed, not a wait for anything
        self.node, self.counterpart, self.ledger, self.rng, self.tag = node, counterpart, ledger, rng, tag
        self.stop_event, self.shared_cases, self.limit = stop, shared_cases, limit
        self.own_cases: list[str] = []  # cases this writer created, so it alone moves and edits them
        self.own_contacts: list[str] = []
        self.count = 0

    def run(self) -> None:
        while not self.stop_event.is_set() and (self.limit is None or self.count < self.limit):
            self.count += 1
            try:
                self.step()
            except ApiError as exc:
                with self.ledger.lock:
                    self.ledger.unexpected.append(f"{self.tag}: HTTP {exc.status}")
                return
            except CUT:
                return  # the node died under this request; `step` already noted it as cut
            if self.pace:
                time.sleep(self.rng.random() * self.pace)

    def step(self) -> None:
        n = f"{self.tag}-{self.count}"
        roll = self.rng.random()
        cases = self.own_cases + self.shared_cases()
        if not cases or roll < 0.12:
            self.create_case(n)
        elif roll < 0.55 and cases:
            self.add_note(self.rng.choice(cases), n)
        elif roll < 0.68 or not self.own_contacts:
            self.create_contact(n)
        elif roll < 0.82:
            self.patch_contact(self.rng.choice(self.own_contacts), n)
        elif roll < 0.92 and self.own_cases:
            self.edit_summary(self.rng.choice(self.own_cases), n)
        elif self.own_cases:
            self.send_case(self.rng.choice(self.own_cases))

    def _cut(self, record: Callable[[], None]) -> None:
        with self.ledger.lock:
            record()

    def create_contact(self, n: str) -> None:
        fields = {"name": f"officer {n}", "title": f"title {n}"}
        try:
            made = self.node.api("POST", "/api/v1/contacts", fields)
        except CUT:
            self._cut(lambda: self.ledger.cut_contacts.append(fields))
            raise
        with self.ledger.lock:
            self.ledger.contacts[made["id"]] = fields
            self.ledger.acked += 1
        self.own_contacts.append(made["id"])

    def patch_contact(self, contact_id: str, n: str) -> None:
        title = f"title {n}"
        try:
            self.node.api("PATCH", f"/api/v1/contacts/{contact_id}", {"title": title})
        except CUT:
            self._cut(lambda: self.ledger.cut_contacts.append({"id": contact_id, "title": title}))
            raise
        with self.ledger.lock:
            self.ledger.contacts[contact_id] = {**self.ledger.contacts[contact_id], "title": title}
            self.ledger.acked += 1

    def create_case(self, n: str) -> None:
        summary = f"case summary {n}"
        body = {
            "kind": "mla",
            "counterpart": self.counterpart.node_id,
            "reference": f"REF-{n}",
            "summary": summary,
            "offences": ["fraud"],
            "measures": ["bank_records"],
            "urgency": "normal",
            "requested_by": "2027-06-30",
            "legal_basis": ["asean_mlat"],
            "languages": ["en"],
        }
        try:
            made = self.node.api("POST", "/api/v1/cases", body)
        except CUT:
            self._cut(lambda: self.ledger.cut_cases.append({"summary": summary, "status": "draft"}))
            raise
        with self.ledger.lock:
            self.ledger.cases[made["id"]] = {"status": "draft", "summary": summary}
            self.ledger.acked += 1
        self.own_cases.append(made["id"])

    def add_note(self, case_id: str, n: str) -> None:
        text = f"note {n}"
        try:
            self.node.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": text})
        except CUT:
            self._cut(lambda: self.ledger.cut_notes.setdefault(case_id, set()).add(text))
            raise
        with self.ledger.lock:
            self.ledger.notes.setdefault(case_id, set()).add(text)
            self.ledger.acked += 1

    def edit_summary(self, case_id: str, n: str) -> None:
        summary = f"revised summary {n}"
        try:
            self.node.api("PATCH", f"/api/v1/cases/{case_id}", {"summary": summary})
        except CUT:
            self._cut(lambda: self.ledger.cut_cases.append({"id": case_id, "summary": summary}))
            raise
        with self.ledger.lock:
            self.ledger.cases[case_id]["summary"] = summary
            self.ledger.acked += 1

    def send_case(self, case_id: str) -> None:
        if self.ledger.cases[case_id]["status"] != "draft":
            self.add_note(case_id, f"{self.tag}-{self.count}-s")
            return
        try:
            self.node.api("POST", f"/api/v1/cases/{case_id}/transitions", {"to": "sent", "reason": ""})
        except CUT:
            self._cut(lambda: self.ledger.cut_cases.append({"id": case_id, "status": "sent"}))
            raise
        with self.ledger.lock:
            self.ledger.cases[case_id]["status"] = "sent"
            self.ledger.acked += 1


@dataclass
class Burst:
    """Writer threads against one node, sharing one ledger."""

    writers: list[Writer]
    ledger: Ledger
    stop: threading.Event

    @classmethod
    def start(
        cls,
        node: NodeProc,
        counterpart: NodeProc,
        rng: random.Random,
        *,
        threads: int,
        tag: str,
        ledger: Ledger | None = None,
        shared_cases: Callable[[], list[str]] = list,
        limit: int | None = None,
        pace: float = 0.0,
    ) -> Burst:
        """Writers tagged `tag:<round>.<i>`; pass the ledger of earlier rounds to keep adding to it."""
        ledger = ledger or Ledger(tag=tag.split(":")[0])
        stop = threading.Event()
        writers = [
            Writer(
                node,
                counterpart,
                ledger,
                random.Random(rng.randrange(2**32)),
                f"{tag}.{i}",
                stop=stop,
                shared_cases=shared_cases,
                limit=limit,
                pace=pace,
            )
            for i in range(threads)
        ]
        for writer in writers:
            writer.start()
        return cls(writers, ledger, stop)

    def acked(self) -> int:
        with self.ledger.lock:
            return self.ledger.acked

    def wait_for(self, acked: int, timeout: float = 60.0) -> None:
        """Until `acked` writes were acknowledged, or every writer is done (its limit reached, or cut)."""
        wait_until(
            lambda: self.acked() >= acked or not any(w.is_alive() for w in self.writers),
            timeout=timeout,
            what=f"{acked} acknowledged writes",
        )

    def finish(self) -> Ledger:
        self.stop.set()
        for writer in self.writers:
            writer.join(30)
            assert not writer.is_alive(), "a writer hung"
        return self.ledger


# -- what the nodes hold ----------------------------------------------------------------------


def all_cases(node: NodeProc) -> list[dict[str, Any]]:
    rows = node.api("GET", "/api/v1/cases?limit=1000")
    assert isinstance(rows, list) and len(rows) < 1000
    return rows


def case_view(node: NodeProc, case_id: str) -> dict[str, Any]:
    view = node.api("GET", f"/api/v1/cases/{case_id}")
    assert isinstance(view, dict)
    return view


def note_texts(view: dict[str, Any]) -> list[str]:
    return [str(n["text"]) for n in view["notes"]]


class Reader:
    """What a node holds, read through its API while it runs."""

    def __init__(self, node: NodeProc) -> None:
        self.name = node.name
        self._node = node

    def contacts(self) -> list[dict[str, Any]]:
        return self._node.contacts()

    def case_ids(self) -> list[str]:
        return [str(row["id"]) for row in all_cases(self._node)]

    def view(self, case_id: str) -> dict[str, Any]:
        return case_view(self._node, case_id)

    def verify(self, case_id: str) -> dict[str, Any]:
        report = self._node.api("GET", f"/api/v1/cases/{case_id}/verify")
        assert isinstance(report, dict)
        return report


class OfflineReader(Reader):
    """What a stopped node's store holds, read in this process: right after a kill, before any peer could
    hand back what the node itself lost."""

    def __init__(self, node: NodeProc, opened: Node) -> None:
        self.name = f"{node.name} (offline)"
        self._opened = opened

    def contacts(self) -> list[dict[str, Any]]:
        return self._opened.directory.list()

    def case_ids(self) -> list[str]:
        return [str(row["id"]) for row in self._opened.cases.search(CaseFilter(limit=100_000))]

    def view(self, case_id: str) -> dict[str, Any]:
        return self._opened.cases.get(case_id)

    def verify(self, case_id: str) -> dict[str, Any]:
        return self._opened.cases.verify(case_id)


def check_ledger(holder: NodeProc | Reader, ledger: Ledger, *, owner: str) -> None:
    """Every acknowledged write of `ledger` (made on the node `owner`) is held exactly once; nothing else of
    that owner's clients is there but what was cut by a kill; every case held loads and verifies."""
    node = holder if isinstance(holder, Reader) else Reader(holder)
    assert ledger.unexpected == [], f"valid writes were refused: {ledger.unexpected[:5]}"
    contacts = {c["id"]: c for c in node.contacts()}
    cut_titles: dict[str, set[str]] = {}
    for cut in ledger.cut_contacts:
        if "id" in cut:
            cut_titles.setdefault(cut["id"], set()).add(cut["title"])
    for contact_id, fields in ledger.contacts.items():
        assert contact_id in contacts, f"acknowledged contact {contact_id} lost on {node.name}"
        held = contacts[contact_id]
        assert held["name"] == fields["name"], f"contact {contact_id} renamed on {node.name}"
        assert held["title"] in {fields["title"]} | cut_titles.get(contact_id, set()), (
            f"contact {contact_id} on {node.name}: title is not the last acknowledged one"
        )
    names = [c["name"] for c in contacts.values() if c["owner"] == owner]
    assert len(names) == len(set(names)), f"a contact is duplicated on {node.name}"
    acked_names = {f["name"] for f in ledger.contacts.values()}
    cut_names = {c["name"] for c in ledger.cut_contacts if "name" in c}
    stray = {name for name in names if name.startswith(f"officer {ledger.tag}:")} - acked_names - cut_names
    assert not stray, f"{node.name} holds {len(stray)} contacts no client wrote"

    held_cases = set(node.case_ids())
    cut_summaries = {c["summary"] for c in ledger.cut_cases if "summary" in c and "id" not in c}
    cut_by_case: dict[str, list[dict[str, Any]]] = {}
    for cut in ledger.cut_cases:
        if "id" in cut:
            cut_by_case.setdefault(cut["id"], []).append(cut)
    views = {case_id: node.view(case_id) for case_id in held_cases}
    for case_id, expected in ledger.cases.items():
        assert case_id in held_cases, f"acknowledged case {case_id} lost on {node.name}"
        view = views[case_id]
        cuts = cut_by_case.get(case_id, [])
        statuses = {expected["status"]} | {c["status"] for c in cuts if "status" in c}
        summaries = {expected["summary"]} | {c["summary"] for c in cuts if "summary" in c}
        assert view["status"] in statuses, f"case {case_id} on {node.name}: status {view['status']} not {statuses}"
        assert view["summary"] in summaries, f"case {case_id} on {node.name}: summary not the acknowledged one"
    for case_id, texts in ledger.notes.items():
        assert case_id in held_cases, f"case {case_id} with acknowledged notes lost on {node.name}"
        held = note_texts(views[case_id])
        assert len(held) == len(set(held)), f"a note is duplicated in case {case_id} on {node.name}"
        lost = texts - set(held)
        assert not lost, f"{len(lost)} acknowledged notes lost in case {case_id} on {node.name}"
        mine = {t for t in held if t.startswith(f"note {ledger.tag}:")}
        stray = mine - texts - ledger.cut_notes.get(case_id, set())
        assert not stray, f"case {case_id} on {node.name} holds {len(stray)} notes no client wrote"
    created = [str(v["references"]["requesting"]) for v in views.values() if v["requesting"]["node_id"] == owner]
    created = [ref for ref in created if ref.startswith(f"REF-{ledger.tag}:")]  # unique to each create request
    assert len(created) == len(set(created)), f"a case is duplicated on {node.name}"
    for case_id, view in views.items():
        history = [e["id"] for e in view["history"]]
        assert len(history) == len(set(history)), f"case {case_id} on {node.name} repeats a history entry"
        if case_id not in ledger.cases and view["requesting"]["node_id"] == owner:
            assert view["summary"] in cut_summaries or not view["summary"].startswith(f"case summary {ledger.tag}:"), (
                f"{node.name} holds a case no client created"
            )
        report = node.verify(case_id)
        assert report["ok"], f"case {case_id} on {node.name} does not verify: {report}"


def check_offline(node: NodeProc, *ledgers: tuple[Ledger, str], dump_too: bool = False) -> None:
    """The killed node's store opens and checks out, dumps, and already holds every write it acknowledged."""
    assert node.proc is not None and node.proc.poll() is not None, "the node must be down"
    opened = open_node(node.home, PASSPHRASE)
    try:
        assert opened.db.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        for ledger, owner in ledgers:
            check_ledger(OfflineReader(node, opened), ledger, owner=owner)
    finally:
        opened.close()
    if dump_too:  # `seajust dump` (a process of its own) reads every table: one test does it
        assert "doc_log" in dump(node)
    phase(f"{node.name} checked offline")


def documents(node: NodeProc) -> dict[str, dict[str, int]]:
    """Version vectors of the documents two authorities share (a node's statistics report goes only to the
    secretariat, so it is left out)."""
    docs = node.api("GET", "/api/v1/sync")["documents"]
    assert isinstance(docs, dict)
    return {d: v for d, v in docs.items() if not d.startswith("report/")}


def rejected(node: NodeProc) -> dict[str, int]:
    counts = node.api("GET", "/api/v1/sync")["rejected"]
    assert isinstance(counts, dict)
    return counts


def comparable(view: dict[str, Any]) -> dict[str, Any]:
    """The parts of a case view both parties must agree on (not `side`, which is per node)."""
    return {
        k: view[k]
        for k in ("kind", "status", "summary", "notes", "history", "references", "timeline", "conflicts")
        if k in view
    }


def assert_converged(a: NodeProc, b: NodeProc, timeout: float = 60.0) -> None:
    phase("waiting for convergence")

    def same() -> bool:
        return documents(a) == documents(b)

    try:
        wait_until(same, timeout=timeout, what="the same versions on both nodes")
    except AssertionError:
        da, db = documents(a), documents(b)
        differ = sorted(d for d in set(da) | set(db) if da.get(d) != db.get(d))
        detail = [(d, da.get(d), db.get(d)) for d in differ[:5]]
        raise AssertionError(
            f"{a.name} and {b.name} did not converge: {len(differ)} documents differ: {detail}"
        ) from None
    assert sorted(a.contacts(), key=lambda c: c["id"]) == sorted(b.contacts(), key=lambda c: c["id"])
    cases_a = {row["id"] for row in all_cases(a)}
    assert cases_a == {row["id"] for row in all_cases(b)}
    for case_id in cases_a:
        assert comparable(case_view(a, case_id)) == comparable(case_view(b, case_id)), f"case {case_id} differs"
    assert rejected(a) == {} and rejected(b) == {}, f"updates were rejected: {rejected(a)} {rejected(b)}"
    phase(f"converged: {len(cases_a)} cases, {total(documents(a))} entries")


def takes_writes(node: NodeProc, counterpart: NodeProc, ledger: Ledger, round_: str) -> None:
    """After a restart the node accepts new writes of every kind; they join the ledger."""
    tag = f"{ledger.tag}:{round_}"
    writer = Writer(node, counterpart, ledger, random.Random(0), tag, stop=threading.Event(), limit=0)
    writer.create_contact(f"{tag}-c")
    writer.create_case(f"{tag}-k")
    for case_id in list(ledger.cases)[:3]:
        writer.add_note(case_id, f"{tag}-{case_id}")
    writer.send_case(writer.own_cases[0])


def pair(make_node: Callable[..., NodeProc]) -> tuple[NodeProc, NodeProc, float]:
    """Two authorities that trust each other, running and connected; and how long B took to come up."""
    a = make_node("Thailand", "TH")
    b = make_node("Viet Nam", "VN")
    introduce(a, b)
    a.start()
    started = time.monotonic()
    b.start()
    up = time.monotonic() - started
    wait_until(lambda: a.api("GET", "/api/v1/sync")["connected"] == [b.node_id], what="the two nodes to connect")
    return a, b, up


def kill_at_random(node: NodeProc, burst: Burst, rng: random.Random, low: int, high: int) -> int:
    """SIGKILL `node` once `burst` has between `low` and `high` more acknowledged writes, at a random instant
    inside a request (the extra pause only places the kill; nothing is asserted on it)."""
    target = burst.acked() + rng.randint(low, high)
    burst.wait_for(target)
    time.sleep(rng.random() * 0.03)
    node.kill9()
    phase(f"killed {node.name} after {burst.acked()} acknowledged writes")
    return target


# -- 1. a burst of writes ---------------------------------------------------------------------


def burst_then_kill(make_node: Callable[..., NodeProc], rng: random.Random, *, threads: int, most: int) -> None:
    a, b, _ = pair(make_node)
    burst = Burst.start(a, b, rng, threads=threads, tag="a:0", limit=most)
    b_burst = Burst.start(b, a, rng, threads=1, tag="b:0", limit=40)  # B writes too, so sync runs both ways
    kill_at_random(a, burst, rng, 10, most)
    ledger = burst.finish()
    assert ledger.acked >= 10
    check_offline(a, (ledger, a.node_id), dump_too=True)
    a.start()
    check_ledger(a, ledger, owner=a.node_id)
    takes_writes(a, b, ledger, "after")
    b_ledger = b_burst.finish()
    assert b_ledger.cuts() == 0, "a write to B, which ran throughout, failed"
    assert_converged(a, b)
    for node in (a, b):
        check_ledger(node, ledger, owner=a.node_id)
        check_ledger(node, b_ledger, owner=b.node_id)


def test_kill_9_during_a_burst_of_writes_loses_no_acknowledged_write(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("burst") as rng:
        burst_then_kill(make_node, rng, threads=4, most=120)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("run", range(8))
def test_soak_kill_9_during_bursts(make_node, run: int) -> None:  # type: ignore[no-untyped-def]
    with seeded(f"burst soak {run}") as rng:
        burst_then_kill(make_node, rng, threads=6, most=600)


# -- 2. the receiver killed while both write and sync -----------------------------------------


def shared_cases_on(a: NodeProc, b: NodeProc, count: int) -> list[str]:
    """Cases A opened with B, once B holds them (both sides then write notes into the same documents)."""
    writer = Writer(a, b, Ledger(), random.Random(0), "base", stop=threading.Event())
    for i in range(count):
        writer.create_case(f"base-{i}")
    wait_until(lambda: {r["id"] for r in all_cases(b)} >= set(writer.own_cases), what="the cases to reach B")
    return list(writer.own_cases)


def receiver_killed_during_sync(
    make_node: Callable[..., NodeProc], rng: random.Random, *, kills: int, threads: int, most: int
) -> None:
    a, b, _ = pair(make_node)
    base = shared_cases_on(a, b, 3)
    a_burst = Burst.start(a, b, rng, threads=threads, tag="a:0", shared_cases=lambda: base, pace=0.15)
    b_ledger = Ledger(tag="b")
    for round_ in range(kills):
        b_burst = Burst.start(b, a, rng, threads=2, tag=f"b:{round_}", ledger=b_ledger, shared_cases=lambda: base)
        kill_at_random(b, a_burst, rng, 5, most)  # A's writes stream to B the whole time
        b_burst.finish()
        check_offline(b, (b_ledger, b.node_id))
        b.start()
    a_ledger = a_burst.finish()
    assert a_ledger.cuts() == 0, "a write to A, which ran throughout, failed"
    takes_writes(b, a, b_ledger, "after")
    assert_converged(a, b)
    for node in (a, b):
        check_ledger(node, a_ledger, owner=a.node_id)
        check_ledger(node, b_ledger, owner=b.node_id)


def test_receiver_killed_repeatedly_during_sync_converges(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("receiver") as rng:
        receiver_killed_during_sync(make_node, rng, kills=3, threads=2, most=30)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_receiver_killed_during_sync(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("receiver soak") as rng:
        receiver_killed_during_sync(make_node, rng, kills=10, threads=3, most=200)


# -- 3. the returning node killed during its catch-up -----------------------------------------


def total(docs: dict[str, dict[str, int]]) -> int:
    return sum(sum(v.values()) for v in docs.values())


def launch(node: NodeProc) -> None:
    """Start the node's process without waiting for it to listen (`NodeProc.start` waits)."""
    assert node.proc is None or node.proc.poll() is not None, "already running"
    with open(node.log_path, "ab") as log:
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", str(node.home)], env=node_env(), stdout=log, stderr=log
        )


def entries_offline(node: NodeProc) -> int:
    opened = open_node(node.home, PASSPHRASE)
    try:
        return sum(
            sum(opened.store.versions(d).values()) for d in opened.store.doc_ids() if not d.startswith("report/")
        )
    finally:
        opened.close()


def killed_during_catch_up(
    make_node: Callable[..., NodeProc], rng: random.Random, *, kills: int, writes: int
) -> list[str]:
    a, b, up = pair(make_node)
    base = shared_cases_on(a, b, 2)
    b.stop()
    ledger = Ledger(tag="a")
    phases = []
    for round_ in range(kills):
        # A works on while B is down: new cases, notes into old ones, contacts.
        burst = Burst.start(
            a, b, rng, threads=2, tag=f"a:{round_}", ledger=ledger, shared_cases=lambda: base, limit=writes // 2
        )
        for writer in burst.writers:
            writer.join(120)
        burst.finish()
        assert ledger.cuts() == 0, "a write to A, which was not killed, failed"
        goal, before = total(documents(a)), entries_offline(b)
        # Kill B at a random instant from starting to just after its session with A began (its catch-up).
        log_size = b.log_path.stat().st_size
        launch(b)
        how = rng.random()
        if how < 0.3:  # while it starts
            time.sleep(rng.uniform(0.3, 1.0) * up)
        else:
            wait_until(lambda: b"session with" in b.log_path.read_bytes()[log_size:], what="B to meet A")  # noqa: B023
            if how < 0.6:  # as its session with A begins
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # once it holds a random share of what it lacks (a small catch-up may finish first)
                mark = before + rng.uniform(0.05, 0.9) * (goal - before)
                wait_until(lambda: total(documents(b)) >= mark, timeout=60, what="catch-up progress")  # noqa: B023
        b.kill9()
        reached = entries_offline(b)
        phases.append(f"{reached - before}/{goal - before}")
        phase(f"killed {b.name} holding {reached - before} of the {goal - before} entries it lacked")
        check_offline(b)
    b.start()
    assert_converged(a, b)
    for node in (a, b):
        check_ledger(node, ledger, owner=a.node_id)
    takes_writes(a, b, ledger, "after")
    assert_converged(a, b)
    check_ledger(b, ledger, owner=a.node_id)
    return phases


def test_node_killed_during_its_catch_up_converges(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("catch-up") as rng:
        killed_during_catch_up(make_node, rng, kills=3, writes=60)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_node_killed_during_its_catch_up(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("catch-up soak") as rng:
        killed_during_catch_up(make_node, rng, kills=10, writes=400)


# -- 4. the sender killed mid-push ------------------------------------------------------------


def author_versions(node: NodeProc, author: str) -> dict[str, int]:
    return {d: v[author] for d, v in documents(node).items() if author in v}


def settled(read: Callable[[], dict[str, int]], quiet: float = 0.3, timeout: float = 20.0) -> dict[str, int]:
    """What `read` returns once two reads `quiet` seconds apart agree (a peer still applying what it got)."""
    last, deadline = read(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError("the node kept changing")


def own_versions_offline(node: NodeProc) -> dict[str, int]:
    opened = open_node(node.home, PASSPHRASE)
    try:
        versions = {d: opened.store.versions(d).get(opened.node_id, 0) for d in opened.store.doc_ids()}
    finally:
        opened.close()
    return {d: seq for d, seq in versions.items() if seq and not d.startswith("report/")}


def sender_killed_mid_push(make_node: Callable[..., NodeProc], rng: random.Random, *, kills: int, most: int) -> None:
    a, b, _ = pair(make_node)
    base = shared_cases_on(a, b, 2)
    ledger = Ledger(tag="a")
    for round_ in range(kills):
        burst = Burst.start(a, b, rng, threads=3, tag=f"a:{round_}", ledger=ledger, shared_cases=lambda: base)
        kill_at_random(a, burst, rng, 5, most)
        burst.finish()
        # What B holds of A's work once it has applied everything A got out before dying.
        on_b = settled(lambda: author_versions(b, a.node_id))
        check_offline(a, (ledger, a.node_id))
        # B can only hold what A stored: A holds at least as much of its own work of every document.
        on_a = own_versions_offline(a)
        a.start()
        ahead = {d: (seq, on_a.get(d, 0)) for d, seq in on_b.items() if seq > on_a.get(d, 0)}
        assert not ahead, f"B holds entries of A that A lost in the kill: {ahead}"
        check_ledger(a, ledger, owner=a.node_id)
    # A's new edits after the restarts must carry fresh sequence numbers that B accepts and applies.
    takes_writes(a, b, ledger, "after")
    assert_converged(a, b)
    for node in (a, b):
        check_ledger(node, ledger, owner=a.node_id)
    assert author_versions(a, a.node_id) == author_versions(b, a.node_id)


def test_sender_killed_mid_push_keeps_its_sequence(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("sender") as rng:
        sender_killed_mid_push(make_node, rng, kills=2, most=60)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_sender_killed_mid_push(make_node) -> None:  # type: ignore[no-untyped-def]
    with seeded("sender soak") as rng:
        sender_killed_mid_push(make_node, rng, kills=12, most=300)
