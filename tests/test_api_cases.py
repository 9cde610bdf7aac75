"""The case endpoints of one node, served by a real aiohttp server on loopback.

Thailand's node runs in process; Viet Nam's node only exists as a home whose card Thailand
trusts, so it can be the counterpart of a case without ever being started. Every response a
test sees is checked against the status codes the OpenAPI document gives for its route.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import docx
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from nodeproc import PASSPHRASE, NodeProc, card_of, init_node
from yarl import URL

from node import case_history
from node.app import create_app
from node.cases import ATTACHMENTS, HISTORY, case_doc
from node.export import DOCX_MEDIA_TYPE
from node.openapi import openapi_document
from node.openapi_cases import OPENAPI_PATHS
from node.policy import profile_doc
from node.runtime import Node, open_node
from node.tokens import create_token
from node.workflow import STATUSES

Client = TestClient[web.Request, web.Application]

THAI_SUMMARY = "Laundering of proceeds through Zephyrine Holdings; การฟอกเงินผ่านบัญชีธนาคาร in Bangkok"
PDF = b"%PDF-1.4 statement of account QUOKKA-99187\n" + bytes(range(256)) * 8
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300


@pytest.fixture
def vn(tmp_path: Path) -> NodeProc:
    """Viet Nam's central authority: a home whose card Thailand trusts, never started."""
    return init_node(tmp_path / "vn", "Viet Nam", "VN")


@pytest.fixture
async def node(tmp_path: Path, vn: NodeProc) -> AsyncIterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)  # the app closes it
    opened.peers.add_card(card_of(vn), actor="tests")
    yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> AsyncIterator[Client]:
    app = create_app(node)
    seen: list[tuple[str, str, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        resource = request.match_info.route.resource
        if resource is not None:
            seen.append((resource.canonical, request.method.lower(), response.status))

    app.on_response_prepare.append(record)
    token = create_token(node.db, "api tests")
    client: Client = await aiohttp_client(app)
    client.session.headers["Authorization"] = f"Bearer {token}"
    yield client
    paths = openapi_document()["paths"]
    undocumented = {
        (path, method, status)
        for path, method, status in seen
        if path in OPENAPI_PATHS and str(status) not in paths[path][method]["responses"]
    }
    assert not undocumented, f"responses not in the OpenAPI document: {sorted(undocumented)}"


def new_case(counterpart: str, **extra: Any) -> dict[str, Any]:
    """A complete MLA request: it passes the draft check when no profile says otherwise."""
    return {
        "kind": "mla",
        "counterpart": counterpart,
        "reference": "OAG-2026-117",
        "summary": THAI_SUMMARY,
        "offences": ["money_laundering", "fraud"],
        "measures": ["bank_records"],
        "legal_basis": ["asean_mlat"],
        "languages": ["en"],
        "requested_by": "2099-06-30",
        **extra,
    }


async def create(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/v1/cases", json=body)
    assert resp.status == 201, await resp.text()
    case: dict[str, Any] = await resp.json()
    return case


async def move(client: Client, case_id: str, to: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/cases/{case_id}/transitions", json={"to": to, **extra})
    assert resp.status == 200, await resp.text()
    case: dict[str, Any] = await resp.json()
    return case


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


def publish_profile(node: Node, home: NodeProc, profile: dict[str, Any]) -> None:
    """Viet Nam publishes its country profile; Thailand receives its signed entries as if by sync."""
    other = open_node(home.home, PASSPHRASE)
    try:
        other.profiles.put(home.country, profile, actor="tests")
        entries = other.store.entries_missing(profile_doc(other.node_id), {})
    finally:
        other.close()
    node.store.apply_remote(entries, via=home.node_id)


# -- creating -------------------------------------------------------------------------------


async def test_create_a_draft(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    assert (case["status"], case["kind"], case["side"], case["counterpart"]) == (
        "draft",
        "mla",
        "requesting",
        vn.node_id,
    )
    assert len(case["id"]) == 12 and case["id"].isalnum()
    assert case["reference"] == case["references"]["requesting"] == "OAG-2026-117"
    assert case["requesting"] == {"node_id": node.node_id, "country": "TH", "name": "Thailand"}
    assert case["requested"] == {"node_id": vn.node_id, "country": "VN", "name": "Viet Nam"}
    assert case["parties"] == {node.node_id: "requesting", vn.node_id: "requested"}
    assert (case["summary"], case["offences"], case["requested_by"]) == (
        THAI_SUMMARY,
        ["money_laundering", "fraud"],
        "2099-06-30",
    )
    assert case["next_steps"] == ["sent", "withdrawn"]
    [created] = case["history"]
    assert (created["type"], created["kind"], created["node"]) == ("created", "mla", node.node_id)
    assert node.store.doc_ids("case/") == [case_doc(case["id"])]
    assert (await client.get(f"/api/v1/cases/{case['id']}")).status == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"offences": ["jaywalking"]}, "offences"),
        ({"offences": "fraud"}, "offences"),
        ({"measures": ["torture"]}, "measures"),
        ({"requested_by": "2026-02-30"}, "requested_by"),
        ({"requested_by": "30/06/2026"}, "requested_by"),
        ({"kind": "divorce"}, "kind"),
        ({"kind": None}, "kind"),
        ({"urgency": "very"}, "urgency"),
        ({"languages": ["english"]}, "languages"),
        ({"reference": "two\nlines"}, "reference"),
        ({"summary": "x" * 20_001}, "summary"),
        ({"counterpart": None}, "counterpart"),
        ({"counterpart": "   "}, "counterpart"),
        ({"colour": "blue"}, "colour"),
        ({"status": "sent"}, "status"),
    ],
)
async def test_invalid_case_is_422_naming_the_field(
    client: Client, node: Node, vn: NodeProc, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**new_case(vn.node_id), **change}.items() if v is not None}
    error = await error_of(await client.post("/api/v1/cases", json=body), 422)
    assert field in error["fields"], error
    assert node.store.doc_ids("case/") == []


async def test_counterpart_must_be_a_trusted_authority(
    client: Client, node: Node, vn: NodeProc, tmp_path: Path
) -> None:
    stranger = init_node(tmp_path / "la", "Lao PDR", "LA")  # its card was never added
    error = await error_of(await client.post("/api/v1/cases", json=new_case(stranger.node_id)), 422)
    assert "not a trusted peer" in error["error"]

    error = await error_of(await client.post("/api/v1/cases", json=new_case(node.node_id)), 422)
    assert error["fields"] == {"counterpart": "is this node"}

    secretariat = init_node(tmp_path / "sec", "Secretariat", "TH", "secretariat")
    node.peers.add_card(card_of(secretariat), actor="tests")
    error = await error_of(await client.post("/api/v1/cases", json=new_case(secretariat.node_id)), 422)
    assert error["fields"] == {"counterpart": "is not an authority"}

    for body in (b'["a", "list"]', b'"text"', b"null", b"42"):
        resp = await client.post("/api/v1/cases", data=body, headers={"Content-Type": "application/json"})
        await error_of(resp, 422)
    resp = await client.post("/api/v1/cases", data=b"{oops", headers={"Content-Type": "application/json"})
    assert "JSON" in (await error_of(resp, 400))["error"]
    assert node.store.doc_ids("case/") == []


@pytest.mark.parametrize(
    "case_id", ["NOSUCHCASE00", "%2E%2E%2Fx", "..%2F..%2Fetc", "a%00b", "case%2Fmain", "%E0%B8%81"]
)
async def test_unknown_or_hostile_case_id_is_404(client: Client, vn: NodeProc, case_id: str) -> None:
    await create(client, new_case(vn.node_id))
    base = f"/api/v1/cases/{case_id}"
    for method, path, body in (
        ("GET", base, None),
        ("PATCH", base, {"summary": "x"}),
        ("POST", base + "/transitions", {"to": "sent"}),
        ("POST", base + "/notes", {"text": "hello"}),
        ("POST", base + "/reminders", {}),
        ("POST", base + "/convert", {"kind": "mla"}),
        ("POST", base + "/check", None),
        ("GET", base + "/verify", None),
        ("GET", base + "/export", None),
        ("GET", base + "/attachments", None),
        ("GET", base + "/attachments/ABC", None),
        ("PATCH", base + "/attachments/ABC", {"language": "en"}),
    ):
        resp = await client.request(method, URL(path, encoded=True), json=body)
        error = await error_of(resp, 404)
        assert error["error"] == "no such case on this node", (method, path)
    resp = await client.post(
        URL(base + "/attachments?name=a.pdf", encoded=True), data=PDF, headers={"Content-Type": "application/pdf"}
    )
    assert (await error_of(resp, 404))["error"] == "no such case on this node"


# -- listing --------------------------------------------------------------------------------


async def test_list_and_filters(client: Client, node: Node, vn: NodeProc, tmp_path: Path) -> None:
    la = init_node(tmp_path / "la", "Lao PDR", "LA")
    node.peers.add_card(card_of(la), actor="tests")
    mla = await create(client, new_case(vn.node_id))
    late = await create(
        client,
        new_case(vn.node_id, kind="consultation", summary="Wildlife shipment", requested_by="2020-01-31"),
    )
    urgent = await create(
        client,
        new_case(
            la.node_id,
            kind="extradition",
            summary="Fugitive Somchai",
            measures=[],
            requested_by=None,
            urgency="urgent",
            urgency_reason="flight risk",
            reference="OAG-2026-999",
        ),
    )
    await move(client, mla["id"], "sent")
    note = await client.post(f"/api/v1/cases/{late['id']}/notes", json={"text": "ผู้ประสานงาน called back"})
    assert note.status == 201

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"/api/v1/cases{query}")
        assert resp.status == 200, await resp.text()
        return [c["id"] for c in await resp.json()]

    everything = await resp_json(client, "/api/v1/cases")
    assert {c["id"] for c in everything} == {mla["id"], late["id"], urgent["id"]}
    assert everything[0]["id"] == urgent["id"]  # urgent first
    row = next(c for c in everything if c["id"] == mla["id"])
    assert (row["status"], row["side"], row["counterpart"], row["reference"], row["offences"]) == (
        "sent",
        "requesting",
        vn.node_id,
        "OAG-2026-117",
        ["money_laundering", "fraud"],
    )
    assert {"needs_action", "ageing", "summary"} <= set(row) and "doc_id" not in row

    assert await ids("?status=sent") == [mla["id"]]
    assert set(await ids("?status=draft")) == {late["id"], urgent["id"]}
    assert await ids("?status=closed") == []
    assert await ids("?kind=consultation") == [late["id"]]
    assert await ids("?kind=extradition") == [urgent["id"]]
    assert set(await ids(f"?counterpart={vn.node_id}")) == {mla["id"], late["id"]}
    assert await ids(f"?counterpart={la.node_id}") == [urgent["id"]]
    assert await ids("?overdue=true") == [late["id"]]
    assert set(await ids("?overdue=false")) == {mla["id"], urgent["id"]}
    assert set(await ids("?needs_action=true")) == {late["id"], urgent["id"]}  # overdue; an urgent draft
    assert await ids("?needs_action=false") == [mla["id"]]
    assert await ids("?needs_action=1&kind=extradition") == [urgent["id"]]
    assert await ids("?q=ฟอกเงิน") == [mla["id"]]  # a Thai substring of the summary
    assert await ids("?q=ประสาน") == [late["id"]]  # ... of a note
    assert await ids("?q=Somchai") == [urgent["id"]]
    assert await ids("?q=999") == [urgent["id"]]  # the reference
    assert await ids("?q=zephyrine%20holdings") == [mla["id"]]
    assert await ids("?q=nothing-like-this") == []
    assert await ids('?q="AND%20*%20NEAR(') == []  # typed text, never FTS syntax

    first, second, third = await ids("?limit=1"), await ids("?limit=1&offset=1"), await ids("?limit=5&offset=2")
    assert first + second + third == [c["id"] for c in everything]
    assert await ids("?offset=3") == []
    assert await ids("?limit=0") == []

    for query, field in (
        ("status=lost", "status"),
        ("kind=divorce", "kind"),
        ("overdue=maybe", "overdue"),
        ("needs_action=2", "needs_action"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("offset=x", "offset"),
    ):
        error = await error_of(await client.get(f"/api/v1/cases?{query}"), 422)
        assert field in error["fields"], query


async def resp_json(client: Client, path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


# -- reading and changing ---------------------------------------------------------------------


async def test_get_one_and_patch(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}"
    assert await resp_json(client, path) == case

    resp = await client.patch(
        path,
        json={"summary": "Revised facts", "urgency": "urgent", "urgency_reason": "asset flight", "reference": "OAG-2"},
    )
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert (patched["summary"], patched["urgency"], patched["urgency_reason"], patched["reference"]) == (
        "Revised facts",
        "urgent",
        "asset flight",
        "OAG-2",
    )
    assert patched["offences"] == case["offences"]  # not given, not changed
    edited = [e for e in patched["history"] if e["type"] == "edited"]
    assert [e["fields"] for e in edited] == [["summary", "urgency", "urgency_reason"]]
    assert await resp_json(client, path) == patched
    assert await resp_json(client, "/api/v1/cases?q=Revised") != []

    # The own reference alone is not an edit of the request; an unchanged value is no change at all.
    resp = await client.patch(path, json={"reference": "OAG-3", "summary": "Revised facts"})
    again = await resp.json()
    assert (resp.status, again["reference"]) == (200, "OAG-3")
    assert len([e for e in again["history"] if e["type"] == "edited"]) == 1
    resp = await client.patch(path, json={"requested_by": None})
    assert (await resp.json())["requested_by"] is None

    for body, field in (
        ({"kind": "extradition"}, "kind"),
        ({"counterpart": node.node_id}, "counterpart"),
        ({"requested_by": "31/12/2026"}, "requested_by"),
        ({"offences": ["jaywalking"]}, "offences"),
        ({"reference": 17}, "reference"),
    ):
        error = await error_of(await client.patch(path, json=body), 422)
        assert field in error["fields"], body
    await error_of(await client.patch(path, json=[1]), 422)
    await error_of(await client.patch(path, data=b"{", headers={"Content-Type": "application/json"}), 400)

    await move(client, case["id"], "withdrawn", reason="filed twice")
    error = await error_of(await client.patch(path, json={"summary": "Too late"}), 403)
    assert "withdrawn" in error["error"]
    resp = await client.patch(path, json={"reference": "OAG-4"})  # the own reference stays this side's
    assert (resp.status, (await resp.json())["summary"]) == (200, "Revised facts")


async def test_transitions_of_the_requesting_side(client: Client, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    transitions = f"/api/v1/cases/{case['id']}/transitions"

    error = await error_of(await client.post(transitions, json={"to": "acknowledged"}), 409)
    assert error["error"] == "a case in status 'draft' cannot become 'acknowledged'; next: sent, withdrawn"
    error = await error_of(await client.post(transitions, json={"to": "draft"}), 409)
    assert "already 'draft'" in error["error"]

    sent = await move(client, case["id"], "sent")
    assert (sent["status"], sent["sent_at"] is not None, sent["next_steps"]) == ("sent", True, ["withdrawn"])
    error = await error_of(await client.post(transitions, json={"to": "acknowledged"}), 409)
    assert error["error"] == "only the requested authority can acknowledge a request"
    for to in ("in_execution", "executed", "refused"):
        await error_of(await client.post(transitions, json={"to": to}), 409)

    for body, field in (
        ({"to": "lost"}, "to"),
        ({}, "to"),
        ({"to": 3}, "to"),
        ({"to": "withdrawn", "force": "yes"}, "force"),
        ({"to": "withdrawn", "reason": ["no"]}, "reason"),
    ):
        error = await error_of(await client.post(transitions, json=body), 422)
        assert field in error["fields"], body
    await error_of(await client.post(transitions, data=b"[", headers={"Content-Type": "application/json"}), 400)

    withdrawn = await move(client, case["id"], "withdrawn", reason="the suspect was arrested at home")
    closed = await move(client, case["id"], "closed")
    assert (withdrawn["status"], closed["status"], closed["closed_at"] is not None) == ("withdrawn", "closed", True)
    assert [(t["from"], t["to"]) for t in closed["timeline"]] == [
        ("draft", "sent"),
        ("sent", "withdrawn"),
        ("withdrawn", "closed"),
    ]
    assert closed["timeline"][1]["reason"] == "the suspect was arrested at home"
    assert closed["next_steps"] == []
    error = await error_of(await client.post(transitions, json={"to": "sent"}), 409)
    assert "next: none" in error["error"]


async def test_draft_check_against_the_counterparts_profile(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}"
    result = await resp_json_post(client, path + "/check")
    assert result["ok"] is True
    assert [(p["code"], p["severity"]) for p in result["problems"]] == [("no_profile", "warning")]

    publish_profile(
        node,
        vn,
        {
            "authority": "Supreme People's Procuracy",
            "languages": ["vi"],
            "legal_bases": ["untoc"],
            "requirements": {"bank_records": ["account_details", "court_order"]},
        },
    )
    result = await resp_json_post(client, path + "/check")
    assert result["ok"] is False
    assert sorted((p["code"], p["field"], p.get("item", "")) for p in result["problems"]) == [
        ("language_not_accepted", "languages", ""),
        ("no_common_legal_basis", "legal_basis", ""),
        ("required_item_missing", "provided", "account_details"),
        ("required_item_missing", "provided", "court_order"),
    ]
    assert all(p["severity"] == "error" and p["message"] for p in result["problems"])

    transitions = path + "/transitions"
    error = await error_of(await client.post(transitions, json={"to": "sent"}), 409)
    assert error["error"].startswith("the draft cannot be sent yet: ")
    assert "it accepts: vi" in error["error"] and "court order" in error["error"].lower()
    error = await error_of(await client.post(transitions, json={"to": "sent", "force": True}), 422)
    assert error["fields"] == {"reason": "is required"}
    error = await error_of(await client.post(transitions, json={"to": "sent", "force": True, "reason": "  "}), 422)
    assert (await resp_json(client, path))["status"] == "draft"

    sent = await move(client, case["id"], "sent", force=True, reason="translation follows by courier")
    assert sent["status"] == "sent"
    assert sent["timeline"][-1]["reason"] == "translation follows by courier"

    # Fixing the draft makes the check pass without force.
    fixed = await create(
        client,
        new_case(vn.node_id, languages=["vi"], legal_basis=["untoc"], provided=["account_details", "court_order"]),
    )
    assert (await resp_json_post(client, f"/api/v1/cases/{fixed['id']}/check")) == {"ok": True, "problems": []}
    assert (await move(client, fixed["id"], "sent"))["status"] == "sent"


async def resp_json_post(client: Client, path: str) -> Any:
    resp = await client.post(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_notes_and_reminders(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}"

    resp = await client.post(path + "/notes", json={"text": " Spoke with the desk officer in Hanoi. "})
    assert resp.status == 201
    note = await resp.json()
    assert (note["type"], note["text"], note["node"]) == ("note", "Spoke with the desk officer in Hanoi.", node.node_id)
    seen = await resp_json(client, path)
    assert seen["notes"] == [note]
    assert note in seen["history"]
    for body in ({"text": ""}, {"text": "   "}, {}, {"text": 5}, {"text": "x" * 10_001}, ["text"]):
        error = await error_of(await client.post(path + "/notes", json=body), 422)
        assert body == ["text"] or "text" in error["fields"], body
    assert len((await resp_json(client, path))["notes"]) == 1

    error = await error_of(await client.post(path + "/reminders"), 403)
    assert "sent" in error["error"]
    await move(client, case["id"], "sent")
    resp = await client.post(path + "/reminders")
    assert resp.status == 201
    reminder = await resp.json()
    assert reminder["type"] == "reminder" and "awaiting" in reminder["text"]
    resp = await client.post(path + "/reminders", json={"text": "Second reminder: the hearing is on 3 March."})
    assert (resp.status, (await resp.json())["text"]) == (201, "Second reminder: the hearing is on 3 March.")
    history = (await resp_json(client, path))["history"]
    assert [e["type"] for e in history] == ["created", "note", "transition", "reminder", "reminder"]
    assert len((await resp_json(client, path))["notes"]) == 1  # reminders are not notes


async def test_convert_a_consultation(client: Client, vn: NodeProc) -> None:
    consultation = await create(client, new_case(vn.node_id, kind="consultation", offences=[], measures=[]))
    path = f"/api/v1/cases/{consultation['id']}"
    await move(client, consultation["id"], "sent")
    await client.post(path + "/notes", json={"text": "They can freeze the account if we send a formal request."})

    for body, status in (({}, 422), ({"kind": 5}, 422), ({"kind": "consultation"}, 409), ({"kind": "pony"}, 409)):
        await error_of(await client.post(path + "/convert", json=body), status)
    resp = await client.post(path + "/convert", json={"kind": "mla"})
    assert resp.status == 200, await resp.text()
    converted = await resp.json()
    assert (converted["id"], converted["kind"], converted["status"], converted["sent_at"]) == (
        consultation["id"],
        "mla",
        "draft",
        None,
    )
    assert [e["type"] for e in converted["history"]] == ["created", "transition", "note", "converted"]
    assert converted["timeline"][-1]["from_kind"] == "consultation"
    assert converted["next_steps"] == ["sent", "withdrawn"]

    error = await error_of(await client.post(path + "/convert", json={"kind": "extradition"}), 409)
    assert error["error"] == "only a consultation can be converted into a formal request"
    mla = await create(client, new_case(vn.node_id))
    await error_of(await client.post(f"/api/v1/cases/{mla['id']}/convert", json={"kind": "extradition"}), 409)


async def test_share_needs_a_trusted_peer(client: Client, node: Node, vn: NodeProc, tmp_path: Path) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}/share"
    for body in ({}, {"node_id": "nobody"}):
        await error_of(await client.post(path, json=body), 422)
    resp = await client.post(path, json={"node_id": vn.node_id})  # already a party: nothing changes
    assert resp.status == 200 and (await resp.json())["history"] == case["history"]
    secretariat = init_node(tmp_path / "sec", "Secretariat", "TH", "secretariat")
    node.peers.add_card(card_of(secretariat), actor="tests")
    error = await error_of(await client.post(path, json={"node_id": secretariat.node_id}), 403)
    assert "secretariat" in error["error"]
    la = init_node(tmp_path / "la", "Lao PDR", "LA")
    node.peers.add_card(card_of(la), actor="tests")
    resp = await client.post(path, json={"node_id": la.node_id})
    shared = await resp.json()
    assert (resp.status, shared["parties"][la.node_id], shared["history"][-1]["type"]) == (200, "shared", "shared")


async def test_verify_detects_a_forged_history_entry(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}"
    note = await (await client.post(path + "/notes", json={"text": "The account holds 2 million baht."})).json()
    report = await resp_json(client, path + "/verify")
    assert report == {"ok": True, "entries": 2, "heads": [note["id"]], "problems": []}

    # Someone with the database rewrites the note: a new id for the new text, but the old signature.
    forged = {**note, "text": "The account holds 200 baht.", "prev": [note["id"]]}
    forged["id"] = case_history.entry_id(forged)
    node.store.commit_local(
        case_doc(case["id"]), lambda c: c.append(HISTORY, forged), actor="tests", action="tamper", subject=""
    )
    report = await resp_json(client, path + "/verify")
    assert report["ok"] is False
    assert [p["entry"] for p in report["problems"]] == [forged["id"]]
    assert "signature" in report["problems"][0]["problem"]

    # A copy of the genuine entry under its own id with other words: the id no longer matches.
    altered = {**note, "text": "Nothing to see."}
    node.store.commit_local(
        case_doc(case["id"]), lambda c: c.append(HISTORY, altered), actor="tests", action="tamper", subject=""
    )
    report = await resp_json(client, path + "/verify")
    assert report["ok"] is False and len(report["problems"]) == 2


async def test_export_is_a_docx_with_the_summary(client: Client, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    resp = await client.get(f"/api/v1/cases/{case['id']}/export")
    assert resp.status == 200
    assert resp.content_type == DOCX_MEDIA_TYPE
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    assert resp.headers["Content-Disposition"].endswith('.docx"')
    document = docx.Document(io.BytesIO(await resp.read()))
    text = "\n".join(p.text for p in document.paragraphs)
    assert THAI_SUMMARY in text
    assert "Money laundering" in text


async def test_vocabulary(client: Client) -> None:
    vocabulary = await resp_json(client, "/api/v1/vocabulary")
    assert vocabulary["statuses"] == list(STATUSES)
    assert vocabulary["kinds"]["mla"] == "Mutual legal assistance"
    assert "money_laundering" in vocabulary["offences"] and "bank_records" in vocabulary["measures"]
    assert {"legal_bases", "urgency", "translation", "content_items", "languages"} <= set(vocabulary)
    assert "draft                  sent" in vocabulary["workflow"]


# -- attachments ----------------------------------------------------------------------------


async def test_attachments_upload_download_and_update(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}/attachments"

    form = FormData(quote_fields=False)  # as browsers send it
    form.add_field("file", PDF, filename="bank statement ธนาคาร.pdf", content_type="application/pdf")
    form.add_field("language", "TH")
    form.add_field("translation", "needed")
    resp = await client.post(path, data=form)
    assert resp.status == 201, await resp.text()
    statement = await resp.json()
    assert (statement["name"], statement["media_type"], statement["size"], statement["sha256"]) == (
        "bank statement ธนาคาร.pdf",
        "application/pdf",
        len(PDF),
        hashlib.sha256(PDF).hexdigest(),
    )
    assert (statement["language"], statement["translation"], statement["available"]) == ("th", "needed", True)

    resp = await client.post(
        path,
        params={"name": "C:\\scans\\passport.png", "language": "en", "translation_of": statement["id"]},
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert resp.status == 201, await resp.text()
    scan = await resp.json()
    assert (scan["name"], scan["media_type"], scan["translation_of"]) == ("passport.png", "image/png", statement["id"])

    listed = await resp_json(client, path)
    assert [a["id"] for a in listed] == [statement["id"], scan["id"]]
    assert all(a["available"] for a in listed)
    seen = await resp_json(client, f"/api/v1/cases/{case['id']}")
    assert [e["type"] for e in seen["history"]] == ["created", "attachment", "attachment"]
    assert await resp_json(client, "/api/v1/cases?q=passport") != []

    for attachment, data in ((statement, PDF), (scan, PNG)):
        resp = await client.get(f"{path}/{attachment['id']}")
        assert resp.status == 200
        assert await resp.read() == data
        assert resp.headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.content_type == attachment["media_type"]
        assert download_name(resp.headers["Content-Disposition"]) == attachment["name"]

    resp = await client.patch(f"{path}/{statement['id']}", json={"language": "vi", "translation": "certified"})
    assert resp.status == 200, await resp.text()
    updated = await resp.json()
    assert (updated["language"], updated["translation"], updated["sha256"]) == ("vi", "certified", statement["sha256"])
    [first, _] = await resp_json(client, path)
    assert (first["language"], first["translation"]) == ("vi", "certified")
    for body, field in (({"language": "vietnamese"}, "language"), ({"translation": "machine"}, "translation")):
        error = await error_of(await client.patch(f"{path}/{statement['id']}", json=body), 422)
        assert field in error["fields"]

    for resp in (
        await client.get(f"{path}/NOSUCHATTACH"),
        await client.patch(f"{path}/NOSUCHATTACH", json={"language": "en"}),
        await client.get(f"{path}/{statement['id']}x"),
    ):
        assert (await error_of(resp, 404))["error"] == "no such attachment on this case"


def download_name(header: str) -> str:
    disposition, _, encoded = header.partition("; filename*=UTF-8''")
    assert disposition.startswith('attachment; filename="') and disposition.isascii()
    return unquote(encoded)


async def test_a_hostile_name_from_a_peer_cannot_break_the_download(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}/attachments"
    resp = await client.post(path, params={"name": "a.pdf"}, data=PDF, headers={"Content-Type": "application/pdf"})
    attachment = await resp.json()
    # What a misbehaving peer could store: `case_fields` checks only names entered on this node.
    hostile = {"name": 'evil"\r\nSet-Cookie: session=1; x=.pdf', "media_type": "text/html\r\nX-Evil: 1"}
    node.store.commit_local(
        case_doc(case["id"]), lambda c: c.put_record(ATTACHMENTS, attachment["id"], hostile), actor="t", action="t"
    )
    resp = await client.get(f"{path}/{attachment['id']}")
    assert resp.status == 200
    assert await resp.read() == PDF
    assert "Set-Cookie" not in resp.headers and "X-Evil" not in resp.headers
    assert resp.content_type == "application/octet-stream"
    assert download_name(resp.headers["Content-Disposition"]) == hostile["name"]


async def test_attachments_refused(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    path = f"/api/v1/cases/{case['id']}/attachments"

    async def raw(data: bytes, media_type: str = "application/pdf", **params: str) -> Any:
        return await client.post(path, params=params, data=data, headers={"Content-Type": media_type})

    node.cases.max_attachment = 1024
    await error_of(await raw(b"x" * 1025, name="big.pdf"), 413)
    form = FormData()
    form.add_field("file", b"x" * 4096, filename="big.pdf", content_type="application/pdf")
    await error_of(await client.post(path, data=form), 413)
    assert (await raw(b"x" * 1024, name="fits.pdf")).status == 201
    node.cases.max_attachment = 1024 * 1024

    for media_type in ("application/x-msdownload", "application/x-sh", "application/octet-stream", "text/html"):
        error = await error_of(await raw(b"MZ\x90\x00", media_type, name="setup.pdf"), 422)
        assert "media_type" in error["fields"], media_type
    for params in ({}, {"name": ""}, {"name": ".."}, {"name": "a/"}, {"name": "bell\x07.pdf"}, {"name": "x" * 256}):
        error = await error_of(await raw(PDF, **params), 422)
        assert error["fields"] == {"name": "must be a plain file name"} or error["fields"] == {"name": "is required"}
    error = await error_of(await raw(b"", name="empty.pdf"), 422)
    assert "file" in error["fields"]
    for params, field in (
        ({"name": "a.pdf", "language": "klingon"}, "language"),
        ({"name": "a.pdf", "translation": "machine"}, "translation"),
        ({"name": "a.pdf", "translation_of": "NOSUCHATTACH"}, "translation_of"),
    ):
        error = await error_of(await raw(PDF, **params), 422)
        assert field in error["fields"], params

    form = FormData()
    form.add_field("document", PDF, filename="a.pdf", content_type="application/pdf")
    assert "'file'" in (await error_of(await client.post(path, data=form), 400))["error"]

    assert [a["name"] for a in await resp_json(client, path)] == ["fits.pdf"]
    assert len(node.cases.index.attachments(case["id"])) == 1


# -- the token ------------------------------------------------------------------------------


async def test_every_case_route_needs_a_token(client: Client, node: Node, vn: NodeProc) -> None:
    case = await create(client, new_case(vn.node_id))
    before = await resp_json(client, f"/api/v1/cases/{case['id']}")
    routes = [
        (method.upper(), path.format(case_id=case["id"], attachment_id="ABC"))
        for path, operations in OPENAPI_PATHS.items()
        for method in operations
        if method != "parameters"
    ]
    assert len(routes) == 17
    for header in ("", "Bearer sjt_wrong", "Basic dXNlcjpwYXNz"):
        for method, path in routes:
            body = new_case(vn.node_id) if path == "/api/v1/cases" else {"to": "sent", "text": "x", "kind": "mla"}
            resp = await client.request(method, path, json=body, headers={"Authorization": header})
            assert "token" in (await error_of(resp, 401))["error"], (method, path)
    assert await resp_json(client, f"/api/v1/cases/{case['id']}") == before
    assert node.store.doc_ids("case/") == [case_doc(case["id"])]


async def test_openapi_documents_the_case_endpoints(client: Client) -> None:
    doc = await resp_json(client, "/api/v1/openapi.json")
    schemas = doc["components"]["schemas"]
    for name in (
        "Case",
        "CaseListItem",
        "CaseInput",
        "CasePatch",
        "Transition",
        "Note",
        "HistoryEntry",
        "Attachment",
        "CheckResult",
        "VerifyReport",
    ):
        assert schemas[name]["type"] == "object", name
    transitions = doc["paths"]["/api/v1/cases/{case_id}/transitions"]["post"]
    assert set(transitions["responses"]) == {"200", "400", "401", "404", "409", "422"}
    upload = doc["paths"]["/api/v1/cases/{case_id}/attachments"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert "413" in upload["responses"]
    export = doc["paths"]["/api/v1/cases/{case_id}/export"]["get"]
    assert DOCX_MEDIA_TYPE in export["responses"]["200"]["content"]
    for path, operations in OPENAPI_PATHS.items():
        declared = {p["name"] for p in operations.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path
        for method, operation in operations.items():
            if method != "parameters":
                assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"], (path, method)
    refs = {
        value.rsplit("/", 1)[-1]
        for value in _walk(doc)
        if isinstance(value, str) and value.startswith("#/components/schemas/")
    }
    assert refs <= set(schemas)


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in _walk(item)]
    if isinstance(value, list):
        return [v for item in value for v in _walk(item)]
    return [value]
