"""Syncing through relays: leave mail for trusted peers that are offline, collect mail left for this node.

Authorities across time zones are often never online together; a relay (`seajust relay`) lets them
sync anyway without trusting it. One round with a relay, every `relay_interval` seconds:

1. collect: fetch the envelopes left for this node, check each (`sync.mailbox.open_mail`: signed by
   a trusted peer, for this node, not seen before), hand its message to the sync engine exactly as
   if it had arrived in a session (updates are verified and stored durably), and only then
   acknowledge, so the relay deletes nothing this node has not kept;
2. leave: for every trusted peer without a live session, ask the engine for the round's mail (the
   replies to what was collected, this node's version list when it changed, every entry the peer
   lacks and was not already mailed) and deposit it sealed for that peer.

Streams and sequence numbers live in the database (`mail_out`, `mail_in`), so a replayed envelope
is refused after a restart too. The relay sees sender, recipient, sizes and times, never content.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import aiohttp

from crypto.envelope import peek_header
from crypto.errors import EnvelopeRejected
from crypto.identity import Identity
from node.documents import utc_now
from node.peers import PeerRegistry
from node.rejections import RejectionLog
from node.storage import Database
from sync.engine import MailLink, SyncEngine
from sync.errors import RemoteProtocolError
from sync.mailbox import new_stream, open_mail, seal_mail
from sync.relay_client import RelayError, ack, deposit, fetch

log = logging.getLogger(__name__)

DEPOSIT_BYTES = 16 * 1024 * 1024  # envelopes per deposit request, well under the relay's request limit


class MailState:
    """Mail streams and sequence numbers, kept in the node's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def last_seq(self, sender: str, stream: bytes) -> int:
        rows = self._db.query("SELECT seq FROM mail_in WHERE sender = ? AND stream = ?", (sender, stream))
        return int(rows[0]["seq"]) if rows else 0

    def accepted(self, sender: str, stream: bytes, seq: int) -> None:
        with self._db.write() as db:
            db.table("mail_in").upsert(
                {"sender": sender, "stream": stream, "seq": seq, "at": utc_now()}, pk=("sender", "stream")
            )

    def reserve(self, peer_id: str, relay: str, count: int) -> tuple[bytes, int]:
        """`count` fresh sequence numbers on this peer's stream at this relay: (stream, first seq)."""
        with self._db.write() as db:
            rows = list(db.query("SELECT stream, seq FROM mail_out WHERE peer_id = ? AND relay = ?", (peer_id, relay)))
            stream, last = (bytes(rows[0]["stream"]), int(rows[0]["seq"])) if rows else (new_stream(), 0)
            db.table("mail_out").upsert(
                {"peer_id": peer_id, "relay": relay, "stream": stream, "seq": last + count}, pk=("peer_id", "relay")
            )
        return stream, last + 1


def _batches(envelopes: Sequence[bytes], limit: int = DEPOSIT_BYTES) -> list[list[bytes]]:
    batches: list[list[bytes]] = [[]]
    size = 0
    for envelope in envelopes:
        if batches[-1] and size + len(envelope) > limit:
            batches.append([])
            size = 0
        batches[-1].append(envelope)
        size += len(envelope)
    return [b for b in batches if b]


def _claimed_sender(data: bytes) -> str | None:
    """Who the envelope says sent it (unverified: for the rejection log only)."""
    try:
        return peek_header(data).sender_id
    except EnvelopeRejected:
        return None


class RelayMail:
    def __init__(
        self,
        identity: Identity,
        engine: SyncEngine,
        peers: PeerRegistry,
        state: MailState,
        rejections: RejectionLog,
        *,
        relays: Sequence[str],
        clock: Callable[[], float] = time.time,
        on_keys_switched: Callable[[str], None] = lambda peer: None,
    ) -> None:
        self._me = identity
        self._engine = engine
        self._peers = peers
        self._state = state
        self._rejections = rejections
        self.relays = tuple(relays)
        self._clock = clock
        self.on_keys_switched = on_keys_switched
        self.last_round: dict[str, str] = {}  # relay -> when a round last completed
        self.last_error: dict[str, str] = {}

    async def run(self, http: aiohttp.ClientSession, interval: float) -> None:
        while True:
            for relay in self.relays:
                try:
                    await self.round(http, relay)
                except Exception:  # e.g. the disk is full: nothing was acknowledged, the next round retries
                    log.exception("mail round with %s failed", relay)
            await asyncio.sleep(interval)

    async def round(self, http: aiohttp.ClientSession, relay: str) -> bool:
        """One collect-then-leave round with one relay; False (and logged) if the relay could not be reached."""
        try:
            links = await self._collect(http, relay)
            await self._leave(http, relay, links)
        except (RelayError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.last_error[relay] = type(exc).__name__
            log.warning("relay %s: %s", relay, exc if isinstance(exc, RelayError) else type(exc).__name__)
            return False
        self.last_round[relay] = utc_now()
        self.last_error.pop(relay, None)
        return True

    async def _collect(self, http: aiohttp.ClientSession, relay: str) -> dict[str, MailLink]:
        links: dict[str, MailLink] = {}
        after = 0
        while True:
            batch = await fetch(http, relay, self._me, after=after)
            if not batch:
                return links
            for mail_id, data in batch:
                self._receive(data, links)
                after = max(after, mail_id)
            await ack(http, relay, self._me, after)

    def _receive(self, data: bytes, links: dict[str, MailLink]) -> None:
        try:
            mail = open_mail(self._me, data, sign_key_of=self._sign_keys, last_seq=self._state.last_seq)
        except EnvelopeRejected as exc:
            self._rejections.record(_claimed_sender(data), exc.reason.value, f"mail: {exc.message}")
            return
        except RemoteProtocolError as exc:
            self._rejections.record(_claimed_sender(data), exc.reason, f"mail: {exc.message}")
            return
        keys = self._peers.keys(mail.sender)
        if keys is not None and keys.announced and mail.signed_by == keys.announced[0]:
            self.on_keys_switched(mail.sender)  # it rotated its keys: hold the new ones from now on
        link = links.setdefault(mail.sender, MailLink(mail.sender))
        self._engine.mail_received(link, mail.message)  # stores durably before returning
        self._state.accepted(mail.sender, mail.stream, mail.seq)

    def _sign_keys(self, node_id: str) -> tuple[bytes, ...] | None:
        keys = self._peers.keys(node_id)
        if keys is None:
            return None
        return (keys.sign_key, keys.announced[0]) if keys.announced else (keys.sign_key,)

    async def _leave(self, http: aiohttp.ClientSession, relay: str, links: dict[str, MailLink]) -> None:
        now = self._clock()
        for peer in self._peers.all():
            if self._engine.is_connected(peer.node_id):
                continue  # the live session carries everything, replies included
            plan = self._engine.mail_for(links.get(peer.node_id) or MailLink(peer.node_id), now=now)
            if not plan.messages:
                continue
            stream, first = self._state.reserve(peer.node_id, relay, len(plan.messages))
            envelopes = [
                seal_mail(self._me, peer.keys, stream=stream, seq=first + i, message=message)
                for i, message in enumerate(plan.messages)
            ]
            for batch in _batches(envelopes):
                await deposit(http, relay, self._me, batch)
            self._engine.mail_delivered(peer.node_id, plan, now=now)
            log.info("left %d messages for %s at %s", len(envelopes), peer.node_id, relay)
