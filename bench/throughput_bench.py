"""How many case edits per second two real nodes apply, store durably and sync.

    catch-up   node A holds --edits notes on --cases cases shared with B (made in-process before
               either node runs); B, a real process that holds nothing, is started and the clock
               runs until B's /api/v1/sync reports every one of those documents at A's versions.
               Every entry B counts was verified (author signature), decrypted with the case key,
               merged, projected and committed (synchronous=FULL) before B reports it.
    live       both nodes run and are connected; --clients HTTP clients POST notes to A's API
               for --seconds; the clock stops when B holds every note A acknowledged. Printed:
               A's acknowledged edits/s, and edits/s from the first request until B held them all.

Each part also prints the CPU time per edit of A, of B and (live) of the clients in this process,
from /proc: where the time goes, with both nodes and the clients sharing the machine's cores. The live
part adds them up: the machine's cores divided by that sum is the most edits/s this path could give here.

The last line is `ratio R`: catch-up edits/s / live end-to-end edits/s. Timings are reported,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from benchlib import PASSPHRASE, NodeProcess, free_port

from node.cases import case_doc
from node.cli import PASSPHRASE_ENV
from node.cli import main as cli_main
from node.runtime import open_node
from node.tokens import create_token

BATCH = 500  # notes made per outer transaction while preparing A (preparation is not timed)


@dataclass
class Home(NodeProcess):
    """A node home made with `seajust init` (see `make_home`), run as a real process."""

    node_id: str = ""
    card: str = ""


def make_home(base: Path, name: str, country: str) -> Home:
    home = Home(base / name, free_port())
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(
            ["init", str(home.home), "--name", name, "--country", country, "--listen", f"127.0.0.1:{home.port}"]
        )
    if code != 0:
        raise SystemExit(f"bench: could not create a node home in {home.home}")
    node = open_node(home.home, PASSPHRASE)
    try:
        home.node_id, home.card = node.node_id, node.card()
        home.token = create_token(node.db, "bench")
    finally:
        node.close()
    return home


def prepare(a: Home, b: Home, cases: int, edits: int) -> tuple[list[str], dict[str, int]]:
    """Cases from A to B with `edits` notes between them, made in-process on A: their ids, and notes per case."""
    for holder, other in ((a, b), (b, a)):
        node = open_node(holder.home, PASSPHRASE)
        try:
            node.peers.add_card(other.card, actor="bench")
        finally:
            node.close()
    node = open_node(a.home, PASSPHRASE)
    notes: dict[str, int] = {}
    try:
        ids = []
        with node.db.write():
            for n in range(cases):
                body = {
                    "kind": "mla",
                    "counterpart": b.node_id,
                    "reference": f"OAG-2026-{n:06}",
                    "summary": f"Request {n}: bank records of a shell company",
                    "offences": ["money_laundering"],
                    "measures": ["bank_records"],
                    "legal_basis": ["asean_mlat"],
                    "languages": ["en"],
                    "requested_by": "2099-06-30",
                }
                ids.append(node.cases.create(body, actor="bench")["id"])
        for start in range(0, edits, BATCH):
            with node.db.write():
                for n in range(start, min(edits, start + BATCH)):
                    case_id = ids[n % cases]
                    node.cases.add_note(case_id, {"text": f"Called the counterpart, call {n}"}, actor="bench")
                    notes[case_id] = notes.get(case_id, 0) + 1
        versions = {d: node.store.versions(d) for d in (case_doc(c) for c in ids)}
    finally:
        node.close()
    return ids, {d: v.get(a.node_id, 0) for d, v in versions.items()}


async def wait_healthy(http: aiohttp.ClientSession, home: Home, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        home.check_alive()
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(home.url + "/healthz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.02)
    raise SystemExit(f"bench: node {home.home.name} did not start")


async def versions_of(http: aiohttp.ClientSession, home: Home, author: str) -> dict[str, int]:
    async with http.get(home.url + "/api/v1/sync", headers=home.headers) as resp:
        resp.raise_for_status()
        documents = (await resp.json())["documents"]
    return {doc_id: int(v.get(author, 0)) for doc_id, v in documents.items()}


async def until_holds(
    http: aiohttp.ClientSession, home: Home, author: str, want: dict[str, int], timeout: float
) -> float:
    """Poll `home` until it holds `want` (doc -> seq by `author`); the time it first did (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        have = await versions_of(http, home, author)
        if all(have.get(doc_id, 0) >= seq for doc_id, seq in want.items()):
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise SystemExit(f"bench: {home.home.name} did not catch up within {timeout:.0f} s")


async def live(a: Home, b: Home, ids: list[str], clients: int, seconds: float) -> dict[str, float]:
    """`clients` concurrent POSTs of notes to A for `seconds`; A's acknowledged rate, and until B holds them."""
    headers = a.headers
    acknowledged = 0
    failed = 0
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients + 4)
    cpu_before = (a.cpu, b.cpu, time.process_time())
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.monotonic()
        stop_at = started + seconds

        async def client(k: int) -> None:
            nonlocal acknowledged, failed
            n = k
            while time.monotonic() < stop_at:
                case_id = ids[n % len(ids)]
                n += clients
                sent = time.perf_counter()
                url = f"{a.url}/api/v1/cases/{case_id}/notes"
                async with http.post(url, json={"text": f"Live note {n}"}, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 201:
                        acknowledged += 1
                        latencies.append(time.perf_counter() - sent)
                    else:
                        failed += 1

        await asyncio.gather(*(client(k) for k in range(clients)))
        accepted_for = time.monotonic() - started
        want = await versions_of(http, a, a.node_id)
        want = {d: s for d, s in want.items() if d in {case_doc(c) for c in ids}}
        held_at = await until_holds(http, b, a.node_id, want, timeout=120)
    cpu = [after - before for after, before in zip((a.cpu, b.cpu, time.process_time()), cpu_before, strict=True)]
    per_edit = [seconds_used * 1000 / max(acknowledged, 1) for seconds_used in cpu]
    return {
        "acknowledged": acknowledged,
        "failed": failed,
        "accepted_per_s": acknowledged / accepted_for,
        "end_to_end_per_s": acknowledged / (held_at - started),
        "lag_s": held_at - (started + accepted_for),
        "latency_median_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "cpu_ms_a": per_edit[0],
        "cpu_ms_b": per_edit[1],
        "cpu_ms_clients": per_edit[2],
    }


async def run(base: Path, cases: int, edits: int, clients: int, seconds: float) -> None:
    a, b = make_home(base, "node-a", "TH"), make_home(base, "node-b", "VN")
    started = time.perf_counter()
    ids, want = prepare(a, b, cases, edits)
    total = sum(want.values())
    print(
        f"prepared: {cases} cases and {edits} notes on A ({total} entries by A) in "
        f"{time.perf_counter() - started:.1f} s (not timed)",
        flush=True,
    )
    try:
        async with aiohttp.ClientSession() as http:
            a.spawn()
            await wait_healthy(http, a)
            clock = time.monotonic()
            b.spawn()
            await wait_healthy(http, b)
            up = time.monotonic()
            cpu_before = (a.cpu, b.cpu)
            held = await until_holds(http, b, a.node_id, want, timeout=600)
            cpu_a, cpu_b = (after - before for after, before in zip((a.cpu, b.cpu), cpu_before, strict=True))
        catch_up = total / (held - up)
        print(
            f"catch-up: B held all {total} entries {held - clock:.2f} s after it was started "
            f"({up - clock:.2f} s to start): {catch_up:,.0f} edits/s applied, durable and synced",
            flush=True,
        )
        print(f"catch-up: CPU per edit, A {cpu_a * 1000 / total:.2f} ms, B {cpu_b * 1000 / total:.2f} ms", flush=True)
        figures = await live(a, b, ids, clients, seconds)
        print(
            f"live: {clients} clients for {seconds:.0f} s: A acknowledged {figures['acknowledged']:.0f} notes "
            f"({figures['failed']:.0f} refused), {figures['accepted_per_s']:,.0f} edits/s, "
            f"median request {figures['latency_median_ms']:.1f} ms",
            flush=True,
        )
        print(
            f"live: B held them all {figures['lag_s']:.2f} s after the last request: "
            f"{figures['end_to_end_per_s']:,.0f} edits/s end to end",
            flush=True,
        )
        per_edit = figures["cpu_ms_a"] + figures["cpu_ms_b"] + figures["cpu_ms_clients"]
        cores = os.cpu_count() or 1
        print(
            f"live: CPU per edit, A {figures['cpu_ms_a']:.2f} ms, B {figures['cpu_ms_b']:.2f} ms, "
            f"the clients (this process) {figures['cpu_ms_clients']:.2f} ms: {per_edit:.2f} ms in all, so at most "
            f"{cores * 1000 / per_edit:,.0f} edits/s with every one of the {cores} cores busy",
            flush=True,
        )
        ratio = catch_up / figures["end_to_end_per_s"] if figures["end_to_end_per_s"] else 0.0
    finally:
        a.stop()
        b.stop()
    print(f"ratio {ratio:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2_000, help="cases shared by A and B (default 2,000)")
    parser.add_argument("--edits", type=int, default=20_000, help="notes B catches up with (default 20,000: 10 a case)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent API clients in the live run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the live run (default 10 s)")
    args = parser.parse_args(argv)
    os.environ[PASSPHRASE_ENV] = PASSPHRASE  # temporary homes only: `seajust init` reads it from here
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()} ({sys.platform})", flush=True)
    base = Path(tempfile.mkdtemp(prefix="seajust-throughput-"))
    try:
        asyncio.run(run(base, args.cases, args.edits, args.clients, args.seconds))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
