"""`seajust status HOME`: the node's health on one screen, for an operator with no web browser at hand.

Read from the node's database and files only, so it works whether the node runs or not (when it runs,
outboxes are as of its last flush, a few seconds old). It lists what needs attention first: a database
that cannot be written (full or read-only disk: checked with a write that changes nothing) or a disk
nearly full, peers not heard from for a day, refused input in the last 24 hours, a key rotation
waiting to be finished, a node that does not answer. Nothing in it is case content.
"""

from __future__ import annotations

import shutil
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from node import key_rotation
from node.runtime import Node

QUIET_AFTER: Final = timedelta(days=1)
STORAGE_STATES: Final = {"ok": "ok (takes writes)", "full": "DISK FULL", "read_only": "READ-ONLY"}
LOW_DISK: Final = 64 * 1024 * 1024  # bytes free on the home's disk below which status asks for attention


def answers(host: str, port: int) -> bool:
    """Whether something listens at the node's address (the node itself, as far as its home can tell)."""
    try:
        with socket.create_connection(("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _size(path: Any) -> int:
    try:
        return int(path.stat().st_size)
    except OSError:
        return 0


def _free_bytes(path: Any) -> int | None:
    try:
        return int(shutil.disk_usage(path).free)
    except OSError:
        return None


def storage_summary(node: Node) -> tuple[dict[str, Any], list[str]]:
    """Whether the database takes a write now, and the free space on the home's disk; and their warnings."""
    health = node.db.health(probe=True)
    free = _free_bytes(node.home.path)
    warnings = [health.detail] if health.detail else []
    if health.state == "ok" and free is not None and free < LOW_DISK:
        warnings.append(f"only {free // (1024 * 1024)} MiB free on the disk holding the node's home")
    return {"state": health.state, "detail": health.detail, "disk_free_bytes": free}, warnings


def summarise(node: Node, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    running = answers(node.config.host, node.config.port)
    peers = []
    storage, warnings = storage_summary(node)
    listed = sorted(node.peers.all(), key=lambda p: (p.country, p.name))
    for peer, status in zip(listed, node.peer_statuses(listed), strict=True):
        last = status["last_sync"]
        quiet = last is None or datetime.fromisoformat(str(last).replace("Z", "+00:00")) < now - QUIET_AFTER
        if quiet:
            warnings.append(f"no exchange with {peer.name} ({peer.node_id}) for more than a day")
        peers.append({**status, "quiet": quiet})
    since = (now - timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    rejected = {
        str(r["reason"]): int(r["n"])
        for r in node.db.query("SELECT reason, count(*) AS n FROM rejections WHERE at >= ? GROUP BY reason", (since,))
    }
    if rejected:
        warnings.append(f"{sum(rejected.values())} refused message(s) in the last 24 hours: see rejected_24h")
    rotation = key_rotation.pending(node)
    if rotation is not None:
        warnings.append("a key rotation was announced and is not finished (`seajust keys rotate HOME --finish`)")
    if not running:
        warnings.append(f"nothing answers at {node.config.listen}: the node is not running")
    blobs = node.blobs.ids()
    roster = node.membership.roster
    return {
        "node_id": node.node_id,
        "name": node.config.name,
        "country": node.config.country,
        "role": node.config.role,
        "running": running,
        "healthy": not warnings,
        "warnings": warnings,
        "schema_version": node.db.schema_version(),
        "storage": storage,
        "network": roster.network,
        "standing": roster.standing(node.node_id),
        "key_rotations": len(node.identity.rotations),
        "peers": peers,
        "revoked_nodes": len(node.peers.revoked),
        "rejected_24h": rejected,
        "relays": list(node.config.relays),
        "documents": len(node.store.doc_ids()),
        "cases": len(node.case_keys.doc_ids()),
        "database_bytes": sum(_size(node.home.database.with_name(node.home.database.name + s)) for s in ("", "-wal")),
        "attachment_files": len(blobs),
    }


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['name']} ({summary['country']}, {summary['role']})  node ID {summary['node_id']}",
        f"health: {'ok' if summary['healthy'] else 'ATTENTION'}  running: {'yes' if summary['running'] else 'no'}  "
        f"schema {summary['schema_version']}  key rotations {summary['key_rotations']}",
    ]
    lines += [f"  ! {w}" for w in summary["warnings"]]
    free = summary["storage"]["disk_free_bytes"]
    lines.append(
        f"storage: {STORAGE_STATES.get(summary['storage']['state'], 'ATTENTION')}  "
        f"disk free {'unknown' if free is None else f'{free // (1024 * 1024)} MiB'}"
    )
    network = summary["network"] or "none (bilateral trust only)"
    lines.append(
        f"network: {network}  standing: {summary['standing'] or '-'}  revoked nodes: {summary['revoked_nodes']}"
    )
    lines.append(f"peers: {len(summary['peers'])}")
    for p in summary["peers"]:
        lines.append(
            f"  {p['name']} ({p['country']}) {p['node_id']}  last exchange {p['last_sync'] or 'never'}  "
            f"waiting {p['outbox']}"
        )
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(summary["rejected_24h"].items())) or "none"
    lines.append(f"refused in the last 24 hours: {rejected}")
    lines.append(f"relays: {', '.join(summary['relays']) or 'none'}")
    lines.append(
        f"documents {summary['documents']}, cases {summary['cases']}, attachment files {summary['attachment_files']}, "
        f"database {summary['database_bytes'] // 1024} KiB"
    )
    return "\n".join(lines)
