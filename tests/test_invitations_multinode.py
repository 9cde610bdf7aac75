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
