"""Two real nodes that never exchanged cards become peers with a code read over the phone, once."""

from __future__ import annotations

import pytest
from nodeproc import ApiError, wait_until

pytestmark = pytest.mark.processes


def test_an_invitation_makes_two_nodes_peers_once(make_node) -> None:  # type: ignore[no-untyped-def]
    th, vn, ph = make_node("Thailand", "TH"), make_node("Viet Nam", "VN"), make_node("Philippines", "PH")
    for node in (th, vn, ph):
        node.start()
    invitation = th.api("POST", "/api/v1/invitations")
    assert len(invitation["code"]) == 19 and invitation["expires_in"] == 86400

    peer = vn.api("POST", "/api/v1/invitations/accept", {"code": invitation["code"].lower(), "url": th.url})
    assert peer["node_id"] == th.node_id
    assert [p["node_id"] for p in th.api("GET", "/api/v1/peers")] == [vn.node_id]
    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    wait_until(lambda: "Somchai" in {c["name"] for c in vn.contacts()}, what="sync between the new peers")

    with pytest.raises(ApiError) as reused:
        ph.api("POST", "/api/v1/invitations/accept", {"code": invitation["code"], "url": th.url})
    assert reused.value.status == 403
    assert ph.api("GET", "/api/v1/peers") == []
    assert [p["node_id"] for p in th.api("GET", "/api/v1/peers")] == [vn.node_id]
    with pytest.raises(ApiError) as wrong:
        ph.api("POST", "/api/v1/invitations/accept", {"code": "0000-0000-0000-0000", "url": th.url})
    assert wrong.value.status == 403


def test_the_same_through_the_command_line(make_node) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from nodeproc import node_env

    def seajust(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "node.cli", *args], env=node_env(), capture_output=True, text=True, timeout=60
        )

    th, ph = make_node("Thailand", "TH"), make_node("Philippines", "PH")
    th.start()
    created = seajust("invite", "create", str(th.home))
    assert created.returncode == 0, created.stderr
    code = created.stdout.strip()
    accepted = seajust("invite", "accept", str(ph.home), code, th.url)
    assert accepted.returncode == 0, accepted.stderr
    assert th.node_id in accepted.stdout
    wait_until(lambda: [p["node_id"] for p in th.api("GET", "/api/v1/peers")] == [ph.node_id], what="the new peer")
    again = seajust("invite", "accept", str(ph.home), code, th.url)
    assert again.returncode == 1 and again.stderr.startswith("seajust: error:") and "Traceback" not in again.stderr
