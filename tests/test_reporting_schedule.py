"""The scheduled statistics report: what the schedule publishes, and when it publishes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import PASSPHRASE, init_node

from node import stats
from node.reporting import Reporting
from node.runtime import Node, open_node


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    th = open_node(init_node(tmp_path / "th", "Thailand", "TH").home, PASSPHRASE)
    vn = open_node(init_node(tmp_path / "vn", "Viet Nam", "VN").home, PASSPHRASE)
    th.peers.add_card(vn.card(), actor="tests")
    try:
        yield th, vn
    finally:
        th.close()
        vn.close()


def sent_log(node: Node) -> list[tuple[str, str]]:
    return [(r["period"], r["trigger"]) for r in reversed(node.reporting.sent_log())]


def send_a_case(th: Node, vn: Node) -> None:
    body: dict[str, Any] = {
        "kind": "mla",
        "counterpart": vn.node_id,
        "reference": "OAG-2026-0001",
        "summary": "Bank records of a fraud ring",
        "offences": ["fraud"],
        "measures": ["bank_records"],
        "legal_basis": ["asean_mlat"],
        "languages": ["en"],
    }
    case_id = th.cases.create(body, actor="tests")["id"]
    th.cases.transition(case_id, {"to": "sent"}, actor="tests")


def test_the_schedule_publishes_both_quarters_then_only_what_changed(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    th, vn = nodes
    current = stats.current_quarter(th.reporting._today())
    previous = stats.previous_period(current)
    previews: list[str | None] = []
    real = Reporting.preview
    monkeypatch.setattr(Reporting, "preview", lambda self, period=None: previews.append(period) or real(self, period))

    th.reporting.scheduled()
    assert sent_log(th) == [(previous, "schedule"), (current, "schedule")]
    assert previews == [previous, current]  # each worked out once, and published as it was
    before = th.reporting.sent_log(limit=1)[0]["payload"]

    previews.clear()
    th.reporting.scheduled()
    assert sent_log(th) == [(previous, "schedule"), (current, "schedule")]  # nothing changed: nothing sent
    assert previews == [previous, current]

    send_a_case(th, vn)
    th.reporting.scheduled()
    assert sent_log(th) == [(previous, "schedule"), (current, "schedule"), (current, "schedule")]
    published = th.reporting.sent_log(limit=1)[0]["payload"]
    assert published == th.reporting.preview(current) != before  # one case: below k, so counted as suppressed


def test_a_node_that_does_not_report_says_so_and_publishes_no_figures(nodes: tuple[Node, Node]) -> None:
    th, _ = nodes
    th.reporting.schedule = "off"
    th.reporting.scheduled()
    assert sent_log(th) == []
