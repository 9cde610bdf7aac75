"""The country-profile endpoints, served by a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from nodeproc import PASSPHRASE, init_node

from node.app import create_app
from node.policy import profile_doc
from node.runtime import Node, open_node
from node.tokens import create_token

PROFILE: dict[str, Any] = {
    "authority": "Office of the Attorney General",
    "languages": ["th", "en"],
    "legal_bases": ["asean_mlat", "untoc"],
    "treaties": ["ASEAN MLAT (2004)"],
    "requirements": {"bank_records": ["account_details", "court_order"]},
    "execution_days": {"bank_records": 60},
    "urgent_channel": "+66 2 142 1444 (24/7)",
    "notes": "",
}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    yield open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)  # the app closes it


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> TestClient:  # type: ignore[type-arg]
    token = create_token(node.db, "api tests")
    client: TestClient = await aiohttp_client(create_app(node))  # type: ignore[type-arg]
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


async def test_put_get_list(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    assert await (await client.get("/api/v1/profiles")).json() == []
    resp = await client.put("/api/v1/profiles/th", json=PROFILE)
    assert resp.status == 200
    stored = await resp.json()
    assert {k: stored[k] for k in PROFILE} == PROFILE
    assert (stored["node_id"], stored["country"]) == (node.node_id, "TH")
    assert stored["updated_at"]

    resp = await client.get("/api/v1/profiles/TH")
    assert resp.status == 200
    assert await resp.json() == stored
    assert await (await client.get("/api/v1/profiles")).json() == [stored]

    resp = await client.put("/api/v1/profiles/TH", json={"authority": "OAG"})
    replaced = await resp.json()
    assert (resp.status, replaced["authority"], replaced["languages"], replaced["requirements"]) == (200, "OAG", [], {})


async def test_another_countrys_profile_is_403(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    resp = await client.put("/api/v1/profiles/VN", json=PROFILE)
    assert resp.status == 403
    assert "only its own" in (await resp.json())["error"]
    assert node.store.doc_ids("profile/") == []


async def test_invalid_profile_is_422_naming_each_field(client: TestClient, node: Node) -> None:  # type: ignore[type-arg]
    body = {**PROFILE, "languages": ["english"], "execution_days": {"bank_records": -5}, "colour": "blue"}
    resp = await client.put("/api/v1/profiles/TH", json=body)
    assert resp.status == 422
    error = await resp.json()
    assert set(error["fields"]) == {"languages", "execution_days", "colour"}
    assert error["error"].startswith("invalid country profile")
    resp = await client.put("/api/v1/profiles/TH", json=["not", "an", "object"])
    assert resp.status == 422
    assert node.store.doc_ids("profile/") == []


async def test_malformed_body_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.put("/api/v1/profiles/TH", data=b"{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "JSON" in (await resp.json())["error"]


async def test_a_country_without_profile_is_404(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/profiles/VN")
    assert resp.status == 404
    assert "VN has not published" in (await resp.json())["error"]
    assert (await client.get("/api/v1/profiles/nowhere")).status == 404


async def test_a_peers_profile_is_served(client: TestClient, node: Node, tmp_path: Path) -> None:  # type: ignore[type-arg]
    vn = open_node(init_node(tmp_path / "vn", "Viet Nam", "VN").home, PASSPHRASE)
    try:
        theirs = vn.profiles.put("VN", {"authority": "Supreme People's Procuracy", "languages": ["vi"]}, actor="t")
        node.peers.add_card(vn.card(), actor="tests")
        node.store.apply_remote(vn.store.entries_missing(profile_doc(vn.node_id), {}), via=vn.node_id)
    finally:
        vn.close()
    assert await (await client.get("/api/v1/profiles/vn")).json() == theirs
    assert (await client.put("/api/v1/profiles/VN", json={"authority": "Hijacked"})).status == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/profiles"), ("get", "/api/v1/profiles/TH"), ("put", "/api/v1/profiles/TH")],
)
async def test_without_token_is_401(client: TestClient, node: Node, method: str, path: str) -> None:  # type: ignore[type-arg]
    resp = await client.request(method, path, json=PROFILE, headers={"Authorization": ""})
    assert resp.status == 401
    assert "token" in (await resp.json())["error"]
    assert node.store.doc_ids("profile/") == []


async def test_openapi_documents_the_profile_endpoints(client: TestClient) -> None:  # type: ignore[type-arg]
    doc = await (await client.get("/api/v1/openapi.json")).json()
    put = doc["paths"]["/api/v1/profiles/{country}"]["put"]
    assert set(put["responses"]) == {"200", "400", "401", "403", "422"}
    assert put["security"] == [{"bearer": []}]
    schema = doc["components"]["schemas"]["Profile"]
    assert set(schema["required"]) == set(schema["properties"])
    assert set(PROFILE) <= set(doc["components"]["schemas"]["ProfileInput"]["properties"])
