"""What a node stores of its peers' sync state between flushes: what each peer holds, per document."""

from __future__ import annotations

from pathlib import Path

from nodeproc import PASSPHRASE, init_node

from node.runtime import open_node


def test_peer_cursors_survive_a_restart_and_a_flush_writes_only_the_documents_that_moved(tmp_path: Path) -> None:
    """A node with 100,000 cases rewrote every cursor of a busy peer every five seconds; now only the documents
    whose cursor changed since the last flush are written."""
    peer = open_node(init_node(tmp_path / "peer", "Viet Nam", "VN").home, PASSPHRASE)
    card, peer_id = peer.card(), peer.node_id
    peer.close()
    home = init_node(tmp_path / "node", "Thailand", "TH").home
    node = open_node(home, PASSPHRASE)
    try:
        node.peers.add_card(card, actor="tests")
        node.peers_changed()
        cursors = node.engine.cursors[peer_id]
        for n in range(3):
            cursors[f"case/C{n}"] = {peer_id: n + 1}
            node.engine.dirty_cursors[peer_id].add(f"case/C{n}")
        node.flush_sync_state()
        assert not node.engine.dirty_cursors
        with node.db.write() as db:  # a row the next flush must not write again, since its cursor did not move
            db.execute("DELETE FROM peer_cursors WHERE doc_id = 'case/C0'")
        cursors["case/C1"] = {peer_id: 7, node.node_id: 2}
        node.engine.dirty_cursors[peer_id].add("case/C1")
        node.flush_sync_state()
        stored = {
            (r["doc_id"], r["author"]): r["seq"]
            for r in node.db.query("SELECT doc_id, author, seq FROM peer_cursors WHERE peer_id = ?", (peer_id,))
        }
        assert stored == {("case/C1", peer_id): 7, ("case/C1", node.node_id): 2, ("case/C2", peer_id): 3}
    finally:
        node.close()
    reopened = open_node(home, PASSPHRASE)
    try:
        assert dict(reopened.engine.cursors[peer_id]) == {
            "case/C1": {peer_id: 7, node.node_id: 2},
            "case/C2": {peer_id: 3},
        }
    finally:
        reopened.close()


def test_a_peers_outbox_counts_the_updates_it_is_entitled_to_and_lacks(tmp_path: Path) -> None:
    """The figure the dashboard, `GET /api/v1/peers`, `/metrics` and `seajust status` show, worked out for every
    peer in one pass over the documents."""
    cards = []
    for name, country in (("Viet Nam", "VN"), ("Cambodia", "KH"), ("Lao PDR", "LA")):
        peer = open_node(init_node(tmp_path / country, name, country).home, PASSPHRASE)
        cards.append((peer.card(), peer.node_id))
        peer.close()
    node = open_node(init_node(tmp_path / "TH", "Thailand", "TH").home, PASSPHRASE)
    try:
        for card, _ in cards:
            node.peers.add_card(card, actor="tests")
        node.peers_changed()
        for n in range(3):
            node.directory.create({"name": f"Officer {n}"}, actor="tests")
        node.reporting.send(actor="tests")  # the statistics report: for secretariat nodes only
        own = f"directory/{node.node_id}"
        assert node.store.versions(own) == {node.node_id: 3}
        (_, behind), (_, in_step), (_, never_seen) = cards
        node.engine.cursors[behind][own] = {node.node_id: 1}
        node.engine.cursors[in_step][own] = {node.node_id: 3}
        assert node.outbox_sizes([behind, in_step, never_seen]) == {behind: 2, in_step: 0, never_seen: 3}
        listed = {p["node_id"]: p["outbox"] for p in node.peer_statuses(node.peers.all())}
        assert listed == {behind: 2, in_step: 0, never_seen: 3}
    finally:
        node.close()
