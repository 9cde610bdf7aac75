"""The network roster: who is a member, an observer or the secretariat, computed from signed statements.

Pure: statements in, a `Roster` out, the same on every node that holds the same statements,
whatever order they arrived in. The rules (README, "Network membership"):

* The network is **founded** by a secretariat node this node trusts (its card was compared by an
  admin: the anchor). The founding statement lists the founding members with their cards.
* A newcomer is **admitted** when a secretariat member signs its admission (with its card and
  standing) *and* at least one other existing member or secretariat member, neither the newcomer
  nor the admitting secretariat, endorses it. One compromised key cannot add a node alone.
  Observers (authorities from outside the region) receive what members receive but cannot endorse.
* A node is **revoked** by a secretariat member, or by itself (a stolen laptop's owner can act at
  once from a backup of its keys). A revoked node ID never returns: a key that may be in someone
  else's hands is dead; the authority rejoins with a new node.

Admissions signed by a node that was later revoked stay valid: statements carry no trustworthy
time, and the endorsement rule means a stolen key alone never sufficed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from crypto.card import NodeCard, parse_card
from crypto.errors import CardError
from crypto.rotation import RotationInvalid, key_history, verify_chain
from crypto.statements import Statement, verified

VOTING = ("member", "secretariat")


@dataclass(frozen=True)
class RosterMember:
    card: NodeCard
    card_text: str
    standing: str  # member | observer | secretariat
    admitted_by: str | None = None  # None for a founding member
    endorsed_by: tuple[str, ...] = ()

    @property
    def node_id(self) -> str:
        return self.card.node_id

    def public_json(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "name": self.card.name,
            "country": self.card.country,
            "standing": self.standing,
            "admitted_by": self.admitted_by,
            "endorsed_by": list(self.endorsed_by),
        }


@dataclass(frozen=True)
class Roster:
    network: str | None = None
    founded_by: tuple[str, ...] = ()
    members: dict[str, RosterMember] = field(default_factory=dict)
    pending: dict[str, RosterMember] = field(default_factory=dict)  # admitted, awaiting an endorsement
    revoked: dict[str, str] = field(default_factory=dict)  # node ID -> reason

    @property
    def active(self) -> bool:
        """False until a trusted secretariat has founded the network: nodes then run on bilateral trust alone."""
        return self.network is not None

    def is_member(self, node_id: str) -> bool:
        return node_id in self.members

    def standing(self, node_id: str) -> str | None:
        member = self.members.get(node_id)
        return member.standing if member else None

    def public_json(self) -> dict[str, object]:
        return {
            "network": self.network,
            "founded_by": list(self.founded_by),
            "members": [m.public_json() for m in sorted(self.members.values(), key=_order)],
            "pending": [m.public_json() for m in sorted(self.pending.values(), key=_order)],
            "revoked": [{"node_id": n, "reason": r} for n, r in sorted(self.revoked.items())],
        }


def _order(member: RosterMember) -> tuple[str, str, str]:
    return (member.standing, member.card.country, member.node_id)


def _card(text: object) -> NodeCard | None:
    try:
        return parse_card(text) if isinstance(text, str) else None
    except CardError:
        return None


def _signed(statement: Statement, keys: Iterable[bytes]) -> bool:
    return any(verified(statement, key) for key in keys)


def build_roster(
    statements: Iterable[Statement],
    anchors: Mapping[str, Sequence[bytes]],
    rotations: Mapping[str, Sequence[str]] | None = None,
) -> Roster:
    """`anchors` are the secretariat nodes this node trusts (node ID -> its signing keys, current first);
    `rotations` the key rotation chains nodes published (`crypto.rotation`), so a member that rotated its
    keys is recognised by all of them."""
    histories: dict[str, list[bytes]] = {}
    for node_id, chain in (rotations or {}).items():
        try:
            histories[node_id] = [sign for sign, _ in key_history(verify_chain(node_id, chain))]
        except RotationInvalid:
            continue

    def keys_of(member: RosterMember) -> list[bytes]:
        return [member.card.sign_key, *histories.get(member.node_id, ())]

    ordered = sorted({s.text: s for s in statements}.values(), key=lambda s: (s.at, s.by, s.text))
    members: dict[str, RosterMember] = {}
    network: str | None = None
    founders: list[str] = []
    for st in ordered:
        if st.kind != "found" or not _signed(st, anchors.get(st.by, ())):
            continue
        network = network or str(st.fields["network"])
        founders.append(st.by)
        for entry in st.fields["members"]:
            card = _card(entry["card"])
            if card is not None and card.node_id not in members:
                members[card.node_id] = RosterMember(card, entry["card"], entry["standing"])
    if network is None:
        return Roster()
    revoked = _revocations(ordered, members, keys_of)
    endorsements = [s for s in ordered if s.kind == "endorse"]
    pending: dict[str, RosterMember] = {}
    changed = True
    while changed:  # an admitted member may endorse the next newcomer, in any order of arrival
        changed = False
        for st in ordered:
            if st.kind != "admit":
                continue
            card = _card(st.fields["card"])
            admitter = members.get(st.by)
            if card is None or card.node_id in members or card.node_id in revoked:
                continue
            if admitter is None or admitter.standing != "secretariat" or not _signed(st, keys_of(admitter)):
                continue
            endorsers = tuple(
                sorted(
                    {
                        e.by
                        for e in endorsements
                        if e.subject == card.node_id
                        and e.by not in (card.node_id, st.by)
                        and (endorser := members.get(e.by)) is not None
                        and endorser.standing in VOTING
                        and _signed(e, keys_of(endorser))
                    }
                )
            )
            candidate = RosterMember(card, str(st.fields["card"]), str(st.fields["standing"]), st.by, endorsers)
            if endorsers:
                members[card.node_id] = candidate
                pending.pop(card.node_id, None)
                changed = True
            else:
                pending.setdefault(card.node_id, candidate)
        revoked = _revocations(ordered, members, keys_of)
    for node_id in revoked:
        members.pop(node_id, None)
        pending.pop(node_id, None)
    return Roster(network, tuple(dict.fromkeys(founders)), members, pending, revoked)


def _revocations(
    ordered: list[Statement], members: Mapping[str, RosterMember], keys_of: Callable[[RosterMember], list[bytes]]
) -> dict[str, str]:
    revoked: dict[str, str] = {}
    for st in ordered:
        target = st.subject
        if st.kind != "revoke" or target is None or target in revoked:
            continue
        author = members.get(st.by)
        if author is None:
            continue
        if (author.standing == "secretariat" or st.by == target) and _signed(st, keys_of(author)):
            revoked[target] = str(st.fields["reason"])
    return revoked
