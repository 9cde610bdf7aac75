"""Real node processes on loopback replicate the contact directory and refuse forged input."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from nodeproc import PASSPHRASE, NodeProc, card_of, inject_updates, introduce, node_info, wait_until

from crypto.authorship import sign_update
from crypto.keystore import load_keyfile
from node.crdt import CrdtDocument
from node.policy import directory_doc
from sync.messages import SignedUpdate, Updates
from sync.protocol import HelloCache, PeerKeys, Role, SyncSession
from sync.transport import SYNC_PATH

pytestmark = pytest.mark.processes


def names(node: NodeProc) -> set[str]:
    return {c["name"] for c in node.contacts()}


def test_two_nodes_converge_while_connected_and_after_downtime(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    vn.start()

    a = th.api("POST", "/api/v1/contacts", {"name": "Somchai", "expertise": ["extradition"], "languages": ["th"]})
    b = vn.api("POST", "/api/v1/contacts", {"name": "Nguyen Van An", "expertise": ["cybercrime"]})
    wait_until(lambda: names(vn) == {"Somchai", "Nguyen Van An"}, what="Viet Nam to see both")
    wait_until(lambda: names(th) == {"Somchai", "Nguyen Van An"}, what="Thailand to see both")
    seen_on_vn = {c["id"]: c for c in vn.contacts()}
    assert seen_on_vn[a["id"]]["owner"] == th.node_id
    assert seen_on_vn[b["id"]]["owner"] == vn.node_id
    assert seen_on_vn[a["id"]]["expertise"] == ["extradition"]

    # Edits on both sides while connected: updates and a deletion.
    th.api("PATCH", f"/api/v1/contacts/{a['id']}", {"title": "Public Prosecutor"})
    vn.api("DELETE", f"/api/v1/contacts/{b['id']}")
    wait_until(lambda: [c["title"] for c in vn.contacts()] == ["Public Prosecutor"], what="update and delete on VN")
    wait_until(lambda: names(th) == {"Somchai"}, what="deletion to reach TH")

    # Viet Nam goes down; Thailand keeps working; both converge when it returns.
    vn.stop()
    th.api("POST", "/api/v1/contacts", {"name": "Written while VN was down"})
    th.api("PATCH", f"/api/v1/contacts/{a['id']}", {"phone": "+66 2 142 1444"})
    assert th.api("GET", "/api/v1/peers")[0]["outbox"] >= 1
    vn.start()
    wait_until(lambda: names(vn) == {"Somchai", "Written while VN was down"}, what="catch-up after restart")
    wait_until(lambda: th.api("GET", "/api/v1/peers")[0]["outbox"] == 0, what="TH outbox to drain")
    assert {c["phone"] for c in vn.contacts() if c["id"] == a["id"]} == {"+66 2 142 1444"}

    # Edits made on the side that was offline reach the other after it comes back too.
    th.stop()
    vn.api("POST", "/api/v1/contacts", {"name": "Written while TH was down"})
    th.start()
    wait_until(lambda: "Written while TH was down" in names(th), what="TH catch-up")


def test_third_node_converges_and_restarts_lose_nothing(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    sec = make_node("Secretariat", "TH", "secretariat")
    introduce(th, vn)
    introduce(th, sec)
    introduce(vn, sec)
    th.start()
    vn.start()
    for i in range(5):
        th.api("POST", "/api/v1/contacts", {"name": f"TH officer {i}"})
        vn.api("POST", "/api/v1/contacts", {"name": f"VN officer {i}"})
    wait_until(lambda: len(vn.contacts()) == 10 and len(th.contacts()) == 10, what="two nodes to converge")

    sec.start()  # joins late: catches up from both
    wait_until(lambda: len(sec.contacts()) == 10, what="secretariat to catch up")
    expected = sorted((c["id"], c["name"], c["owner"]) for c in th.contacts())
    assert sorted((c["id"], c["name"], c["owner"]) for c in sec.contacts()) == expected

    # The secretariat only relays; an entry it holds can still reach a node that missed it.
    th.stop()
    vn.api("POST", "/api/v1/contacts", {"name": "after TH stopped"})
    wait_until(lambda: "after TH stopped" in names(sec), what="secretariat to receive")
    vn.stop()
    th.start()  # only the secretariat is up: TH gets VN's entry through it, still signed by VN
    wait_until(lambda: "after TH stopped" in names(th), what="TH to get VN's entry via the secretariat")

    # Restart every node: nothing is lost.
    snapshot = sorted((c["id"], c["name"]) for c in th.contacts())
    for node in (th, sec):
        node.stop()
    for node in (th, vn, sec):
        node.start()
    for node in (th, vn, sec):
        assert sorted((c["id"], c["name"]) for c in node.contacts()) == snapshot


def test_acknowledged_write_survives_kill_9(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    th.start()
    ids = [th.api("POST", "/api/v1/contacts", {"name": f"officer {i}"})["id"] for i in range(20)]
    th.kill9()
    th.start()
    assert {c["id"] for c in th.contacts()} == set(ids)


def test_untrusted_node_is_refused(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    stranger = make_node("Stranger", "KH")
    # The stranger trusts Thailand, but Thailand never accepted the stranger's card.
    from node.runtime import open_node

    opened = open_node(stranger.home, PASSPHRASE)
    try:
        opened.peers.add_card(card_of(th), actor="tests")
    finally:
        opened.close()
    th.start()
    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    stranger.start()
    wait_until(
        lambda: th.api("GET", "/api/v1/sync")["rejected"].get("untrusted_sender", 0) >= 1,
        what="Thailand to refuse the stranger",
    )
    assert stranger.contacts() == []
    assert th.api("GET", "/api/v1/sync")["connected"] == []
    assert "Somchai" not in stranger.log()


def test_forged_edit_of_another_authoritys_entry_is_rejected(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    contact = th.api("POST", "/api/v1/contacts", {"name": "Somchai", "email": "somchai@example.org"})
    before = th.contacts()

    # Viet Nam's node (trusted, but compromised) rewrites Thailand's entry in Thailand's part.
    vn_identity = load_keyfile(vn.home / "keys.json", PASSPHRASE).identity
    doc_id = directory_doc(th.node_id)
    forged_doc = CrdtDocument()
    body = forged_doc.change(lambda c: c.put_record("contacts", contact["id"], {"email": "attacker@example.org"}))
    assert body is not None
    forged = SignedUpdate(
        doc_id, vn.node_id, 1, 1, body, sign_update(vn_identity, doc_id=doc_id, seq_from=1, seq_to=1, update=body)
    )
    # ... and, separately, claims Thailand wrote it (but can only sign with its own key).
    claimed = SignedUpdate(
        doc_id, th.node_id, 2, 2, body, sign_update(vn_identity, doc_id=doc_id, seq_from=2, seq_to=2, update=body)
    )

    asyncio.run(inject_updates(th, vn.home, [forged], doc_id))
    asyncio.run(inject_updates(th, vn.home, [claimed], doc_id))

    rejected = th.api("GET", "/api/v1/sync")["rejected"]
    assert rejected.get("not_permitted") == 1
    assert rejected.get("bad_update_signature") == 1
    assert th.contacts() == before
    assert "attacker@example.org" not in th.log()


def test_peer_added_through_cli_is_dialled_by_running_node(make_node) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from nodeproc import node_env

    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    th.start()
    vn.start()
    vn.api("POST", "/api/v1/contacts", {"name": "Nguyen Van An"})
    # Viet Nam trusts Thailand through its API; Thailand through the CLI while running.
    vn.api("POST", "/api/v1/peers", {"card": th.api("GET", "/api/v1/node")["card"]})
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "peer", "add", str(th.home), vn.api("GET", "/api/v1/node")["card"]],
        env=node_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == vn.node_id
    wait_until(lambda: names(th) == {"Nguyen Van An"}, timeout=10, what="running node to pick up the new peer")


def test_replayed_and_misaddressed_messages_are_rejected(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    sec = make_node("Secretariat", "TH", "secretariat")
    introduce(th, vn)
    th.start()
    vn_identity = load_keyfile(vn.home / "keys.json", PASSPHRASE).identity
    doc_id = directory_doc(vn.node_id)
    doc = CrdtDocument()
    body = doc.change(lambda c: c.put_record("contacts", "c1", {"name": "Nguyen Van An"}))
    assert body is not None
    entry = SignedUpdate(
        doc_id, vn.node_id, 1, 1, body, sign_update(vn_identity, doc_id=doc_id, seq_from=1, seq_to=1, update=body)
    )

    async def scenario() -> None:
        info = await node_info(th)
        peer = PeerKeys(str(info["node_id"]), info["sign_key"], info["kx_key"])  # type: ignore[arg-type]
        session = SyncSession(
            vn_identity, Role.DIALER, {peer.node_id: peer}.get, hello_cache=HelloCache(), expected_peer=peer.node_id
        )
        sent: list[bytes] = []
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(th.url + SYNC_PATH) as ws:
                sent.append(session.initiate())
                await ws.send_bytes(sent[-1])
                session.receive(await ws.receive_bytes(timeout=5))
                sent.append(session.send(Updates(doc_id=doc_id, entries=(entry,))))
                await ws.send_bytes(sent[-1])
                await asyncio.sleep(0.3)
            # Replay the whole captured session, then its second message alone, on new connections.
            for frames in (sent, sent[1:]):
                async with http.ws_connect(th.url + SYNC_PATH) as ws:
                    for frame in frames:
                        await ws.send_bytes(frame)
                    closed = await ws.receive(timeout=5)
                    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            # A hello addressed to the secretariat, delivered to Thailand.
            sec_card = card_of(sec)
            from crypto.card import parse_card

            sec_info = parse_card(sec_card)
            wrong = SyncSession(
                vn_identity,
                Role.DIALER,
                {sec_info.node_id: PeerKeys(sec_info.node_id, sec_info.sign_key, sec_info.kx_key)}.get,
                hello_cache=HelloCache(),
                expected_peer=sec_info.node_id,
            )
            async with http.ws_connect(th.url + SYNC_PATH) as ws:
                await ws.send_bytes(wrong.initiate())
                closed = await ws.receive(timeout=5)
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    asyncio.run(scenario())
    rejected = th.api("GET", "/api/v1/sync")["rejected"]
    assert rejected == {"replay": 2, "wrong_recipient": 1}
    assert [c["name"] for c in th.contacts()] == ["Nguyen Van An"]
    assert th.api("GET", "/api/v1/sync")["documents"][doc_id] == {vn.node_id: 1}
    assert "Nguyen Van An" not in th.log()
