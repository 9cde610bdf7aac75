"""The peers this node trusts: verified cards, kept in the database.

Trust is explicit: a peer is added from its signed card (by `seajust peer add`, the API or an
invitation), or because the network admitted it (`node.membership`: the roster carries its card,
vouched for by the secretariat and a member), after which its keys are the only ones its messages
are accepted under. A node revoked from the network is never trusted again, whatever card is
offered. The registry is read by the running node and re-read when another process (the CLI)
changes the table, so a peer added from the command line is dialled within seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crypto.card import NodeCard, parse_card
from crypto.errors import CardError
from crypto.rotation import RotationInvalid, key_history, verify_chain
from node.countries import COUNTRIES
from node.documents import utc_now
from node.errors import NotFound, PeerError
from node.storage import Database
from sync.protocol import PeerKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    node_id: str
    name: str
    country: str
    role: str
    sign_key: bytes
    kx_key: bytes
    addresses: tuple[str, ...]
    trusted_at: str
    last_sync: str | None
    announced: tuple[bytes, bytes] | None = None  # keys it announced it is rotating to, not yet seen in use

    @property
    def keys(self) -> PeerKeys:
        return PeerKeys(self.node_id, self.sign_key, self.kx_key, self.announced)

    def public_json(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "name": self.name,
            "country": self.country,
            "role": self.role,
            "addresses": list(self.addresses),
            "trusted_at": self.trusted_at,
            "last_sync": self.last_sync,
        }


def _peer(row: dict[str, Any]) -> Peer:
    return Peer(
        node_id=str(row["node_id"]),
        name=str(row["name"]),
        country=str(row["country"]),
        role=str(row["role"]),
        sign_key=bytes(row["sign_key"]),
        kx_key=bytes(row["kx_key"]),
        addresses=tuple(json.loads(str(row["addresses"]))),
        trusted_at=str(row["trusted_at"]),
        last_sync=None if row["last_sync"] is None else str(row["last_sync"]),
        announced=_announced(row),
    )


def _announced(row: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The keys at the end of a peer's announced rotation chain, if it has not switched to them yet."""
    if not row.get("rotations"):
        return None
    try:
        chain = verify_chain(str(row["node_id"]), json.loads(str(row["rotations"])))
    except (RotationInvalid, ValueError):
        return None
    last = (chain[-1].sign, chain[-1].kx) if chain else None
    return None if last is None or last == (bytes(row["sign_key"]), bytes(row["kx_key"])) else last


class PeerRegistry:
    def __init__(self, db: Database, own_id: str) -> None:
        self._db = db
        self._own_id = own_id
        self._peers: dict[str, Peer] = {}
        self.revoked: dict[str, str] = {}
        self._old_keys: dict[str, tuple[bytes, ...]] = {}  # signing keys a peer retired by rotating its keys
        self.reload()

    def reload(self) -> bool:
        """Re-read the table; True if the set of peers or their keys or addresses changed."""
        self.revoked = {r["node_id"]: r["reason"] for r in self._db.query("SELECT node_id, reason FROM revoked_nodes")}
        old: dict[str, list[bytes]] = {}
        for row in self._db.query("SELECT node_id, sign_key FROM peer_old_keys ORDER BY retired_at DESC"):
            old.setdefault(row["node_id"], []).append(bytes(row["sign_key"]))
        self._old_keys = {node_id: tuple(keys) for node_id, keys in old.items()}
        fresh = {
            p.node_id: p
            for p in map(_peer, self._db.query("SELECT * FROM peers ORDER BY node_id"))
            if p.node_id not in self.revoked
        }

        def identity(peers: dict[str, Peer]) -> set[tuple[str, bytes, bytes, tuple[str, ...]]]:
            return {(p.node_id, p.sign_key, p.kx_key, p.addresses) for p in peers.values()}

        changed = identity(fresh) != identity(self._peers)
        self._peers = fresh
        return changed

    def all(self) -> list[Peer]:
        return list(self._peers.values())

    def get(self, node_id: str) -> Peer | None:
        return self._peers.get(node_id)

    def keys(self, node_id: str) -> PeerKeys | None:
        peer = self._peers.get(node_id)
        return peer.keys if peer else None

    def sign_key(self, node_id: str) -> bytes | None:
        peer = self._peers.get(node_id)
        return peer.sign_key if peer else None

    def old_sign_keys(self, node_id: str) -> tuple[bytes, ...]:
        """Keys a trusted peer signed with before it rotated them, so its earlier updates and history still verify,
        and the key it announced, so what it signs once it switched verifies even when relayed by another node."""
        peer = self._peers.get(node_id)
        if peer is None:
            return ()
        return (*((peer.announced[0],) if peer.announced else ()), *self._old_keys.get(node_id, ()))

    def sign_keys(self, node_id: str) -> tuple[bytes, ...]:
        peer = self._peers.get(node_id)
        return (peer.sign_key, *self.old_sign_keys(node_id)) if peer else ()

    def apply_rotations(self, node_id: str, rotations: Sequence[str], *, actor: str) -> bool:
        """Note the keys a trusted peer announced it is rotating to, if its chain starts from its node ID and passes
        through the keys trusted now; True if that is news. The peer keeps its current keys here until it is
        seen signing with the new ones (`confirm_rotation`): until then it still holds the old private keys."""
        peer = self._peers.get(node_id)
        if peer is None or not rotations:
            return False
        try:
            history = key_history(verify_chain(node_id, rotations))
        except RotationInvalid as exc:
            log.warning("key rotation of %s refused: %s", node_id, exc.message)
            return False
        current = (peer.sign_key, peer.kx_key)
        if current == history[-1] or current not in history or peer.announced == history[-1]:
            return False
        with self._db.write() as db:
            db.execute("UPDATE peers SET rotations = ? WHERE node_id = ?", (json.dumps(list(rotations)), node_id))
            db.table("audit_log").insert(
                {"at": utc_now(), "actor": actor, "action": "peer.keys_announced", "doc_id": None, "subject": node_id}
            )
        self.reload()
        return True

    def confirm_rotation(self, node_id: str, *, actor: str) -> bool:
        """The peer signed with the keys it announced: hold those from now on; its old ones only verify the past."""
        peer = self._peers.get(node_id)
        rows = self._db.query("SELECT rotations FROM peers WHERE node_id = ?", (node_id,))
        if peer is None or peer.announced is None or not rows:
            return False
        rotations = json.loads(str(rows[0]["rotations"]))
        self._rotate(node_id, key_history(verify_chain(node_id, rotations)), rotations, actor=actor)
        return True

    def _rotate(self, node_id: str, history: list[tuple[bytes, bytes]], rotations: list[str], *, actor: str) -> None:
        now = utc_now()
        with self._db.write() as db:
            for sign, kx in history[:-1]:
                db.table("peer_old_keys").upsert(
                    {"node_id": node_id, "sign_key": sign, "kx_key": kx, "retired_at": now}, pk=("node_id", "sign_key")
                )
            sign, kx = history[-1]
            db.execute(
                "UPDATE peers SET sign_key = ?, kx_key = ?, rotations = ? WHERE node_id = ?",
                (sign, kx, json.dumps(rotations), node_id),
            )
            db.table("audit_log").insert(
                {"at": now, "actor": actor, "action": "peer.keys_rotated", "doc_id": None, "subject": node_id}
            )
        self.reload()
        log.info("%s rotated its keys (rotation %d)", node_id, len(rotations))

    def card_text(self, node_id: str) -> str | None:
        """The card this node was trusted from, as it was given."""
        if node_id not in self._peers:
            return None
        rows = self._db.query("SELECT card FROM peers WHERE node_id = ?", (node_id,))
        return str(rows[0]["card"]) if rows else None

    def is_revoked(self, node_id: str) -> bool:
        return node_id in self.revoked

    def add_card(self, card_text: str, *, actor: str, source: str = "card") -> Peer:
        """Verify a card and trust the node it describes; re-adding a newer card updates its addresses."""
        try:
            card = parse_card(card_text)
        except CardError as exc:
            raise PeerError(f"invalid card: {exc.message}") from exc
        self._check(card)
        if card.node_id in self.revoked:
            raise PeerError("that node was revoked from the network and cannot be trusted again")
        existing = self._db.query("SELECT sign_key, kx_key FROM peers WHERE node_id = ?", (card.node_id,))
        if existing and (bytes(existing[0]["sign_key"]), bytes(existing[0]["kx_key"])) != (
            card.sign_key,
            card.kx_key,
        ):
            held = (bytes(existing[0]["sign_key"]), bytes(existing[0]["kx_key"]))
            history = key_history(verify_chain(card.node_id, card.rotations)) if card.rotations else []
            if held not in history:
                raise PeerError("a different key is already trusted under this node ID")
            self._rotate(card.node_id, history, list(card.rotations), actor=actor)
        now = utc_now()
        with self._db.write() as db:
            db.table("peers").upsert(
                {
                    "node_id": card.node_id,
                    "name": card.name,
                    "country": card.country,
                    "role": card.role,
                    "sign_key": card.sign_key,
                    "kx_key": card.kx_key,
                    "addresses": json.dumps(list(card.addresses)),
                    "card": card_text.strip(),
                    "trusted_at": now,
                    "source": source,
                },
                pk="node_id",
            )
            db.table("audit_log").insert(
                {"at": now, "actor": actor, "action": "peer.trust", "doc_id": None, "subject": card.node_id}
            )
        self.reload()
        peer = self._peers[card.node_id]
        return peer

    def _check(self, card: NodeCard) -> None:
        if card.node_id == self._own_id:
            raise PeerError("that is this node's own card")
        if card.country not in COUNTRIES:
            raise PeerError(f"card country {card.country!r} is not an ISO 3166 code")

    def remove(self, node_id: str, *, actor: str) -> None:
        if node_id not in self._peers and not self._db.query("SELECT 1 FROM peers WHERE node_id = ?", (node_id,)):
            raise NotFound("no such peer")
        with self._db.write() as db:
            db.execute("DELETE FROM peers WHERE node_id = ?", (node_id,))
            db.execute("DELETE FROM peer_cursors WHERE peer_id = ?", (node_id,))
            db.table("audit_log").insert(
                {
                    "at": utc_now(),
                    "actor": actor,
                    "action": "peer.untrust",
                    "doc_id": None,
                    "subject": node_id,
                }
            )
        self.reload()

    def revoke(self, node_id: str, reason: str, *, actor: str) -> bool:
        """Refuse this node from now on (the roster revoked it); False if it already was."""
        if node_id in self.revoked or node_id == self._own_id:
            return False
        now = utc_now()
        with self._db.write() as db:
            db.table("revoked_nodes").insert({"node_id": node_id, "reason": reason, "revoked_at": now}, replace=True)
            db.execute("DELETE FROM peer_cursors WHERE peer_id = ?", (node_id,))
            db.table("audit_log").insert(
                {"at": now, "actor": actor, "action": "peer.revoked", "doc_id": None, "subject": node_id}
            )
        self.reload()
        return True

    def record_sync(self, node_id: str, when: str) -> None:
        with self._db.write() as db:
            db.execute("UPDATE peers SET last_sync = ? WHERE node_id = ?", (when, node_id))
        peer = self._peers.get(node_id)
        if peer:
            self._peers[node_id] = Peer(**{**peer.__dict__, "last_sync": when})
