"""What a node holding --cases real cases costs to start, to read, to bring a new peer up to date, and per edit.

One node (Thailand, "the big node") holds --cases case documents made through the node's own domain code
(`node.cases`), in batches inside one `Database.write()` transaction each so that generation is bearable: most
are its own requests to Viet Nam (a trusted authority that never runs here), one in INBOUND_EVERY is Viet Nam's
request to it (made on Viet Nam's node and delivered as sync would), and --shared are its requests to Cambodia,
a third node whose home is made at generation time and kept pristine. The homes are cached in --cache (default
bench/.cache/scale-<cases>-<shared>) and reused while the cache's version matches; each run works on copies.

    start          `python -m node.cli run HOME` in a fresh process until GET /healthz answers 200 (median of
                   START_RUNS starts), and the process's RSS after it and after the reads below.
    reads          GET /api/v1/cases?needs_action=true, and ?q= for a common word, a rare reference and a Thai
                   word, through the API: the first call and the median of REPEATS.
    initial sync   Cambodia's node, fresh (no case yet), started: time until its API lists all --shared cases,
                   and until its version of each equals the big node's.
    wire bytes     WebSocket traffic between the two connected, idle nodes for one note added to a shared case:
                   the bytes each way through a counting TCP proxy on loopback (Cambodia dials the big node
                   through it), median of WIRE_EDITS edits.

The last line is `ratio R`: the big node's RSS after the reads / its RSS right after start. Figures are reported
next to the issue's targets, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import PASSPHRASE, NodeProcess, free_port, ms

from crypto.card import make_card
from crypto.keystore import load_keyfile
from node.cli import PASSPHRASE_ENV
from node.cli import main as cli_main
from node.config import NodeHome
from node.migrations import LATEST_VERSION
from node.runtime import Node, open_node
from node.tokens import create_token

CACHE_FORMAT = 1  # bump when what generate() makes changes
BATCH = 500  # cases per outer write transaction while generating
INBOUND_EVERY = 10  # one case in 10 is Viet Nam's request to the big node
NOTE_EVERY = 3  # every 3rd case of the big node's own gets a note
SEND_EVERY = 4  # every 4th is sent (draft -> sent, through the draft check)
START_RUNS = 3
REPEATS = 5
WIRE_EDITS = 5
TIMEOUT = 600.0  # seconds for any one wait before the bench gives up
WORDS = ["fraud", "casino", "vessel", "timber", "การฟอกเงิน", "ยาเสพติด", "ការលាងលុយ", "online scam", "gold"]
DATES = ["2025-01-15", "2099-06-30", None, "2098-12-31", None, None]  # some overdue, most not, some none
TARGETS = {"start": 3.0, "read": 100.0, "rss": 600.0, "sync": 10.0, "edit": 1024}


def reference(n: int) -> str:
    return f"OAG-2026-{n:06}"


def new_case(counterpart: str, n: int) -> dict[str, Any]:
    """Case n: a complete request (it passes the draft check), with words and deadlines spread unevenly.

    A past deadline (overdue) only on cases that stay drafts: the draft check refuses to send them."""
    due = DATES[n % len(DATES)]
    if n % SEND_EVERY == 0 and due is not None and due < "2026":
        due = DATES[1]
    return {
        "kind": "extradition" if n % 9 == 0 else "mla",
        "counterpart": counterpart,
        "reference": reference(n),
        "summary": f"Request {n}: {WORDS[n % len(WORDS)]} and {WORDS[(n * 7) % len(WORDS)]} via Zephyrine Holdings",
        "offences": ["money_laundering", "fraud"],
        "measures": ["bank_records"],
        "legal_basis": ["asean_mlat"],
        "languages": ["en"],
        **({"requested_by": due} if due else {}),
        **({"urgency": "urgent", "urgency_reason": "The suspect leaves the country soon"} if n % 40 == 0 else {}),
    }


def is_shared(n: int, cases: int, shared: int) -> bool:
    """Exactly `shared` of the `cases` cases, spread evenly."""
    return (n * shared) // cases != ((n + 1) * shared) // cases


def rare_case(cases: int, shared: int) -> int:
    """A case the big node made itself (so its reference is the big node's), near the middle."""
    n = cases // 2
    while n % INBOUND_EVERY == 1 or is_shared(n, cases, shared):
        n += 1
    return n


# -- the cache ----------------------------------------------------------------------------------------------------


def cache_version(cases: int, shared: int) -> str:
    return f"{CACHE_FORMAT}/schema-{LATEST_VERSION}/{cases}/{shared}"


def make_home(base: Path, name: str, country: str) -> Path:
    home = base / name
    with contextlib.redirect_stdout(io.StringIO()):  # init prints the node ID
        code = cli_main(["init", str(home), "--name", name, "--country", country, "--role", "authority"])
    if code != 0:
        raise SystemExit(f"bench: could not create a node home in {home}")
    return home


def card_at(node: Node, addresses: list[str]) -> str:
    return make_card(
        node.identity, name=node.config.name, country=node.config.country, role="authority", addresses=addresses
    )


@contextlib.contextmanager
def opened(home: Path) -> Iterator[Node]:
    node = open_node(home, PASSPHRASE)
    try:
        yield node
    finally:
        node.close()


def generate(cache: Path, cases: int, shared: int) -> dict[str, Any]:
    """Make the big node (th), Viet Nam's (vn) and Cambodia's pristine home (kh) in `cache`; its meta."""
    work = Path(tempfile.mkdtemp(prefix=cache.name + ".partial-", dir=cache.parent))
    started = time.perf_counter()
    th_home, vn_home, kh_home = (make_home(work, f"node-{c}", c.upper()) for c in ("th", "vn", "kh"))
    with opened(th_home) as th, opened(vn_home) as vn, opened(kh_home) as kh:
        # The big node never dials Cambodia (no address): Cambodia dials it, through the bench's proxy.
        th.peers.add_card(vn.card(), actor="bench")
        th.peers.add_card(card_at(kh, []), actor="bench")
        vn.peers.add_card(th.card(), actor="bench")
        kh.peers.add_card(th.card(), actor="bench")
        meta: dict[str, Any] = {
            "th_id": th.node_id,
            "kh_id": kh.node_id,
            "th_token": create_token(th.db, "bench"),
            "kh_token": create_token(kh.db, "bench"),
        }
    with opened(th_home) as th, opened(vn_home) as vn:
        made = 0
        while made < cases:
            with th.db.write(), vn.db.write():
                for n in range(made, min(cases, made + BATCH)):
                    make_case(th, vn, meta["kh_id"], n, cases, shared)
            made = min(cases, made + BATCH)
            if made % 10_000 == 0 or made == cases:
                print(f"  generated {made} cases in {time.perf_counter() - started:.0f} s", flush=True)
    meta.update(version=cache_version(cases, shared), seconds=round(time.perf_counter() - started, 1))
    (work / "meta.json").write_text(json.dumps(meta))
    if cache.exists():
        shutil.rmtree(cache)
    work.rename(cache)
    return meta


def make_case(th: Node, vn: Node, kh_id: str, n: int, cases: int, shared: int) -> None:
    if n % INBOUND_EVERY == 1 and not is_shared(n, cases, shared):
        # Viet Nam's request to the big node, sent, then delivered as sync would deliver it.
        case_id = vn.cases.create(new_case(th.node_id, n), actor="bench")["id"]
        vn.cases.transition(case_id, {"to": "sent"}, actor="bench")
        doc_id = f"case/{case_id}"
        grant = vn.case_keys.grant_bytes(doc_id)
        assert grant is not None
        th.case_keys.accept_grants([grant], via=vn.node_id)
        th.store.apply_remote(vn.store.entries_missing(doc_id, th.store.versions(doc_id)), via=vn.node_id)
        return
    counterpart = kh_id if is_shared(n, cases, shared) else vn.node_id
    case_id = th.cases.create(new_case(counterpart, n), actor="bench")["id"]
    if n % NOTE_EVERY == 0:
        th.cases.add_note(case_id, {"text": f"Called the counterpart about request {n}"}, actor="bench")
    if n % SEND_EVERY == 0:
        th.cases.transition(case_id, {"to": "sent"}, actor="bench")


def cached(cache: Path, cases: int, shared: int) -> dict[str, Any]:
    """The cache's meta when it holds this version, else a freshly generated one."""
    with contextlib.suppress(OSError, ValueError):
        meta: dict[str, Any] = json.loads((cache / "meta.json").read_text())
        if meta.get("version") == cache_version(cases, shared):
            print(f"homes: reused from {cache} (generated in {meta['seconds']} s)", flush=True)
            return meta
    print(f"homes: generating {cases} cases ({shared} shared) into {cache}", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    meta = generate(cache, cases, shared)
    print(f"homes: generated in {meta['seconds']} s", flush=True)
    return meta


# -- running nodes ------------------------------------------------------------------------------------------------


class Running(NodeProcess):
    """The big node or the new peer, listening on the port of this run."""

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return super().spawn("--listen", f"127.0.0.1:{self.port}", *args)


async def until(check: Callable[[], Awaitable[bool]], what: str, node: Running, interval: float = 0.02) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        node.check_alive()
        with contextlib.suppress(aiohttp.ClientError, OSError):
            if await check():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(interval)


async def get(http: aiohttp.ClientSession, node: Running, path: str, params: dict[str, str] | None = None) -> Any:
    async with http.get(node.url + path, headers=node.headers, params=params) as resp:
        if resp.status >= 400:
            raise SystemExit(f"bench: GET {path} -> HTTP {resp.status}: {await resp.text()}")
        return await resp.json()


async def start(http: aiohttp.ClientSession, node: Running) -> float:
    """Seconds from spawning `python -m node.cli run` until /healthz answers 200."""
    started = time.perf_counter()
    node.spawn()

    async def healthy() -> bool:
        async with http.get(node.url + "/healthz") as resp:
            return resp.status == 200

    await until(healthy, "the node to start", node, interval=0.01)
    return time.perf_counter() - started


class CountingProxy:
    """A TCP relay on loopback that counts the bytes each way: what the two nodes put on the wire."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0  # dialler -> target (Cambodia -> big node)
        self.down = 0  # target -> dialler
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upward: bool) -> None:
            try:
                while data := await src.read(65536):
                    if upward:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        pipes = [
            asyncio.ensure_future(pipe(reader, up_writer, True)),
            asyncio.ensure_future(pipe(up_reader, writer, False)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)

    async def quiet(self, seconds: float) -> None:
        """Until no byte has passed for `seconds`."""
        deadline = time.monotonic() + TIMEOUT
        last = (self.up, self.down)
        while time.monotonic() < deadline:
            await asyncio.sleep(seconds)
            now = (self.up, self.down)
            if now == last:
                return
            last = now
        raise SystemExit("bench: the link between the nodes never went idle")

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


# -- figures ------------------------------------------------------------------------------------------------------


async def timed_read(http: aiohttp.ClientSession, node: Running, label: str, params: dict[str, str]) -> None:
    times: list[float] = []
    rows = 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        rows = len(await get(http, node, "/api/v1/cases", params))
        times.append(ms(time.perf_counter() - started))
    print(
        f"  {label:<42} {times[0]:9.2f} ms first {statistics.median(times):9.2f} ms median   {rows} rows"
        f"   target < {TARGETS['read']:.0f} ms",
        flush=True,
    )


async def cases_held(http: aiohttp.ClientSession, node: Running) -> int:
    """Case documents the node holds with their keys (`seajust_cases` in its /metrics)."""
    async with http.get(node.url + "/metrics", headers=node.headers) as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("seajust_cases "):
                return int(float(line.split()[1]))
    return 0


async def initial_sync(
    http: aiohttp.ClientSession,
    kh: Running,
    shared: int,
    th_versions: dict[str, dict[str, int]],
    timeout: float,
) -> tuple[float, float | None, float | None, int]:
    """Start Cambodia's fresh node; seconds to healthz, to listing every shared case and to matching versions
    (None: not within `timeout` of the start), and the cases it listed by then."""
    started = time.perf_counter()
    up = await start(http, kh)
    deadline = started + timeout

    async def listed() -> bool:
        page = await get(http, kh, "/api/v1/cases", {"limit": "1", "offset": str(shared - 1)})
        return len(page) == 1

    async def matching() -> bool:
        held = (await get(http, kh, "/api/v1/sync"))["documents"]
        cases = {d: v for d, v in held.items() if d.startswith("case/")}
        return len(cases) == shared and all(th_versions.get(d) == v for d, v in cases.items())

    times: list[float | None] = []
    for check, interval in ((listed, 0.05), (matching, 0.2)):
        while True:
            kh.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                if await check():
                    times.append(time.perf_counter() - started)
                    break
            if time.perf_counter() > deadline:
                times.append(None)
                break
            await asyncio.sleep(interval)
    return up, times[0], times[1], await cases_held(http, kh)


async def listed_all(http: aiohttp.ClientSession, kh: Running, shared: int) -> bool:
    return await cases_held(http, kh) >= shared


async def wire_bytes(
    http: aiohttp.ClientSession, th: Running, kh: Running, proxy: CountingProxy
) -> tuple[list[int], list[int]]:
    """Bytes big node -> Cambodia and back for each of WIRE_EDITS notes on a shared case, on an idle link."""
    case_id = (await get(http, kh, "/api/v1/cases", {"limit": "1"}))[0]["id"]
    updates: list[int] = []
    acks: list[int] = []
    for i in range(WIRE_EDITS):
        await proxy.quiet(0.3)
        up, down = proxy.up, proxy.down
        before = len((await get(http, kh, f"/api/v1/cases/{case_id}"))["notes"])
        body = {"text": f"Wire bench note {i}"}
        async with http.post(f"{th.url}/api/v1/cases/{case_id}/notes", json=body, headers=th.headers) as resp:
            if resp.status >= 400:
                raise SystemExit(f"bench: adding a note -> HTTP {resp.status}: {await resp.text()}")

        async def arrived(before: int = before) -> bool:
            return len((await get(http, kh, f"/api/v1/cases/{case_id}"))["notes"]) > before

        await until(arrived, "the note to reach the new peer", kh)
        await proxy.quiet(0.3)
        updates.append(proxy.down - down)
        acks.append(proxy.up - up)
    return updates, acks


def verdict(value: float, target: float) -> str:
    return "meets" if value < target else "MISSES"


async def measure(base: Path, meta: dict[str, Any], cases: int, shared: int, sync_timeout: float) -> float:
    th = Running(base / "node-th", free_port(), meta["th_token"])
    kh = Running(base / "node-kh", free_port(), meta["kh_token"])
    proxy = CountingProxy(th.port)
    await proxy.start()
    # Cambodia learns the big node's address of this run: the proxy's.
    keys = load_keyfile(NodeHome(th.home).keyfile, PASSPHRASE)
    with opened(kh.home) as node:
        node.peers.add_card(
            make_card(
                keys.identity,
                name="node-th",
                country="TH",
                role="authority",
                addresses=[f"http://127.0.0.1:{proxy.port}"],
            ),
            actor="bench",
        )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            starts = []
            for run in range(START_RUNS):
                starts.append(await start(http, th))
                if run < START_RUNS - 1:
                    th.stop()
            after_start = th.rss
            start_median = statistics.median(starts)
            print(
                f"start: {start_median:.2f} s median of {START_RUNS} ({', '.join(f'{s:.2f}' for s in starts)} s)"
                f"   target < {TARGETS['start']:.0f} s: {verdict(start_median, TARGETS['start'])}",
                flush=True,
            )
            print(f"  RSS after start      {after_start:8.1f} MB", flush=True)
            print("reads through the API (first call, median of 5):", flush=True)
            await timed_read(http, th, "needs action", {"needs_action": "true"})
            await timed_read(http, th, "search 'fraud' (common word)", {"q": "fraud"})
            rare = reference(rare_case(cases, shared))
            await timed_read(http, th, f"search '{rare}' (rare reference)", {"q": rare})
            await timed_read(http, th, "search 'ฟอกเงิน' (Thai word)", {"q": "ฟอกเงิน"})
            after_reads = th.rss
            rss_verdict = verdict(after_reads, TARGETS["rss"])
            print(f"  RSS after reads      {after_reads:8.1f} MB   target < {TARGETS['rss']:.0f} MB: {rss_verdict}")

            th_versions = (await get(http, th, "/api/v1/sync"))["documents"]
            started = time.perf_counter()
            th_cpu = th.cpu
            up, listed, matched, held = await initial_sync(http, kh, shared, th_versions, sync_timeout)
            # Both nodes' CPU over the sync (the new peer's includes its start): divided by the machine's cores, the
            # least time the sync could take if every core were busy with it throughout.
            cpu_th, cpu_kh = th.cpu - th_cpu, kh.cpu
            print(f"initial sync of {shared} shared cases to a new peer (from starting it):", flush=True)
            print(f"  its API up           {up:8.2f} s")
            if listed is None:
                print(
                    f"  all cases listed     > {sync_timeout:.0f} s   target < {TARGETS['sync']:.0f} s: MISSES "
                    f"(only {held} of {shared} held after {sync_timeout:.0f} s)"
                )
            else:
                print(
                    f"  all cases listed     {listed:8.2f} s   target < {TARGETS['sync']:.0f} s: "
                    f"{verdict(listed, TARGETS['sync'])}"
                )
            print(f"  all versions equal   {matched:8.2f} s" if matched is not None else "  all versions equal   n/a")
            print(f"  bytes through the proxy: {proxy.down} to the new peer, {proxy.up} back")
            cores = os.cpu_count() or 1
            print(
                f"  CPU: big node {cpu_th:.2f} s, new peer {cpu_kh:.2f} s; all of it over {cores} cores: "
                f"{(cpu_th + cpu_kh) / cores:.2f} s at the least",
                flush=True,
            )
            print(f"  RSS big node {th.rss:.1f} MB, new peer {kh.rss:.1f} MB", flush=True)
            synced = listed is not None
            if not synced:  # the wire bytes need a settled link: give the sync as long again to finish
                deadline = time.perf_counter() + sync_timeout
                while not synced and time.perf_counter() < deadline:
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        synced = await listed_all(http, kh, shared)
                print(f"  all {shared} held after {time.perf_counter() - started:.0f} s" if synced else "  still not")
            if not synced:
                print("wire bytes: not measured (the new peer never finished its initial sync)", flush=True)
                return after_reads / max(after_start, 0.1)
            updates, acks = await wire_bytes(http, th, kh, proxy)
            per_edit = statistics.median(u + a for u, a in zip(updates, acks, strict=True))
            print(f"wire bytes for one note on a shared case (median of {WIRE_EDITS}, WebSocket frames over TCP):")
            print(f"  update (big node -> peer) {statistics.median(updates):6.0f} B   {updates}")
            print(f"  ack (peer -> big node)    {statistics.median(acks):6.0f} B   {acks}")
            print(
                f"  per edit, both ways       {per_edit:6.0f} B   target < {TARGETS['edit']} B: "
                f"{verdict(per_edit, TARGETS['edit'])}",
                flush=True,
            )
    finally:
        kh.stop()
        th.stop()
        await proxy.close()
    return after_reads / max(after_start, 0.1)


def run(cases: int, shared: int, cache: Path, sync_timeout: float) -> None:
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()} ({sys.platform})", flush=True)
    print(f"cases: {cases} on the big node, {shared} of them shared with the new peer", flush=True)
    meta = cached(cache, cases, shared)
    base = Path(tempfile.mkdtemp(prefix="seajust-scale-bench-"))
    try:
        for name in ("node-th", "node-kh"):
            shutil.copytree(cache / name, base / name)
        size = sum(p.stat().st_size for p in (base / "node-th").rglob("*") if p.is_file())
        print(f"  big node's home      {size / 2**20:8.1f} MB (copied for this run)", flush=True)
        ratio = asyncio.run(measure(base, meta, cases, shared, sync_timeout))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"ratio {ratio:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100_000, help="cases on the big node (default 100000)")
    parser.add_argument("--shared", type=int, default=10_000, help="of them shared with the new peer (default 10000)")
    parser.add_argument("--cache", type=Path, help="where the generated homes are kept (default bench/.cache/...)")
    parser.add_argument(
        "--sync-timeout", type=float, default=300.0, help="seconds the initial sync is timed for (default 300)"
    )
    args = parser.parse_args(argv)
    if args.shared < 1 or args.cases < max(args.shared, 2) * 2:
        parser.error("--shared must be at least 1 and --cases at least twice --shared")
    cache = args.cache or Path(__file__).resolve().parent / ".cache" / f"scale-{args.cases}-{args.shared}"
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    run(args.cases, args.shared, cache.resolve(), args.sync_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
