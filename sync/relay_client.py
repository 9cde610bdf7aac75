"""The node's side of a relay: deposit sealed envelopes, fetch the ones addressed to it, acknowledge them.

Three small functions over a caller's `aiohttp.ClientSession`, one signed request each
(`sync.relay_auth`); the caller decides when to call them and opens every fetched envelope with the
same checks as one received in a session, since the relay is not trusted with anything but delivery.
Fetch is at-least-once: mail stays on the relay until acknowledged, so a node that crashes between
fetch and ack gets it again, and must ack only up to what it has durably applied.

Every failure is a `RelayError`: `.status` is the HTTP status, or None when the relay could not be
reached or answered something that is not the relay protocol.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any, Final

import aiohttp

from crypto.errors import SeajustError
from crypto.identity import Identity
from sync.relay_auth import make_relay_request
from sync.relay_frames import FrameError, decode_mail, encode_deposit
from sync.relay_server import ACK_PATH, DEFAULT_FETCH_BYTES, DEPOSIT_PATH, FETCH_PATH, MAX_DEPOSIT_BODY

TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60)
MAX_ANSWER: Final = MAX_DEPOSIT_BODY  # a fetch answer is bounded by max_bytes, or one envelope beyond it
_MAX_JSON_ANSWER: Final = 64 * 1024


class RelayError(SeajustError):
    """The relay did not do what was asked; the node keeps its mail and tries again later."""

    status: int | None

    def __init__(self, status: int | None, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status


async def _post(
    http: aiohttp.ClientSession, relay_url: str, path: str, identity: Identity, op: str, body: bytes, limit: int
) -> bytes:
    """POST a signed body; the answer's bytes on 200, else `RelayError` with the relay's message."""
    headers = {
        "Authorization": make_relay_request(identity, op, body),
        "Content-Type": "application/octet-stream" if op == "deposit" else "application/json",
    }
    try:
        # A file-like body is sent in chunks; raw bytes above 1 MiB would hold the event loop while sent.
        data = io.BytesIO(body)
        async with http.post(relay_url.rstrip("/") + path, data=data, headers=headers, timeout=TIMEOUT) as resp:
            if resp.status != 200:
                raise RelayError(resp.status, _error_message(resp.status, await _read(resp, _MAX_JSON_ANSWER)))
            return await _read(resp, limit)
    except aiohttp.ClientError as exc:
        raise RelayError(None, f"the relay could not be reached: {type(exc).__name__}") from None
    except TimeoutError:
        raise RelayError(None, "the relay did not answer in time") from None


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    if resp.content_length is not None and resp.content_length > limit:
        raise RelayError(None, "the relay's answer is larger than allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise RelayError(None, "the relay's answer is larger than allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_message(status: int, body: bytes) -> str:
    try:
        message = json.loads(body)["error"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        message = None
    if not isinstance(message, str):
        return f"the relay answered HTTP {status}"
    return f"the relay answered HTTP {status}: {message[:200]}"


def _json_answer(body: bytes, key: str) -> int:
    try:
        fields: Any = json.loads(body)
        value = fields[key]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        raise RelayError(None, "the relay's answer is not what the relay protocol sends") from None
    if type(value) is not int or value < 0:
        raise RelayError(None, "the relay's answer is not what the relay protocol sends")
    return value


async def deposit(http: aiohttp.ClientSession, relay_url: str, identity: Identity, envelopes: Sequence[bytes]) -> int:
    """Leave `envelopes` (sealed by `identity`) on the relay; the number stored, all or none of them."""
    try:
        body = encode_deposit(envelopes)
    except FrameError as exc:
        raise RelayError(None, exc.message) from None
    answer = await _post(http, relay_url, DEPOSIT_PATH, identity, "deposit", body, _MAX_JSON_ANSWER)
    return _json_answer(answer, "stored")


async def fetch(
    http: aiohttp.ClientSession,
    relay_url: str,
    identity: Identity,
    after: int = 0,
    max_bytes: int = DEFAULT_FETCH_BYTES,
) -> list[tuple[int, bytes]]:
    """`(mail id, envelope)` pairs addressed to `identity` with ids above `after`, in id order; empty when
    there is nothing more. The envelopes are not opened here: they are still unchecked network input."""
    body = json.dumps({"after": after, "max_bytes": max_bytes}, separators=(",", ":")).encode("ascii")
    answer = await _post(http, relay_url, FETCH_PATH, identity, "fetch", body, MAX_ANSWER)
    try:
        items = decode_mail(answer)
    except FrameError as exc:
        raise RelayError(None, f"the relay's answer is malformed: {exc.message}") from None
    if items and items[0][0] <= after:
        raise RelayError(None, "the relay's answer is malformed: mail ids out of order")
    return items


async def ack(http: aiohttp.ClientSession, relay_url: str, identity: Identity, upto: int) -> int:
    """Tell the relay it may delete `identity`'s mail with ids up to `upto`; the number deleted."""
    body = json.dumps({"upto": upto}, separators=(",", ":")).encode("ascii")
    answer = await _post(http, relay_url, ACK_PATH, identity, "ack", body, _MAX_JSON_ANSWER)
    return _json_answer(answer, "deleted")
