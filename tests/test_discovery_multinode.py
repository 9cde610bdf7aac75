"""Real nodes on loopback find each other by mDNS when the addresses on their cards are stale."""

from __future__ import annotations

import re

import pytest
from nodeproc import NodeProc, free_port, introduce, wait_until

pytestmark = pytest.mark.processes


def move_and_enable_discovery(node: NodeProc) -> None:
    """Listen on a new port the peers' copies of its card do not know, and turn discovery on."""
    port = free_port()
    config = node.home / "seajust.toml"
    text = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", config.read_text())
    config.write_text(text + "discovery = true\n")
    node.port = port


def test_trusted_nodes_meet_by_mdns_and_strangers_do_not(make_node) -> None:  # type: ignore[no-untyped-def]
    th, vn, stranger = make_node("Thailand", "TH"), make_node("Viet Nam", "VN"), make_node("Stranger", "LA")
    introduce(th, vn)
    for node in (th, vn, stranger):
        move_and_enable_discovery(node)
        node.start()
    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    wait_until(lambda: "Somchai" in {c["name"] for c in vn.contacts()}, timeout=30, what="sync found by mDNS")
    assert stranger.contacts() == []
    assert stranger.api("GET", "/api/v1/sync")["connected"] == []
    assert sorted(th.api("GET", "/api/v1/sync")["connected"]) == [vn.node_id]
