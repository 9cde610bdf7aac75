"""Opening a node: keys, database, documents, peers and the sync engine, wired together once.

`open_node()` is the composition root for everything but the web server (see `node.app`),
so the CLI, the server and the tests build a node the same way. Components get their
collaborators as arguments; none reaches for a global.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from crypto.card import make_card
from crypto.identity import Identity
from crypto.keystore import load_keyfile
from crypto.rotation import key_history, verify_chain
from node.accounts import Accounts
from node.blobs import BlobStore
from node.case_index import CaseIndex, Reminders
from node.case_keys import CaseKeys
from node.cases import CHECKED_ROOTS, Cases, utc_today
from node.catch_up import MARKER_NAME, CatchUp
from node.config import NodeConfig, NodeHome
from node.directory import Directory
from node.documents import DocumentStore, utc_now
from node.errors import NotFound
from node.invitations import Invitations
from node.lan_offers import LanOffers
from node.mail import MailState, RelayMail
from node.membership import Membership
from node.notices import Notices
from node.peers import Peer, PeerRegistry
from node.policy import REPORT_PREFIX, Policy, is_case
from node.profiles import Profiles
from node.rejections import RejectionLog
from node.reporting import Reporting
from node.retention import Retention
from node.storage import Database
from sync.engine import SyncEngine
from sync.messages import SignedUpdate
from sync.transport import Dialer

log = logging.getLogger(__name__)


@dataclass
class Node:
    home: NodeHome
    config: NodeConfig
    identity: Identity
    db: Database
    store: DocumentStore
    peers: PeerRegistry
    directory: Directory
    profiles: Profiles
    notices: Notices
    rejections: RejectionLog
    engine: SyncEngine
    policy: Policy
    case_keys: CaseKeys
    cases: Cases
    blobs: BlobStore
    reporting: Reporting
    accounts: Accounts
    invitations: Invitations
    mail: RelayMail
    membership: Membership
    retention: Retention
    lan_offers: LanOffers
    catch_up: CatchUp | None = None  # present while a restored node gets its own later updates back
    dialer: Dialer | None = None
    last_seen: dict[str, str] = field(default_factory=dict)
    discovered: dict[str, tuple[str, ...]] = field(default_factory=dict)  # addresses found by mDNS, per peer

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def card(self) -> str:
        return make_card(
            self.identity,
            name=self.config.name,
            country=self.config.country,
            role=self.config.role,
            addresses=[self.config.url],
        )

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "name": self.config.name,
            "country": self.config.country,
            "role": self.config.role,
            "url": self.config.url,
            "card": self.card(),
        }

    def peer_status(self, peer: Peer) -> dict[str, Any]:
        return self.peer_statuses([peer])[0]

    def peer_statuses(self, peers: Sequence[Peer]) -> list[dict[str, Any]]:
        """Each peer as the API, the UI, `/metrics` and `seajust status` show it, its outbox included."""
        outboxes = self.outbox_sizes([p.node_id for p in peers])
        statuses = []
        for peer in peers:
            status = peer.public_json()
            status["last_sync"] = self.last_seen.get(peer.node_id, peer.last_sync)
            status["connected"] = self.engine.is_connected(peer.node_id)
            status["outbox"] = outboxes[peer.node_id]
            statuses.append(status)
        return statuses

    def outbox_sizes(self, peer_ids: Sequence[str]) -> dict[str, int]:
        """Per peer, the signed updates this node holds that the peer is not known to hold yet.

        One pass over the documents for all peers, and a document the peer holds as this node does costs one
        comparison: on a node of 100,000 cases, listing two peers took 0.24 s of blocked event loop (on the
        dashboard, `GET /api/v1/peers` and every `/metrics` scrape)."""
        totals = dict.fromkeys(peer_ids, 0)
        cursors = [(peer_id, self.engine.cursors.get(peer_id, {})) for peer_id in totals]
        for doc_id, mine in self.store.held_versions():
            for peer_id, held_by in cursors:
                have = held_by.get(doc_id)
                if have == mine or not self.policy.entitled(doc_id, peer_id):
                    continue
                have = have or {}
                totals[peer_id] += sum(max(0, seq - have.get(author, 0)) for author, seq in mine.items())
        return totals

    def sync_status(self) -> dict[str, Any]:
        return {
            "connected": self.engine.connected_peers(),
            "rejected": dict(self.rejections.counts),
            "relays": {
                relay: {"last_round": self.mail.last_round.get(relay), "error": self.mail.last_error.get(relay)}
                for relay in self.mail.relays
            },
            "documents": {d: self.store.versions(d) for d in self.store.doc_ids()},
            "catch_up": self.catch_up_status(),
        }

    def catch_up_status(self) -> dict[str, Any] | None:
        """After a restore, whom the node still waits for; None once it accepts changes again."""
        if self.catch_up is None or self.catch_up.refusal() is None:
            return None
        return {"waiting_for": self.catch_up.waiting_for(), "behind": self.catch_up.behind()}

    def note_synced(self, peer_id: str) -> None:
        self.last_seen[peer_id] = utc_now()

    def peers_changed(self) -> None:
        """Re-read trusted peers (after the API or the CLI changed them) and dial the new set."""
        self.peers.reload()
        trusted = {p.node_id for p in self.peers.all()}
        for peer_id in self.engine.connected_peers():
            if peer_id not in trusted:
                self.engine.disconnect(peer_id)
        if self.dialer is not None:
            self.dialer.update(
                {p.node_id: (*self.discovered.get(p.node_id, ()), *p.addresses) for p in self.peers.all()}
            )

    def found_on_lan(self, node_id: str, addresses: tuple[str, ...]) -> None:
        """A trusted peer recognised by mDNS: dial it there first (its card's addresses stay as a fallback)."""
        if self.peers.get(node_id) is not None and self.discovered.get(node_id) != addresses:
            self.discovered[node_id] = addresses
            self.peers_changed()

    def load_cursors(self) -> None:
        for row in self.db.query("SELECT peer_id, doc_id, author, seq FROM peer_cursors"):
            self.engine.cursors[row["peer_id"]].setdefault(row["doc_id"], {})[row["author"]] = row["seq"]

    def flush_sync_state(self) -> None:
        """Persist peers' cursors and last-sync times (kept in memory between flushes)."""
        dirty = dict(self.engine.dirty_cursors)
        self.engine.dirty_cursors.clear()
        trusted = {p.node_id for p in self.peers.all()}
        with self.db.write() as db:
            for peer_id, doc_ids in dirty.items():
                if peer_id not in trusted:
                    continue
                cursors = self.engine.cursors.get(peer_id, {})
                rows = [
                    {"peer_id": peer_id, "doc_id": doc_id, "author": author, "seq": seq}
                    for doc_id in sorted(doc_ids)
                    for author, seq in cursors.get(doc_id, {}).items()
                ]
                if rows:
                    db.table("peer_cursors").upsert_all(rows, pk=("peer_id", "doc_id", "author"))
            for peer_id, when in self.last_seen.items():
                if peer_id in trusted:
                    db.execute("UPDATE peers SET last_sync = ? WHERE node_id = ?", (when, peer_id))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.flush_sync_state()
        with contextlib.suppress(Exception):
            self.store.snapshot_all()
        self.db.close()


NODE_KEY = web.AppKey("node", Node)


# Allocations between two young-generation collections of the cyclic garbage collector (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    """Set the garbage collector up for a long-running node, once it is open.

    What a node loads at start (every document's version vector, every case key: millions of objects at
    100,000 cases) lives as long as the process: `gc.freeze` moves it out of the collector's way, so the older
    generations are not walked again and again. A node's garbage is freed by reference counting almost all of
    it (parsed JSON, views of a case, rows), so the collector is also run less often: at Python's default it
    took about a tenth of a busy node's time.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def open_node(home_path: Path, passphrase: str) -> Node:
    home = NodeHome(home_path)
    home.require()
    config = home.load_config()
    secrets = load_keyfile(home.keyfile, passphrase)
    db = Database(home.database, secrets.db_key)
    identity = secrets.identity
    peers = PeerRegistry(db, identity.node_id)

    def kx_key(node_id: str) -> bytes | None:
        keys = peers.keys(node_id)
        return keys.kx_key if keys else None

    own_old_keys = tuple(sign for sign, _ in key_history(verify_chain(identity.node_id, identity.rotations))[:-1][::-1])

    def older_keys(node_id: str) -> tuple[bytes, ...]:
        """Signing keys a node used before it rotated its keys (this node's own too), newest first."""
        return own_old_keys if node_id == identity.node_id else peers.old_sign_keys(node_id)

    def sign_keys(node_id: str) -> tuple[bytes, ...]:
        if node_id == identity.node_id:
            return (identity.public.sign_key, *own_old_keys)
        return peers.sign_keys(node_id)

    case_keys = CaseKeys(
        db,
        identity,
        sign_key_of=peers.sign_key,
        kx_key_of=kx_key,
        revoked=peers.is_revoked,
        older_sign_keys=older_keys,
    )
    case_keys.load()

    def role_of(node_id: str) -> str | None:
        if node_id == identity.node_id:
            return config.role
        peer = peers.get(node_id)
        return peer.role if peer else None

    node_holder: list[Node] = []

    def on_roster(node_id: str) -> bool | None:
        return node_holder[0].membership.member(node_id) if node_holder else None

    policy = Policy(case_keys.parties, role_of, me=identity.node_id, member=on_roster)
    catch_up = CatchUp(
        home.path / MARKER_NAME,
        identity.node_id,
        peers=lambda: [p.node_id for p in peers.all()],
        held=lambda doc_id: store.versions(doc_id),
    )
    store = DocumentStore(
        db,
        identity,
        author_key=peers.sign_key,
        may_write=policy.may_write,
        encrypted=policy.encrypted,
        keys=case_keys,
        checked=is_case,
        strict_authors=lambda doc_id: is_case(doc_id) or doc_id.startswith(REPORT_PREFIX),
        revoked=peers.is_revoked,
        older_keys=older_keys,
        may_commit=catch_up.refusal,
    )
    store.load()
    blobs = BlobStore(home.path / "blobs")
    profiles = Profiles(store, identity.node_id, config.country)
    notices = Notices(store, identity.node_id, config.role, role_of=role_of)

    def profile_of(country: str) -> dict[str, Any] | None:
        try:
            return profiles.get(country)
        except NotFound:
            return None

    def peer_info(node_id: str) -> dict[str, Any] | None:
        peer = peers.get(node_id)
        return {"name": peer.name, "country": peer.country, "role": peer.role} if peer else None

    case_index = CaseIndex(db)
    cases = Cases(
        db,
        store,
        case_keys,
        case_index,
        blobs,
        identity,
        country=config.country,
        name=config.name,
        peer_info=peer_info,
        sign_key_of=sign_keys,
        profile_of=profile_of,
        reminders=Reminders(ack_days=config.ack_reminder_days, nearing_days=config.due_soon_days),
        max_attachment=config.max_attachment_mb * 1024 * 1024,
    )
    store.set_rules(cases.check_remote, *CHECKED_ROOTS)
    store.add_indexer(cases.reindex)
    reporting = Reporting(
        db,
        store,
        node_id=identity.node_id,
        country=config.country,
        role=config.role,
        k=config.stats_k,
        schedule=config.reporting,
        members=lambda: {p.node_id: p.country for p in peers.all() if p.role == "authority"},
        today=utc_today,
    )
    rejections = RejectionLog(db)
    engine = SyncEngine(
        identity,
        store,
        peer_keys=peers.keys,
        entitled=policy.entitled,
        rejections=rejections,
        on_synced=lambda peer: node_holder[0].note_synced(peer) if node_holder else None,
        durability=db,
    )
    store.on_stored(engine.push)
    node = Node(
        home=home,
        config=config,
        identity=identity,
        db=db,
        store=store,
        peers=peers,
        directory=Directory(store, identity.node_id, config.country, revoked=peers.is_revoked),
        profiles=profiles,
        notices=notices,
        rejections=rejections,
        engine=engine,
        policy=policy,
        case_keys=case_keys,
        cases=cases,
        blobs=blobs,
        reporting=reporting,
        accounts=Accounts(db),
        invitations=Invitations(db, identity, lambda: node_holder[0].card(), peers),
        mail=RelayMail(identity, engine, peers, MailState(db), rejections, relays=config.relays),
        lan_offers=LanOffers(
            own_id=identity.node_id,
            known=lambda node_id: peers.get(node_id) is not None or peers.is_revoked(node_id),
        ),
        retention=Retention(
            db,
            store,
            case_keys,
            blobs,
            case_index,
            shred_after_days=config.shred_closed_after_days,
            rotate_after_days=config.case_key_days,
            today=utc_today,
        ),
        membership=Membership(store, peers, case_keys, identity, role=config.role, card=lambda: node_holder[0].card()),
    )
    cases.on_shared = engine.regrant
    node.membership.on_rekeyed = engine.regrant
    node.retention.on_rekeyed = engine.regrant
    node.membership.on_peers_changed = node.peers_changed
    node.membership.on_joined = engine.disconnect  # the dialer reconnects, and both sides compare versions anew
    engine.on_keys_switched = node.membership.keys_switched
    node.mail.on_keys_switched = node.membership.keys_switched
    store.on_stored(node.membership.on_stored)
    if catch_up.active:
        node.catch_up = catch_up
        engine.on_complete_versions = catch_up.versions_received

        def stored(entries: Sequence[SignedUpdate], source: str | None) -> None:
            if source is not None:  # one of this node's own updates may be back
                catch_up.check()

        store.on_stored(stored)
        node.retention.may_rekey = catch_up.refusal  # a new key epoch could reuse a grant version peers hold
    node_holder.append(node)
    node.membership.refresh()
    node.load_cursors()
    if catch_up.active and not catch_up.check():  # after the roster's peers are known: each must answer
        log.info("restored from a backup: local changes wait until every trusted peer has answered")
    return node
