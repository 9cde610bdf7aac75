"""Nodes met on the LAN that offered their card: listed as "discovered, not trusted" until an admin decides.

An offer is only a hint: the card is fetched from the announced address and checked like any card
(self-signed, its node ID matching its keys), but nothing is trusted until an admin has compared the
node ID with the one the other authority reads out, and accepts it (`PeerRegistry.add_card`). This
node offers its own card only for the minutes an admin chose (`offer`), so it is identifiable on the
LAN only then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from crypto.card import MAX_CARD_SIZE, NodeCard, parse_card
from crypto.errors import CardError
from node.errors import ValidationError

log = logging.getLogger(__name__)

CARD_PATH: Final = "/sync/v1/card"
MAX_OFFER_MINUTES: Final = 120
KEEP_SEEN: Final = 3600.0  # seconds an offer stays listed after it was last seen
MAX_LISTED: Final = 50


@dataclass(frozen=True)
class Offer:
    card: NodeCard
    text: str
    addresses: tuple[str, ...]
    seen_at: float

    def public_json(self) -> dict[str, Any]:
        return {
            "node_id": self.card.node_id,
            "name": self.card.name,
            "country": self.card.country,
            "role": self.card.role,
            "addresses": list(self.addresses),
            "card": self.text,
            "seen_at": self.seen_at,
        }


class LanOffers:
    def __init__(
        self,
        *,
        own_id: str,
        known: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`known(node_id)`: already trusted or revoked, so not worth listing."""
        self._own_id = own_id
        self._known = known
        self._clock = clock
        self.offering_until = 0.0
        self._offers: dict[str, Offer] = {}

    # -- this node's own offer ------------------------------------------------------------

    def offer(self, minutes: object) -> float:
        if type(minutes) is not int or not 0 <= minutes <= MAX_OFFER_MINUTES:
            raise ValidationError(f"minutes must be a whole number from 0 (stop) to {MAX_OFFER_MINUTES}")
        self.offering_until = self._clock() + minutes * 60 if minutes else 0.0
        return self.offering_until

    def offering(self) -> bool:
        return self._clock() < self.offering_until

    # -- others' offers -------------------------------------------------------------------

    def listed(self) -> list[Offer]:
        now = self._clock()
        fresh = [o for o in self._offers.values() if now - o.seen_at < KEEP_SEEN and not self._known(o.card.node_id)]
        return sorted(fresh, key=lambda o: (o.card.country, o.card.name, o.card.node_id))

    def get(self, node_id: str) -> Offer | None:
        offer = self._offers.get(node_id)
        return offer if offer is not None and offer in self.listed() else None

    def add(self, text: str, addresses: Sequence[str]) -> Offer | None:
        try:
            card = parse_card(text)
        except CardError:
            log.info("a node on the LAN offered a card that does not verify")
            return None
        if card.node_id == self._own_id or self._known(card.node_id):
            return None
        if card.node_id not in self._offers and len(self._offers) >= MAX_LISTED:
            oldest = min(self._offers.values(), key=lambda o: o.seen_at)
            self._offers.pop(oldest.card.node_id)
        offer = Offer(card, text.strip(), tuple(addresses), self._clock())
        self._offers[card.node_id] = offer
        return offer

    async def fetch(self, http: aiohttp.ClientSession, addresses: Sequence[str]) -> Offer | None:
        """Fetch the card an announcement offers, from the first address that answers."""
        for address in addresses:
            try:
                async with http.get(address.rstrip("/") + CARD_PATH, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if resp.status != 200:
                        continue
                    raw = await resp.content.read(MAX_CARD_SIZE + 1)
            except (aiohttp.ClientError, OSError, TimeoutError):
                continue
            if len(raw) <= MAX_CARD_SIZE:
                return self.add(raw.decode("utf-8", errors="replace"), addresses)
        return None
