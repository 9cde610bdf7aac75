"""What an operator watches: `GET /metrics`, the JSON log format, and `seajust status`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from nodeproc import PASSPHRASE, card_of, init_node, node_env

from node import cli
from node.app import create_app
from node.config import validate
from node.errors import ConfigError
from node.logs import JsonFormatter
from node.runtime import NODE_KEY, Node, open_node
from node.tokens import create_token

SECRET = "Zephyrine Holdings account 7731-QX"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)
    opened.peers.add_card(card_of(init_node(tmp_path / "vn", "Viet Nam", "VN")), actor="tests")
    yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> TestClient:  # type: ignore[type-arg]
    token = create_token(node.db, "metrics")
    client: TestClient = await aiohttp_client(create_app(node))  # type: ignore[type-arg]
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


async def test_metrics_need_the_api_token(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/metrics", headers={"Authorization": ""})
    assert resp.status == 401 and "error" in await resp.json()


async def test_metrics_report_sync_health_and_latency_without_content(
    client: TestClient,  # type: ignore[type-arg]
    node: Node,
) -> None:
    peer = node.peers.all()[0]
    case = await (
        await client.post(
            "/api/v1/cases",
            json={"kind": "mla", "counterpart": peer.node_id, "reference": "OAG-1", "summary": SECRET},
        )
    ).json()
    assert (await client.get(f"/api/v1/cases/{case['id']}")).status == 200
    node.rejections.record(peer.node_id, "bad_signature", "tests")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert f'seajust_peer_connected{{peer="{peer.node_id}"}} 0.0' in text
    assert f'seajust_peer_outbox_updates{{peer="{peer.node_id}"}}' in text
    assert 'seajust_rejected_total{reason="bad_signature"} 1.0' in text
    assert "seajust_cases 1.0" in text and "seajust_peers 1.0" in text
    assert 'route="/api/v1/cases/{case_id}"' in text and 'status="2xx"' in text
    assert case["id"] not in text and SECRET not in text and "OAG-1" not in text


def test_json_log_lines_are_objects_with_no_exception_text() -> None:
    record = logging.LogRecord("node.x", logging.WARNING, __file__, 1, "refused from %s: %s", ("NODE", "replay"), None)
    entry = json.loads(JsonFormatter().format(record))
    assert (
        entry["level"] == "warning" and entry["logger"] == "node.x" and entry["message"] == "refused from NODE: replay"
    )
    assert entry["time"].endswith("Z")
    try:
        raise ValueError(SECRET)
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert json.loads(line)["exception"] == "ValueError" and SECRET not in line


def test_log_format_is_checked() -> None:
    base = {"name": "X", "country": "TH"}
    assert validate({"node": {**base, "log_format": "json"}}).log_format == "json"
    with pytest.raises(ConfigError):
        validate({"node": {**base, "log_format": "xml"}})


def test_status_summarises_health_for_an_operator(tmp_path: Path) -> None:
    th = init_node(tmp_path, "Thailand", "TH")
    opened = open_node(th.home, PASSPHRASE)
    try:
        opened.peers.add_card(card_of(init_node(tmp_path / "vn", "Viet Nam", "VN")), actor="tests")
        opened.rejections.record(None, "replay", "tests")
    finally:
        opened.close()

    def seajust(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "node.cli", *args], env=node_env(), capture_output=True, text=True, timeout=60
        )

    shown = seajust("status", str(th.home))
    assert shown.returncode == 3, shown.stderr  # needs attention: not running, a quiet peer, a refusal
    assert "health: ATTENTION" in shown.stdout and "not running" in shown.stdout and "replay 1" in shown.stdout
    summary = json.loads(seajust("status", str(th.home), "--json").stdout)
    assert summary["node_id"] == th.node_id and summary["running"] is False
    assert summary["rejected_24h"] == {"replay": 1} and len(summary["peers"]) == 1
    missing = seajust("status", str(tmp_path / "nowhere"))
    assert (
        missing.returncode == 1 and missing.stderr.startswith("seajust: error:") and "Traceback" not in missing.stderr
    )


def test_a_running_node_freezes_what_it_loaded_and_collects_less_often() -> None:
    """`seajust run` calls `tune_collector` once the node is open (checked in a fresh interpreter: the collector
    is process-wide)."""
    code = (
        "import gc; from node.runtime import GC_YOUNG_THRESHOLD, tune_collector; "
        "assert gc.get_threshold()[0] != GC_YOUNG_THRESHOLD and gc.get_freeze_count() == 0; "
        "tune_collector(); "
        "assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD and gc.get_freeze_count() > 1000; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_seajust_run_tunes_the_collector_before_it_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = init_node(tmp_path, "Thailand", "TH").home
    calls: list[str] = []
    monkeypatch.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)
    monkeypatch.setattr(cli, "tune_collector", lambda: calls.append("tuned"))

    def run_app(app: web.Application, **_: Any) -> None:
        calls.append("served")
        app[NODE_KEY].close()

    monkeypatch.setattr(web, "run_app", run_app)
    assert cli.main(["run", str(home)]) == 0
    assert calls == ["tuned", "served"]
