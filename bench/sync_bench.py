"""How long one directory edit takes to travel from node A's API to node B's API, with and without envelope crypto.

Two pairs of real nodes (`node.runtime.open_node` on temporary homes, served by aiohttp on
127.0.0.1), in this one process; in each pair A and B trust each other and sync over their
WebSocket link. One pair uses the real `SealedCodec` (every sync message signed and
encrypted), the other `PlainCodec` below, which frames the same header and payload with no
signature and no encryption. `PlainCodec` exists only here, to price the envelope; no node
ever uses it.

    latency     PATCH one contact on A, then wait until B's GET /api/v1/contacts/{id} shows
                the edit (B's sync engine wakes the waiter; each check is a real API call);
                median and p90 over --edits sequential edits. The two pairs take turns edit
                by edit, so a busy machine slows both alike.
    throughput  POST --burst (default: --edits) new contacts to A, 8 requests in flight, then
                wait until B's GET /api/v1/sync reports A's directory at A's version: edits
                per second, from the first request to B holding them all.

The last line is `ratio R`: sealed median latency / plain median latency. Timings are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from benchlib import PASSPHRASE, free_port

from crypto.envelope import EnvelopeHeader, OpenedEnvelope
from crypto.errors import EnvelopeRejected, RejectReason
from crypto.identity import Identity
from node.app import create_app
from node.cli import PASSPHRASE_ENV
from node.cli import main as cli_main
from node.policy import directory_doc
from node.runtime import Node, open_node
from node.tokens import create_token
from sync.protocol import SEALED, EnvelopeCodec

WARMUP_EDITS = 10
BURST_IN_FLIGHT = 8
WAIT_TIMEOUT = 60.0  # seconds for any one edit or burst to arrive before the bench gives up


class PlainCodec:
    """Header fields and payload framed as they are, with no signature and no encryption: for this bench only.

    Frame: b"SJP1" + u8 len + sender_id + u8 len + recipient_id + u16 len + topic + stream (16) + seq (u64)
    + payload. It checks what costs nothing (addressed to us, sender known) and nothing else.
    """

    MAGIC = b"SJP1"
    _SEQ = struct.Struct(">Q")

    def seal(
        self,
        sender: Identity,
        *,
        recipient_id: str,
        recipient_kx_key: bytes,
        topic: str,
        stream: bytes,
        seq: int,
        payload: bytes,
    ) -> bytes:
        sender_id = sender.node_id.encode("ascii")
        recipient = recipient_id.encode("ascii")
        topic_bytes = topic.encode("utf-8")
        return b"".join(
            [
                self.MAGIC,
                bytes([len(sender_id)]),
                sender_id,
                bytes([len(recipient)]),
                recipient,
                len(topic_bytes).to_bytes(2, "big"),
                topic_bytes,
                bytes(stream),
                self._SEQ.pack(seq),
                bytes(payload),
            ]
        )

    def _parse(self, data: bytes) -> tuple[EnvelopeHeader, bytes]:
        data = bytes(data)
        if not data.startswith(self.MAGIC):
            raise EnvelopeRejected(RejectReason.MALFORMED, "not a plain frame")
        pos = len(self.MAGIC)

        def take(size: int) -> bytes:
            nonlocal pos
            if pos + size > len(data):
                raise EnvelopeRejected(RejectReason.MALFORMED, "truncated")
            chunk = data[pos : pos + size]
            pos += size
            return chunk

        sender_id = take(take(1)[0]).decode("ascii")
        recipient_id = take(take(1)[0]).decode("ascii")
        topic = take(int.from_bytes(take(2), "big")).decode("utf-8")
        stream = take(16)
        (seq,) = self._SEQ.unpack(take(self._SEQ.size))
        header = EnvelopeHeader(sender_id=sender_id, recipient_id=recipient_id, topic=topic, stream=stream, seq=seq)
        return header, data[pos:]

    def open(
        self, recipient: Identity, data: bytes, *, sender_sign_key: Callable[[str], bytes | None]
    ) -> OpenedEnvelope:
        header, payload = self._parse(data)
        if header.recipient_id != recipient.node_id:
            raise EnvelopeRejected(RejectReason.WRONG_RECIPIENT)
        if sender_sign_key(header.sender_id) is None:
            raise EnvelopeRejected(RejectReason.UNTRUSTED_SENDER)
        return OpenedEnvelope(header=header, payload=payload)

    def peek(self, data: bytes) -> EnvelopeHeader:
        return self._parse(data)[0]


@dataclass
class Served:
    """One node of the pair: the node, its web server, and a token for its API."""

    node: Node
    runner: web.AppRunner
    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Figures:
    label: str
    latencies_ms: list[float]
    burst_edits: int
    burst_seconds: float

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.latencies_ms, n=10, method="inclusive")[-1]

    @property
    def throughput(self) -> float:
        return self.burst_edits / self.burst_seconds


def make_home(base: Path, name: str, country: str) -> tuple[Path, int]:
    home, port = base / name, free_port()
    with contextlib.redirect_stdout(io.StringIO()):  # init prints the node ID
        code = cli_main(["init", str(home), "--name", name, "--country", country, "--listen", f"127.0.0.1:{port}"])
    if code != 0:
        raise SystemExit(f"bench: could not create a node home in {home}")
    return home, port


async def serve(node: Node, port: int) -> Served:
    runner = web.AppRunner(create_app(node), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Served(node, runner, f"http://127.0.0.1:{port}", create_token(node.db, "bench"))


@contextlib.asynccontextmanager
async def node_pair(base: Path, codec: EnvelopeCodec) -> AsyncIterator[tuple[Served, Served]]:
    """Two fresh nodes that trust each other, use `codec` for every session, and are connected."""
    (home_a, port_a), (home_b, port_b) = make_home(base, "node-a", "TH"), make_home(base, "node-b", "VN")
    a, b = open_node(home_a, PASSPHRASE), open_node(home_b, PASSPHRASE)
    a.peers.add_card(b.card(), actor="bench")
    b.peers.add_card(a.card(), actor="bench")
    for node in (a, b):
        node.engine.codec = codec  # before any session exists
    served: list[Served] = []
    try:
        served.append(await serve(a, port_a))
        served.append(await serve(b, port_b))
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not (a.engine.is_connected(b.node_id) and b.engine.is_connected(a.node_id)):
            if time.monotonic() > deadline:
                raise SystemExit("bench: the two nodes did not connect")
            await asyncio.sleep(0.01)
        yield served[0], served[1]
    finally:
        for s in reversed(served):
            await s.runner.cleanup()  # closes the node too (its cleanup_ctx)
        for node in (a, b)[len(served) :]:
            node.close()


async def call(http: aiohttp.ClientSession, method: str, to: Served, path: str, body: Any = None) -> Any:
    async with http.request(method, to.url + path, json=body, headers=to.headers) as resp:
        if resp.status >= 400:
            raise SystemExit(f"bench: {method} {path} -> HTTP {resp.status}: {await resp.text()}")
        return await resp.json()


async def wait_on(b: Served, seen: Callable[[], Any]) -> None:
    """Until `seen()` (an API call to B) is true, re-checking whenever B's sync engine stores something."""
    changed = b.node.engine.changed
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        changed.clear()
        if await seen():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SystemExit("bench: the edit did not reach node B in time")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(remaining, 0.05))


class EditProbe:
    """Edits one contact on A and times each edit until B's API shows it."""

    def __init__(self, http: aiohttp.ClientSession, a: Served, b: Served) -> None:
        self.http, self.a, self.b = http, a, b
        self.path = ""
        self.latencies_ms: list[float] = []

    async def setup(self) -> None:
        body = {"name": "Bench Officer", "expertise": ["extradition"]}
        self.path = f"/api/v1/contacts/{(await call(self.http, 'POST', self.a, '/api/v1/contacts', body))['id']}"

    async def edit(self, i: int, *, record: bool) -> None:
        title = f"Public Prosecutor, edit {i}"
        started = time.perf_counter()
        await call(self.http, "PATCH", self.a, self.path, {"title": title})

        async def arrived() -> bool:
            async with self.http.get(self.b.url + self.path, headers=self.b.headers) as resp:
                return resp.status == 200 and (await resp.json())["title"] == title

        await wait_on(self.b, arrived)
        if record:
            self.latencies_ms.append((time.perf_counter() - started) * 1000)


async def burst(http: aiohttp.ClientSession, a: Served, b: Served, edits: int) -> float:
    doc = directory_doc(a.node.node_id)
    slots = asyncio.Semaphore(BURST_IN_FLIGHT)

    async def create(i: int) -> None:
        async with slots:
            await call(http, "POST", a, "/api/v1/contacts", {"name": f"Burst Officer {i}", "languages": ["en"]})

    started = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(edits)))
    target = (await call(http, "GET", a, "/api/v1/sync"))["documents"][doc]

    async def caught_up() -> bool:
        held = (await call(http, "GET", b, "/api/v1/sync"))["documents"].get(doc, {})
        return all(held.get(author, 0) >= seq for author, seq in target.items())

    await wait_on(b, caught_up)
    return time.perf_counter() - started


def report(figures: Figures) -> None:
    print(f"{figures.label}:", flush=True)
    print(f"  latency median     {figures.median:8.2f} ms   (A's API -> B's API, {len(figures.latencies_ms)} edits)")
    print(f"  latency p90        {figures.p90:8.2f} ms")
    print(
        f"  throughput         {figures.throughput:8.1f} edits/s "
        f"({figures.burst_edits} edits in {figures.burst_seconds:.2f} s, {BURST_IN_FLIGHT} in flight)",
        flush=True,
    )


async def run(edits: int, burst_edits: int) -> None:
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()} ({sys.platform})", flush=True)
    print(f"latency edits: {edits} (after {WARMUP_EDITS} warm-up edits); burst: {burst_edits} edits", flush=True)
    with tempfile.TemporaryDirectory(prefix="seajust-bench-") as tmp:
        async with (
            node_pair(Path(tmp) / "sealed", SEALED) as sealed_pair,
            node_pair(Path(tmp) / "plain", PlainCodec()) as plain_pair,
            aiohttp.ClientSession() as http,
        ):
            sealed, plain = EditProbe(http, *sealed_pair), EditProbe(http, *plain_pair)
            for probe in (sealed, plain):
                await probe.setup()
            # Edit by edit, alternating which path goes first, so both see the same machine load.
            for i in range(WARMUP_EDITS + edits):
                for probe in (sealed, plain) if i % 2 else (plain, sealed):
                    await probe.edit(i, record=i >= WARMUP_EDITS)
            sealed_seconds = await burst(http, *sealed_pair, burst_edits)
            plain_seconds = await burst(http, *plain_pair, burst_edits)
    results = (
        Figures("sealed envelopes (signed + encrypted, SealedCodec)", sealed.latencies_ms, burst_edits, sealed_seconds),
        Figures(
            "plain frames (no signature, no encryption, bench-only PlainCodec)",
            plain.latencies_ms,
            burst_edits,
            plain_seconds,
        ),
    )
    for figures in results:
        report(figures)
    print(f"envelope cost: {results[0].median - results[1].median:.2f} ms per edit (difference of the medians)")
    print(f"ratio {results[0].median / results[1].median:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--edits", type=int, default=300, help="sequential edits timed for latency (default 300)")
    parser.add_argument("--burst", type=int, help="edits sent at once for throughput (default: as many as --edits)")
    args = parser.parse_args(argv)
    burst_edits = args.edits if args.burst is None else args.burst
    if args.edits < 2 or burst_edits < 1:
        parser.error("--edits must be at least 2 and --burst at least 1")
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    asyncio.run(run(args.edits, burst_edits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
