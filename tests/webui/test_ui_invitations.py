"""Invitations on the Peers page: an admin makes a code to read over the phone, or accepts one from another node.

Thailand's node runs in process with the UI (fixtures of `test_ui_network`). For a full acceptance, the
Philippines' node runs as a real app on loopback (`aiohttp_server`), so Thailand's form claims its invitation
over HTTP exactly as between two authorities, and both nodes end up trusting each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest
from nodeproc import PASSPHRASE, init_node
from test_ui_network import Client, client, html_of, login, node, token, vn  # noqa: F401  (fixtures)

from node.app import create_app
from node.runtime import Node, open_node
from ui.web import setup_ui

_CODE = re.compile(r'<p class="invite-code" translate="no">(.*?)</p>', re.S)


def _shown_code(html: str) -> str:
    found = _CODE.search(html)
    assert found, "the page shows no code"
    return "-".join(re.findall(r'<span class="invite-code-group">([^<]+)</span>', found.group(1)))


def _every_value(db: Node) -> str:
    tables = [r["name"] for r in db.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return "\n".join(repr(row) for t in tables for row in db.db.query(f'SELECT * FROM "{t}"'))


async def test_an_admin_makes_a_code_that_is_shown_once_and_stored_hashed(client: Client, node: Node) -> None:  # noqa: F811
    await login(client, "admin")
    page = await html_of(client, "/ui/peers")
    assert "Invite another authority" in page and "Accept an invitation" in page
    resp = await client.post("/ui/peers/invite", data={"csrf": await token(client, "/ui/peers")})
    html = await resp.text()
    assert resp.status == 200, html
    assert "style=" not in html and "<script" not in html
    code = _shown_code(html)
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
    assert "Valid 24 hours, one use." in unescape(html)

    stored = _every_value(node)
    assert code not in stored and code.replace("-", "") not in stored
    rows = node.db.query("SELECT code_hash, created_by FROM invitations")
    assert [bytes(r["code_hash"]) for r in rows] == [hashlib.sha256(code.replace("-", "").encode()).digest()]
    assert rows[0]["created_by"] == "user:admin"
    assert code not in await html_of(client, "/ui/peers")  # shown once, never again


async def test_officers_see_no_invitation_forms_and_cannot_post_them(client: Client, node: Node) -> None:  # noqa: F811
    await login(client, "somchai")
    page = await html_of(client, "/ui/peers")
    assert "/ui/peers/invite" not in page and "/ui/peers/accept" not in page
    assert "Invite another authority" not in page and "Accept an invitation" not in page
    csrf = await token(client, "/ui/peers")
    assert (await client.post("/ui/peers/invite", data={"csrf": csrf})).status == 403
    form = {"csrf": csrf, "code": "0000-0000-0000-0000", "url": "http://127.0.0.1:9"}
    assert (await client.post("/ui/peers/accept", data=form)).status == 403
    assert node.db.query("SELECT * FROM invitations") == []


async def test_forms_without_the_token_are_refused(client: Client, node: Node) -> None:  # noqa: F811
    await login(client, "admin")
    assert (await client.post("/ui/peers/invite", data={})).status == 403
    assert (await client.post("/ui/peers/invite", data={"csrf": "forged"})).status == 403
    form = {"code": "0000-0000-0000-0000", "url": "http://127.0.0.1:9"}
    assert (await client.post("/ui/peers/accept", data=form)).status == 403
    assert node.db.query("SELECT * FROM invitations") == []


@pytest.fixture
async def philippines(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[tuple[Node, str]]:
    """A second node serving its app on loopback; its address for the form."""
    second = open_node(init_node(tmp_path / "ph", "Philippines", "PH").home, PASSPHRASE)  # the app closes it
    app = create_app(second)
    if aiohttp_jinja2.APP_KEY not in app:
        setup_ui(app)
    server = await aiohttp_server(app)
    yield second, str(server.make_url("/"))


async def test_a_wrong_code_is_explained_and_trusts_nobody(
    client: Client,  # noqa: F811
    node: Node,  # noqa: F811
    philippines: tuple[Node, str],
) -> None:
    second, url = philippines
    second.invitations.create(actor="tests")
    before = {p.node_id for p in node.peers.all()}
    await login(client, "admin")
    csrf = await token(client, "/ui/peers")
    resp = await client.post("/ui/peers/accept", data={"csrf": csrf, "code": "0000-0000-0000-0000", "url": url})
    html = unescape(await resp.text())
    assert resp.status == 403, html
    assert "The invitation was not accepted." in html and "no invitation has that code" in html
    assert 'value="0000-0000-0000-0000"' in html  # the form keeps what was typed
    assert {p.node_id for p in node.peers.all()} == before and second.peers.all() == []

    resp = await client.post("/ui/peers/accept", data={"csrf": csrf, "code": "not a code", "url": url})
    assert resp.status == 403 and "that is not an invitation code" in unescape(await resp.text())
    resp = await client.post("/ui/peers/accept", data={"csrf": csrf, "code": "0000-0000-0000-0000", "url": ""})
    assert resp.status == 422 and "inviting node's address" in unescape(await resp.text())


async def test_an_unreachable_node_is_explained(client: Client, node: Node) -> None:  # noqa: F811
    before = {p.node_id for p in node.peers.all()}
    await login(client, "admin")
    csrf = await token(client, "/ui/peers")
    form = {"csrf": csrf, "code": "0000-0000-0000-0000", "url": "http://127.0.0.1:9"}
    resp = await client.post("/ui/peers/accept", data=form)
    html = unescape(await resp.text())
    assert resp.status == 403 and "could not be reached" in html
    assert {p.node_id for p in node.peers.all()} == before


async def test_accepting_an_invitation_makes_both_nodes_trust_each_other(
    client: Client,  # noqa: F811
    node: Node,  # noqa: F811
    philippines: tuple[Node, str],
) -> None:
    second, url = philippines
    code = second.invitations.create(actor="tests")
    await login(client, "admin")
    csrf = await token(client, "/ui/peers")
    form = {"csrf": csrf, "code": code.lower().replace("-", " "), "url": url}
    resp = await client.post("/ui/peers/accept", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"].startswith("/ui/peers?")
    page = unescape(await html_of(client, resp.headers["Location"]))
    assert "This node now trusts Philippines (PH)." in page
    assert node.peers.get(second.node_id) is not None
    assert [p.node_id for p in second.peers.all()] == [node.node_id]
    assert second.db.query("SELECT used_by FROM invitations")[0]["used_by"] == node.node_id

    again = await client.post("/ui/peers/accept", data={**form, "csrf": csrf})  # one use only
    assert again.status == 403 and "already been used" in unescape(await again.text())
    # The flash names only peers this node trusts: an address bar cannot make it say anything else.
    assert "now trusts" not in await html_of(client, "/ui/peers?done=peer_added&peer=XXXX")
