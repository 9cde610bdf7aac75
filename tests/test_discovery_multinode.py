"""Real nodes on loopback find each other by mDNS when the addresses on their cards are stale."""

from __future__ import annotations

import re
import time

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


def test_a_node_offering_its_card_is_listed_as_discovered_until_an_admin_accepts_it(make_node) -> None:  # type: ignore[no-untyped-def]
    import urllib.error
    import urllib.request

    th, la = make_node("Thailand", "TH"), make_node("Lao PDR", "LA")
    for node in (th, la):
        move_and_enable_discovery(node)
        node.start()
    with pytest.raises(urllib.error.HTTPError) as hidden:
        urllib.request.urlopen(la.url + "/sync/v1/card", timeout=5)
    assert hidden.value.code == 404  # not offering: the card is not handed to anyone who asks
    hidden.value.close()
    time.sleep(3)
    assert th.api("GET", "/api/v1/discovery")["discovered"] == []  # strangers that do not offer stay unlisted

    la.api("POST", "/api/v1/discovery/offer", {"minutes": 5})
    th.api("POST", "/api/v1/discovery/offer", {"minutes": 5})

    def discovered(node: NodeProc) -> list[dict[str, object]]:
        return node.api("GET", "/api/v1/discovery")["discovered"]  # type: ignore[no-any-return]

    wait_until(lambda: [d["node_id"] for d in discovered(th)] == [la.node_id], timeout=30, what="Lao PDR discovered")
    wait_until(lambda: [d["node_id"] for d in discovered(la)] == [th.node_id], timeout=30, what="Thailand discovered")
    assert th.api("GET", "/api/v1/sync")["connected"] == []  # discovered is not trusted
    # Each admin compares the node ID read out by the other, then accepts the card listed.
    th.api("POST", "/api/v1/peers", {"card": discovered(th)[0]["card"]})
    la.api("POST", "/api/v1/peers", {"card": discovered(la)[0]["card"]})
    assert discovered(th) == []
    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    wait_until(lambda: "Somchai" in {c["name"] for c in la.contacts()}, timeout=30, what="sync after accepting")
    la.api("POST", "/api/v1/discovery/offer", {"minutes": 0})
    with pytest.raises(urllib.error.HTTPError) as stopped:
        urllib.request.urlopen(la.url + "/sync/v1/card", timeout=5)
    assert stopped.value.code == 404
    stopped.value.close()
