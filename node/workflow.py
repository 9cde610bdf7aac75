"""The case workflow: which status changes each authority may make, and the status a history leads to.

A case is shared by the REQUESTING authority (which drafts, sends, withdraws) and the REQUESTED
authority (which acknowledges, executes, refuses). Each side can only make the moves that are its
own, so neither can report the other's decisions. Either side may close a case once no more work is
expected. A third authority the case was later shared with (side ``shared``) may only add notes and
reminders. The table below is `TRANSITIONS` (a test keeps it equal to `render_table()`):

=====================  =====================  ======================
from                   to                     who may
=====================  =====================  ======================
draft                  sent                   requesting
draft                  withdrawn              requesting
sent                   acknowledged           requested
sent                   refused                requested
sent                   withdrawn              requesting
acknowledged           in_execution           requested
acknowledged           refused                requested
acknowledged           withdrawn              requesting
in_execution           partially_executed     requested
in_execution           executed               requested
in_execution           refused                requested
in_execution           withdrawn              requesting
partially_executed     executed               requested
partially_executed     withdrawn              requesting
partially_executed     closed                 requesting, requested
executed               closed                 requesting, requested
refused                closed                 requesting, requested
withdrawn              closed                 requesting, requested
=====================  =====================  ======================

A ``consultation`` (an informal exchange before a formal request) may also close once answered:
``sent`` or ``acknowledged`` to ``closed``, by either side. The requesting side may convert a
consultation that is not closed or withdrawn into a formal request (mla, extradition,
transfer_of_proceedings, other): the kind changes, the status returns to ``draft``, the thread stays.

Both sides append to the history at once, so two legal moves can race (the requested side marks a
request executed while the requesting side withdraws it). Each is checked on receipt against what
its author had seen (`check_new_entries`), so both are accepted; `replay` then reads the history in
`case_history.causal_order` and applies a change only if it starts from the current status, so the
first wins, the other is listed in `CaseState.conflicts`, and both nodes compute the same state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from node import case_history
from node.case_history import HistoryInvalid
from node.errors import NodeError

STATUSES: Final[tuple[str, ...]] = (
    "draft",
    "sent",
    "acknowledged",
    "in_execution",
    "partially_executed",
    "executed",
    "refused",
    "withdrawn",
    "closed",
)
# No further work is expected from either side, except closing the case.
FINAL_STATUSES: Final = frozenset({"executed", "refused", "withdrawn", "closed"})
SIDES: Final[tuple[str, ...]] = ("requesting", "requested")
SHARED_SIDE: Final = "shared"
# What a party the case was shared with may add: its own remarks, nothing that changes the case.
SHARED_MAY_ADD: Final = frozenset({"note", "reminder"})
CONVERSION_TARGETS: Final[tuple[str, ...]] = ("mla", "extradition", "transfer_of_proceedings", "other")

_REQUESTING: Final = frozenset({"requesting"})
_REQUESTED: Final = frozenset({"requested"})
_EITHER: Final = frozenset(SIDES)


def _table(rows: Mapping[tuple[str, str], frozenset[str]]) -> Mapping[tuple[str, str], frozenset[str]]:
    return MappingProxyType(dict(rows))


TRANSITIONS: Final[Mapping[tuple[str, str], frozenset[str]]] = _table(
    {
        ("draft", "sent"): _REQUESTING,
        ("draft", "withdrawn"): _REQUESTING,
        ("sent", "acknowledged"): _REQUESTED,
        ("acknowledged", "in_execution"): _REQUESTED,
        ("in_execution", "partially_executed"): _REQUESTED,
        ("in_execution", "executed"): _REQUESTED,
        ("partially_executed", "executed"): _REQUESTED,
        ("sent", "refused"): _REQUESTED,
        ("acknowledged", "refused"): _REQUESTED,
        ("in_execution", "refused"): _REQUESTED,
        ("sent", "withdrawn"): _REQUESTING,
        ("acknowledged", "withdrawn"): _REQUESTING,
        ("in_execution", "withdrawn"): _REQUESTING,
        ("partially_executed", "withdrawn"): _REQUESTING,
        ("partially_executed", "closed"): _EITHER,
        ("executed", "closed"): _EITHER,
        ("refused", "closed"): _EITHER,
        ("withdrawn", "closed"): _EITHER,
    }
)

# Moves only some kinds of case have, on top of `TRANSITIONS`.
KIND_TRANSITIONS: Final[Mapping[str, Mapping[tuple[str, str], frozenset[str]]]] = MappingProxyType(
    {
        "consultation": _table({("sent", "closed"): _EITHER, ("acknowledged", "closed"): _EITHER}),
    }
)

# What each move is called in a message, for "only the ... authority can <verb>".
_VERBS: Final[Mapping[str, str]] = {
    "sent": "send a request",
    "acknowledged": "acknowledge a request",
    "in_execution": "start executing a request",
    "partially_executed": "mark a request partially executed",
    "executed": "mark a request executed",
    "refused": "refuse a request",
    "withdrawn": "withdraw a request",
    "closed": "close a case",
}


class IllegalTransition(NodeError):
    """That status change is not allowed for this case, or not for your authority."""

    http_status = 409


def transitions_for(kind: str) -> Mapping[tuple[str, str], frozenset[str]]:
    """The full table for one kind of case: `TRANSITIONS` plus that kind's own moves."""
    extra = KIND_TRANSITIONS.get(kind)
    return TRANSITIONS if extra is None else {**TRANSITIONS, **extra}


def _in_status_order(statuses: Collection[str]) -> list[str]:
    return [s for s in STATUSES if s in statuses]


def allowed(kind: str, frm: str, to: str, side: str) -> bool:
    return side in transitions_for(kind).get((frm, to), frozenset())


def next_steps(kind: str, status: str, side: str) -> list[str]:
    """The statuses `side` may move this case to now, in workflow order (for the officer's buttons)."""
    return _in_status_order(
        {to for (frm, to), sides in transitions_for(kind).items() if frm == status and side in sides}
    )


def _who(sides: frozenset[str]) -> str:
    return " or ".join(f"the {s}" for s in SIDES if s in sides) + " authority"


def check_transition(kind: str, frm: str, to: str, side: str) -> None:
    """Raise `IllegalTransition`, saying what is possible instead, unless `side` may move `frm` -> `to`."""
    for status in (frm, to):
        if status not in STATUSES:
            raise IllegalTransition(f"'{status}' is not a case status; statuses: {', '.join(STATUSES)}")
    if side == SHARED_SIDE:
        raise IllegalTransition("an authority the case was shared with can only add notes and reminders")
    if side not in SIDES:
        raise IllegalTransition("this node is not a party to the case")
    table = transitions_for(kind)
    sides = table.get((frm, to))
    if sides is None:
        if frm == to:
            raise IllegalTransition(f"the case is already '{frm}'")
        possible = _in_status_order({t for (f, t) in table if f == frm})
        raise IllegalTransition(
            f"a case in status '{frm}' cannot become '{to}'; next: {', '.join(possible) if possible else 'none'}"
        )
    if side not in sides:
        raise IllegalTransition(f"only {_who(sides)} can {_VERBS[to]}")


def check_conversion(kind: str, status: str, side: str, to_kind: str) -> None:
    """Raise `IllegalTransition` unless `side` may turn this consultation into a formal request of `to_kind`."""
    if kind != "consultation":
        raise IllegalTransition("only a consultation can be converted into a formal request")
    if side != "requesting":
        raise IllegalTransition("only the requesting authority can convert a consultation into a formal request")
    if status in ("closed", "withdrawn"):
        raise IllegalTransition(f"a consultation that is '{status}' can no longer be converted")
    if to_kind not in CONVERSION_TARGETS:
        raise IllegalTransition(f"a consultation can become {', '.join(CONVERSION_TARGETS)}, not '{to_kind}'")


def render_table() -> str:
    """`TRANSITIONS` as the reStructuredText table in this module's docstring (and for docs)."""
    rule = "  ".join(["=" * 21, "=" * 21, "=" * 22])
    lines = [rule, f"{'from':<21}  {'to':<21}  who may", rule]
    for frm in STATUSES:
        for to in STATUSES:
            sides = TRANSITIONS.get((frm, to))
            if sides:
                lines.append(f"{frm:<21}  {to:<21}  {', '.join(s for s in SIDES if s in sides)}")
    lines.append(rule)
    return "\n".join(lines)


@dataclass
class CaseState:
    """What a history adds up to. Times are the `at` strings of the entries that set them."""

    kind: str
    status: str = "draft"
    sent_at: str | None = None
    acknowledged_at: str | None = None
    closed_at: str | None = None
    last_action_at: str | None = None
    status_changed_at: str | None = None
    # Applied transitions and conversions: {"id","type","from","to","at","node","user","reason"}
    # (conversions add "from_kind","to_kind").
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # Entries that did not apply, usually because a concurrent change came first: {"id","reason"}.
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def _later(a: str | None, b: str) -> str:
    if a is None:
        return b
    pa, pb = case_history.parse_at(a), case_history.parse_at(b)
    return b if pa is not None and pb is not None and pb > pa else a


def _find_created(ordered: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    for entry in ordered:
        if entry.get("type") == "created":
            try:
                case_history.check_shape(entry)
            except HistoryInvalid:
                continue
            return entry
    raise HistoryInvalid("the case history has no valid created entry")


def replay(entries: Sequence[Mapping[str, Any]], sides: Mapping[str, str]) -> CaseState:
    """The case's state after its history, read in causal order; the same whatever the list order.

    A transition applies only if its "from" is the current status and its author's side (from
    `sides`, node id -> side) may make it; a conversion only if `check_conversion` allows it. Anything
    else, including malformed entries, is recorded in `conflicts` and changes nothing: the history is
    append-only, so a losing concurrent change stays visible rather than being silently dropped.
    Raises `HistoryInvalid` if there is no created entry to start from; if there are several (a damaged
    history, which `case_history.verify_chain` reports), the first in causal order counts.
    """
    ordered = case_history.causal_order(entries)
    created = _find_created(ordered)
    state = CaseState(kind=created["kind"], status="draft", status_changed_at=created["at"])
    for entry in ordered:
        if entry is created:
            state.last_action_at = _later(state.last_action_at, entry["at"])
            continue
        try:
            case_history.check_shape(entry)
        except HistoryInvalid as exc:
            state.conflicts.append({"id": entry["id"], "reason": exc.message})
            continue
        state.last_action_at = _later(state.last_action_at, entry["at"])
        try:
            _apply(state, entry, sides.get(entry["node"], ""))
        except (IllegalTransition, HistoryInvalid) as exc:
            state.conflicts.append({"id": entry["id"], "reason": exc.message})
    return state


# Entries that change nothing but when the case was last acted on: everything `_apply` leaves alone.
PASSIVE_TYPES: Final = frozenset(case_history.ENTRY_TYPES) - {"created", "transition", "converted"}


def advance(state: CaseState, added: Sequence[Mapping[str, Any]]) -> CaseState | None:
    """What `replay` would give for the history of `state` plus `added`, without replaying it; None when only a
    replay can tell.

    Most entries are notes, reminders and attachments: a busy case gets many, and replaying its whole history
    for each (a causal sort and a shape check of every entry) made each edit cost more than the one before. Such
    an entry can only move `last_action_at` forward, wherever it falls in the causal order, so the state after
    it is known from the state before. Anything else (a status change, a malformed entry, a time that ties with
    the current one written differently) is left to `replay`.
    """
    last = state.last_action_at
    for entry in added:
        if entry.get("type") not in PASSIVE_TYPES:
            return None
        try:
            case_history.check_shape(entry)
        except HistoryInvalid:
            return None
        at = entry["at"]
        if last is not None:
            current, new = case_history.parse_at(last), case_history.parse_at(at)
            if current is None or new is None or (new == current and at != last):
                return None
        last = _later(last, at)
    return replace(state, last_action_at=last, timeline=list(state.timeline), conflicts=list(state.conflicts))


def _apply(state: CaseState, entry: Mapping[str, Any], side: str) -> None:
    """Change `state` by one well-formed entry, or raise why it cannot apply."""
    kind = entry["type"]
    if kind == "created":
        raise HistoryInvalid("the case was already created")
    if kind == "transition":
        frm, to = entry["from"], entry["to"]
        if frm != state.status:
            raise IllegalTransition(
                f"this change from '{frm}' to '{to}' arrived when the case was already '{state.status}'"
            )
        check_transition(state.kind, frm, to, side)
        _record(state, entry, frm, to, reason=entry["reason"])
        if to == "sent":
            state.sent_at = entry["at"]
        elif to == "acknowledged":
            state.acknowledged_at = entry["at"]
        elif to == "closed":
            state.closed_at = entry["at"]
    elif kind == "converted":
        if entry["from_kind"] != state.kind:
            raise IllegalTransition(
                f"this conversion from '{entry['from_kind']}' arrived when the case was a '{state.kind}'"
            )
        check_conversion(state.kind, state.status, side, entry["to_kind"])
        _record(state, entry, state.status, "draft", reason="", from_kind=state.kind, to_kind=entry["to_kind"])
        state.kind = entry["to_kind"]
        # The formal request is sent and acknowledged afresh; the consultation's dates stay in the timeline.
        state.sent_at = None
        state.acknowledged_at = None


def _record(state: CaseState, entry: Mapping[str, Any], frm: str, to: str, **extra: str) -> None:
    state.timeline.append(
        {
            "id": entry["id"],
            "type": entry["type"],
            "from": frm,
            "to": to,
            "at": entry["at"],
            "node": entry["node"],
            "user": entry["user"],
            **extra,
        }
    )
    state.status = to
    state.status_changed_at = entry["at"]


def check_new_entries(
    entries: Sequence[Mapping[str, Any]],
    new_ids: Collection[str],
    sides: Mapping[str, str],
    author: str,
    *,
    verified: bool = False,
) -> None:
    """Refuse a peer's update unless each entry it adds is one its signer could legally write.

    `entries` is the whole history with the update applied, `new_ids` the entries it added, `author`
    the node that signed the update. Signatures are checked by the caller (`case_history.verify_entry`);
    here: each new entry is well-formed with a matching id, written by `author`, a party to the case
    (a shared party only adds notes and reminders), after entries that exist; no second creation; and
    each transition or conversion is legal in the author's own view, i.e. from the state its ancestors
    add up to. A concurrent change is judged by what its author saw, so two racing legal moves are
    both accepted and `replay` settles them the same way on every node.
    Raises `HistoryInvalid` for a malformed or misattributed entry, `IllegalTransition` for a move
    the author may not make. `verified`: the caller already ran `case_history.verify_entry` on each new
    entry, which checks its shape and id too (hashing every entry twice was a tenth of a catch-up).
    """
    by_id = case_history.identified(entries)
    new = set(new_ids)
    for ident in sorted(new):
        if ident not in by_id:
            raise HistoryInvalid(f"history entry {ident[:12]} is not in the history")
    created_before = [i for i, e in by_id.items() if e.get("type") == "created" and i not in new]
    # Only the new entries need ordering (each judged after those it follows): sorting the whole history for
    # every update made a case's thousandth note cost a thousand times its first.
    for entry in case_history.causal_order([by_id[i] for i in new]):
        ident = entry["id"]
        if not verified:
            case_history.check_shape(entry)
            if case_history.entry_id(entry) != ident:
                raise HistoryInvalid(f"history entry {ident[:12]}: its id does not match its content")
        if entry["node"] != author:
            raise HistoryInvalid(f"history entry {ident[:12]} names another node than the one that sent it")
        side = sides.get(author)
        if side is None:
            raise IllegalTransition("this node is not a party to the case")
        if side == SHARED_SIDE and entry["type"] not in SHARED_MAY_ADD:
            raise IllegalTransition("an authority the case was shared with can only add notes and reminders")
        missing = [p for p in entry["prev"] if p not in by_id]
        if missing:
            raise HistoryInvalid(f"history entry {ident[:12]} follows an entry {missing[0][:12]} that is missing")
        if entry["type"] == "created":
            if created_before:
                raise HistoryInvalid("the case was already created")
            created_before.append(ident)
        elif entry["type"] in ("transition", "converted"):
            seen = case_history.ancestors(entries, ident)
            view = replay([e for i, e in by_id.items() if i in seen], sides)
            if entry["type"] == "transition":
                if entry["from"] != view.status:
                    raise IllegalTransition(
                        f"this change starts from '{entry['from']}' but the case was '{view.status}' "
                        "in the history it follows"
                    )
                check_transition(view.kind, entry["from"], entry["to"], side)
            else:
                if entry["from_kind"] != view.kind:
                    raise IllegalTransition(
                        f"this conversion starts from a '{entry['from_kind']}' but the case was a '{view.kind}'"
                    )
                check_conversion(view.kind, view.status, side, entry["to_kind"])
