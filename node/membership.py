"""This node's part in the network roster: publishing statements and acting on the roster's changes.

Statements live in `roster/<author>` documents, replicated to every trusted node like the
directory, so every member computes the same roster (`node.roster`). Whenever a roster document
changes, this node recomputes it and brings its own state in line, idempotently:

* members it does not trust yet are trusted from the card in the roster (the secretariat's and a
  member's signatures stand in for an admin's fingerprint check);
* a revoked node is refused from then on (sessions, mail, its updates relayed by others), and
  every case it was a party to moves to a new key without it, so it reads nothing said after.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from crypto.card import parse_card
from crypto.errors import CardError
from crypto.identity import Identity
from crypto.rotation import key_history, parse_rotation, verify_chain
from crypto.statements import STANDINGS, Statement, StatementInvalid, make_statement, parse_statement
from node.case_keys import CaseKeys
from node.crdt import DocumentChange
from node.documents import DocumentStore
from node.errors import Conflict, Forbidden, NotFound, PeerError, ValidationError
from node.peers import PeerRegistry
from node.policy import ROSTER_PREFIX, roster_doc
from node.roster import Roster, build_roster
from sync.messages import SignedUpdate

log = logging.getLogger(__name__)

COLLECTION = "statements"
ROTATIONS = "rotations"  # this node's key rotation statements, by number (`crypto.rotation`)


class Membership:
    def __init__(
        self,
        store: DocumentStore,
        peers: PeerRegistry,
        case_keys: CaseKeys,
        identity: Identity,
        *,
        role: str,
        card: Callable[[], str],
        on_rekeyed: Callable[[str, list[str]], None] = lambda doc_id, parties: None,
        on_peers_changed: Callable[[], None] = lambda: None,
        on_joined: Callable[[str], None] = lambda node_id: None,
    ) -> None:
        self._store = store
        self._peers = peers
        self._case_keys = case_keys
        self._identity = identity
        self._me = identity.node_id
        self._role = role
        self._card = card
        self.on_rekeyed = on_rekeyed
        self.on_peers_changed = on_peers_changed
        self.on_joined = on_joined
        self.roster = Roster()

    # -- reading --------------------------------------------------------------------------

    def statements(self) -> list[Statement]:
        found: list[Statement] = []
        for doc_id in self._store.doc_ids(ROSTER_PREFIX):
            doc = self._store.get(doc_id)
            author = doc_id[len(ROSTER_PREFIX) :]
            for record in (doc.records(COLLECTION) if doc else {}).values():
                try:
                    statement = parse_statement(record.get("text"))
                except StatementInvalid:
                    continue
                if statement.by == author:  # a roster document holds its owner's statements only
                    found.append(statement)
        return found

    def anchors(self) -> dict[str, tuple[bytes, ...]]:
        """The secretariat nodes whose founding statement this node accepts: those an admin trusted by card."""
        anchors = {p.node_id: self._peers.sign_keys(p.node_id) for p in self._peers.all() if p.role == "secretariat"}
        if self._role == "secretariat":
            anchors[self._me] = self._own_keys()
        return anchors

    def _own_keys(self) -> tuple[bytes, ...]:
        history = key_history(verify_chain(self._me, self._identity.rotations))
        return (self._identity.public.sign_key, *(sign for sign, _ in history[:-1]))

    def rotations(self) -> dict[str, list[str]]:
        """Each node's key rotation chain, as published in its roster document (`publish_rotation`)."""
        chains: dict[str, list[str]] = {}
        for doc_id in self._store.doc_ids(ROSTER_PREFIX):
            doc = self._store.get(doc_id)
            records = doc.records(ROTATIONS) if doc else {}
            texts = [
                str(r.get("text"))
                for _, r in sorted(records.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
            ]
            if texts:
                chains[doc_id[len(ROSTER_PREFIX) :]] = texts
        return chains

    def publish_rotation(self, text: str, *, actor: str) -> SignedUpdate | None:
        """Announce this node's next key rotation (signed, like every change, with the keys it retires)."""
        n = parse_rotation(text).n

        def edit(change: DocumentChange) -> None:
            change.put_record(ROTATIONS, str(n), {"text": text})

        return self._store.commit_local(roster_doc(self._me), edit, actor=actor, action="keys.rotate", subject=str(n))

    def member(self, node_id: str) -> bool | None:
        """None while the network has no roster; else whether the node is on it."""
        return self.roster.is_member(node_id) if self.roster.active else None

    def describe(self) -> dict[str, Any]:
        view = self.roster.public_json()
        view["me"] = self._me
        view["my_standing"] = self.roster.standing(self._me)
        return view

    # -- acting on changes ------------------------------------------------------------------

    def on_stored(self, entries: list[SignedUpdate] | Any, source: str | None) -> None:
        if any(e.doc_id.startswith(ROSTER_PREFIX) for e in entries):
            self.refresh()

    def refresh(self) -> Roster:
        rotations = self.rotations()
        changed = False
        for node_id, chain in rotations.items():
            if node_id != self._me and self._peers.apply_rotations(node_id, chain, actor="roster"):
                changed = True
        roster = build_roster(self.statements(), self.anchors(), rotations)
        before, self.roster = self.roster, roster
        for node_id in roster.members.keys() - before.members.keys():
            if before.active and self._peers.get(node_id) is not None:
                self.on_joined(node_id)  # what it offered before it was a member was refused: sync afresh
        for node_id, reason in roster.revoked.items():
            if self._peers.revoke(node_id, reason, actor="roster"):
                changed = True
                log.warning("node %s was revoked from the network (%s)", node_id, reason)
                for doc_id in self._case_keys.parties_of(node_id):
                    if self._case_keys.rekey(doc_id, drop=[node_id]):
                        self.on_rekeyed(doc_id, [p for p in self._case_keys.roles(doc_id) if p != self._me])
        for node_id, member in roster.members.items():
            if node_id == self._me or self._peers.get(node_id) is not None:
                continue
            try:
                self._peers.add_card(member.card_text, actor="roster", source="roster")
                changed = True
                log.info("trusting %s, admitted to the network", node_id)
            except PeerError as exc:
                log.warning("roster member %s not trusted: %s", node_id, exc.message)
        if changed:
            self.on_peers_changed()
        return roster

    def keys_switched(self, node_id: str) -> None:
        """A peer now signs with the keys it announced: hold them, and move its cases to keys wrapped for them."""
        if not self._peers.confirm_rotation(node_id, actor="sync"):
            return
        for doc_id in self._case_keys.parties_of(node_id):
            if self._case_keys.rekey(doc_id):
                self.on_rekeyed(doc_id, [p for p in self._case_keys.roles(doc_id) if p != self._me])

    # -- publishing -----------------------------------------------------------------------

    def _publish(self, text: str, *, actor: str, action: str, subject: str) -> None:
        key = hashlib.sha256(text.encode()).hexdigest()[:32]

        def edit(change: DocumentChange) -> None:
            change.put_record(COLLECTION, key, {"text": text})

        self._store.commit_local(roster_doc(self._me), edit, actor=actor, action=action, subject=subject)
        self.refresh()

    def _require_secretariat(self) -> None:
        standing = self.roster.standing(self._me)
        allowed = standing == "secretariat" if self.roster.active else self._role == "secretariat"
        if not allowed:
            raise Forbidden("only a secretariat node of the network may do that")

    def found(self, network: str, *, actor: str) -> dict[str, Any]:
        """Found the network with this (secretariat) node and the authorities it trusts as the first members."""
        if self._role != "secretariat":
            raise Forbidden("only a secretariat node founds the network")
        if self.roster.active:
            raise Conflict("the network already has a roster")
        if not isinstance(network, str) or not network.strip() or len(network) > 100:
            raise ValidationError("network must be a name of 1 to 100 characters")
        members = [{"card": self._card(), "standing": "secretariat"}]
        for peer in sorted(self._peers.all(), key=lambda p: p.node_id)[:29]:
            card = self._peers.card_text(peer.node_id)
            if card:
                members.append({"card": card, "standing": "secretariat" if peer.role == "secretariat" else "member"})
        text = make_statement(self._identity, "found", network=network.strip(), members=members)
        self._publish(text, actor=actor, action="roster.found", subject=network.strip())
        return self.describe()

    def admit(self, card_text: Any, standing: Any, *, actor: str) -> dict[str, Any]:
        self._require_secretariat()
        if standing not in STANDINGS:
            raise ValidationError(f"standing must be one of {', '.join(STANDINGS)}")
        try:
            card = parse_card(card_text) if isinstance(card_text, str) else None
        except CardError as exc:
            raise ValidationError(f"invalid card: {exc.message}") from exc
        if card is None:
            raise ValidationError("card must be a SEAJust card")
        if card.node_id in self.roster.members:
            raise Conflict("that node is already a member")
        if card.node_id in self.roster.revoked:
            raise Conflict("that node was revoked; the authority must join with a new node")
        text = make_statement(self._identity, "admit", card="".join(card_text.split()), standing=standing)
        self._publish(text, actor=actor, action="roster.admit", subject=card.node_id)
        return self.describe()

    def endorse(self, node_id: Any, *, actor: str) -> dict[str, Any]:
        if self.roster.standing(self._me) not in ("member", "secretariat"):
            raise Forbidden("only a member of the network may endorse a newcomer")
        if node_id not in self.roster.pending:
            raise NotFound("no admission awaits an endorsement for that node")
        text = make_statement(self._identity, "endorse", node=node_id)
        self._publish(text, actor=actor, action="roster.endorse", subject=node_id)
        return self.describe()

    def revoke(self, node_id: Any, reason: Any, *, actor: str) -> dict[str, Any]:
        if node_id != self._me:
            self._require_secretariat()
        if reason not in ("compromised", "left", "other"):
            raise ValidationError("reason must be compromised, left or other")
        if node_id not in self.roster.members:
            raise NotFound("that node is not a member of the network")
        text = make_statement(self._identity, "revoke", node=node_id, reason=reason)
        self._publish(text, actor=actor, action="roster.revoke", subject=node_id)
        return self.describe()
