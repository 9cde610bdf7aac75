"""Invitations between two real node homes: a code makes both trust each other, once, and is never stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import PASSPHRASE, init_node

from crypto import invitation as inv
from crypto.invitation import InvitationRefused, RefusalReason
from node.errors import PeerError
from node.invitations import Invitations
from node.runtime import Node, open_node


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("invitations")
    with pytest.MonkeyPatch.context() as mp:  # the autouse passphrase fixture is per test
        mp.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)
        return init_node(base, "Thailand", "TH").home, init_node(base, "Viet Nam", "VN").home


def opened(home: Path, tmp_path: Path) -> Node:
    # A copy per test, so each test starts from two fresh nodes without paying for `init` again.
    copy = tmp_path / home.name
    copy.mkdir()
    for item in home.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    return open_node(copy, PASSPHRASE)  # the migrations made the invitations table


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def th(homes: tuple[Path, Path], tmp_path: Path) -> Iterator[Node]:
    node = opened(homes[0], tmp_path)
    yield node
    node.close()


@pytest.fixture
def vn(homes: tuple[Path, Path], tmp_path: Path) -> Iterator[Node]:
    node = opened(homes[1], tmp_path)
    yield node
    node.close()


def invitations(node: Node, clock: Clock) -> Invitations:
    return Invitations(node.db, node.identity, node.card, node.peers, clock=clock)


def audit(node: Node) -> list[tuple[str, str, str]]:
    rows = node.db.query("SELECT actor, action, subject FROM audit_log WHERE action LIKE 'invite.%' ORDER BY id")
    return [(r["actor"], r["action"], r["subject"]) for r in rows]


def test_code_makes_both_nodes_trust_each_other_once(th: Node, vn: Node, clock: Clock) -> None:
    inviter, invitee = invitations(th, clock), invitations(vn, clock)
    code = inviter.create(actor="admin.th")
    assert th.peers.get(vn.node_id) is None and vn.peers.get(th.node_id) is None

    claim, state = invitee.make_claim(code.lower().replace("-", " "))
    clock.now += 3600
    answer = inviter.answer_claim(claim)
    peer = invitee.finish(answer, state, actor="admin.vn")

    assert peer.node_id == th.node_id and peer.country == "TH"
    trusted = th.peers.get(vn.node_id)
    assert trusted is not None and (trusted.sign_key, trusted.kx_key) == (
        vn.identity.public.sign_key,
        vn.identity.public.kx_key,
    )
    assert th.db.query("SELECT card FROM peers")[0]["card"] == vn.card()
    assert vn.db.query("SELECT card FROM peers")[0]["card"] == th.card()

    invite_id = inv.invite_id(code)
    assert audit(th) == [
        ("admin.th", "invite.create", invite_id),
        ("admin.th", "invite.accept", f"{invite_id} by {vn.node_id}"),
    ]
    assert audit(vn) == [("admin.vn", "invite.accept", f"{invite_id} from {th.node_id}")]
    trust_rows = th.db.query("SELECT actor, subject FROM audit_log WHERE action = 'peer.trust'")
    assert trust_rows == [{"actor": "admin.th", "subject": vn.node_id}]

    with pytest.raises(InvitationRefused) as again:
        inviter.answer_claim(claim)
    assert again.value.reason is RefusalReason.USED
    assert audit(th)[-1] == ("admin.th", "invite.refused", f"{invite_id} (used)")


def test_database_holds_no_code_in_clear(th: Node, clock: Clock) -> None:
    code = invitations(th, clock).create(actor="admin")
    plain = inv.normalise_code(code)
    dump = "\n".join(th.db.dump_sql())
    for form in (code, plain, code.lower(), plain.lower(), plain.encode().hex()):
        assert form not in dump
    row = th.db.query("SELECT * FROM invitations")[0]
    assert bytes(row["code_hash"]) == inv.code_secret(code)
    assert row["expires_at"] == clock.now + 24 * 3600


def test_expired_code_is_refused(th: Node, vn: Node, clock: Clock) -> None:
    code = invitations(th, clock).create(actor="admin")
    claim, _ = invitations(vn, clock).make_claim(code)
    clock.now += 24 * 3600
    with pytest.raises(InvitationRefused) as refused:
        invitations(th, clock).answer_claim(claim)
    assert refused.value.reason is RefusalReason.EXPIRED
    assert th.peers.get(vn.node_id) is None


def test_wrong_code_is_refused_and_audited(th: Node, vn: Node, clock: Clock) -> None:
    inviter = invitations(th, clock)
    inviter.create(actor="admin")
    claim, _ = invitations(vn, clock).make_claim("ZZZZ-ZZZZ-ZZZZ-ZZZZ")
    with pytest.raises(InvitationRefused) as refused:
        inviter.answer_claim(claim)
    assert refused.value.reason is RefusalReason.UNKNOWN
    assert audit(th)[-1][1:] == ("invite.refused", f"{claim['invite_id']} (unknown)")
    with pytest.raises(InvitationRefused) as malformed:
        inviter.answer_claim({"card": "x"})
    assert malformed.value.reason is RefusalReason.MALFORMED
    assert th.peers.all() == []


def test_five_wrong_macs_burn_the_invitation(th: Node, vn: Node, clock: Clock) -> None:
    inviter = invitations(th, clock)
    code = inviter.create(actor="admin")
    claim, _ = invitations(vn, clock).make_claim(code)
    wrong, _ = inv.make_claim("ZZZZ-ZZZZ-ZZZZ-ZZZZ", claim["card"])
    for _ in range(inv.MAX_ATTEMPTS):
        with pytest.raises(InvitationRefused) as refused:
            inviter.answer_claim({**claim, "mac": wrong["mac"]})
        assert refused.value.reason is RefusalReason.WRONG_CODE
    # Counted in the database, so a new instance (a restarted node) still refuses the right code.
    with pytest.raises(InvitationRefused) as burned:
        invitations(th, clock).answer_claim(claim)
    assert burned.value.reason is RefusalReason.BURNED
    assert th.peers.get(vn.node_id) is None


def test_tampered_answer_leaves_the_invitee_untrusting(th: Node, vn: Node, clock: Clock) -> None:
    code = invitations(th, clock).create(actor="admin")
    invitee = invitations(vn, clock)
    claim, state = invitee.make_claim(code)
    answer = invitations(th, clock).answer_claim(claim)
    forged_mac = answer["mac"][:-2] + ("AA" if not answer["mac"].endswith("AA") else "BA")
    with pytest.raises(InvitationRefused) as refused:
        invitee.finish({**answer, "mac": forged_mac}, state)
    assert refused.value.reason is RefusalReason.BAD_ANSWER
    assert vn.peers.all() == []
    assert audit(vn)[-1][1:] == ("invite.refused", f"{state.invite_id} (bad_answer)")


def test_card_the_registry_refuses_leaves_the_invitation_unused(th: Node, vn: Node, clock: Clock) -> None:
    inviter = invitations(th, clock)
    code = inviter.create(actor="admin")
    own_claim, _ = invitations(th, clock).make_claim(code)
    with pytest.raises(PeerError):
        inviter.answer_claim(own_claim)
    assert th.db.query("SELECT used_at FROM invitations")[0]["used_at"] is None
    claim, state = invitations(vn, clock).make_claim(code)
    invitations(vn, clock).finish(inviter.answer_claim(claim), state)
    assert vn.peers.get(th.node_id) is not None and th.peers.get(vn.node_id) is not None
