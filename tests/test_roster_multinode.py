"""The roster between real node processes: founding, admission with an endorsement, and revocation.

Each authority is introduced only to the secretariat; the roster then makes the members peers of
one another. Revoking a node cuts it off everywhere: it receives nothing new (its cases move to a
key it does not have), its sessions are refused, and the remaining members still converge.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from nodeproc import ApiError, NodeProc, introduce, wait_until
from test_cases_multinode import case_on, new_case

pytestmark = pytest.mark.processes


def peers_of(node: NodeProc) -> set[str]:
    return {p["node_id"] for p in node.api("GET", "/api/v1/peers")}


def roster_of(node: NodeProc) -> dict[str, Any]:
    roster = node.api("GET", "/api/v1/roster")
    assert isinstance(roster, dict)
    return roster


def members_of(node: NodeProc) -> set[str]:
    return {m["node_id"] for m in roster_of(node)["members"]}


def names_on(node: NodeProc) -> set[str]:
    return {c["name"] for c in node.contacts()}


def test_revoked_node_gets_nothing_new_and_is_refused_while_the_rest_converge(make_node) -> None:  # type: ignore[no-untyped-def]
    sec = make_node("UNODC", "AT", "secretariat")
    th, vn, ph = make_node("Thailand", "TH"), make_node("Viet Nam", "VN"), make_node("Philippines", "PH")
    for node in (th, vn, ph):
        introduce(sec, node)
    for node in (sec, th, vn, ph):
        node.start()

    with pytest.raises(ApiError) as refused:
        th.api("POST", "/api/v1/roster/found", {"network": "SEAJust"})
    assert refused.value.status == 403
    sec.api("POST", "/api/v1/roster/found", {"network": "SEAJust"})
    everyone = {sec.node_id, th.node_id, vn.node_id, ph.node_id}
    for node in (th, vn, ph):
        wait_until(lambda node=node: members_of(node) == everyone, what="the roster on every member")  # type: ignore[misc]
    wait_until(lambda: peers_of(th) == everyone - {th.node_id}, what="members trusting each other from the roster")

    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    ph.api("POST", "/api/v1/contacts", {"name": "Philippine desk"})
    wait_until(lambda: "Somchai" in names_on(vn) and "Somchai" in names_on(ph), what="the directory among members")
    wait_until(lambda: "Philippine desk" in names_on(th), what="the Philippine contact at Thailand")
    case = new_case(th, ph)
    th.api("POST", f"/api/v1/cases/{case['id']}/transitions", {"to": "sent"})
    wait_until(lambda: (case_on(ph, case["id"]) or {}).get("status") == "sent", what="the case at its counterpart")

    sec.api("POST", "/api/v1/roster/revoke", {"node_id": ph.node_id, "reason": "compromised"})
    for node in (th, vn):
        wait_until(lambda node=node: ph.node_id not in peers_of(node), what="the revocation on every member")  # type: ignore[misc]
    assert roster_of(th)["revoked"] == [{"node_id": ph.node_id, "reason": "compromised"}]
    # The case moved to a key the revoked node does not hold.
    parties = case_on(th, case["id"])["parties"]  # type: ignore[index]
    assert ph.node_id not in parties

    rejected_before = th.api("GET", "/api/v1/sync")["rejected"].get("untrusted_sender", 0)
    th.api("POST", f"/api/v1/cases/{case['id']}/notes", {"text": "said after the revocation"})
    th.api("POST", "/api/v1/contacts", {"name": "Niran"})
    ph.api("POST", "/api/v1/contacts", {"name": "Impostor"})
    vn.api("POST", "/api/v1/contacts", {"name": "Lan"})
    wait_until(lambda: "Niran" in names_on(vn) and "Lan" in names_on(th), what="the remaining members converging")
    wait_until(lambda: "Lan" in names_on(sec), what="the secretariat converging")
    wait_until(
        lambda: th.api("GET", "/api/v1/sync")["rejected"].get("untrusted_sender", 0) > rejected_before,
        what="the revoked node's sessions being refused",
    )
    time.sleep(1.5)
    assert "Niran" not in names_on(ph) and "Lan" not in names_on(ph)
    assert "said after the revocation" not in json.dumps(case_on(ph, case["id"]))
    for node in (th, vn, sec):
        assert "Impostor" not in names_on(node)
    # The revoked authority's contact points are no longer listed by the members.
    assert "Philippine desk" not in names_on(th)
    # A revoked node cannot be trusted again by card.
    with pytest.raises(ApiError) as again:
        th.api("POST", "/api/v1/peers", {"card": card_of_running(ph)})
    assert again.value.status == 422


def card_of_running(node: NodeProc) -> str:
    info = node.api("GET", "/api/v1/node")
    return str(info["card"])


def test_admission_needs_an_endorsement_before_members_accept_the_newcomer(make_node) -> None:  # type: ignore[no-untyped-def]
    sec = make_node("UNODC", "AT", "secretariat")
    th, vn = make_node("Thailand", "TH"), make_node("Viet Nam", "VN")
    my = make_node("Malaysia", "MY")
    for node in (th, vn):
        introduce(sec, node)
    for node in (sec, th, vn, my):
        node.start()
    sec.api("POST", "/api/v1/roster/found", {"network": "SEAJust"})
    wait_until(lambda: members_of(vn) == {sec.node_id, th.node_id, vn.node_id}, what="founding")

    # The newcomer is known to the secretariat and, bilaterally, to Thailand; it is not a member yet.
    sec.api("POST", "/api/v1/peers", {"card": card_of_running(my)})
    th.api("POST", "/api/v1/peers", {"card": card_of_running(my)})
    for node in (sec, th):
        my.api("POST", "/api/v1/peers", {"card": card_of_running(node)})
    my.api("POST", "/api/v1/contacts", {"name": "Malaysian desk"})
    wait_until(lambda: roster_of(my)["network"] == "SEAJust", what="the newcomer receiving the roster")
    wait_until(
        lambda: th.api("GET", "/api/v1/sync")["rejected"].get("not_entitled", 0) > 0,
        what="Thailand refusing a non-member's directory",
    )
    assert "Malaysian desk" not in names_on(th)

    with pytest.raises(ApiError) as not_secretariat:
        th.api("POST", "/api/v1/roster/admit", {"card": card_of_running(my), "standing": "member"})
    assert not_secretariat.value.status == 403
    sec.api("POST", "/api/v1/roster/admit", {"card": card_of_running(my), "standing": "member"})
    wait_until(lambda: my.node_id in {m["node_id"] for m in roster_of(vn)["pending"]}, what="the pending admission")
    time.sleep(1)
    assert my.node_id not in members_of(th) and "Malaysian desk" not in names_on(th)

    vn.api("POST", "/api/v1/roster/endorse", {"node_id": my.node_id})
    for node in (sec, th, vn):
        wait_until(lambda node=node: my.node_id in members_of(node), what="the admission everywhere")  # type: ignore[misc]
    wait_until(lambda: "Malaysian desk" in names_on(th), what="Thailand accepting the new member's directory")
    wait_until(lambda: "Malaysian desk" in names_on(vn), what="Viet Nam trusting the new member from the roster")
