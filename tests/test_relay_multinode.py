"""Two authorities that are never online at the same time sync through a relay process that cannot read them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import NodeProc, files_contain, free_port, introduce, node_env, wait_until
from test_cases_multinode import SECRET_NOTE, SECRET_SUMMARY, case_on, new_case

pytestmark = pytest.mark.processes

CONTACT = "Quenthorpe Vasquillo"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "relay"
    port = free_port()
    log = open(tmp_path / "relay.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "relay", str(data), "--port", str(port)],
        env=node_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(url), what="the relay to start")
    yield url, data
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
        return bool(resp.status == 200)


def use_relay(node: NodeProc, url: str) -> None:
    config = node.home / "seajust.toml"
    config.write_text(config.read_text() + f'relays = ["{url}"]\nrelay_interval = 1\n')


def rounds_after(node: NodeProc, url: str, count: int = 2) -> None:
    """Wait until `count` mail rounds with the relay have completed after now (so an edit made before was left)."""

    def last_round() -> str | None:
        return node.api("GET", "/api/v1/sync")["relays"][url]["last_round"]  # type: ignore[no-any-return]

    for _ in range(count):
        before = last_round()
        wait_until(lambda before=before: last_round() not in (None, before), what="a mail round")  # type: ignore[misc]


def test_two_nodes_never_online_together_converge_through_the_relay(make_node, relay: tuple[str, Path]) -> None:  # type: ignore[no-untyped-def]
    url, relay_data = relay
    th, vn = make_node("Thailand", "TH"), make_node("Viet Nam", "VN")
    introduce(th, vn)
    for node in (th, vn):
        use_relay(node, url)

    th.start()
    th.api("POST", "/api/v1/contacts", {"name": CONTACT, "expertise": ["mla"]})
    case = new_case(th, vn)
    th.api("POST", f"/api/v1/cases/{case['id']}/transitions", {"to": "sent"})
    rounds_after(th, url)
    th.stop()

    vn.start()
    wait_until(lambda: CONTACT in {c["name"] for c in vn.contacts()}, what="the contact through the relay")
    wait_until(lambda: (case_on(vn, case["id"]) or {}).get("status") == "sent", what="the case through the relay")
    assert case_on(vn, case["id"])["summary"] == SECRET_SUMMARY  # type: ignore[index]
    vn.api("POST", f"/api/v1/cases/{case['id']}/notes", {"text": SECRET_NOTE})
    rounds_after(vn, url)
    vn.stop()

    th.start()
    wait_until(
        lambda: SECRET_NOTE in json.dumps(case_on(th, case["id"]), ensure_ascii=False),
        what="the counterpart's note through the relay",
    )
    assert th.api("GET", "/api/v1/sync")["relays"][url]["error"] is None
    th.stop()

    # The relay kept (or still keeps) only envelopes it cannot open.
    time.sleep(0.2)
    leaked = files_contain(relay_data, [CONTACT.encode(), SECRET_SUMMARY.encode(), SECRET_NOTE.encode(), b"case/"])
    assert leaked == []
