"""The web server of a node: API, sync endpoint and background work, started and stopped together.

Long-lived resources (the HTTP client the dialer uses, the background tasks) live in one
`cleanup_ctx`, so they start after the app is configured and are closed, flushed and
snapshotted however the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from node import blob_sync
from node.api import add_routes, auth_middleware, error_middleware
from node.errors import StorageError
from node.lan_offers import CARD_PATH
from node.metrics import setup_metrics
from node.policy import is_case
from node.reporting import INTERVALS
from node.runtime import NODE_KEY, Node
from node.storage import fault_behind
from node.tls import client_session
from sync.blob_transfer import BlobRequestChecker
from sync.blob_transport import BLOB_PATH, blob_handler
from sync.discovery import Discovery
from sync.invite_transport import INVITE_PATH, invitation_handler
from sync.messages import SignedUpdate
from sync.transport import SYNC_PATH, Dialer, websocket_handler
from ui.web import setup_ui

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WATCH_INTERVAL = 1.0  # seconds between checks for changes made by another process (the CLI)
FLUSH_INTERVAL = 5.0
COMPACT_INTERVAL = 300.0
RETENTION_INTERVAL = 3600.0  # hourly: key epochs and shredding are decided by day, so this is early enough
REPORT_FIRST = 10.0  # seconds after start before the first scheduled statistics report


async def _every(seconds: float, work: Callable[[], object], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            work()
        except StorageError as exc:
            if fault_behind(exc) is None:
                log.warning("background task %s could not write: %s", name, exc)
            # else the database logged the disk fault once; the task tries again next time
        except Exception:  # keep the node running; the log says what failed
            log.exception("background task %s failed", name)


def _watcher(node: Node) -> Callable[[], None]:
    seen = [node.db.data_version()]

    def check() -> None:
        version = node.db.data_version()
        if version != seen[0]:
            seen[0] = version
            node.peers_changed()
            node.membership.refresh()  # a secretariat trusted from the CLI may be the roster's anchor

    return check


async def _report_on_schedule(node: Node) -> None:
    """Refresh the statistics report soon after start, then daily or weekly as configured."""
    await asyncio.sleep(REPORT_FIRST)
    while True:
        try:
            node.reporting.scheduled()
        except StorageError as exc:  # the next run tries again
            if fault_behind(exc) is None:
                log.warning("scheduled statistics report could not be stored: %s", exc)
        except Exception:  # the next run tries again; the log says what failed
            log.exception("scheduled statistics report failed")
        await asyncio.sleep(INTERVALS.get(node.reporting.schedule, INTERVALS["daily"]))


async def _group_commits_ctx(app: web.Application) -> AsyncIterator[None]:
    """While the node serves, the document store's writes of one loop turn share a commit (node.storage)."""
    node = app[NODE_KEY]
    node.db.group_commits(asyncio.get_running_loop())
    yield
    node.db.stop_grouping()


@web.middleware
async def durable_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No answer says a change was made before it is committed; if the commit fails, the answer says so."""
    db = request.app[NODE_KEY].db
    mark = db.commit_mark()
    response = await handler(request)
    await db.durable(mark)
    return response


async def _sync_ctx(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE_KEY]
    http = client_session(node.config.peer_tls)
    node.dialer = Dialer(node.engine, http)
    node.peers_changed()
    wake_fetcher = asyncio.Event()

    def case_stored(entries: Sequence[SignedUpdate], source: str | None) -> None:
        if source is not None and any(is_case(e.doc_id) for e in entries):
            wake_fetcher.set()

    node.store.on_stored(case_stored)
    tasks = [
        asyncio.create_task(blob_sync.run(node, http, wake_fetcher)),
        asyncio.create_task(_report_on_schedule(node)),
        asyncio.create_task(_every(WATCH_INTERVAL, _watcher(node), "peer watcher")),
        asyncio.create_task(_every(FLUSH_INTERVAL, node.flush_sync_state, "flush")),
        asyncio.create_task(_every(COMPACT_INTERVAL, node.store.compact_all, "compaction")),
        asyncio.create_task(_every(RETENTION_INTERVAL, node.retention.run, "case key retention")),
    ]
    if node.mail.relays:
        tasks.append(asyncio.create_task(node.mail.run(http, node.config.relay_interval)))
    discovery = None
    fetches: list[asyncio.Task[object]] = []  # cards offered on the LAN being fetched
    if node.config.discovery:
        discovery = Discovery(
            sign_key=node.identity.public.sign_key,
            port=node.config.port,
            host=node.config.host,
            trusted=lambda: {p.node_id: p.sign_key for p in node.peers.all()},
            on_found=node.found_on_lan,
            offering=node.lan_offers.offering,
            on_offer=lambda addresses: fetches.append(asyncio.create_task(node.lan_offers.fetch(http, addresses))),
        )
        await discovery.start()
    log.info("node %s (%s) starting", node.node_id, node.config.name)
    yield
    if discovery is not None:
        await discovery.stop()
    for task in [*tasks, *fetches]:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await node.dialer.close()
    await http.close()
    node.close()


async def _close_sessions(app: web.Application) -> None:
    """On shutdown, end peer sessions first: their handlers would otherwise hold the server open."""
    node = app[NODE_KEY]
    if node.dialer is not None:
        await node.dialer.close()
    node.engine.disconnect_all()
    await asyncio.sleep(0)


def _invitation_handler(node: Node) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    def answer(claim: Mapping[str, Any]) -> dict[str, str]:
        reply = node.invitations.answer_claim(claim)
        node.peers_changed()  # dial the new peer now
        return reply

    return invitation_handler(answer)


def _blob_handler(node: Node) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    def may_fetch(peer_id: str, blob_id: str) -> bool:
        owner = node.cases.blob_owner(blob_id)
        return owner is not None and peer_id in node.case_keys.roles(owner[0])

    return blob_handler(
        BlobRequestChecker(node.node_id, node.peers.sign_key),
        may_fetch=may_fetch,
        blob_path=lambda blob_id: node.blobs.path(blob_id) if node.blobs.has(blob_id) else None,
        rejections=node.rejections.record,
    )


def _card_handler(node: Node) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """This node's card, only while an admin has it offered on the LAN (`node.lan_offers`)."""

    async def card(request: web.Request) -> web.StreamResponse:
        if not node.lan_offers.offering():
            return web.json_response({"error": "this node is not offering its card"}, status=404)
        return web.Response(text=node.card(), content_type="text/plain")

    return card


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Behind a TLS-terminating proxy (`behind_proxy`), see the request as the proxy received it."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    client = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    changes: dict[str, str] = {}
    if proto in ("http", "https"):
        changes["scheme"] = proto
    if client:
        changes["remote"] = client
    return await handler(request.clone(**changes) if changes else request)  # type: ignore[arg-type]


@web.middleware
async def storage_fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A change the disk refused reaches the caller as that fault (507 full, 503 read-only), with what the
    operator must do, however the layers between wrapped it."""
    try:
        return await handler(request)
    except (StorageError, OSError) as exc:
        fault = fault_behind(exc)
        if fault is None or fault is exc:
            raise
        raise fault from exc


def create_app(node: Node) -> web.Application:
    middlewares = [forwarded_middleware] if node.config.behind_proxy else []
    app = web.Application(
        middlewares=[*middlewares, error_middleware, storage_fault_middleware, durable_middleware, auth_middleware],
        client_max_size=2 * 1024 * 1024,
    )
    app[NODE_KEY] = node
    add_routes(app)
    setup_metrics(app)
    app.router.add_get(SYNC_PATH, websocket_handler(node.engine))  # type: ignore[arg-type]
    app.router.add_get(BLOB_PATH, _blob_handler(node))
    app.router.add_post(INVITE_PATH, _invitation_handler(node))
    app.router.add_get(CARD_PATH, _card_handler(node))
    setup_ui(app)
    app.cleanup_ctx.append(_group_commits_ctx)
    app.cleanup_ctx.append(_sync_ctx)
    app.on_shutdown.append(_close_sessions)
    return app
