"""Rotating this node's keys: announce the new keys with the old ones, then switch once peers know them.

A rotation keeps the node ID (`crypto.rotation`). It has two steps because peers check every
session against the keys they hold for a node: a node that switched keys before its peers heard of
it could not reach them to tell them. So:

1. `start`: make the new keys, sign the rotation statement with the current and the new keys, and
   publish it in this node's roster document (`roster/<node id>`, signed as ever with the current
   key). The new private keys wait in the encrypted database. The node keeps running on its current
   keys; the statement reaches every trusted peer with the next exchange, and through them the rest.
2. `finish`: once every trusted peer has confirmed holding the statement (its acknowledged version
   of this node's roster document), or when the operator forces it, seal the new keys in the key
   file in place of the old ones. From the next start the node signs and decrypts with the new keys
   only; the old private keys are gone. Peers keep the old *public* signing key, so what the node
   signed before still verifies.

Both run with the node stopped (`seajust keys rotate`), since they change its documents and its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crypto.identity import Identity
from crypto.keystore import replace_identity
from crypto.rotation import make_rotation, parse_rotation
from node.documents import utc_now
from node.errors import Conflict, NodeError
from node.policy import roster_doc
from node.runtime import Node


@dataclass(frozen=True)
class Pending:
    statement: str
    seq: int  # this node's entry in its roster document that carries the statement
    created_at: str
    unconfirmed: tuple[str, ...]  # trusted peers not known to hold it yet


def pending(node: Node) -> Pending | None:
    rows = node.db.query("SELECT statement, seq, created_at FROM key_rotation WHERE id = 1")
    if not rows:
        return None
    seq = int(rows[0]["seq"])
    doc_id = roster_doc(node.node_id)
    unconfirmed = tuple(
        p.node_id
        for p in node.peers.all()
        if node.engine.cursors.get(p.node_id, {}).get(doc_id, {}).get(node.node_id, 0) < seq
    )
    return Pending(str(rows[0]["statement"]), seq, str(rows[0]["created_at"]), unconfirmed)


def start(node: Node, *, actor: str) -> Pending:
    """Make and announce the next keys; a rotation already started is returned as it is."""
    already = pending(node)
    if already is not None:
        return already
    identity = node.identity
    new = Identity.generate()
    text = make_rotation(identity, new, node_id=identity.node_id, n=len(identity.rotations) + 1)
    entry = node.membership.publish_rotation(text, actor=actor)
    if entry is None:
        raise Conflict("this rotation was already announced")
    with node.db.write() as db:
        db.table("key_rotation").insert(
            {"id": 1, "secret": new.secret_bytes(), "statement": text, "seq": entry.seq_to, "created_at": utc_now()}
        )
    result = pending(node)
    assert result is not None
    return result


def finish(node: Node, keyfile: Path, passphrase: str, *, force: bool = False) -> Identity:
    """Seal the announced keys in the key file; refused while a peer has not confirmed the announcement."""
    waiting = pending(node)
    if waiting is None:
        raise NodeError("no key rotation was started: run `seajust keys rotate HOME` first")
    if waiting.unconfirmed and not force:
        raise NodeError(
            f"{len(waiting.unconfirmed)} trusted peer(s) have not confirmed the new keys yet: start the node until "
            "they have (GET /api/v1/node shows the rotation), or finish with --force; a peer that missed it then "
            "learns the new keys from the others"
        )
    rows = node.db.query("SELECT secret FROM key_rotation WHERE id = 1")
    new = Identity.from_secret_bytes(bytes(rows[0]["secret"]))
    rotation = parse_rotation(waiting.statement)
    if (rotation.sign, rotation.kx) != (new.public.sign_key, new.public.kx_key):
        raise NodeError("the stored new keys do not match the announced rotation")
    rotated = node.identity.rotated_to(new, (*node.identity.rotations, waiting.statement))
    replace_identity(keyfile, passphrase, rotated)
    with node.db.write() as db:
        db.execute("DELETE FROM key_rotation WHERE id = 1")
        db.table("audit_log").insert(
            {"at": utc_now(), "actor": "cli", "action": "keys.rotated", "doc_id": None, "subject": str(rotation.n)}
        )
    return rotated
