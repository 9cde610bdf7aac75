"""The peers this node trusts: verified cards, kept in the database.

Trust is explicit: a peer is added from its signed card (by `seajust peer add` or the API),
after which its keys are the only ones its messages are accepted under. The registry is read
by the running node and re-read when another process (the CLI) changes the table, so a peer
added from the command line is dialled within seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crypto.card import NodeCard, parse_card
from crypto.errors import CardError
from node.countries import COUNTRIES
from node.documents import utc_now
from node.errors import NotFound, PeerError
from node.storage import Database
from sync.protocol import PeerKeys


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

    @property
    def keys(self) -> PeerKeys:
        return PeerKeys(self.node_id, self.sign_key, self.kx_key)

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
    )


class PeerRegistry:
    def __init__(self, db: Database, own_id: str) -> None:
        self._db = db
        self._own_id = own_id
        self._peers: dict[str, Peer] = {}
        self.reload()

    def reload(self) -> bool:
        """Re-read the table; True if the set of peers or their keys or addresses changed."""
        fresh = {p.node_id: p for p in map(_peer, self._db.query("SELECT * FROM peers ORDER BY node_id"))}

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

    def add_card(self, card_text: str, *, actor: str) -> Peer:
        """Verify a card and trust the node it describes; re-adding a newer card updates its addresses."""
        try:
            card = parse_card(card_text)
        except CardError as exc:
            raise PeerError(f"invalid card: {exc.message}") from exc
        self._check(card)
        existing = self._db.query("SELECT sign_key, kx_key FROM peers WHERE node_id = ?", (card.node_id,))
        if existing and (bytes(existing[0]["sign_key"]), bytes(existing[0]["kx_key"])) != (
            card.sign_key,
            card.kx_key,
        ):
            raise PeerError("a different key is already trusted under this node ID")
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

    def record_sync(self, node_id: str, when: str) -> None:
        with self._db.write() as db:
            db.execute("UPDATE peers SET last_sync = ? WHERE node_id = ?", (when, node_id))
        peer = self._peers.get(node_id)
        if peer:
            self._peers[node_id] = Peer(**{**peer.__dict__, "last_sync": when})
