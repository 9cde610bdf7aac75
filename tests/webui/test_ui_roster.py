"""The Network page: the secretariat founds the network and admits a newcomer, a member endorses it,
the secretariat revokes; officers only read, and every form needs the CSRF token.

The secretariat's node runs in process with the UI (fixtures of `test_ui_network`); Thailand is a second
in-process node whose admin page is a second app, and roster statements travel between the two the way
sync would deliver them.
"""

from __future__ import annotations

from html import unescape
from pathlib import Path
from typing import Any

from nodeproc import card_of, init_node
from test_ui_network import (  # noqa: F401  (fixtures)
    Client,
    _browser,
    client,
    html_of,
    login,
    node,
    sec_client,
    secretariat,
    token,
    vn,
)

from node.policy import roster_doc
from node.runtime import Node


def deliver_roster(source: Node, target: Node) -> None:
    doc_id = roster_doc(source.node_id)
    target.store.apply_remote(source.store.entries_missing(doc_id, target.store.versions(doc_id)), via=source.node_id)


async def test_officers_read_the_roster_and_cannot_act(sec_client: Client, secretariat: Node) -> None:  # noqa: F811
    await login(sec_client, "somchai")
    page = await html_of(sec_client, "/ui/roster")
    assert "No roster yet" in page and "Found the network" not in page
    resp = await sec_client.post(
        "/ui/roster/found", data={"csrf": await token(sec_client, "/ui/roster"), "network": "X"}
    )
    assert resp.status == 403
    assert not secretariat.membership.roster.active


async def test_found_admit_endorse_and_revoke_through_the_pages(
    sec_client: Client,  # noqa: F811
    secretariat: Node,  # noqa: F811
    node: Node,  # noqa: F811
    tmp_path: Path,
    aiohttp_client: Any,
) -> None:
    await login(sec_client, "admin")
    resp = await sec_client.post("/ui/roster/found", data={"network": "SEAJust"})
    assert resp.status == 403  # no CSRF token
    csrf = await token(sec_client, "/ui/roster")
    resp = await sec_client.post("/ui/roster/found", data={"csrf": csrf, "network": "SEAJust"})
    page = unescape(await resp.text())
    assert resp.status == 200 and "The network was founded." in page and "SEAJust" in page
    assert node.node_id in {m["node_id"] for m in secretariat.membership.describe()["members"]}

    newcomer = init_node(tmp_path / "my", "Malaysia", "MY")
    resp = await sec_client.post(
        "/ui/roster/admit",
        data={"csrf": await token(sec_client, "/ui/roster"), "card": card_of(newcomer), "standing": "observer"},
    )
    page = unescape(await resp.text())
    assert "The newcomer joins once a member endorses it." in page and "Malaysia" in page
    assert "Awaiting an endorsement" in page
    # Bad card: the reason is shown, nothing is signed.
    resp = await sec_client.post(
        "/ui/roster/admit",
        data={"csrf": await token(sec_client, "/ui/roster"), "card": "nonsense", "standing": "member"},
    )
    assert resp.status == 422 and "invalid card" in unescape(await resp.text())

    # Thailand's admin endorses it on Thailand's node.
    node.peers.add_card(secretariat.card(), actor="tests")
    deliver_roster(secretariat, node)
    node.membership.refresh()
    th_client = await _browser(node, aiohttp_client)
    await login(th_client, "admin")
    th_page = await html_of(th_client, "/ui/roster")
    assert "Endorse this admission" in th_page and "Admit a newcomer" not in th_page
    resp = await th_client.post(
        "/ui/roster/endorse", data={"csrf": await token(th_client, "/ui/roster"), "node_id": newcomer.node_id}
    )
    assert "Your endorsement was signed." in unescape(await resp.text())
    deliver_roster(node, secretariat)
    secretariat.membership.refresh()
    assert secretariat.membership.roster.standing(newcomer.node_id) == "observer"

    resp = await sec_client.post(
        "/ui/roster/revoke",
        data={"csrf": await token(sec_client, "/ui/roster"), "node_id": newcomer.node_id, "reason": "compromised"},
    )
    page = unescape(await resp.text())
    assert "The node was revoked." in page and "Keys lost or stolen" in page
    assert secretariat.peers.is_revoked(newcomer.node_id)


async def test_a_discovered_node_is_trusted_only_when_an_admin_accepts_it(
    client: Client,  # noqa: F811
    node: Node,  # noqa: F811
    tmp_path: Path,
) -> None:
    import dataclasses

    node.config = dataclasses.replace(node.config, discovery=True)
    lao = init_node(tmp_path / "la", "Lao PDR", "LA")
    assert node.lan_offers.add(card_of(lao), ["http://127.0.0.1:9"]) is not None
    await login(client, "somchai")
    assert "Discovered on this network" not in await html_of(client, "/ui/peers")  # officers: not theirs to decide
    await login(client, "admin")
    page = unescape(await html_of(client, "/ui/peers"))
    assert "Discovered on this network, not trusted" in page and "Lao PDR" in page and "Trust this node" in page
    assert node.peers.get(lao.node_id) is None
    resp = await client.post("/ui/peers/offer", data={"csrf": await token(client, "/ui/peers"), "offer": "start"})
    assert resp.status == 200 and node.lan_offers.offering()
    resp = await client.post(
        "/ui/peers/discovered", data={"csrf": await token(client, "/ui/peers"), "node_id": lao.node_id}
    )
    assert resp.status == 200
    assert node.peers.get(lao.node_id) is not None
    assert "Lao PDR" not in unescape(await html_of(client, "/ui/peers")).split("Discovered on this network")[1]
    resp = await client.post(
        "/ui/peers/discovered", data={"csrf": await token(client, "/ui/peers"), "node_id": lao.node_id}
    )
    assert resp.status == 404  # no longer offered: it is trusted now
