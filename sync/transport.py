"""The sync transport: WebSockets over aiohttp, the only sync module that touches the network.

A WebSocket, rather than one HTTP request per message, because a session is a conversation
(hello, versions, a stream of pushes and acks, in order) and the sequence numbers that stop
replays rely on that order; one long-lived connection also pushes a change within a
millisecond instead of waiting for a poll. Either side may dial: the dialer runs for every
trusted peer that has an address and no live session, backing off (0.5 s doubling to 30 s,
with jitter) while the peer is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Final

import aiohttp
from aiohttp import web

from sync.engine import SyncEngine
from sync.protocol import Role

log = logging.getLogger(__name__)

SYNC_PATH: Final = "/sync/v1"
MAX_MESSAGE: Final = 80 * 1024 * 1024
BACKOFF_FIRST: Final = 0.5
BACKOFF_MAX: Final = 30.0
HEARTBEAT: Final = 20.0
CLOSE_TIMEOUT: Final = 5.0


async def _binary_frames(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> AsyncIterator[bytes]:
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.BINARY:
            yield msg.data
        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
            return
        else:
            return  # text frames are not part of the protocol


def websocket_handler(engine: SyncEngine) -> Callable[[web.Request], object]:
    """The aiohttp handler peers dial; the first envelope says who they are."""

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=HEARTBEAT)
        await ws.prepare(request)
        session = engine.new_session(Role.ACCEPTOR)
        try:
            await engine.serve(session, _binary_frames(ws), ws.send_bytes, ws.close)
        finally:
            await ws.close()
        return ws

    return handle


class Dialer:
    """Keeps one dialling task per trusted peer with an address."""

    def __init__(self, engine: SyncEngine, session: aiohttp.ClientSession) -> None:
        self._engine = engine
        self._http = session
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._addresses: dict[str, tuple[str, ...]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def update(self, peers: dict[str, tuple[str, ...]]) -> None:
        """Dial these peers (node ID -> base URLs) from now on; stop dialling any others."""
        for peer_id in list(self._tasks):
            if peer_id not in peers or not peers[peer_id]:
                self._tasks.pop(peer_id).cancel()
                self._engine.disconnect(peer_id)
        for peer_id, addresses in peers.items():
            changed = self._addresses.get(peer_id) != addresses
            self._addresses[peer_id] = addresses
            if addresses and peer_id not in self._tasks:
                self._wake[peer_id] = asyncio.Event()
                self._tasks[peer_id] = asyncio.create_task(self._dial_forever(peer_id), name=f"dial {peer_id}")
            elif changed and peer_id in self._wake:
                self._wake[peer_id].set()

    def wake_all(self) -> None:
        """Retry every peer now (e.g. the network came back)."""
        for event in self._wake.values():
            event.set()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a shutdown must end even if a dial is stuck in a library call
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        self._tasks.clear()

    async def _dial_forever(self, peer_id: str) -> None:
        delay = BACKOFF_FIRST
        while True:
            if self._engine.is_connected(peer_id):
                await self._sleep(peer_id, 1.0)
                continue
            connected = False
            for address in self._addresses.get(peer_id, ()):
                try:
                    connected = await self._dial(peer_id, address)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    log.debug("dialling %s at %s failed: %s", peer_id, address, type(exc).__name__)
                except Exception:  # a bug must not end this task: the peer would never be dialled again
                    log.exception("session with %s at %s failed", peer_id, address)
                if connected:
                    break
            if connected:
                delay = BACKOFF_FIRST
                await self._sleep(peer_id, 0.2)
            else:
                await self._sleep(peer_id, delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_MAX)

    async def _sleep(self, peer_id: str, seconds: float) -> None:
        wake = self._wake[peer_id]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for, which can lose a cancellation on Python 3.11
                await wake.wait()
        wake.clear()

    async def _dial(self, peer_id: str, address: str) -> bool:
        url = address.rstrip("/") + SYNC_PATH
        async with self._http.ws_connect(
            url, max_msg_size=MAX_MESSAGE, heartbeat=HEARTBEAT, timeout=aiohttp.ClientWSTimeout(ws_close=5)
        ) as ws:
            session = self._engine.new_session(Role.DIALER, expected_peer=peer_id)
            await self._engine.serve(session, _binary_frames(ws), ws.send_bytes, ws.close)
            return session.was_established
