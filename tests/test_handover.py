"""Officer handover on one node: who answers for a case, and moving a leaving officer's work in one action.

Thailand's node is opened in process; Viet Nam's node is only a home whose card Thailand trusts, so it can be
the counterpart of cases without running. Cases are moved to closed by the requesting side alone (withdrawn,
then closed), which is enough to tell open cases from finished ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from nodeproc import PASSPHRASE, NodeProc, card_of, init_node

from node.accounts import Accounts
from node.api_officers import OPENAPI_PATHS
from node.app import create_app
from node.case_index import CaseFilter
from node.cli import main as cli_main
from node.errors import Forbidden, NotFound, ValidationError
from node.handover import handover_note, handover_of
from node.officers import officers_of
from node.openapi import openapi_document
from node.policy import directory_doc
from node.runtime import Node, open_node
from node.tokens import create_token

Client = TestClient[web.Request, web.Application]
PASSWORD = "a long enough passphrase"


@pytest.fixture
def vn(tmp_path: Path) -> NodeProc:
    return init_node(tmp_path / "vn", "Viet Nam", "VN")


@pytest.fixture
def th(tmp_path: Path) -> NodeProc:
    return init_node(tmp_path, "Thailand", "TH")


def _people(opened: Node) -> None:
    opened.accounts = Accounts(opened.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    for name, role in (("admin", "admin"), ("somchai", "officer"), ("malee", "officer"), ("anong", "officer")):
        opened.accounts.add(name, PASSWORD, role, actor="tests")
    opened.accounts.set_details("somchai", full_name="Somchai Prasert", email="somchai@oag.go.th", actor="tests")
    opened.accounts.set_details("malee", full_name="Malee Chaiyaporn", email="malee@oag.go.th", actor="tests")


@pytest.fixture
def node(th: NodeProc, vn: NodeProc) -> Iterator[Node]:
    opened = open_node(th.home, PASSPHRASE)
    opened.peers.add_card(card_of(vn), actor="tests")
    _people(opened)
    yield opened
    opened.close()


def body(counterpart: str, reference: str = "OAG-2026-117") -> dict[str, Any]:
    return {
        "kind": "mla",
        "counterpart": counterpart,
        "reference": reference,
        "summary": "Laundering through Zephyrine Holdings",
        "offences": ["money_laundering"],
        "measures": ["bank_records"],
        "legal_basis": ["asean_mlat"],
        "languages": ["en"],
        "requested_by": "2099-06-30",
    }


def open_case(node: Node, officer: str, *, closed: bool = False, reference: str = "OAG-2026-117") -> str:
    """A case opened in the web UI by `officer` (who then answers for it), optionally withdrawn and closed."""
    actor = f"user:{officer}"
    case_id = str(node.cases.create(body(node.peers.all()[0].node_id, reference), actor=actor)["id"])
    officers_of(node).creator_takes(case_id, actor)
    if closed:
        node.cases.transition(case_id, {"to": "withdrawn"}, actor=actor)
        node.cases.transition(case_id, {"to": "closed"}, actor=actor)
    return case_id


def contact_of(node: Node, username: str, **fields: Any) -> str:
    contact = node.directory.create(
        {
            "name": "Somchai Prasert",
            "title": "Senior public prosecutor",
            "email": "somchai@oag.go.th",
            "phone": "+66 2 142 1444",
            "languages": ["th", "en"],
            "expertise": ["extradition", "asset recovery"],
            **fields,
        },
        actor="tests",
    )
    officers_of(node).link_contact(contact["id"], username, actor="user:admin")
    return str(contact["id"])


def officer_of(node: Node, case_id: str) -> str | None:
    officer = officers_of(node).of_case(case_id)
    return None if officer is None else str(officer["username"])


def audit(node: Node, action: str) -> list[str]:
    rows = node.db.query("SELECT subject FROM audit_log WHERE action = ? ORDER BY id", (action,))
    return [str(r["subject"]) for r in rows]


# -- responsibility ------------------------------------------------------------------------------------------


def test_the_officer_who_opens_a_case_answers_for_it_and_a_token_case_waits(node: Node) -> None:
    mine = open_case(node, "somchai")
    assert officer_of(node, mine) == "somchai"
    by_token = str(node.cases.create(body(node.peers.all()[0].node_id), actor="api")["id"])
    officers_of(node).creator_takes(by_token, "api")
    assert officer_of(node, by_token) is None
    # Anyone may take a case nobody holds; "mine" lists exactly the cases one answers for.
    officers_of(node).assign(by_token, "malee", actor="user:malee")
    listed = node.cases.search(CaseFilter(officer="somchai"))
    assert [row["id"] for row in listed] == [mine]
    assert [row["id"] for row in node.cases.search(CaseFilter(officer="malee"))] == [by_token]
    assert node.cases.search(CaseFilter(officer="nobody")) == []


def test_who_may_reassign_a_case(node: Node) -> None:
    officers = officers_of(node)
    case_id = open_case(node, "somchai")
    with pytest.raises(Forbidden):
        officers.assign(case_id, "malee", actor="user:malee")  # not hers to take
    officers.assign(case_id, "malee", actor="user:somchai")  # the officer passes it on
    assert officer_of(node, case_id) == "malee"
    officers.assign(case_id, "anong", actor="user:admin")  # an admin may always
    assert officer_of(node, case_id) == "anong"
    node.accounts.disable("somchai", actor="tests")
    with pytest.raises(ValidationError) as disabled:
        officers.assign(case_id, "somchai", actor="user:admin")
    assert disabled.value.fields == {"username": "is disabled"}
    with pytest.raises(ValidationError):
        officers.assign(case_id, "ghost", actor="user:admin")
    with pytest.raises(NotFound):
        officers.assign("NOSUCHCASE00", "anong", actor="user:admin")
    assert audit(node, "case.officer")[-2:] == [f"{case_id} malee", f"{case_id} anong"]


# -- handover ------------------------------------------------------------------------------------------------


def test_only_open_cases_move_and_each_gets_a_note(node: Node) -> None:
    open_ones = sorted([open_case(node, "somchai"), open_case(node, "somchai", reference="OAG-2026-118")])
    closed = open_case(node, "somchai", closed=True)
    others = open_case(node, "anong")
    history_before = {c: node.cases.get(c)["history"] for c in [*open_ones, closed]}

    summary = handover_of(node).hand_over("somchai", "malee", actor="user:admin")

    assert summary.cases == open_ones and summary.contacts == [] and summary.disabled is False
    assert summary.as_json()["cases"] == 2 and summary.unrecorded == []
    assert [officer_of(node, c) for c in open_ones] == ["malee", "malee"]
    assert officer_of(node, closed) == "somchai"  # who did the work stays on record
    assert officer_of(node, others) == "anong"
    text = "Responsibility for this case was handed over from Somchai Prasert to Malee Chaiyaporn."
    for case_id in open_ones:
        case = node.cases.get(case_id)
        assert case["history"][: len(history_before[case_id])] == history_before[case_id]  # nothing rewritten
        assert [n["text"] for n in case["notes"]] == [text]
        assert "somchai" not in text and "malee" not in text
    assert node.cases.get(closed)["history"] == history_before[closed]
    assert node.cases.verify(open_ones[0])["ok"]
    assert {row["id"] for row in node.cases.search(CaseFilter(officer="malee"))} == set(open_ones)


def test_directory_entries_move_with_their_expertise_and_history(node: Node) -> None:
    contact_id = contact_of(node, "somchai")
    untouched = contact_of(node, "anong", name="Anong Wattana", email="anong@oag.go.th")
    doc_id = directory_doc(node.node_id)
    seq_before = node.store.versions(doc_id)[node.node_id]

    summary = handover_of(node).hand_over("somchai", "malee", actor="user:admin")

    assert summary.contacts == [contact_id]
    entry = node.directory.get(contact_id)
    assert (entry["name"], entry["email"]) == ("Malee Chaiyaporn", "malee@oag.go.th")
    assert entry["title"] == "Senior public prosecutor"
    assert entry["expertise"] == ["extradition", "asset recovery"]
    assert entry["languages"] == ["th", "en"] and entry["phone"] == "+66 2 142 1444"
    assert node.directory.get(untouched)["name"] == "Anong Wattana"
    # A signed update on top of the earlier ones, which stay in the log: what peers replicate.
    assert node.store.versions(doc_id)[node.node_id] == seq_before + 1
    assert len(node.db.query("SELECT 1 FROM doc_log WHERE doc_id = ?", (doc_id,))) >= seq_before + 1
    officers = officers_of(node)
    assert officers.account_of_contact(contact_id) == "malee"
    assert officers.contacts_of("somchai") == []


def test_a_successor_without_a_name_leaves_the_entry_as_it_was(node: Node) -> None:
    contact_id = contact_of(node, "somchai")
    case_id = open_case(node, "somchai")
    before = node.directory.get(contact_id)
    handover_of(node).hand_over("somchai", "anong", actor="user:admin")
    assert node.directory.get(contact_id) == before
    assert officers_of(node).account_of_contact(contact_id) == "anong"
    assert [n["text"] for n in node.cases.get(case_id)["notes"]] == [
        "Responsibility for this case was handed over from Somchai Prasert to a colleague."
    ]


def test_every_moved_item_is_audited_and_the_account_can_be_disabled(node: Node) -> None:
    case_id = open_case(node, "somchai")
    contact_id = contact_of(node, "somchai")
    sessions_before = node.accounts.start_session("somchai")[0]

    summary = handover_of(node).hand_over("somchai", "malee", actor="user:admin", disable=True)

    assert summary.disabled is True
    user = node.accounts.get("somchai")
    assert user is not None and user.disabled
    assert node.accounts.session(sessions_before) is None
    assert audit(node, "handover.case") == [f"{case_id} somchai -> malee"]
    assert audit(node, "handover.contact") == [f"{contact_id} somchai -> malee"]
    assert audit(node, "user.handover") == ["somchai -> malee: 1 cases, 1 contacts"]
    assert audit(node, "user.disable") == ["somchai"]
    actors = {r["actor"] for r in node.db.query("SELECT actor FROM audit_log WHERE action LIKE 'handover.%'")}
    assert actors == {"user:admin"}


def test_refusals_change_nothing(node: Node) -> None:
    case_id = open_case(node, "somchai")
    handover = handover_of(node)
    with pytest.raises(Forbidden):
        handover.hand_over("somchai", "malee", actor="user:anong")  # officers do not hand over others' work
    with pytest.raises(ValidationError) as same:
        handover.hand_over("somchai", "somchai", actor="user:admin")
    assert "to" in same.value.fields
    with pytest.raises(NotFound):
        handover.hand_over("ghost", "malee", actor="user:admin")
    with pytest.raises(ValidationError) as unknown:
        handover.hand_over("somchai", "ghost", actor="user:admin")
    assert unknown.value.fields == {"to": "no such account on this node"}
    node.accounts.disable("anong", actor="tests")
    with pytest.raises(ValidationError) as disabled:
        handover.hand_over("somchai", "anong", actor="user:admin")
    assert disabled.value.fields == {"to": "is disabled"}
    with pytest.raises(ValidationError):
        handover.hand_over("somchai", "malee", actor="user:admin", disable="yes")  # type: ignore[arg-type]
    # The last enabled admin cannot be disabled: the whole handover is refused, nothing has moved.
    admin_case = open_case(node, "admin")
    with pytest.raises(Forbidden):
        handover.hand_over("admin", "malee", actor="cli", disable=True)
    assert officer_of(node, admin_case) == "admin" and officer_of(node, case_id) == "somchai"
    assert node.cases.get(admin_case)["notes"] == [] and node.cases.get(case_id)["notes"] == []
    assert audit(node, "handover.case") == [] and audit(node, "user.handover") == []


def test_a_handover_from_a_disabled_account_and_again_is_harmless(node: Node) -> None:
    case_id = open_case(node, "somchai")
    node.accounts.disable("somchai", actor="tests")
    first = handover_of(node).hand_over("somchai", "malee", actor="cli")
    assert first.cases == [case_id] and first.disabled is True
    again = handover_of(node).hand_over("somchai", "malee", actor="cli")
    assert again.cases == [] and again.contacts == []
    assert len(node.cases.get(case_id)["notes"]) == 1


def test_the_note_names_people_by_display_name_only(node: Node) -> None:
    a, b = node.accounts.get("anong"), node.accounts.get("admin")
    assert a is not None and b is not None
    assert handover_note(a, b) == "Responsibility for this case was handed over to another officer."


def test_the_cli_hands_over_with_the_node_stopped(
    th: NodeProc, vn: NodeProc, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = open_node(th.home, PASSPHRASE)
    try:
        opened.peers.add_card(card_of(vn), actor="tests")
        _people(opened)
        case_id = open_case(opened, "somchai")
    finally:
        opened.close()
    assert cli_main(["user", "handover", str(th.home), "somchai", "malee", "--disable"]) == 0
    out = capsys.readouterr().out
    assert "1 open case(s) and 0 directory entries handed over from somchai to malee; somchai disabled" in out
    assert cli_main(["user", "handover", str(th.home), "malee", "malee"]) == 1
    assert "seajust: error:" in capsys.readouterr().err
    reopened = open_node(th.home, PASSPHRASE)
    try:
        assert officer_of(reopened, case_id) == "malee"
        assert len(reopened.cases.get(case_id)["notes"]) == 1
        user = reopened.accounts.get("somchai")
        assert user is not None and user.disabled
    finally:
        reopened.close()


@pytest.mark.processes
def test_the_cli_refuses_while_the_node_runs(th: NodeProc, capsys: pytest.CaptureFixture[str]) -> None:
    th.start()
    try:
        assert cli_main(["user", "handover", str(th.home), "somchai", "malee"]) == 1
    finally:
        th.stop()
    assert "the node is running" in capsys.readouterr().err


# -- the API -------------------------------------------------------------------------------------------------


@pytest.fixture
async def client(th: NodeProc, vn: NodeProc, aiohttp_client: Any) -> AsyncIterator[tuple[Client, Node]]:
    opened = open_node(th.home, PASSPHRASE)  # the app closes it
    opened.peers.add_card(card_of(vn), actor="tests")
    _people(opened)
    app = create_app(opened)
    seen: list[tuple[str, str, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        resource = request.match_info.route.resource
        if resource is not None:
            seen.append((resource.canonical, request.method.lower(), response.status))

    app.on_response_prepare.append(record)
    api: Client = await aiohttp_client(app)
    api.session.headers["Authorization"] = f"Bearer {create_token(opened.db, 'tests')}"
    yield api, opened
    paths = openapi_document()["paths"]
    undocumented = {
        (path, method, status)
        for path, method, status in seen
        if path in OPENAPI_PATHS and str(status) not in paths[path][method]["responses"]
    }
    assert not undocumented, f"responses not in the OpenAPI document: {sorted(undocumented)}"


async def test_the_handover_endpoint(client: tuple[Client, Node]) -> None:
    api, node = client
    case_id = open_case(node, "somchai")
    open_case(node, "somchai", closed=True)
    contact_id = contact_of(node, "somchai")

    resp = await api.post("/api/v1/users/somchai/handover", json={"to": "malee", "disable": True})
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert {k: answer[k] for k in ("cases", "contacts", "disabled")} == {"cases": 1, "contacts": 1, "disabled": True}
    assert answer["case_ids"] == [case_id] and answer["contact_ids"] == [contact_id]

    resp = await api.get("/api/v1/cases?officer=malee")
    assert [row["id"] for row in await resp.json()] == [case_id]
    resp = await api.get(f"/api/v1/cases/{case_id}/officer")
    assert (await resp.json())["full_name"] == "Malee Chaiyaporn"

    for path, payload, status in (
        ("/api/v1/users/ghost/handover", {"to": "malee"}, 404),
        ("/api/v1/users/malee/handover", {"to": "malee"}, 422),
        ("/api/v1/users/malee/handover", {"to": "ghost"}, 422),
        ("/api/v1/users/malee/handover", {"to": "somchai"}, 422),  # disabled by the handover above
        ("/api/v1/users/malee/handover", {}, 422),
        ("/api/v1/users/malee/handover", ["anong"], 422),
        ("/api/v1/users/admin/handover", {"to": "malee", "disable": True}, 403),  # the last admin
    ):
        resp = await api.post(path, json=payload)
        assert resp.status == status, (path, payload, await resp.text())
        assert (await resp.json())["error"]
    resp = await api.post("/api/v1/users/malee/handover", data="to=anong")
    assert resp.status == 400


async def test_the_officer_endpoints(client: tuple[Client, Node]) -> None:
    api, node = client
    case_id = str(node.cases.create(body(node.peers.all()[0].node_id), actor="api")["id"])
    resp = await api.get(f"/api/v1/cases/{case_id}/officer")
    assert resp.status == 200 and await resp.json() is None
    resp = await api.put(f"/api/v1/cases/{case_id}/officer", json={"username": "Anong"})
    assert resp.status == 200
    assert (await resp.json())["username"] == "anong"
    for path, payload, status in (
        (f"/api/v1/cases/{case_id}/officer", {"username": "ghost"}, 422),
        (f"/api/v1/cases/{case_id}/officer", {}, 422),
        ("/api/v1/cases/NOSUCHCASE00/officer", {"username": "anong"}, 404),
    ):
        resp = await api.put(path, json=payload)
        assert resp.status == status, (path, await resp.text())
    assert (await api.get("/api/v1/cases/NOSUCHCASE00/officer")).status == 404

    contact = node.directory.create({"name": "Somchai Prasert"}, actor="tests")
    resp = await api.put(f"/api/v1/contacts/{contact['id']}/account", json={"username": "somchai"})
    assert resp.status == 200 and (await resp.json())["username"] == "somchai"
    resp = await api.put(f"/api/v1/contacts/{contact['id']}/account", json={"username": None})
    assert resp.status == 200 and officers_of(node).account_of_contact(contact["id"]) is None
    assert (await api.put(f"/api/v1/contacts/{contact['id']}/account", json={})).status == 422
    assert (await api.put("/api/v1/contacts/0000/account", json={"username": "somchai"})).status == 404


def test_a_contact_of_another_authority_cannot_be_linked(node: Node, vn: NodeProc) -> None:
    other = open_node(vn.home, PASSPHRASE)
    try:
        contact = other.directory.create({"name": "Nguyen Van An"}, actor="tests")
        doc_id = directory_doc(other.node_id)
        entries = other.store.entries_missing(doc_id, {})
    finally:
        other.close()
    node.store.apply_remote(entries, via=node.peers.all()[0].node_id)
    assert node.directory.get(contact["id"])["owner"] != node.node_id
    with pytest.raises(Forbidden):
        officers_of(node).link_contact(contact["id"], "somchai", actor="user:admin")
