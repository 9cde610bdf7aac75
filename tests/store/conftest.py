"""Two or three nodes opened in process (no server), each trusting the others: for the case rules and key tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import THREE_AUTHORITIES, init_node, open_trusting
from nodeproc import deliver_case as deliver

from node.cases import case_doc
from node.runtime import Node


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node, Node]]:
    """Thailand (requesting), Viet Nam (requested), Philippines (not a party); all trust each other."""
    nodes = open_trusting([init_node(tmp_path, n, c).home for n, c in THREE_AUTHORITIES])
    th, vn, ph = nodes
    yield th, vn, ph
    for node in nodes:
        node.close()


@pytest.fixture
def case(pair: tuple[Node, Node, Node]) -> tuple[Node, Node, str]:
    th, vn, _ = pair
    created = th.cases.create(
        {"kind": "mla", "counterpart": vn.node_id, "reference": "TH-1", "summary": "original", "languages": ["en"]},
        actor="tests",
    )
    th.cases.add_attachment(
        created["id"], name="a.pdf", media_type="application/pdf", data=b"%PDF-1", meta={}, actor="tests"
    )
    th.cases.transition(created["id"], {"to": "sent", "force": True, "reason": "test"}, actor="tests")
    doc_id = case_doc(created["id"])
    assert deliver(th, vn, doc_id)
    return th, vn, doc_id
