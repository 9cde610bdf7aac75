"""Attachment transfer between nodes: one signed HTTP GET per blob, streamed from disk to disk.

Why not the sync WebSocket: a session carries small ordered messages, and an attachment of 25 MB
or more would have to travel as one message held whole in memory on both sides, stalling every
document update queued behind it. A plain GET streams the file in chunks from the holder's disk
(`web.FileResponse`) to a temporary file on the requester's, holds neither in memory, can run
beside the session, and can be retried on its own when a link drops.

Why it is safe over a request of its own: the bytes are already encrypted with the case's key, so
a node that gets them still cannot read them without being a party to the case; they are named by
the SHA-256 of the ciphertext, so the requester keeps them only if they hash to the ID it asked
for (a tampering holder or path gets nothing stored); and each request carries a token signed
by the requesting node for this holder, this blob and this minute, used once
(`sync.blob_transfer`), so only a trusted node's own request is answered, and `may_fetch` lets the
node serve a blob only to nodes that are parties to its case.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, Protocol

import aiohttp
from aiohttp import web

from crypto.errors import SeajustError
from crypto.identity import Identity
from sync.blob_transfer import (
    SCHEME,
    BlobRejectReason,
    BlobRequestChecker,
    BlobRequestRejected,
    is_blob_id,
    make_blob_request,
)

log = logging.getLogger(__name__)

BLOB_PATH: Final = "/sync/v1/blobs/{blob_id}"
CHUNK: Final = 256 * 1024
FETCH_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60)
_REFUSED: Final = "blob request refused"  # the same body for every token failure: a forger learns nothing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BlobFetchError(SeajustError):
    """The attachment could not be fetched from the other node; it will be tried again later."""

    status: int | None

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BlobTooLarge(BlobFetchError):
    """The other node sent more data than an attachment may have, so the download was abandoned."""


class BlobSink(Protocol):
    """Where fetched blobs go: `node.blobs.BlobStore` (structural, so `sync` does not import `node`)."""

    def has(self, blob_id: str) -> bool: ...

    def temp_path(self) -> Path: ...

    def import_file(self, expected_id: str, path: Path) -> None: ...


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def blob_handler(
    checker: BlobRequestChecker,
    *,
    may_fetch: Callable[[str, str], bool],
    blob_path: Callable[[str], Path | None],
    rejections: Callable[[str | None, str, str], None],
) -> Handler:
    """The handler for GET `BLOB_PATH`.

    `may_fetch(requester, blob_id)` says whether that node is a party to the blob's case;
    `blob_path(blob_id)` is the file, or None if this node does not hold it; `rejections(peer,
    reason, detail)` records a refused token (e.g. `node.rejections.RejectionLog.record`).
    401 for any token failure (one body for all), 403 not a party, 404 not held.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        blob_id = request.match_info["blob_id"]
        header = request.headers.get("Authorization")
        try:
            if header is None:
                raise BlobRequestRejected(BlobRejectReason.MALFORMED, "no Authorization header")
            requester = checker.check(header, blob_id)
        except BlobRequestRejected as exc:
            log.info("refused blob request from %s: %s (%s)", exc.peer or "unknown node", exc.reason.value, exc.detail)
            rejections(exc.peer, exc.reason.value, exc.detail)
            return _json_error(401, _REFUSED, {"WWW-Authenticate": SCHEME})
        if not is_blob_id(blob_id):  # signed by a trusted node, but no blob is named like that
            return _json_error(404, "this node does not hold that attachment")
        if not may_fetch(requester, blob_id):
            log.warning("node %s asked for blob %s of a case it is not a party to", requester, blob_id)
            return _json_error(403, "this node may not fetch that attachment")
        path = blob_path(blob_id)
        if path is None:
            return _json_error(404, "this node does not hold that attachment")
        log.info("sending blob %s to %s", blob_id, requester)
        return web.FileResponse(
            path,
            chunk_size=CHUNK,
            headers={
                "Content-Type": "application/octet-stream",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return handle


async def fetch_blob(
    http: aiohttp.ClientSession,
    base_url: str,
    me: Identity,
    *,
    holder_id: str,
    blob_id: str,
    store: BlobSink,
    max_bytes: int,
    clock: Callable[[], float] = time.time,
) -> None:
    """Download `blob_id` from the node `holder_id` at `base_url` into `store`.

    Streams to a temporary file and stops as soon as more than `max_bytes` arrive; the file is
    then kept only if it hashes to `blob_id` (else `node.blobs.BlobMismatch` and nothing is
    kept). `BlobFetchError` (with `.status` for an HTTP error) for anything the network or the
    holder did wrong. The temporary file is always removed. A blob already held is not fetched.
    """
    if store.has(blob_id):
        return
    header = make_blob_request(me, holder_id=holder_id, blob_id=blob_id, now=clock())
    url = base_url.rstrip("/") + BLOB_PATH.format(blob_id=blob_id)
    tmp = store.temp_path()
    try:
        try:
            async with http.get(url, headers={"Authorization": header}, timeout=FETCH_TIMEOUT) as resp:
                if resp.status != 200:
                    raise BlobFetchError(f"the other node answered HTTP {resp.status}", status=resp.status)
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise BlobTooLarge(status=resp.status)
                received = 0
                with tmp.open("wb") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        received += len(chunk)
                        if received > max_bytes:
                            raise BlobTooLarge(status=resp.status)
                        f.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BlobFetchError(f"the other node could not be reached ({type(exc).__name__})") from exc
        # Hashing and fsyncing tens of megabytes would stall every other connection: do it off the loop.
        await asyncio.to_thread(store.import_file, blob_id, tmp)
    finally:
        tmp.unlink(missing_ok=True)
