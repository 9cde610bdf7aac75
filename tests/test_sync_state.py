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
