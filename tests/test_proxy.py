"""Behind a TLS-terminating proxy (`behind_proxy = true`) the node trusts X-Forwarded-Proto; otherwise never."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import PASSPHRASE, init_node

from node.app import create_app
from node.runtime import Node, open_node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    proc = init_node(tmp_path, "Thailand", "TH")
    yield open_node(proc.home, PASSPHRASE)


@pytest.mark.parametrize("behind_proxy", [True, False])
async def test_cookies_are_secure_only_when_a_trusted_proxy_says_https(
    node: Node, aiohttp_client: Any, behind_proxy: bool
) -> None:
    node.config = dataclasses.replace(node.config, behind_proxy=behind_proxy)
    client = await aiohttp_client(create_app(node))
    resp = await client.get("/ui/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 200
    cookie = resp.headers.get("Set-Cookie", "")
    assert "sj_csrf=" in cookie
    assert ("Secure" in cookie) is behind_proxy
