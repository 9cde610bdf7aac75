"""What an operator's Prometheus scrapes at `GET /metrics`: sync health and request latency, never content.

Most figures are read from the node when scraped (a collector), so they cannot drift from what the
node reports elsewhere: whether each peer is connected, how long since it last synced, how many
signed updates wait for it (its outbox), refused input by reason, relay rounds, documents and cases,
whether the database takes writes and how many writes its disk refused. Request latency is a
histogram kept by a middleware, labelled by route pattern (never the concrete path, which holds
case IDs) and status class. Each app has its own registry, so several nodes in one process (tests)
do not mix figures.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.openapi_parts import _errors
from node.runtime import NODE_KEY, Node

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY_KEY: Final = web.AppKey("metrics_registry", CollectorRegistry)
LATENCY_KEY: Final = web.AppKey("metrics_latency", Histogram)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _age(when: str | None, now: float) -> float | None:
    if not when:
        return None
    try:
        return max(0.0, now - datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


class NodeCollector(Collector):
    def __init__(self, node: Node, clock: Callable[[], float] = time.time) -> None:
        self._node = node
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        node, now = self._node, self._clock()
        connected = GaugeMetricFamily(
            "seajust_peer_connected", "1 if a sync session with the peer is live", labels=["peer"]
        )
        lag = GaugeMetricFamily(
            "seajust_peer_sync_lag_seconds", "Seconds since the last exchange with the peer", labels=["peer"]
        )
        outbox = GaugeMetricFamily(
            "seajust_peer_outbox_updates", "Signed updates the peer is not known to hold yet", labels=["peer"]
        )
        peers = node.peers.all()
        for peer, status in zip(peers, node.peer_statuses(peers), strict=True):
            connected.add_metric([peer.node_id], 1.0 if status["connected"] else 0.0)
            outbox.add_metric([peer.node_id], float(status["outbox"]))
            age = _age(status["last_sync"], now)
            if age is not None:
                lag.add_metric([peer.node_id], age)
        yield from (connected, lag, outbox)
        rejected = CounterMetricFamily(
            "seajust_rejected", "Refused sync messages, grants, blob requests and mail, by reason", labels=["reason"]
        )
        for reason, count in sorted(node.rejections.counts.items()):
            rejected.add_metric([reason], float(count))
        yield rejected
        relay = GaugeMetricFamily(
            "seajust_relay_last_round_age_seconds", "Seconds since the last completed mail round", labels=["relay"]
        )
        failing = GaugeMetricFamily(
            "seajust_relay_failing", "1 if the last round with the relay failed", labels=["relay"]
        )
        for url in node.mail.relays:
            age = _age(node.mail.last_round.get(url), now)
            if age is not None:
                relay.add_metric([url], age)
            failing.add_metric([url], 1.0 if url in node.mail.last_error else 0.0)
        yield from (relay, failing)
        yield GaugeMetricFamily("seajust_documents", "Shared documents held", value=len(node.store.doc_ids()))
        yield GaugeMetricFamily(
            "seajust_cases", "Case documents held (with their keys)", value=len(node.case_keys.doc_ids())
        )
        yield GaugeMetricFamily("seajust_peers", "Trusted peers", value=len(node.peers.all()))
        yield GaugeMetricFamily(
            "seajust_revoked_nodes", "Nodes revoked from the network", value=len(node.peers.revoked)
        )
        storage = node.db.health()
        yield GaugeMetricFamily(
            "seajust_storage_writable",
            "1 if the database takes writes, 0 while its disk is full or read-only",
            value=1.0 if storage.state == "ok" else 0.0,
        )
        refused = CounterMetricFamily(
            "seajust_storage_refused_writes", "Writes the disk refused since the node started", labels=["cause"]
        )
        for cause in ("full", "read_only"):
            refused.add_metric([cause], float(storage.refused.get(cause, 0)))
        yield refused


def setup_metrics(app: web.Application) -> None:
    """Register the collector, the latency middleware and `GET /metrics` (behind the API token, like the API)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(NodeCollector(app[NODE_KEY]))
    app[REGISTRY_KEY] = registry
    app[LATENCY_KEY] = Histogram(
        "seajust_http_request_duration_seconds",
        "Time to answer an HTTP request, by route pattern and status class",
        ["method", "route", "status"],
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    )
    app.middlewares.insert(0, latency_middleware)
    app.router.add_get("/metrics", metrics)


def _route(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if request.path != "/metrics" and not request.path.startswith("/sync/"):  # sync: long-lived WebSockets
            request.app[LATENCY_KEY].labels(request.method, _route(request), f"{status // 100}xx").observe(
                time.perf_counter() - started
            )


OPENAPI_PATHS: Final = {
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics: per-peer sync health, refused input, relay rounds, request latency",
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401),
            },
        }
    }
}


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
