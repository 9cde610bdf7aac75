"""Invitations over HTTP: the inviter's public claim endpoint, and the invitee's one request to it.

The exchange carries two cards and two HMACs keyed by the invitation code (`crypto.invitation`):
nothing in it is secret once the code is used, and nothing can be changed without the code, so
it needs no session and no token; a wrong or reused code is refused by the inviter's node.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp
from aiohttp import web

from crypto.errors import SeajustError

INVITE_PATH: Final = "/sync/v1/invitations"
MAX_CLAIM: Final = 64 * 1024


class InvitationExchangeError(SeajustError):
    """The inviting node could not be reached or did not accept the claim."""


def invitation_handler(
    answer: Callable[[Mapping[str, Any]], dict[str, str]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """POST `INVITE_PATH`: a claim in, the inviter's answer out (403 with the reason if refused)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.content.read(MAX_CLAIM + 1)
        if len(raw) > MAX_CLAIM:
            return web.json_response({"error": "claim too large"}, status=413)
        try:
            claim = json.loads(raw)
        except ValueError:
            return web.json_response({"error": "the claim is not JSON"}, status=400)
        if not isinstance(claim, dict):
            return web.json_response({"error": "the claim is not a JSON object"}, status=400)
        try:
            return web.json_response(answer(claim))
        except SeajustError as exc:
            return web.json_response({"error": exc.message}, status=403)

    return handle


async def exchange_claim(http: aiohttp.ClientSession, base_url: str, claim: Mapping[str, str]) -> dict[str, Any]:
    """Send the claim to the inviting node at `base_url`; its answer, or InvitationExchangeError."""
    url = base_url.rstrip("/") + INVITE_PATH
    try:
        async with http.post(url, json=dict(claim), timeout=aiohttp.ClientTimeout(total=20)) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(body, dict):
                detail = body.get("error") if isinstance(body, dict) else None
                raise InvitationExchangeError(f"the inviting node refused: {detail or resp.status}")
            return body
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise InvitationExchangeError(f"the inviting node at {base_url} could not be reached") from exc
