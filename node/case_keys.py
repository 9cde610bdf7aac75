"""The keys of the case documents this node is a party to.

Each case has its own random key, wrapped for each party's X25519 key in a signed grant
(`crypto.doc_keys`). The grant is what makes a node a party: the write and share policy
(`node.policy`) reads the party list from here, so a node without a grant neither receives the
case nor may write it. The unwrapped key is kept in the node's database, which is itself
encrypted with a key only the passphrase opens.

A grant received from a peer is checked before it is kept: signed by a trusted node that is
one of its parties, naming this node, with exactly one requesting and one requested side; a
later version (a share to a third party) must come from a current party, keep every party's
role and carry the same key, so a party can widen a case but nobody can take it over.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from crypto.doc_keys import (
    DocCipher,
    KeyGrant,
    decode_grant,
    encode_grant,
    issue_grant,
    new_doc_key,
    unwrap_key,
    verify_grant,
)
from crypto.errors import CryptoError, SignatureInvalid
from crypto.identity import Identity
from node.documents import utc_now
from node.errors import NotFound, PeerError
from node.policy import CASE_PREFIX
from node.storage import Database
from sync.errors import UpdateRejected

log = logging.getLogger(__name__)

ROLE_REQUESTING = "requesting"
ROLE_REQUESTED = "requested"
ROLE_SHARED = "shared"


CIPHERS_KEPT = 4_096  # ciphers (about 2.5 kB each) kept ready; the keys themselves are all in memory


@dataclass(frozen=True)
class HeldKey:
    key: bytes
    version: int
    roles: dict[str, str]  # node ID -> requesting | requested | shared


class CaseKeys:
    def __init__(
        self,
        db: Database,
        identity: Identity,
        *,
        sign_key_of: Callable[[str], bytes | None],
        kx_key_of: Callable[[str], bytes | None],
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = db
        self._identity = identity
        self._me = identity.node_id
        self._sign_key_of = sign_key_of
        self._kx_key_of = kx_key_of
        self._clock = clock
        self._held: dict[str, HeldKey] = {}
        self._ciphers: OrderedDict[str, DocCipher] = OrderedDict()

    def load(self) -> None:
        held: dict[str, HeldKey] = {}
        for row in self._db.query("SELECT doc_id, doc_key, version, parties FROM case_keys"):
            roles = {sys.intern(n): sys.intern(r) for n, r in json.loads(row["parties"]).items()}  # shared, not copied
            held[row["doc_id"]] = HeldKey(key=row["doc_key"], version=row["version"], roles=roles)
        self._held = held
        self._ciphers.clear()

    # -- reading --------------------------------------------------------------------------

    def roles(self, doc_id: str) -> dict[str, str]:
        held = self._held.get(doc_id)
        return dict(held.roles) if held else {}

    def has(self, doc_id: str) -> bool:
        return doc_id in self._held

    def doc_ids(self) -> list[str]:
        return sorted(self._held)

    def cipher(self, doc_id: str) -> DocCipher | None:
        cipher = self._ciphers.get(doc_id)
        if cipher is not None:
            self._ciphers.move_to_end(doc_id)
            return cipher
        held = self._held.get(doc_id)
        if held is None:
            return None
        cipher = self._ciphers[doc_id] = DocCipher(held.key, doc_id)
        while len(self._ciphers) > CIPHERS_KEPT:
            self._ciphers.popitem(last=False)
        return cipher

    def grant_bytes(self, doc_id: str) -> bytes | None:
        if doc_id not in self._held:
            return None
        rows = self._db.query("SELECT grant FROM case_keys WHERE doc_id = ?", (doc_id,))
        return bytes(rows[0]["grant"]) if rows else None

    def widened_grants(self, doc_ids: Sequence[str]) -> list[bytes]:
        widened = [d for d in doc_ids if (held := self._held.get(d)) is not None and held.version > 1]
        return [grant for d in widened if (grant := self.grant_bytes(d)) is not None]

    # -- issuing --------------------------------------------------------------------------

    def _party_keys(self, roles: Mapping[str, str]) -> dict[str, tuple[str, bytes]]:
        parties: dict[str, tuple[str, bytes]] = {}
        for node_id, role in roles.items():
            kx = self._identity.public.kx_key if node_id == self._me else self._kx_key_of(node_id)
            if kx is None:
                raise PeerError(f"node {node_id} is not a trusted peer of this node")
            parties[node_id] = (role, kx)
        return parties

    def create(self, doc_id: str, roles: Mapping[str, str]) -> None:
        """A new case: a fresh key, wrapped for every party, kept before the case's first update."""
        key = new_doc_key()
        grant = issue_grant(self._identity, doc_id=doc_id, version=1, key=key, parties=self._party_keys(roles))
        self._keep(grant, key)

    def share(self, doc_id: str, node_id: str) -> None:
        """Widen a case to a third party: the same key, wrapped for one more node, at the next version."""
        held = self._held.get(doc_id)
        if held is None:
            raise NotFound("no such case on this node")
        if node_id in held.roles:
            return
        roles = {**held.roles, node_id: ROLE_SHARED}
        grant = issue_grant(
            self._identity, doc_id=doc_id, version=held.version + 1, key=held.key, parties=self._party_keys(roles)
        )
        self._keep(grant, held.key)

    # -- receiving ------------------------------------------------------------------------

    def accept_grants(self, grants: Sequence[bytes], *, via: str) -> None:
        """Keep each acceptable grant; raise for the first bad one once all were looked at."""
        problem: UpdateRejected | None = None
        for data in grants:
            try:
                self._accept(data, via)
            except UpdateRejected as exc:
                log.warning("key grant from %s refused: %s", via, exc.message)
                problem = problem or exc
        if problem is not None:
            raise problem

    def _accept(self, data: bytes, via: str) -> None:
        try:
            grant = decode_grant(data)
        except CryptoError as exc:
            raise UpdateRejected("bad_grant", "key grant is malformed") from exc
        if not grant.doc_id.startswith(CASE_PREFIX) or len(grant.doc_id) <= len(CASE_PREFIX):
            raise UpdateRejected("bad_grant", "key grant for a document that is not a case")
        if self._me not in grant.roles:
            raise UpdateRejected("not_addressed", "key grant does not name this node")
        if grant.issuer not in grant.roles or via not in grant.roles:
            raise UpdateRejected("bad_grant", "key grant issued or forwarded by a node that is not a party")
        sides = sorted(grant.roles.values())
        if sides.count(ROLE_REQUESTING) != 1 or sides.count(ROLE_REQUESTED) != 1:
            raise UpdateRejected("bad_grant", "a case has exactly one requesting and one requested side")
        sign_key = self._identity.public.sign_key if grant.issuer == self._me else self._sign_key_of(grant.issuer)
        if sign_key is None:
            raise UpdateRejected("untrusted_sender", "key grant issued by a node this node does not trust")
        try:
            verify_grant(grant, sign_key)
        except SignatureInvalid as exc:
            raise UpdateRejected("bad_grant_signature", "key grant signature does not verify") from exc
        try:
            key = unwrap_key(grant, self._identity)
        except CryptoError as exc:
            raise UpdateRejected("bad_grant", "key grant cannot be unwrapped by this node") from exc
        held = self._held.get(grant.doc_id)
        if held is not None:
            if grant.version <= held.version:
                return  # already held (or older): nothing to do
            kept_roles = all(grant.roles.get(node) == role for node, role in held.roles.items())
            if grant.issuer not in held.roles or not kept_roles or key != held.key:
                raise UpdateRejected(
                    "bad_grant", "a later key grant must come from a party and keep the case as it was"
                )
        self._keep(grant, key)

    def _keep(self, grant: KeyGrant, key: bytes) -> None:
        data = encode_grant(grant)
        with self._db.write() as db:
            db.table("case_keys").upsert(
                {
                    "doc_id": grant.doc_id,
                    "doc_key": key,
                    "grant": data,
                    "version": grant.version,
                    "parties": json.dumps(grant.roles, sort_keys=True),
                    "received_at": self._clock(),
                },
                pk="doc_id",
            )
        self._held[grant.doc_id] = HeldKey(key, grant.version, dict(grant.roles))
        self._ciphers.pop(grant.doc_id, None)
