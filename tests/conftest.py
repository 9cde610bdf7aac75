from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import PASSPHRASE, NodeProc, init_node


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[NodeProc]]:
    """Nodes created by a test are stopped after it, whatever happened."""
    started: list[NodeProc] = []
    yield started
    for node in started:
        node.stop()


@pytest.fixture
def make_node(tmp_path: Path, spawn: list[NodeProc]):  # type: ignore[no-untyped-def]
    def make(name: str, country: str, role: str = "authority") -> NodeProc:
        node = init_node(tmp_path, name, country, role)
        spawn.append(node)
        return node

    return make
