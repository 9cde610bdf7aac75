"""The JSON API of one node, served by a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from nodeproc import PASSPHRASE, init_node

from node.app import create_app
from node.crdt import CrdtDocument
from node.runtime import Node, open_node
from node.tokens import create_token


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    proc = init_node(tmp_path, "Thailand", "TH")
    opened = open_node(proc.home, PASSPHRASE)
    yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> TestClient:  # type: ignore[type-arg]
    token = create_token(node.db, "api tests")
    client: TestClient = await aiohttp_client(create_app(node))  # type: ignore[type-arg]
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


async def test_healthz_needs_no_token(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/healthz", headers={"Authorization": ""})
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok"}


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer sjt_wrong", "Basic dXNlcjpwYXNz", "bearer   "])
async def test_missing_or_wrong_token_is_401(client: TestClient, header: str) -> None:  # type: ignore[type-arg]
    for path in ("/api/v1/node", "/api/v1/contacts", "/api/v1/peers"):
        resp = await client.get(path, headers={"Authorization": header})
        assert resp.status == 401
        assert "token" in (await resp.json())["error"]


async def test_node_describes_itself(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/api/v1/node")).json()
    assert body["node_id"] == node.node_id
    assert (body["name"], body["country"], body["role"]) == ("Thailand", "TH", "authority")
    assert body["card"].startswith("SJCARD1.")


async def test_contact_crud(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    new = {
        "name": " Somchai Prasert ",
        "title": "Senior Public Prosecutor",
        "authority": "Office of the Attorney General",
        "country": "th",
        "phone": "+66 2 142 1444",
        "email": "somchai@example.org",
        "languages": ["th", "en", "en"],
        "expertise": ["extradition", "asset recovery"],
    }
    resp = await client.post("/api/v1/contacts", json=new)
    assert resp.status == 201
    created = await resp.json()
    assert created["name"] == "Somchai Prasert"
    assert created["country"] == "TH"
    assert created["languages"] == ["th", "en"]
    assert created["owner"] == node.node_id
    cid = created["id"]

    listed = await (await client.get("/api/v1/contacts")).json()
    assert [c["id"] for c in listed] == [cid]
    assert (await (await client.get(f"/api/v1/contacts/{cid}")).json()) == created

    resp = await client.patch(f"/api/v1/contacts/{cid}", json={"title": "Director", "expertise": ["cybercrime"]})
    assert resp.status == 200
    patched = await resp.json()
    assert (patched["title"], patched["expertise"], patched["email"]) == ("Director", ["cybercrime"], new["email"])

    for query, expected in (
        ("country=TH", 1),
        ("country=VN", 0),
        ("expertise=cyber", 1),
        ("q=somchai", 1),
        ("q=zzz", 0),
    ):
        assert len(await (await client.get(f"/api/v1/contacts?{query}")).json()) == expected, query

    assert (await client.delete(f"/api/v1/contacts/{cid}")).status == 204
    assert (await (await client.get("/api/v1/contacts")).json()) == []
    resp = await client.get(f"/api/v1/contacts/{cid}")
    assert resp.status == 404
    assert "error" in await resp.json()

    actions = [r["action"] for r in node.db.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["contact.create", "contact.update", "contact.delete"]
    assert not node.db.query("SELECT 1 FROM audit_log WHERE subject LIKE '%Somchai%' OR action LIKE '%Somchai%'")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "email": "not-an-email"}, "email"),
        ({"name": "x", "country": "XX"}, "country"),
        ({"name": "x", "languages": "th"}, "languages"),
        ({"name": "x", "expertise": [1, 2]}, "expertise"),
        ({"name": "x", "phone": "call me"}, "phone"),
        ({"name": "x", "shoe_size": 42}, "shoe_size"),
        ({"name": "x" * 201}, "name"),
        ({"name": "line\nbreak"}, "name"),
    ],
)
async def test_invalid_contact_is_422_and_stores_nothing(
    client: TestClient,  # type: ignore[type-arg]
    node: Node,
    body: dict[str, Any],
    field: str,
) -> None:
    resp = await client.post("/api/v1/contacts", json=body)
    assert resp.status == 422
    error = await resp.json()
    assert field in error["fields"]
    assert isinstance(error["error"], str) and error["error"]
    assert node.db.query("SELECT count(*) AS n FROM doc_log")[0]["n"] == 0


async def test_malformed_json_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/contacts", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "JSON" in (await resp.json())["error"]
    resp = await client.post("/api/v1/contacts", data=b"name=x", headers={"Content-Type": "text/plain"})
    assert resp.status == 400
    resp = await client.post("/api/v1/contacts", json=["a", "list"])
    assert resp.status == 422


async def test_unknown_routes_and_methods_are_json_errors(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert "error" in await resp.json()
    resp = await client.put("/api/v1/contacts")
    assert resp.status == 405
    assert "error" in await resp.json()


async def test_another_authoritys_contact_cannot_be_changed(client: TestClient, node: Node, tmp_path: Path) -> None:  # type: ignore[type-arg]
    # A contact of Viet Nam's part of the directory, as received through sync.
    other = init_node(tmp_path / "vn", "Viet Nam", "VN")
    vn = open_node(other.home, PASSPHRASE)
    try:
        vn.directory.create({"name": "Nguyen Van An"}, actor="tests")
        node.peers.add_card(vn.card(), actor="tests")
        entries = vn.store.entries_missing(f"directory/{vn.node_id}", {})
    finally:
        vn.close()
    node.store.apply_remote(entries, via=other.node_id)
    [contact] = await (await client.get("/api/v1/contacts")).json()
    assert contact["owner"] == other.node_id
    for resp in (
        await client.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "Hijacked"}),
        await client.delete(f"/api/v1/contacts/{contact['id']}"),
    ):
        assert resp.status == 403
        assert "another authority" in (await resp.json())["error"]
    assert [c["name"] for c in await (await client.get("/api/v1/contacts")).json()] == ["Nguyen Van An"]


async def test_peers_api(client: TestClient, node: Node, tmp_path: Path) -> None:  # type: ignore[type-arg]
    assert (await (await client.get("/api/v1/peers")).json()) == []
    other = init_node(tmp_path / "vn", "Viet Nam", "VN")
    vn = open_node(other.home, PASSPHRASE)
    card = vn.card()
    vn.close()

    resp = await client.post("/api/v1/peers", json={"card": card})
    assert resp.status == 201
    peer = await resp.json()
    assert (peer["node_id"], peer["country"], peer["last_sync"], peer["connected"]) == (
        other.node_id,
        "VN",
        None,
        False,
    )
    [listed] = await (await client.get("/api/v1/peers")).json()
    assert listed["node_id"] == other.node_id

    tampered = card[:-6] + ("AAAAAA" if not card.endswith("AAAAAA") else "BBBBBB")
    for body in ({"card": tampered}, {"card": "hello"}, {"card": ""}, {}, {"card": node.card()}):
        resp = await client.post("/api/v1/peers", json=body)
        assert resp.status == 422, body
        assert (await resp.json())["error"]
    assert len(await (await client.get("/api/v1/peers")).json()) == 1


async def test_openapi_describes_every_route(client: TestClient) -> None:  # type: ignore[type-arg]
    doc = await (await client.get("/api/v1/openapi.json", headers={"Authorization": ""})).json()
    assert doc["openapi"].startswith("3.")
    served = set()
    for route in client.app.router.routes():  # type: ignore[union-attr]
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or path is None or path.startswith(("/sync/", "/ui")):
            continue  # the peer protocol and the web pages are not part of the JSON API
        served.add((path, route.method.lower()))
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops if method != "parameters"}
    assert served == described


def test_crdt_document_is_used_only_through_node_crdt() -> None:
    """The CRDT engine must be swappable in one place: no module but node/crdt.py imports pycrdt."""
    root = Path(__file__).resolve().parent.parent
    offenders = [
        str(path.relative_to(root))
        for package in ("node", "sync", "crypto", "ui")
        for path in (root / package).rglob("*.py")
        if "pycrdt" in path.read_text() and path.name != "crdt.py"
    ]
    assert offenders == []
    assert CrdtDocument().records("contacts") == {}
