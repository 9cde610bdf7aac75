from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import PASSPHRASE, NodeProc, init_node

SOAK = os.environ.get("SEAJUST_SOAK") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests (long runs of the reliability suite) run only under `make soak` (SEAJUST_SOAK=1)."""
    if SOAK:
        return
    skip = pytest.mark.skip(reason="a soak test: run it with `make soak` (SEAJUST_SOAK=1)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


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
