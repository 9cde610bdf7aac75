"""mDNS discovery over real zeroconf sockets bound to loopback (multicast on 127.0.0.1).

Two nodes that trust each other find each other's URL and node ID; a third, untrusted one is only
counted; re-announcing with a fresh token every hour keeps trusted peers recognised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from crypto.identity import Identity
from sync.discovery import SERVICE_TYPE, Discovery

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
MALLORY = Identity.from_secret_bytes(bytes(range(128, 192)))
DEADLINE = 8.0


@dataclass
class Found:
    """Records what on_found was told."""

    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def __call__(self, node_id: str, urls: tuple[str, ...]) -> None:
        self.calls.append((node_id, urls))

    def ids(self) -> set[str]:
        return {node_id for node_id, _ in self.calls}


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture
async def started() -> AsyncIterator[list[Discovery]]:
    nodes: list[Discovery] = []
    yield nodes
    for node in nodes:
        await node.stop()


def make(who: Identity, port: int, trusts: list[Identity], found: Found, clock: Clock | None = None) -> Discovery:
    return Discovery(
        sign_key=who.public.sign_key,
        port=port,
        host="127.0.0.1",
        trusted=lambda: {peer.node_id: peer.public.sign_key for peer in trusts},
        on_found=found,
        interfaces=["127.0.0.1"],
        clock=clock or Clock(),
    )


async def test_trusted_peers_find_each_other_and_strangers_are_only_counted(started: list[Discovery]) -> None:
    alice_found, bob_found, mallory_found = Found(), Found(), Found()
    alice = make(ALICE, 7001, [BOB], alice_found)
    bob = make(BOB, 7002, [ALICE], bob_found)
    mallory = make(MALLORY, 7003, [ALICE, BOB], mallory_found)
    started.extend((alice, bob, mallory))
    await asyncio.gather(*(node.start() for node in started))

    await wait_for(lambda: bool(alice_found.calls and bob_found.calls))
    assert alice_found.calls[0] == (BOB.node_id, ("http://127.0.0.1:7002",))
    assert bob_found.calls[0] == (ALICE.node_id, ("http://127.0.0.1:7001",))

    await wait_for(lambda: mallory.service_name in alice.unrecognised and mallory.service_name in bob.unrecognised)
    assert alice.unrecognised[mallory.service_name] == ("http://127.0.0.1:7003",)
    assert alice_found.ids() == {BOB.node_id} and bob_found.ids() == {ALICE.node_id}
    # Mallory trusts them (holds their cards), so Mallory can recognise them: the token hides
    # nodes from strangers without the card, not from everyone who has it.
    await wait_for(lambda: mallory_found.ids() == {ALICE.node_id, BOB.node_id})
    assert alice.service_name not in alice.unrecognised  # its own announcement is ignored


async def test_announcement_is_opaque(started: list[Discovery]) -> None:
    alice = make(ALICE, 7001, [], Found())
    started.append(alice)
    await alice.start()
    info = alice.announcement  # what goes on the wire
    assert info is not None
    assert info.name.endswith("." + SERVICE_TYPE)
    assert len(alice.instance) == 12 and int(alice.instance, 16) >= 0
    assert info.server == f"{alice.instance}.local."
    props = info.decoded_properties
    assert set(props) == {"v", "t"} and props["v"] == "1"
    wire = f"{info.name} {info.server} {props}".lower()
    assert ALICE.node_id.lower() not in wire and ALICE.node_id.replace("-", "").lower() not in wire
    assert ALICE.public.sign_key.hex() not in wire
    assert make(ALICE, 7001, [], Found()).instance != alice.instance  # new name at every start


async def test_hourly_reannouncement_keeps_a_peer_recognised(started: list[Discovery]) -> None:
    clock = Clock()
    alice_found = Found()
    alice = make(ALICE, 7001, [BOB], alice_found, clock)
    bob = make(BOB, 7002, [], Found(), clock)
    started.extend((alice, bob))
    await asyncio.gather(*(node.start() for node in started))
    await wait_for(lambda: bool(alice_found.calls))
    first_token = bob.announcement.decoded_properties["t"] if bob.announcement else None

    clock.now += 2 * 3600  # the first token is now too old to be accepted
    alice_found.calls.clear()
    await bob.refresh()
    assert bob.announcement is not None and bob.announcement.decoded_properties["t"] != first_token
    await wait_for(lambda: bool(alice_found.calls))
    assert alice_found.calls[-1] == (BOB.node_id, ("http://127.0.0.1:7002",))
