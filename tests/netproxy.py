"""A controllable TCP proxy on loopback, to partition real node processes without network namespaces.

Each directed link (the node that dials -> the node it dials) gets its own listening port, and the
dialer is given that port as the other node's address, so every byte between two nodes passes
through the two links of the pair. Cutting a link aborts its open connections and makes it refuse
new ones (accepted, then reset at once: the dialer fails fast and backs off, as with a firewall
that rejects); healing lets it forward again. A partition is a set of groups: every link between
nodes of different groups is cut, every other one healed.

The proxy runs its own asyncio loop in a daemon thread, so a synchronous test drives it with plain
calls that return once the change is in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")
CHUNK = 64 * 1024


class Link(NamedTuple):
    dialer: str
    target: str


@dataclass
class _Route:
    target_port: int
    server: asyncio.Server | None = None
    cut: bool = False
    conns: set[asyncio.StreamWriter] = field(default_factory=set)
    forwarded: int = 0  # bytes passed either way; lets a test see that traffic really went through


class NetProxy:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netproxy", daemon=True)
        self._thread.start()
        self._routes: dict[Link, _Route] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- control (called from the test's thread) --

    def add(self, link: Link, target_port: int) -> int:
        """Forward a new port to 127.0.0.1:`target_port` for `link`; the port the dialer should use."""
        return self._call(self._add(link, target_port))

    def cut(self, link: Link) -> None:
        self._call(self._set(link, cut=True))

    def heal(self, link: Link) -> None:
        self._call(self._set(link, cut=False))

    def cut_pair(self, a: str, b: str) -> None:
        """Stop traffic both ways: each node dials and accepts, so both directed links are cut."""
        self.cut(Link(a, b))
        self.cut(Link(b, a))

    def heal_pair(self, a: str, b: str) -> None:
        self.heal(Link(a, b))
        self.heal(Link(b, a))

    def partition(self, groups: Iterable[Collection[str]]) -> None:
        """Cut every link between nodes of different groups and heal every other link."""
        group_of = {node: i for i, group in enumerate(groups) for node in group}
        for link in self._routes:
            same = group_of.get(link.dialer, -1) == group_of.get(link.target, -2)
            (self.heal if same else self.cut)(link)

    def heal_all(self) -> None:
        for link in self._routes:
            self.heal(link)

    def is_cut(self, link: Link) -> bool:
        return self._routes[link].cut

    def links(self) -> list[Link]:
        return list(self._routes)

    def forwarded(self, link: Link) -> int:
        return self._routes[link].forwarded

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> NetProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the loop's side --

    async def _add(self, link: Link, target_port: int) -> int:
        assert link not in self._routes, f"{link} already proxied"
        route = _Route(target_port)
        route.server = await asyncio.start_server(lambda r, w: self._accept(route, r, w), "127.0.0.1", 0)
        self._routes[link] = route
        return int(route.server.sockets[0].getsockname()[1])

    async def _set(self, link: Link, *, cut: bool) -> None:
        route = self._routes[link]
        route.cut = cut
        if cut:
            for writer in list(route.conns):
                writer.transport.abort()  # a reset, not a polite close: what a dropped network looks like
            route.conns.clear()

    def _accept(self, route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(route, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, route: _Route, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if route.cut:
            client_w.transport.abort()
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", route.target_port)
        except OSError:
            client_w.transport.abort()
            return
        if route.cut:  # cut while connecting
            client_w.transport.abort()
            upstream_w.transport.abort()
            return
        route.conns |= {client_w, upstream_w}
        try:
            await asyncio.gather(self._pipe(route, client_r, upstream_w), self._pipe(route, upstream_r, client_w))
        finally:
            route.conns -= {client_w, upstream_w}
            for writer in (client_w, upstream_w):
                writer.transport.abort()

    @staticmethod
    async def _pipe(route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until either side ends; then end the other direction too (no half-open links)."""
        try:
            while data := await reader.read(CHUNK):
                if writer.transport.is_closing():
                    break
                route.forwarded += len(data)  # counted first: the peer may read it before `write` returns
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _close(self) -> None:
        for route in self._routes.values():
            if route.server is not None:
                route.server.close()
            for writer in route.conns:
                writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for route in self._routes.values():
            if route.server is not None:
                with contextlib.suppress(Exception):
                    await route.server.wait_closed()
