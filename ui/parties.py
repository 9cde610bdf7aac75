"""Names for node IDs: officers know "Viet Nam, Supreme People's Procuracy", not `N7K2...`.

Cases and histories name authorities by node ID. This node and its trusted peers have names and
countries on their cards; an ID the node does not know (a peer since removed) is shown shortened.
"""

from __future__ import annotations

from typing import Any

from node.runtime import Node


def party(node: Node, node_id: Any) -> dict[str, str]:
    """{"name", "country", "node_id"} for an authority named in a case."""
    ident = str(node_id or "")
    if ident == node.node_id:
        return {"name": node.config.name, "country": node.config.country, "node_id": ident}
    peer = node.peers.get(ident) if ident else None
    if peer is not None:
        return {"name": peer.name, "country": peer.country, "node_id": ident}
    return {"name": ident[:12] + ("…" if len(ident) > 12 else ""), "country": "", "node_id": ident}


def who(node: Node, user: Any, node_id: Any) -> str:
    """The person (or program) behind a history entry: "alice, Thailand OAG" or "API, Viet Nam SPP"."""
    name = str(user or "")
    if name.startswith("user:"):
        name = name[len("user:") :]
    elif name == "api":
        name = "API"
    return f"{name}, {party(node, node_id)['name']}" if name else party(node, node_id)["name"]
