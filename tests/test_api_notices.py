"""The network-notice endpoints, served by a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from nodeproc import PASSPHRASE, init_node

from node.app import create_app
from node.policy import notices_doc
from node.runtime import Node, open_node
from node.tokens import create_token

TODAY = datetime.now(UTC).date()
NOTICE: dict[str, Any] = {
    "title": "Regional workshop on electronic evidence",
    "body": "Two days.\nInterpretation into English and Thai.",
    "category": "training",
    "starts_on": (TODAY + timedelta(days=30)).isoformat(),
    "ends_on": (TODAY + timedelta(days=31)).isoformat(),
    "location": "Hanoi",
    "link": "https://www.unodc.org/seajust/workshop",
}


async def _client(node: Node, aiohttp_client: Any) -> TestClient:  # type: ignore[type-arg]
    token = create_token(node.db, "api tests")
    client: TestClient = await aiohttp_client(create_app(node))  # type: ignore[type-arg]
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A secretariat node (the app closes it)."""
    yield open_node(init_node(tmp_path / "unodc", "UNODC", "AT", role="secretariat").home, PASSPHRASE)


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> TestClient:  # type: ignore[type-arg]
    return await _client(node, aiohttp_client)


async def test_publish_read_change_withdraw(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    assert await (await client.get("/api/v1/notices")).json() == []
    resp = await client.post("/api/v1/notices", json=NOTICE)
    assert resp.status == 201
    stored = await resp.json()
    assert {k: stored[k] for k in NOTICE} == NOTICE
    assert stored["publisher"] == node.node_id
    assert stored["published_at"] == stored["updated_at"]
    path = f"/api/v1/notices/{stored['id']}"

    resp = await client.get(path)
    assert (resp.status, await resp.json()) == (200, stored)
    assert await (await client.get("/api/v1/notices")).json() == [stored]

    resp = await client.patch(path, json={"location": "Ha Noi, Viet Nam", "link": ""})
    assert resp.status == 200
    changed = await resp.json()
    assert (changed["location"], changed["link"], changed["title"]) == ("Ha Noi, Viet Nam", "", NOTICE["title"])
    assert await (await client.get(path)).json() == changed

    resp = await client.delete(path)
    assert resp.status == 204
    assert (await client.get(path)).status == 404
    assert (await client.patch(path, json={"title": "Back"})).status == 404
    assert (await client.delete(path)).status == 404
    assert await (await client.get("/api/v1/notices")).json() == []


async def test_filters(client: TestClient) -> None:  # type: ignore[type-arg]
    ahead = await (await client.post("/api/v1/notices", json=NOTICE)).json()
    past = {"title": "Last year's meeting", "category": "meeting", "starts_on": "2020-05-01"}
    over = await (await client.post("/api/v1/notices", json=past)).json()
    undated = await (await client.post("/api/v1/notices", json={"title": "News", "category": "announcement"})).json()
    everything = await (await client.get("/api/v1/notices")).json()
    assert {n["id"] for n in everything} == {ahead["id"], over["id"], undated["id"]}
    assert await (await client.get("/api/v1/notices", params={"category": "meeting"})).json() == [over]
    assert await (await client.get("/api/v1/notices", params={"upcoming": "true"})).json() == [ahead]
    assert await (await client.get("/api/v1/notices", params={"upcoming": "false"})).json() == everything
    both = {"upcoming": "true", "category": "meeting"}
    assert await (await client.get("/api/v1/notices", params=both)).json() == []
    for bad in ({"category": "party"}, {"upcoming": "soon"}):
        resp = await client.get("/api/v1/notices", params=bad)
        assert resp.status == 422
        assert set((await resp.json())["fields"]) == set(bad)


async def test_an_authority_node_may_not_publish(aiohttp_client: Any, tmp_path: Path) -> None:
    th = open_node(init_node(tmp_path / "th", "Thailand", "TH").home, PASSPHRASE)
    client = await _client(th, aiohttp_client)
    resp = await client.post("/api/v1/notices", json=NOTICE)
    assert resp.status == 403
    assert (await resp.json())["error"] == "only the network secretariat publishes notices"
    assert (await client.patch("/api/v1/notices/abc", json={"title": "x"})).status == 403
    assert (await client.delete("/api/v1/notices/abc")).status == 403
    assert th.store.doc_ids("notices/") == []
    assert await (await client.get("/api/v1/notices")).json() == []


async def test_a_secretariat_notice_is_served_by_an_authority(
    client: TestClient,  # type: ignore[type-arg]
    node: Node,
    aiohttp_client: Any,
    tmp_path: Path,
) -> None:
    stored = await (await client.post("/api/v1/notices", json=NOTICE)).json()
    th = open_node(init_node(tmp_path / "th", "Thailand", "TH").home, PASSPHRASE)
    th.peers.add_card(node.card(), actor="tests")
    node.peers.add_card(th.card(), actor="tests")
    th.store.apply_remote(node.store.entries_missing(notices_doc(node.node_id), {}), via=node.node_id)
    at_th = await _client(th, aiohttp_client)
    assert await (await at_th.get("/api/v1/notices")).json() == [stored]
    assert await (await at_th.get(f"/api/v1/notices/{stored['id']}")).json() == stored
    assert (await at_th.patch(f"/api/v1/notices/{stored['id']}", json={"title": "Cancelled"})).status == 403
    assert (await at_th.delete(f"/api/v1/notices/{stored['id']}")).status == 403
    assert await (await at_th.get(f"/api/v1/notices/{stored['id']}")).json() == stored


async def test_invalid_notice_is_422_naming_each_field(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    body = {**NOTICE, "title": "", "link": "ftp://example.org", "ends_on": "someday", "colour": "blue"}
    resp = await client.post("/api/v1/notices", json=body)
    assert resp.status == 422
    error = await resp.json()
    assert set(error["fields"]) == {"title", "link", "ends_on", "colour"}
    assert error["error"].startswith("invalid notice")
    resp = await client.post("/api/v1/notices", json={**NOTICE, "ends_on": "2000-01-01"})
    assert (resp.status, set((await resp.json())["fields"])) == (422, {"ends_on"})
    assert (await client.post("/api/v1/notices", json=["not", "an", "object"])).status == 422
    assert node.store.doc_ids("notices/") == []

    stored = await (await client.post("/api/v1/notices", json=NOTICE)).json()
    resp = await client.patch(f"/api/v1/notices/{stored['id']}", json={"category": "party", "title": " "})
    assert (resp.status, set((await resp.json())["fields"])) == (422, {"category", "title"})
    assert await (await client.get(f"/api/v1/notices/{stored['id']}")).json() == stored


async def test_malformed_body_is_400(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/notices", data=b"{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "JSON" in (await resp.json())["error"]
    assert (await client.post("/api/v1/notices", data=b"title=x")).status == 400
    assert node.store.doc_ids("notices/") == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/notices"),
        ("post", "/api/v1/notices"),
        ("get", "/api/v1/notices/abc"),
        ("patch", "/api/v1/notices/abc"),
        ("delete", "/api/v1/notices/abc"),
    ],
)
async def test_without_token_is_401(client: TestClient, node: Node, method: str, path: str) -> None:  # type: ignore[type-arg]
    resp = await client.request(method, path, json=NOTICE, headers={"Authorization": ""})
    assert resp.status == 401
    assert "token" in (await resp.json())["error"]
    assert node.store.doc_ids("notices/") == []


async def test_openapi_documents_the_notice_endpoints(client: TestClient) -> None:  # type: ignore[type-arg]
    doc = await (await client.get("/api/v1/openapi.json")).json()
    ops = doc["paths"]["/api/v1/notices"]
    assert set(ops["post"]["responses"]) == {"201", "400", "401", "403", "422"}
    assert {p["name"] for p in ops["get"]["parameters"]} == {"category", "upcoming"}
    one = doc["paths"]["/api/v1/notices/{notice_id}"]
    assert set(one["patch"]["responses"]) == {"200", "400", "401", "403", "404", "422"}
    assert set(one["delete"]["responses"]) == {"204", "401", "403", "404"}
    assert all(op["security"] == [{"bearer": []}] for op in (*ops.values(), one["get"], one["patch"], one["delete"]))
    schema = doc["components"]["schemas"]["Notice"]
    assert set(schema["required"]) == set(schema["properties"])
    assert set(NOTICE) <= set(doc["components"]["schemas"]["NoticeInput"]["properties"])
    assert doc["components"]["schemas"]["NoticeInput"]["properties"]["category"]["enum"] == [
        "meeting",
        "training",
        "working_group",
        "announcement",
    ]
