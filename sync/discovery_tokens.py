"""LAN discovery tokens: who announced this, as only a trusted peer can tell.

Pure functions, no I/O: `sync.discovery` puts `mdns_token(own sign key, this hour)` in the
mDNS TXT record, and a listener runs `recognise` over the signing keys of the peers it
trusts. See `sync.discovery` for why and for what the token does not hide.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

TOKEN_BYTES: Final = 16
_DOMAIN: Final = b"seajust-mdns-v1|"
_SECONDS_PER_HOUR: Final = 3600


def current_hour(now: float) -> int:
    """The hour number a token is made for: whole hours since the Unix epoch."""
    return int(now // _SECONDS_PER_HOUR)


def mdns_token(sign_key: bytes, hour: int) -> str:
    """First 16 bytes (hex) of HMAC-SHA256 keyed with the announcer's public signing key."""
    mac = hmac.new(bytes(sign_key), _DOMAIN + str(hour).encode("ascii"), hashlib.sha256)
    return mac.digest()[:TOKEN_BYTES].hex()


def recognise(token: str, candidates: Mapping[str, bytes], now: float) -> str | None:
    """The node ID whose key made `token` this hour or the previous one (clock skew), else None.

    Every candidate and both hours are compared, in constant time, so how long this takes does not
    say which peer (if any) matched.
    """
    hour = current_hour(now)
    wanted = token.strip().lower().encode("ascii", errors="replace")
    found: str | None = None
    for node_id, sign_key in candidates.items():
        for candidate_hour in (hour, hour - 1):
            if hmac.compare_digest(wanted, mdns_token(sign_key, candidate_hour).encode("ascii")) and found is None:
                found = node_id
    return found
