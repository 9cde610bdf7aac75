"""Invitations kept in the node's database: an admin makes a code, another node claims it, both trust each other.

The protocol and its reasoning are in `crypto.invitation`; this module stores invitations and applies the
outcome. The inviter keeps only SHA-256 of the code (and the invite_id derived from it), so neither the database
nor its backups hold a usable code in clear, and the audit log records invite_id but never the code. Checking a
claim, marking the invitation used and trusting the invitee's card happen in one write transaction, so two
claims racing for one code cannot both succeed, and a card the peer registry refuses leaves the invitation
unused. Wrong codes are counted in the same table, so a restart does not reset the attempt limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from crypto import invitation as protocol
from crypto.identity import Identity
from crypto.invitation import ClaimState, InvitationRecord, InvitationRefused, RefusalReason
from node.peers import Peer, PeerRegistry
from node.storage import Database

TABLE = "invitations"


class Invitations:
    def __init__(
        self,
        db: Database,
        identity: Identity,
        card: Callable[[], str],
        peers: PeerRegistry,
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._card = card
        self._peers = peers
        self._clock = clock
        self._random_bytes = random_bytes

    # --- the inviter ----------------------------------------------------------------------------------------------

    def create(self, *, actor: str) -> str:
        """A new one-time code, valid for 24 hours, shown to the admin once (as `XXXX-XXXX-XXXX-XXXX`)."""
        code = protocol.new_code(self._random_bytes) if self._random_bytes else protocol.new_code()
        now = self._clock()
        record = protocol.new_record(code, now)
        with self._db.write() as w:
            w.execute("DELETE FROM invitations WHERE expires_at <= ?", (now - protocol.INVITATION_LIFETIME,))
            w.table(TABLE).insert(
                {
                    "invite_id": record.invite_id,
                    "code_hash": record.secret,
                    "created_at": self._iso(now),
                    "created_by": actor,
                    "expires_at": record.expires_at,
                    "failures": 0,
                    "used_at": None,
                    "used_by": None,
                }
            )
            self._audit(w, actor, "invite.create", record.invite_id)
        return code

    def answer_claim(self, claim: Mapping[str, Any]) -> dict[str, str]:
        """Check an invitee's claim, trust its card, and return the answer for it; `InvitationRefused` otherwise.

        A card the peer registry refuses (this node's own, or an unknown country) raises `PeerError` and leaves
        the invitation unused.
        """
        try:
            parsed = protocol.parse_claim(claim)
        except InvitationRefused as exc:
            self._refused("invitation", None, exc)
            raise
        refused: InvitationRefused | None = None
        with self._db.write() as w:
            rows = self._db.query("SELECT * FROM invitations WHERE invite_id = ?", (parsed.invite_id,))
            record = self._record(rows[0]) if rows else None
            creator = str(rows[0]["created_by"]) if rows else "invitation"
            try:
                answered = protocol.answer_claim(record, parsed, self._card(), self._clock())
            except InvitationRefused as exc:
                refused = exc
                if exc.reason is RefusalReason.WRONG_CODE:
                    w.execute("UPDATE invitations SET failures = failures + 1 WHERE invite_id = ?", (parsed.invite_id,))
                self._audit(w, creator, "invite.refused", f"{parsed.invite_id} ({exc.reason.value})")
            else:
                node_id = answered.invitee.card.node_id
                w.execute(
                    "UPDATE invitations SET used_at = ?, used_by = ? WHERE invite_id = ?",
                    (self._iso(self._clock()), node_id, parsed.invite_id),
                )
                self._audit(w, creator, "invite.accept", f"{parsed.invite_id} by {node_id}")
                self._peers.add_card(answered.invitee.text, actor=creator)  # last: it may refuse, rolling back
        if refused is not None:
            raise refused
        return answered.answer

    # --- the invitee ----------------------------------------------------------------------------------------------

    def make_claim(self, code: str) -> tuple[dict[str, str], ClaimState]:
        """The claim to send to the inviting node, and the state to pass to `finish` with its answer."""
        return protocol.make_claim(code, self._card())

    def finish(self, answer: Mapping[str, Any], state: ClaimState, *, actor: str = "invitation") -> Peer:
        """Check the inviter's answer and trust its card."""
        try:
            verified = protocol.verify_answer(answer, state)
        except InvitationRefused as exc:
            self._refused(actor, state.invite_id, exc)
            raise
        with self._db.write() as w:
            self._audit(w, actor, "invite.accept", f"{state.invite_id} from {verified.card.node_id}")
            peer = self._peers.add_card(verified.text, actor=actor)
        return peer

    # --- helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def _record(row: dict[str, Any]) -> InvitationRecord:
        return InvitationRecord(
            invite_id=str(row["invite_id"]),
            secret=bytes(row["code_hash"]),
            expires_at=float(row["expires_at"]),
            used=row["used_at"] is not None,
            failures=int(row["failures"]),
        )

    def _refused(self, actor: str, invite_id: str | None, exc: InvitationRefused) -> None:
        with self._db.write() as w:
            self._audit(w, actor, "invite.refused", f"{invite_id or '-'} ({exc.reason.value})")

    def _iso(self, at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _audit(self, w: Any, actor: str, action: str, subject: str) -> None:
        w.table("audit_log").insert(
            {"at": self._iso(self._clock()), "actor": actor, "action": action, "doc_id": None, "subject": subject}
        )
