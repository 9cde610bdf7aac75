"""LAN discovery over mDNS (zeroconf): find trusted peers without telling strangers who we are.

Each node announces `_seajust._tcp.local.` under an opaque instance name (12 random hex
characters, new at every start; the mDNS host name is the same opaque label) with two TXT
entries: `v=1` and `t=<token>`, where the token is the first 16 bytes of
HMAC-SHA256(key = the node's public Ed25519 signing key, msg = "seajust-mdns-v1|" + hour), renewed
every hour (`sync.discovery_tokens`). A listener recomputes the token for every peer it trusts,
for this hour and the previous one, and dials the addresses of the announcement that matches.

Why not announce the node ID, as Syncthing's local discovery broadcasts device IDs in clear:
on a shared LAN (a ministry building, a conference hotel) that would tell anyone listening that
a given central authority's node is here, and let them follow it from network to network. With
the token a stranger sees a random name and a value that changes every hour and cannot be tied
to a node or to last hour's value.

What it does not hide: public signing keys are not secret. Whoever holds a node's card (every
peer that trusts it, the directory, anyone it was shared with) can recognise its announcements.
The token hides the node from strangers who do not hold the card, not from every member.
A stranger can replay a trusted peer's token (valid for up to two hours) with its own address;
that only makes us dial it, and the sync handshake then fails because it cannot sign as that
peer. Announcers we do not recognise are only counted (`Discovery.unrecognised`); nothing is
ever synced with them. Addresses found here are hints for the dialler; trust still comes only
from cards.

Meeting a new node on the LAN: an admin may have its node *offer its card* for a while (minutes,
during an onboarding visit): the announcement then carries `o=1`, and the node serves its card at
`GET /sync/v1/card` until the offer ends. A listener that sees an unrecognised announcement with
`o=1` hands its addresses to `on_offer`; the node fetches the card and lists it as "discovered, not
trusted" until an admin compares the fingerprint and accepts it. While it offers, the node is
identifiable on the LAN, which is the point; the rest of the time it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from sync.discovery_tokens import current_hour, mdns_token, recognise

log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_seajust._tcp.local."
PROTOCOL_VERSION: Final = "1"
RESOLVE_TIMEOUT_MS: Final = 3000
REANNOUNCE_CHECK: Final = 2.0  # seconds
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})

Interfaces = Sequence[str] | InterfaceChoice


def _base_url(ip: str, port: int) -> str:
    return f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}"


def _own_addresses(host: str, interfaces: Interfaces) -> list[str]:
    """The addresses to announce: the bound host, else the chosen interfaces, else every non-loopback IPv4."""
    if host not in _WILDCARDS:
        return [host]
    if not isinstance(interfaces, InterfaceChoice):
        return [str(i) for i in interfaces]
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.IPv4Address(ip.ip).is_loopback:
                found.append(ip.ip)
    return found


class Discovery:
    """Announces this node on the LAN and reports trusted peers found there.

    `trusted` is read at each announcement seen (node ID -> public signing key), so peers added
    later are recognised without a restart; `on_found(node_id, base_urls)` is called on the
    event loop each time a trusted peer's announcement is resolved.
    """

    def __init__(
        self,
        *,
        sign_key: bytes,
        port: int,
        host: str,
        trusted: Callable[[], Mapping[str, bytes]],
        on_found: Callable[[str, tuple[str, ...]], None],
        interfaces: Interfaces = InterfaceChoice.All,
        clock: Callable[[], float] = time.time,
        instance: str | None = None,
        offering: Callable[[], bool] = lambda: False,
        on_offer: Callable[[tuple[str, ...]], None] = lambda addresses: None,
    ) -> None:
        self._sign_key = bytes(sign_key)
        self._port = port
        self._host = host
        self._trusted = trusted
        self._on_found = on_found
        self._interfaces = interfaces
        self._clock = clock
        self.instance = instance or secrets.token_hex(6)
        self._offering = offering
        self._on_offer = on_offer
        self._announced_offer = False
        self.unrecognised: dict[str, tuple[str, ...]] = {}
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._announced_hour: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def service_name(self) -> str:
        return f"{self.instance}.{SERVICE_TYPE}"

    @property
    def announcement(self) -> AsyncServiceInfo | None:
        """What this node currently announces (None before `start`): for diagnostics and tests."""
        return self._info

    async def start(self) -> None:
        ip_version = IPVersion.V4Only if isinstance(self._interfaces, InterfaceChoice) else None
        self._aiozc = AsyncZeroconf(interfaces=self._interfaces, ip_version=ip_version)
        self._info = self._service_info()
        await self._aiozc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._aiozc.zeroconf, SERVICE_TYPE, handlers=[self._on_state_change])
        self._spawn(self._reannounce_hourly(), "mdns re-announce")

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._aiozc is not None:
            await self._aiozc.async_close()
            self._aiozc = None

    async def refresh(self) -> None:
        """Announce again with the token for the current hour and the current offer (if either changed)."""
        if self._aiozc is None:
            return
        if current_hour(self._clock()) == self._announced_hour and self._offering() == self._announced_offer:
            return
        self._info = self._service_info()
        await self._aiozc.async_update_service(self._info)

    def _service_info(self) -> AsyncServiceInfo:
        self._announced_hour = current_hour(self._clock())
        self._announced_offer = self._offering()
        properties = {"v": PROTOCOL_VERSION, "t": mdns_token(self._sign_key, self._announced_hour)}
        if self._announced_offer:
            properties["o"] = "1"
        return AsyncServiceInfo(
            SERVICE_TYPE,
            self.service_name,
            port=self._port,
            properties=properties,
            server=f"{self.instance}.local.",
            parsed_addresses=_own_addresses(self._host, self._interfaces),
        )

    async def _reannounce_hourly(self) -> None:
        """Re-announce when the hour's token or the card offer changes (checked every few seconds)."""
        while True:
            await asyncio.sleep(REANNOUNCE_CHECK)
            try:
                await self.refresh()
            except Exception:  # keep announcing; the next check may work
                log.warning("mDNS re-announcement failed", exc_info=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_state_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name == self.service_name:
            return
        if state_change is ServiceStateChange.Removed:
            self.unrecognised.pop(name, None)
            return
        self._spawn(self._resolve(zeroconf, service_type, name), f"mdns resolve {name}")

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS) or info.port is None:
            return
        props = info.decoded_properties
        addresses = tuple(_base_url(ip, info.port) for ip in info.parsed_addresses())
        token = props.get("t")
        node_id = None
        if props.get("v") == PROTOCOL_VERSION and token:
            node_id = recognise(token, self._trusted(), self._clock())
        if node_id is None:
            self.unrecognised[name] = addresses
            if props.get("o") == "1" and addresses:
                self._on_offer(addresses)
            return
        self.unrecognised.pop(name, None)
        if addresses:
            self._on_found(node_id, addresses)
