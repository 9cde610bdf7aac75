"""What "scale by design" costs and saves: the case projection at --cases rows, and --docs real case documents.

    projection  --cases rows written straight into the SQLite projection (`CaseIndex.upsert`, one
                transaction, as tests/store/test_case_index.py does at a smaller scale), then the
                reads a case list makes: first page, filters, overdue, needs action, full-text
                search (an English word, a Thai substring), counts. Each read is timed on its first
                run and as the median of REPEATS runs.
    documents   --docs cases made as an officer makes them (`node.cases.create` on a real node,
                whose counterpart is a trusted authority that never runs); a note added to every
                NOTE_EVERY-th case and every SEND_EVERY-th case sent. Median time per create, note
                and transition; then a note on one case as it grows to 10, 50 and 200 notes.
    reopen      the node closed, then opened again in a fresh process (so its memory is its own):
                time to open, a GET of cases not yet loaded (cold: rebuilt from snapshot and log)
                and of the same cases again (warm), and the process's RSS growth after opening
                (nothing loaded) and after loading every case document (`node.store.get` on each,
                the LRU widened to hold them all). A second fresh process times `store.load`
                (version vectors only) and `case_keys.load`, and estimates what each keeps per case.

The last line is `ratio R`: RSS growth with every document loaded / RSS growth on demand (after opening).
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from node.case_index import FINAL, CaseFilter, CaseIndex, Reminders
from node.cli import PASSPHRASE_ENV
from node.cli import main as cli_main
from node.policy import CASE_PREFIX
from node.runtime import Node, open_node
from node.storage import Database

PASSPHRASE = "bench passphrase, temporary homes only"
TODAY = date(2025, 3, 10)  # the projection's rows are dated around it, as in the index tests
REMINDERS = Reminders(ack_days=10, nearing_days=7)
REPEATS = 5  # runs of each projection read; the median is reported with the first run
NOTE_EVERY = 2  # every 2nd case gets a note
SEND_EVERY = 4  # every 4th case is sent (draft -> sent)
GET_SAMPLE = 200  # cases read cold then warm after reopening
STATUSES = ["draft", "sent", "acknowledged", "in_execution", "partially_executed", *FINAL]
COUNTERPARTS = [f"node-{n}" for n in range(12)]
WORDS = ["fraud", "casino", "vessel", "timber", "การฟอกเงิน", "ยาเสพติด", "ការលាងលុយ", "online scam", "gold"]
# A long-running case: notes timed once it holds each of these many (up to --docs / 10), LONG_CASE_TIMED each.
LONG_CASE_NOTES = (10, 50, 200)
LONG_CASE_TIMED = 5
LONG_NOTE = (
    "Note {}: spoke with the counterpart's duty officer about the bank records of Zephyrine Holdings; they expect "
    "the court order next week and will send the statements for 2023 and 2024 through the central authority. "
    "ผู้ประสานงานแจ้งว่าจะส่งเอกสารภายในสัปดาห์หน้า. Follow up if nothing arrives by the deadline."
)
THAI_SUMMARY = "Laundering of proceeds through Zephyrine Holdings; การฟอกเงินผ่านบัญชีธนาคาร in Bangkok"


def ms(seconds: float) -> float:
    return seconds * 1000


def rss_kb() -> int:
    """Resident set size of this process now, in kB (VmRSS); peak RSS where /proc is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


# -- projection ---------------------------------------------------------------------------------------------------


def projection_row(n: int) -> dict[str, Any]:
    """Case n of a node's projection: statuses, kinds, counterparts, deadlines and words spread unevenly."""
    day = f"2025-{1 + n % 12:02}-{1 + n % 28:02}"
    case_id = f"C-{n:06}"
    return {
        "case_id": case_id,
        "doc_id": f"{CASE_PREFIX}{case_id}",
        "kind": "extradition" if n % 9 == 0 else "mla",
        "status": STATUSES[n % len(STATUSES)],
        "side": "requested" if n % 2 else "requesting",
        "counterpart": COUNTERPARTS[n % len(COUNTERPARTS)],
        "requesting": "node-th",
        "requested": COUNTERPARTS[n % len(COUNTERPARTS)],
        "requesting_country": "TH",
        "requested_country": "KH",
        "reference": f"TH/OAG/{n}",
        "counterpart_reference": None,
        "urgency": "urgent" if n % 40 == 0 else "normal",
        "requested_by": day if n % 3 == 0 else None,
        "created_at": f"{day}T08:00:00Z",
        "sent_at": f"{day}T09:00:00Z",
        "acknowledged_at": None,
        "closed_at": None,
        "last_action_at": f"{day}T10:{n % 60:02}:00Z",
        "status_changed_at": f"{day}T10:00:00Z",
        "reminded_at": f"{day}T11:00:00Z" if n % 97 == 0 else None,
        "offences": ["money_laundering"],
        "measures": ["bank_records"],
        "summary": f"Case {n}: {WORDS[n % len(WORDS)]} and {WORDS[(n * 7) % len(WORDS)]}",
        "updated_at": f"{day}T10:00:00Z",
    }


def timed_read(label: str, read: Callable[[], Any]) -> None:
    times: list[float] = []
    size = 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = read()
        times.append(ms(time.perf_counter() - started))
        size = len(result)
    print(f"  {label:<42} {times[0]:9.2f} ms first {statistics.median(times):9.2f} ms median   {size} rows")


def projection(base: Path, cases: int) -> None:
    db = Database(base / "projection.db", os.urandom(32))
    try:
        index = CaseIndex(db)
        started = time.perf_counter()
        with db.write() as w:
            for n in range(cases):
                index.upsert(w, projection_row(n), notes=(), attachments=())
        seconds = time.perf_counter() - started
        size = (base / "projection.db").stat().st_size
        print(
            f"projection: {cases} case rows, upserted in one transaction in {seconds:.1f} s "
            f"({cases / seconds:.0f} rows/s), database {size / 2**20:.1f} MB",
            flush=True,
        )

        def search(**criteria: Any) -> Callable[[], list[dict[str, Any]]]:
            return lambda: index.search(CaseFilter(**criteria), today=TODAY, reminders=REMINDERS)

        timed_read("first page", search())
        timed_read("page 50 (offset 4900)", search(offset=4900))
        timed_read("status", search(status="sent"))
        timed_read("counterpart + kind", search(counterpart="node-1", kind="mla"))
        timed_read("status + counterpart + kind", search(status="sent", counterpart="node-1", kind="mla"))
        timed_read("overdue", search(overdue=True))
        timed_read("needs action", lambda: index.needs_action(today=TODAY, reminders=REMINDERS))
        timed_read(
            "needs action, one counterpart, page 3",
            search(needs_action=True, counterpart="node-0", limit=50, offset=100),
        )
        timed_read("not needing action", search(needs_action=False))
        timed_read("search 'fraud' (English word)", search(q="fraud"))
        timed_read("search 'ฟอกเงิน' (Thai substring)", search(q="ฟอกเงิน"))
        timed_read("search 'OAG/4242' (a rare reference)", search(q="OAG/4242"))
        timed_read("search 'scam' + status", search(q="scam", status="sent"))
        timed_read("search 'go' (short: LIKE)", search(q="go"))
        timed_read("counts", index.counts)
    finally:
        db.close()


# -- documents ----------------------------------------------------------------------------------------------------


def make_home(base: Path, name: str, country: str) -> Path:
    home = base / name
    with contextlib.redirect_stdout(io.StringIO()):  # init prints the node ID
        code = cli_main(["init", str(home), "--name", name, "--country", country, "--role", "authority"])
    if code != 0:
        raise SystemExit(f"bench: could not create a node home in {home}")
    return home


def new_case(counterpart: str, n: int) -> dict[str, Any]:
    """A complete MLA request (it passes the draft check when no profile says otherwise)."""
    return {
        "kind": "extradition" if n % 9 == 0 else "mla",
        "counterpart": counterpart,
        "reference": f"OAG-2026-{n:06}",
        "summary": f"{THAI_SUMMARY}; request {n}",
        "offences": ["money_laundering", "fraud"],
        "measures": ["bank_records"],
        "legal_basis": ["asean_mlat"],
        "languages": ["en"],
        "requested_by": "2099-06-30",
        **({"urgency": "urgent", "urgency_reason": "The suspect leaves the country soon"} if n % 40 == 0 else {}),
    }


def median_ms(times: list[float]) -> str:
    if not times:
        return "      n/a"
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else times[0]
    return f"{statistics.median(times):9.2f} ms median {p90:9.2f} ms p90   ({len(times)})"


def documents(base: Path, docs: int) -> Path:
    """Make `docs` cases on a fresh Thai node whose counterpart is Viet Nam's (never started); its home."""
    home, vn_home = make_home(base, "node-th", "TH"), make_home(base, "node-vn", "VN")
    vn = open_node(vn_home, PASSPHRASE)
    try:
        vn_card, vn_id = vn.card(), vn.node_id
    finally:
        vn.close()
    node = open_node(home, PASSPHRASE)
    creates: list[float] = []
    notes: list[float] = []
    sends: list[float] = []
    try:
        node.peers.add_card(vn_card, actor="bench")
        started_all = time.perf_counter()
        for n in range(docs):
            started = time.perf_counter()
            case_id = node.cases.create(new_case(vn_id, n), actor="bench")["id"]
            creates.append(ms(time.perf_counter() - started))
            if n % NOTE_EVERY == 0:
                started = time.perf_counter()
                node.cases.add_note(case_id, {"text": f"Called the counterpart about request {n}"}, actor="bench")
                notes.append(ms(time.perf_counter() - started))
            if n % SEND_EVERY == 0:
                started = time.perf_counter()
                node.cases.transition(case_id, {"to": "sent"}, actor="bench")
                sends.append(ms(time.perf_counter() - started))
        seconds = time.perf_counter() - started_all
        long_case = note_cost_by_length(node, vn_id, [m for m in LONG_CASE_NOTES if m <= max(20, docs // 10)])
    finally:
        node.close()
    print(
        f"documents: {docs} cases through node.cases.create in {seconds:.1f} s "
        f"({len(notes)} with a note, {len(sends)} sent)",
        flush=True,
    )
    print(f"  create                {median_ms(creates)}")
    print(f"  note                  {median_ms(notes)}")
    print(f"  transition (sent)     {median_ms(sends)}", flush=True)
    for held, times in long_case.items():
        print(f"  note, case of {held:>3} notes {median_ms(times)}", flush=True)
    return home


def note_cost_by_length(node: Node, counterpart: str, lengths: list[int]) -> dict[int, list[float]]:
    """The time of a note on one case as its history grows: LONG_CASE_TIMED notes timed once the case holds each
    of `lengths` notes. A note is indexed as a search row of its own, so this shows whether a note still costs
    more on a case that has run for years (the case's document and history checks grow with it)."""
    case_id = node.cases.create(new_case(counterpart, 0), actor="bench")["id"]
    held = 0
    timed: dict[int, list[float]] = {}
    for length in lengths:
        while held < length:
            node.cases.add_note(case_id, {"text": LONG_NOTE.format(held)}, actor="bench")
            held += 1
        timed[length] = []
        for _ in range(LONG_CASE_TIMED):
            started = time.perf_counter()
            node.cases.add_note(case_id, {"text": LONG_NOTE.format(held)}, actor="bench")
            timed[length].append(ms(time.perf_counter() - started))
            held += 1
    return timed


def reopen(home: Path, sample: int) -> dict[str, Any]:
    """In this (fresh) process: open the node, read cases cold and warm, then load every document."""
    gc.collect()
    before = rss_kb()
    started = time.perf_counter()
    node: Node = open_node(home, PASSPHRASE)
    open_seconds = time.perf_counter() - started
    try:
        gc.collect()
        opened = rss_kb()
        doc_ids = node.store.doc_ids(CASE_PREFIX)
        case_ids = [d[len(CASE_PREFIX) :] for d in doc_ids[:sample]]
        cold, warm = [], []
        for case_id in case_ids:
            started = time.perf_counter()
            node.cases.get(case_id)
            cold.append(ms(time.perf_counter() - started))
        for case_id in case_ids:
            started = time.perf_counter()
            node.cases.get(case_id)
            warm.append(ms(time.perf_counter() - started))
        node.store._max_loaded = max(node.store._max_loaded, len(doc_ids))  # bench only: hold them all
        for doc_id in doc_ids:
            node.store.get(doc_id)
        gc.collect()
        loaded = rss_kb()
    finally:
        node.close()
    return {
        "docs": len(doc_ids),
        "open_ms": ms(open_seconds),
        "cold_ms": cold,
        "warm_ms": warm,
        "rss_before_kb": before,
        "rss_open_kb": opened,
        "rss_loaded_kb": loaded,
    }


def held_sizes(home: Path) -> dict[str, Any]:
    """In this (fresh) process: what opening keeps per case, as the RSS growth of building it a second time.

    `store.load` and `case_keys.load` each build their new table before letting go of the old one, so
    calling them again on an open node grows the process by about the size of that table.
    """
    node: Node = open_node(home, PASSPHRASE)
    try:
        gc.collect()
        start = rss_kb()
        started = time.perf_counter()
        node.store.load()
        load_seconds = time.perf_counter() - started
        gc.collect()
        vectors = rss_kb()
        started = time.perf_counter()
        node.case_keys.load()
        keys_seconds = time.perf_counter() - started
        gc.collect()
        keys = rss_kb()
        docs = len(node.store.doc_ids())
    finally:
        node.close()
    return {
        "load_ms": ms(load_seconds),
        "keys_ms": ms(keys_seconds),
        "vectors_kb": vectors - start,
        "keys_kb": keys - vectors,
        "all_docs": docs,
    }


def in_child(home: Path, *args: str) -> dict[str, Any]:
    """`reopen` or `held_sizes` in a child process, so the memory it measures is its own."""
    result = subprocess.run(
        [sys.executable, __file__, "--reopen", str(home), *args],
        capture_output=True,
        text=True,
        env={**os.environ, PASSPHRASE_ENV: PASSPHRASE},
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: reopening the node failed:\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def report_reopen(figures: dict[str, Any], sizes: dict[str, Any]) -> float:
    docs = figures["docs"]
    on_demand = figures["rss_open_kb"] - figures["rss_before_kb"]
    all_loaded = figures["rss_loaded_kb"] - figures["rss_before_kb"]
    print(f"reopen: {docs} case documents ({sizes['all_docs']} documents in all), each run in a fresh process")
    print(f"  open_node             {figures['open_ms']:9.2f} ms   keyfile, database, case keys, version vectors")
    print(f"  store.load            {sizes['load_ms']:9.2f} ms   version vectors only, no CRDT loaded")
    print(f"  case_keys.load        {sizes['keys_ms']:9.2f} ms   every case's key and parties")
    print(f"  GET cold              {median_ms(figures['cold_ms'])}   not loaded: rebuilt from snapshot and log")
    print(f"  GET warm              {median_ms(figures['warm_ms'])}   the same cases, now loaded")
    print(f"  RSS growth on demand  {mb(on_demand):>12}   after open_node, no CRDT loaded")
    print(f"  RSS growth all loaded {mb(all_loaded):>12}   after store.get on all {docs} case documents")
    print(f"  per loaded document   {(all_loaded - on_demand) / docs:9.2f} kB   the CRDT")
    print(f"  per case, held always {sizes['keys_kb'] / docs:9.2f} kB   case key and parties")
    print(f"  per document, held    {sizes['vectors_kb'] / sizes['all_docs']:9.2f} kB   version vector", flush=True)
    return float(max(all_loaded, 0) / max(on_demand, 1))


def run(cases: int, docs: int) -> None:
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()} ({sys.platform})", flush=True)
    print(f"projection rows: {cases}; case documents: {docs}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="seajust-cases-bench-"))
    try:
        projection(base, cases)
        home = documents(base, docs)
        figures = in_child(home, "--sample", str(min(docs, GET_SAMPLE)))
        ratio = report_reopen(figures, in_child(home, "--sizes"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"ratio {ratio:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100_000, help="rows in the projection (default 100000)")
    parser.add_argument("--docs", type=int, default=2_000, help="real case documents (default 2000)")
    parser.add_argument("--reopen", type=Path, help=argparse.SUPPRESS)  # the child process of in_child
    parser.add_argument("--sample", type=int, default=GET_SAMPLE, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    if args.reopen is not None:
        print(json.dumps(held_sizes(args.reopen) if args.sizes else reopen(args.reopen, args.sample)))
        return 0
    if args.cases < 1 or args.docs < 1:
        parser.error("--cases and --docs must be at least 1")
    run(args.cases, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
