"""The relay server: a mailbox over HTTP so two nodes that are never online together still sync.

Any member (typically the secretariat) may run one with `seajust relay DATA_DIR`; nodes need not
trust it. Every envelope is signed by its sender and encrypted for its recipient before it leaves
the node (`crypto.envelope`), so the relay holds keys for nothing: it sees the routing header
(sender and recipient node IDs, stream, seq, an empty topic), sizes and times, never content, and
it can delay or drop mail but not read, alter or forge it (the recipient's checks would refuse it).

Each request is signed by the node making it (`sync.relay_auth`), which the relay checks without
a member list, because a node ID is the hash of the node's public keys. A node may deposit only
envelopes whose header names it as sender, and fetch and acknowledge only mail addressed to it.
Mail is kept until acknowledged or until it expires (`ttl_seconds`, 14 days by default), within a
quota per sender and a cap for the whole relay (`sync.relay_store`).

    POST /relay/v1/deposit   body: frames (u32 length + envelope)      -> {"stored": n, "expires_at": t}
    POST /relay/v1/fetch     body: {"after": id, "max_bytes": n}       -> frames (u64 id + u32 length + envelope)
    POST /relay/v1/ack       body: {"upto": id}                        -> {"deleted": n}
    GET  /relay/v1/status    aggregate counts, no node IDs
    GET  /healthz            {"ok": true}

Errors are JSON `{"error": ...}` with a 4xx status; every token failure is the same 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from sync.relay_auth import SCHEME, RelayRejectReason, RelayRequestChecker, RelayRequestRejected
from sync.relay_frames import MAX_ID, FrameError, decode_deposit, encode_mail
from sync.relay_store import (
    DEFAULT_MAX_PER_SENDER,
    DEFAULT_MAX_TOTAL,
    DEFAULT_TTL,
    MIB,
    RelayRefused,
    RelayStore,
)

log = logging.getLogger(__name__)

DEPOSIT_PATH: Final = "/relay/v1/deposit"
FETCH_PATH: Final = "/relay/v1/fetch"
ACK_PATH: Final = "/relay/v1/ack"
STATUS_PATH: Final = "/relay/v1/status"
HEALTH_PATH: Final = "/healthz"
MAX_DEPOSIT_BODY: Final = 80 * MIB
MAX_JSON_BODY: Final = 4096
DEFAULT_FETCH_BYTES: Final = 32 * MIB
MAX_FETCH_BYTES: Final = 64 * MIB
EXPIRE_EVERY: Final = 60.0
_REFUSED: Final = "relay request refused"  # the same body for every token failure: a forger learns nothing

RELAY_STORE: Final = web.AppKey("relay_store", RelayStore)
RELAY_CHECKER: Final = web.AppKey("relay_checker", RelayRequestChecker)
_TTL: Final = web.AppKey("relay_ttl", float)
_MAX_DEPOSIT: Final = web.AppKey("relay_max_deposit", int)
_EXPIRE_EVERY: Final = web.AppKey("relay_expire_every", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadRequest(Exception):
    """Bad input from the network, answered with JSON and never a traceback."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One place where failures become `{"error": ...}`: a relay talks to programs, not browsers."""
    try:
        return await handler(request)
    except _BadRequest as exc:
        return _json_error(exc.status, exc.message, exc.headers)
    except RelayRefused as exc:
        return _json_error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json_error(exc.status, exc.reason, {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)
    except Exception:
        log.exception("relay request failed")
        return _json_error(500, "the relay could not do that")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """Read at most `limit` bytes, refusing early on a declared or actual larger body."""
    if request.content_length is not None and request.content_length > limit:
        raise _BadRequest(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise _BadRequest(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _authenticate(request: web.Request, op: str, body: bytes) -> str:
    header = request.headers.get("Authorization")
    try:
        if header is None:
            raise RelayRequestRejected(RelayRejectReason.MALFORMED, "no Authorization header")
        return request.app[RELAY_CHECKER].check(header, op, body)
    except RelayRequestRejected as exc:
        log.info("refused relay %s request from %s: %s", op, exc.peer or "unknown node", exc.reason.value)
        raise _BadRequest(401, _REFUSED, {"WWW-Authenticate": SCHEME}) from None


def _json_fields(body: bytes, required: frozenset[str], optional: frozenset[str] = frozenset()) -> dict[str, int]:
    """A small JSON object of non-negative integers, exactly these keys; anything else is 400."""
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _BadRequest(400, "request body is not JSON") from None
    if not isinstance(fields, dict) or not required <= set(fields) <= required | optional:
        raise _BadRequest(400, f"request body must be a JSON object with {', '.join(sorted(required))}")
    for key, value in fields.items():
        if type(value) is not int or not 0 <= value <= MAX_ID:
            raise _BadRequest(400, f"{key} must be a non-negative integer")
    return fields


async def _deposit(request: web.Request) -> web.StreamResponse:
    body = await _read_body(request, request.app[_MAX_DEPOSIT])
    node = _authenticate(request, "deposit", body)
    try:
        envelopes = decode_deposit(body)
    except FrameError as exc:
        raise _BadRequest(400, exc.message) from None
    store = request.app[RELAY_STORE]
    ttl = request.app[_TTL]
    now = store.clock()
    try:
        ids = await asyncio.to_thread(store.deposit, node, envelopes, ttl_seconds=ttl, now=now)
    except RelayRefused as exc:
        log.info("refused deposit from %s: %s (%s)", node, exc.status, exc.message)
        raise
    if ids:
        log.debug("stored %d envelopes from %s", len(ids), node)
    return web.json_response({"stored": len(ids), "expires_at": int(now + ttl)})


async def _fetch(request: web.Request) -> web.StreamResponse:
    body = await _read_body(request, MAX_JSON_BODY)
    node = _authenticate(request, "fetch", body)
    fields = _json_fields(body, frozenset({"after"}), frozenset({"max_bytes"}))
    max_bytes = min(fields.get("max_bytes", DEFAULT_FETCH_BYTES), MAX_FETCH_BYTES)
    if max_bytes < 1:
        raise _BadRequest(400, "max_bytes must be at least 1")
    store = request.app[RELAY_STORE]
    items = await asyncio.to_thread(store.fetch, node, fields["after"], max_bytes)
    return web.Response(
        body=encode_mail(items),
        content_type="application/octet-stream",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


async def _ack(request: web.Request) -> web.StreamResponse:
    body = await _read_body(request, MAX_JSON_BODY)
    node = _authenticate(request, "ack", body)
    fields = _json_fields(body, frozenset({"upto"}))
    deleted = await asyncio.to_thread(request.app[RELAY_STORE].ack, node, fields["upto"])
    return web.json_response({"deleted": deleted})


async def _status(request: web.Request) -> web.StreamResponse:
    usage = await asyncio.to_thread(request.app[RELAY_STORE].usage)
    return web.json_response(
        {"messages": usage.messages, "bytes": usage.bytes, "senders": usage.senders, "recipients": usage.recipients},
        headers={"Cache-Control": "no-store"},
    )


async def _health(_: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


async def _expire_once(store: RelayStore) -> None:
    try:
        deleted = await asyncio.to_thread(store.expire)
    except sqlite3.Error as exc:  # a busy or full disk must not stop the relay; the next round retries
        log.warning("could not expire relay mail: %s", exc)
        return
    if deleted:
        log.info("expired %d envelopes", deleted)


async def _expire_periodically(store: RelayStore, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await _expire_once(store)


async def _expiry(app: web.Application) -> AsyncIterator[None]:
    """Expire on start (mail may have aged while the relay was down), then every `expire_every` seconds."""
    store = app[RELAY_STORE]
    await _expire_once(store)
    task = asyncio.create_task(_expire_periodically(store, app[_EXPIRE_EVERY]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_relay_app(
    store: RelayStore,
    *,
    checker: RelayRequestChecker,
    ttl_seconds: float = DEFAULT_TTL,
    max_deposit_body: int = MAX_DEPOSIT_BODY,
    expire_every: float = EXPIRE_EVERY,
) -> web.Application:
    """The relay's web application; the caller owns `store` and closes it after the app stops."""
    app = web.Application(middlewares=[_errors_as_json], client_max_size=max_deposit_body + 1024)
    app[RELAY_STORE] = store
    app[RELAY_CHECKER] = checker
    app[_TTL] = float(ttl_seconds)
    app[_MAX_DEPOSIT] = max_deposit_body
    app[_EXPIRE_EVERY] = float(expire_every)
    app.cleanup_ctx.append(_expiry)
    app.router.add_post(DEPOSIT_PATH, _deposit)
    app.router.add_post(FETCH_PATH, _fetch)
    app.router.add_post(ACK_PATH, _ack)
    app.router.add_get(STATUS_PATH, _status)
    app.router.add_get(HEALTH_PATH, _health)
    return app


async def run_relay(
    data_dir: Path,
    host: str,
    port: int,
    *,
    ttl_seconds: float = DEFAULT_TTL,
    max_per_sender: int = DEFAULT_MAX_PER_SENDER,
    max_total: int = DEFAULT_MAX_TOTAL,
    announce: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve a relay from `data_dir` (created if missing) until `stop` is set, or, without one, until
    SIGINT or SIGTERM. `announce(url)` is called once the port is bound. A port that cannot be bound
    raises `OSError`; the store is closed whatever happens."""
    store = RelayStore.in_directory(data_dir, max_per_sender=max_per_sender, max_total=max_total)
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    app = make_relay_app(store, checker=RelayRequestChecker(), ttl_seconds=ttl_seconds)
    # No access log: it would record which node asked when, which the relay need not keep.
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        if announce is not None:
            announce(f"http://{host}:{port}")
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()
        for signum in handled:
            loop.remove_signal_handler(signum)
