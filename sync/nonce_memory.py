"""Nonces of signed, timed request tokens, remembered just long enough to refuse a second use.

Shared by the attachment requests (`sync.blob_transfer`) and the relay (`sync.relay_auth`): a token
is acceptable while `|time - now| <= max_skew`, so its nonce need only be kept until `time + max_skew`.
Memory is bounded: beyond `limit` live nonces the oldest-dated is dropped and every token dated no
later than it is refused from then on, so forgetting one never re-opens a replay.
"""

from __future__ import annotations

import heapq


class NonceMemory:
    def __init__(self, *, max_skew: float, limit: int) -> None:
        self._max_skew = max_skew
        self._limit = limit
        self._seen: set[tuple[str, str]] = set()
        self._live: list[tuple[int, tuple[str, str]]] = []  # heap of (token time, key), oldest first
        self._floor: int | None = None  # tokens dated at or before this are refused (see above)

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, sender: str, nonce: str, issued: int, now: float) -> bool:
        """Record a token's nonce; False if it was seen before (or is too old to tell)."""
        while self._live and self._live[0][0] + self._max_skew < now:
            self._seen.discard(heapq.heappop(self._live)[1])
        key = (sender, nonce)
        if key in self._seen or (self._floor is not None and issued <= self._floor):
            return False
        self._seen.add(key)
        heapq.heappush(self._live, (issued, key))
        while len(self._seen) > self._limit:
            dropped_time, dropped = heapq.heappop(self._live)
            self._seen.discard(dropped)
            self._floor = dropped_time if self._floor is None else max(self._floor, dropped_time)
        return True
