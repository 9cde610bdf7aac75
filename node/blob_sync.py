"""Fetching the attachment files this node is missing from the other parties to their case.

A case's CRDT carries only each attachment's metadata; the file itself (encrypted with the case
key) is fetched on its own, so a 25 MB scan never blocks the sync of notes and statuses. The
projection lists what is missing (`case_attachments.have = 0`); this loop asks the parties who
hold it, the uploader first. A file is kept only if its ciphertext hashes to the announced blob
ID *and* it decrypts to the announced SHA-256; anything else is refused, logged against the
peer that served it, and asked for again later (perhaps from another party).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import aiohttp

from crypto.errors import CryptoError, SeajustError
from node.blobs import BlobMismatch
from node.runtime import Node
from sync.blob_transport import BlobFetchError, fetch_blob

log = logging.getLogger(__name__)

POLL: Final = 2.0
BATCH: Final = 20


async def fetch_missing(node: Node, http: aiohttp.ClientSession) -> int:
    """One pass over the missing files; how many arrived."""
    fetched = 0
    for row in node.cases.index.missing_blobs(limit=BATCH):
        blob_id = row["blob_id"]
        if node.blobs.has(blob_id):
            node.cases.index.mark_blob(blob_id, True)
            continue
        roles = node.case_keys.roles(row["doc_id"])
        holders = sorted((p for p in roles if p != node.node_id), key=lambda p: p != row.get("added_by"))
        for holder in holders:
            if await _fetch_from(node, http, holder, row):
                fetched += 1
                break
    return fetched


async def _fetch_from(node: Node, http: aiohttp.ClientSession, holder: str, row: dict[str, object]) -> bool:
    peer = node.peers.get(holder)
    if peer is None:
        return False
    blob_id = str(row["blob_id"])
    for address in peer.addresses:
        try:
            await fetch_blob(
                http,
                address,
                node.identity,
                holder_id=holder,
                blob_id=blob_id,
                store=node.blobs,
                max_bytes=node.cases.max_attachment + 1024,
            )
        except BlobMismatch:
            node.rejections.record(holder, "tampered_blob", "attachment file does not match its SHA-256")
            return False
        except (BlobFetchError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("fetching a file from %s at %s failed: %s", holder, address, type(exc).__name__)
            continue
        if not _decrypts(node, row):
            node.blobs.delete(blob_id)
            node.rejections.record(holder, "tampered_blob", "attachment does not decrypt to its recorded SHA-256")
            return False
        node.cases.index.mark_blob(blob_id, True)
        return True
    return False


def _decrypts(node: Node, row: dict[str, object]) -> bool:
    owner = node.cases.blob_owner(str(row["blob_id"]))
    if owner is None:
        return False
    doc_id, attachment = owner
    try:
        node.cases.open_blob(doc_id, attachment, node.blobs.read(str(row["blob_id"])))
    except (CryptoError, SeajustError):
        return False
    return True


async def run(node: Node, http: aiohttp.ClientSession, wake: asyncio.Event) -> None:
    """Fetch whenever a case changed (`wake`) or every few seconds, until cancelled."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL):  # not wait_for, which can lose a cancellation on Python 3.11
                await wake.wait()
        wake.clear()
        try:
            while await fetch_missing(node, http):
                pass
        except Exception:  # keep fetching later; the log says what failed
            log.exception("fetching attachment files failed")
