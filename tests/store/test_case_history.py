"""The case history's hash DAG: entries are bound to their content, their author and their place.

Changing any field of an entry, re-signing it with another key, deleting an entry from the middle or
feeding in garbage from a hostile peer is detected (as `HistoryInvalid` or a reported problem, never a
crash); the causal order depends only on which entries exist, not on the order of the list.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crypto.identity import Identity
from node import case_history as ch
from node.case_history import HistoryInvalid

ALICE = Identity.generate()  # the requesting authority's node
BOB = Identity.generate()  # the requested authority's node
MALLORY = Identity.generate()  # knows the format, not the others' keys
KEYS = {i.node_id: i.public.sign_key for i in (ALICE, BOB, MALLORY)}
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def created(minutes: int = 0, kind: str = "mla") -> dict[str, Any]:
    return ch.make_entry(ALICE, prev=[], type="created", user="officer-a", at=at(minutes), kind=kind)


def note(who: Identity, prev: list[str], minutes: int, text: str = "called the prosecutor") -> dict[str, Any]:
    return ch.make_entry(who, prev=prev, type="note", user="officer", at=at(minutes), text=text)


def transition(who: Identity, prev: list[str], minutes: int, frm: str, to: str) -> dict[str, Any]:
    fields = {"from": frm, "to": to, "reason": ""}
    return ch.make_entry(who, prev=prev, type="transition", user="officer", at=at(minutes), **fields)


def diamond() -> list[dict[str, Any]]:
    """created -> sent; then Alice and Bob each add a note concurrently; then Bob joins both heads."""
    c = created(0)
    s = transition(ALICE, [c["id"]], 1, "draft", "sent")
    a = note(ALICE, [s["id"]], 5, "reminder to chase")
    b = note(BOB, [s["id"]], 3, "received")
    j = transition(BOB, sorted([a["id"], b["id"]]), 6, "sent", "acknowledged")
    return [c, s, a, b, j]


def key_of(node_id: str) -> bytes | None:
    return KEYS.get(node_id)


# -- entries -------------------------------------------------------------------------------------------------


def test_make_entry_is_signed_and_identified_by_its_content() -> None:
    c = created()
    entry = ch.make_entry(BOB, prev=[c["id"], c["id"]], type="note", user="duty officer", at=at(1), text="ศาล")
    assert entry["prev"] == [c["id"]]  # de-duplicated and sorted
    assert entry["node"] == BOB.node_id and entry["type"] == "note" and entry["text"] == "ศาล"
    assert entry["id"] == ch.entry_id(entry) and len(entry["id"]) == 64
    ch.verify_entry(entry, BOB.public.sign_key)
    with pytest.raises(HistoryInvalid, match="signature does not verify"):
        ch.verify_entry(entry, ALICE.public.sign_key)
    json.dumps(entry)  # storable as-is in the CRDT


def test_prev_is_sorted_so_the_same_heads_give_the_same_content() -> None:
    ids = ["f" * 64, "0" * 64, "a" * 64]
    entry = ch.make_entry(ALICE, prev=ids, type="note", user="u", at=at(1), text="t")
    assert entry["prev"] == sorted(ids)


def test_entry_id_is_domain_separated_canonical_json() -> None:
    import hashlib

    entry = created()
    content = {k: v for k, v in entry.items() if k not in ("id", "sig")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert entry["id"] == hashlib.sha256(b"seajust-history-v1\n" + canonical).hexdigest()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"type": "gossip", "text": "x"}, "unknown entry type"),
        ({"type": "note"}, "missing text"),
        ({"type": "note", "text": 5}, "text must be a string"),
        ({"type": "note", "text": "x", "colour": "red"}, "unexpected fields colour"),
        ({"type": "note", "text": "x", "node": "someone else"}, "cannot be set"),
        ({"type": "note", "text": "x", "at": "yesterday"}, "ISO-8601 UTC"),
        ({"type": "note", "text": "x", "at": "2025-03-01T09:00:00"}, "ISO-8601 UTC"),  # no zone
        ({"type": "note", "text": "x", "at": "2025-03-01T09:00:00+07:00"}, "ISO-8601 UTC"),
        ({"type": "edited", "fields": "summary"}, "list of strings"),
        ({"type": "created", "kind": "mla"}, "cannot have predecessors"),
    ],
)
def test_make_entry_refuses_what_verify_entry_would_refuse(kwargs: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"prev": ["0" * 64], "user": "u", "at": at(1), **kwargs}
    with pytest.raises(HistoryInvalid, match=needle):
        ch.make_entry(ALICE, **args)


@pytest.mark.parametrize(
    ("type_", "fields"),
    [
        ("transition", {"from": "draft", "to": "sent", "reason": "ready"}),
        ("note", {"text": "t"}),
        ("converted", {"from_kind": "consultation", "to_kind": "mla"}),
        ("reminder", {"text": "chase on Monday"}),
        ("attachment", {"attachment": "att-1", "name": "warrant.pdf", "sha256": "ab" * 32}),
        ("edited", {"fields": ["summary", "offences"]}),
        ("shared", {"with": BOB.node_id}),
    ],
)
def test_every_entry_type_round_trips(type_: str, fields: dict[str, Any]) -> None:
    entry = ch.make_entry(ALICE, prev=["0" * 64], type=type_, user="u", at=at(1), **fields)
    ch.verify_entry(entry, ALICE.public.sign_key)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(entry: dict[str, Any]) -> None:
        entry[name] = value

    return change


def _flip_sig(entry: dict[str, Any]) -> None:
    sig = entry["sig"]
    entry["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "reason": _set("reason", "ready to send"),
    "at": _set("at", at(99)),
    "from": _set("from", "acknowledged"),
    "to": _set("to", "withdrawn"),
    "node": _set("node", BOB.node_id),
    "user": _set("user", "someone else"),
    "prev": _set("prev", ["0" * 64]),
    "type": _set("type", "note"),
    "sig": _flip_sig,
    "sig removed": lambda e: e.pop("sig"),
    "id": _set("id", "0" * 64),
    "extra field": _set("text", "smuggled"),
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_tampering_with_any_field_is_detected(tamper: str) -> None:
    history = diamond()
    target = dict(history[1])  # Alice's draft -> sent
    TAMPERINGS[tamper](target)
    with pytest.raises(HistoryInvalid):
        ch.verify_entry(target, ALICE.public.sign_key)
    report = ch.verify_chain([history[0], target, *history[2:]], key_of)
    assert not report.ok
    assert report.problems


@pytest.mark.parametrize("field", ["text", "at", "node", "prev", "user"])
def test_tampering_with_a_note_and_recomputing_the_id_still_fails_the_signature(field: str) -> None:
    history = diamond()
    target = dict(history[3])  # Bob's note
    target[field] = {"text": "nothing received", "at": at(0), "node": ALICE.node_id, "prev": [history[0]["id"]]}.get(
        field, "mallory"
    )
    target["id"] = ch.entry_id(target)
    for key in (BOB.public.sign_key, ALICE.public.sign_key):
        with pytest.raises(HistoryInvalid, match="signature does not verify"):
            ch.verify_entry(target, key)
    report = ch.verify_chain([*history[:3], target, history[4]], key_of)
    assert not report.ok


def test_reattribution_by_resigning_with_another_key_is_detected() -> None:
    """Mallory rewrites Bob's note as hers, or signs a note claiming to be Bob: either way the key is wrong."""
    history = diamond()
    forged = ch.make_entry(MALLORY, prev=[history[1]["id"]], type="note", user="bob", at=at(3), text="x")
    forged = {**forged, "node": BOB.node_id}
    forged["id"] = ch.entry_id(forged)
    with pytest.raises(HistoryInvalid, match="signature does not verify"):
        ch.verify_entry(forged, BOB.public.sign_key)


HOSTILE: list[Any] = [
    None,
    "entry",
    42,
    ["id", "prev"],
    {},
    {"id": 7, "type": "note"},
    {"type": "note", "text": "x"},
]


def _malformed_variants() -> list[Any]:
    good = diamond()[3]
    variants: list[Any] = list(HOSTILE)
    for name in good:
        variants.append({k: v for k, v in good.items() if k != name})  # each key missing
    for name, value in [
        ("prev", "abc"),
        ("prev", [1, 2]),
        ("prev", ["not-hex"]),
        ("prev", ["f" * 64, "0" * 64]),  # not sorted
        ("prev", []),  # a second root
        ("at", 12),
        ("at", None),
        ("at", "2025-02-30T00:00:00Z"),
        ("node", ""),
        ("node", ["list"]),
        ("user", None),
        ("sig", 5),
        ("sig", "!!!not base64!!!"),
        ("sig", "AAAA"),
        ("text", {"nested": ["dict"]}),
        ("text", float("nan")),
        ("type", ["note"]),
        ("id", "F" * 64),
        ("id", "0" * 64 + "\n"),
    ]:
        variants.append({**good, name: value})
    variants.append({**good, 3: "non-string key"})
    return variants


@pytest.mark.parametrize("entry", _malformed_variants())
def test_hostile_entries_give_history_invalid_never_a_crash(entry: Any) -> None:
    with pytest.raises(HistoryInvalid):
        ch.verify_entry(entry, BOB.public.sign_key)
    history = diamond()
    report = ch.verify_chain([*history, entry], key_of)
    assert not report.ok
    json.dumps(report.as_json())
    # Readers of the history keep working around it.
    ids = [e["id"] for e in ch.causal_order([*history, entry])]
    assert len(ids) == len(set(ids))
    assert {e["id"] for e in history} <= set(ids)
    ch.heads([*history, entry])
    ch.ancestors([*history, entry], history[-1]["id"])


def test_entry_id_of_a_non_object_is_history_invalid() -> None:
    with pytest.raises(HistoryInvalid):
        ch.entry_id("not an entry")  # type: ignore[arg-type]
    with pytest.raises(HistoryInvalid):
        ch.entry_id({"text": {1, 2}})


# -- the DAG ---------------------------------------------------------------------------------------------------


def test_heads_are_the_unreferenced_entries() -> None:
    c, s, a, b, j = diamond()
    assert ch.heads([c]) == [c["id"]]
    assert ch.heads([c, s, a, b]) == sorted([a["id"], b["id"]])
    assert ch.heads([c, s, a, b, j]) == [j["id"]]
    assert ch.heads([j, b, a, s, c, j]) == [j["id"]]
    assert ch.heads([]) == []


def test_ancestors_follow_prev_through_both_branches() -> None:
    c, s, a, b, j = diamond()
    history = [c, s, a, b, j]
    assert ch.ancestors(history, j["id"]) == {c["id"], s["id"], a["id"], b["id"]}
    assert ch.ancestors(history, a["id"]) == {c["id"], s["id"]}
    assert ch.ancestors(history, c["id"]) == set()
    assert ch.ancestors(history, "0" * 64) == set()


def test_causal_order_puts_parents_first_then_earliest_then_id() -> None:
    c, s, a, b, j = diamond()
    # Bob's note (minute 3) before Alice's (minute 5): concurrent, so time decides.
    assert [e["id"] for e in ch.causal_order([j, a, b, s, c])] == [e["id"] for e in (c, s, b, a, j)]


def test_causal_order_trusts_prev_over_a_skewed_clock() -> None:
    c = created(10)
    late_clock = note(BOB, [c["id"]], 0)  # Bob's clock is behind, but he saw the creation
    assert ch.causal_order([late_clock, c]) == [c, late_clock]


def test_causal_order_breaks_ties_in_time_by_id() -> None:
    c = created(0)
    x = note(ALICE, [c["id"]], 5, "x")
    y = note(BOB, [c["id"]], 5, "y")
    first, second = sorted([x, y], key=lambda e: e["id"])
    assert ch.causal_order([c, x, y]) == [c, first, second]
    assert ch.causal_order([y, c, x]) == [c, first, second]


def test_causal_order_compares_times_not_strings() -> None:
    c = created(0)
    earlier = ch.make_entry(ALICE, prev=[c["id"]], type="note", user="u", at="2025-03-01T09:05:00+00:00", text="a")
    later = ch.make_entry(BOB, prev=[c["id"]], type="note", user="u", at="2025-03-01T09:06:00Z", text="b")
    assert ch.causal_order([c, later, earlier]) == [c, earlier, later]


def test_causal_order_is_the_same_for_every_permutation_and_collapses_duplicates() -> None:
    history = diamond()
    expected = ch.causal_order(history)
    for perm in itertools.permutations(history):
        assert ch.causal_order(list(perm)) == expected
    assert ch.causal_order([*history, *history]) == expected


def test_an_entry_after_an_unknown_entry_still_appears_after_its_known_parents() -> None:
    c, s, a, b, j = diamond()
    orphan = note(ALICE, sorted([s["id"], "0" * 64]), -50)
    ordered = ch.causal_order([orphan, c, s, a, b, j])
    ids = [e["id"] for e in ordered]
    assert orphan["id"] in ids
    assert ids.index(orphan["id"]) > ids.index(s["id"])


def test_causal_order_survives_a_forged_cycle() -> None:
    x: dict[str, Any] = {"id": "1" * 64, "prev": ["2" * 64], "type": "note", "at": at(2)}
    y: dict[str, Any] = {"id": "2" * 64, "prev": ["1" * 64], "type": "note", "at": at(1)}
    ordered = ch.causal_order([x, y, created()])
    assert len(ordered) == 3
    assert ch.causal_order([y, x]) == [y, x]  # released at its earliest entry
    assert ch.ancestors([x, y], x["id"]) == {y["id"]}


def test_two_different_entries_claiming_one_id_resolve_the_same_way_in_any_order() -> None:
    real = diamond()[3]
    fake = {**real, "text": "a different text"}
    assert ch.causal_order([real, fake]) == ch.causal_order([fake, real])
    assert len(ch.causal_order([real, fake])) == 1


# -- whole chains -------------------------------------------------------------------------------------------


def test_an_intact_history_verifies() -> None:
    history = diamond()
    random.Random(1).shuffle(history)
    report = ch.verify_chain(history, key_of)
    assert report.ok, report.problems
    assert report.entries == 5
    assert report.heads == [diamond_head(history)]
    assert report.as_json() == {"ok": True, "entries": 5, "heads": report.heads, "problems": []}


def diamond_head(history: list[dict[str, Any]]) -> str:
    return str(next(e["id"] for e in history if e["type"] == "transition" and e["to"] == "acknowledged"))


def _problems(report: ch.ChainReport) -> list[str]:
    return [p["problem"] for p in report.problems]


def test_deleting_a_middle_entry_leaves_a_dangling_prev() -> None:
    c, s, a, b, j = diamond()
    report = ch.verify_chain([c, s, b, j], key_of)
    assert not report.ok
    assert report.problems == [{"entry": j["id"], "problem": f"names a previous entry {a['id'][:12]} that is missing"}]
    report = ch.verify_chain([c, a, b, j], key_of)
    assert {p["entry"] for p in report.problems} == {a["id"], b["id"]}


def test_a_duplicate_id_is_a_problem() -> None:
    history = diamond()
    report = ch.verify_chain([*history, history[2]], key_of)
    assert _problems(report) == ["this id appears more than once"]
    assert report.entries == 5


def test_exactly_one_created_entry() -> None:
    c, s, a, b, j = diamond()
    report = ch.verify_chain([s, a, b, j], key_of)
    assert "a history must have exactly one created entry, this one has 0" in _problems(report)
    second = created(1, kind="extradition")
    report = ch.verify_chain([c, s, a, b, j, second], key_of)
    assert _problems(report) == ["a history must have exactly one created entry, this one has 2"]


def test_an_entry_by_an_unknown_node_is_a_problem() -> None:
    c, s, a, b, j = diamond()
    stranger = Identity.generate()
    extra = note(stranger, [j["id"]], 9)
    report = ch.verify_chain([c, s, a, b, j, extra], key_of)
    assert report.problems == [{"entry": extra["id"], "problem": "written by a node whose key is not known here"}]


def test_a_problem_report_lists_every_problem_not_just_the_first() -> None:
    c, s, a, b, j = diamond()
    bad_s = {**s, "reason": "changed"}
    bad_b = {**b, "sig": a["sig"]}
    report = ch.verify_chain([c, bad_s, a, bad_b, j], key_of)
    assert [p["entry"] for p in report.problems] == [s["id"], b["id"]]
    assert "does not match its content" in report.problems[0]["problem"]
    assert "signature does not verify" in report.problems[1]["problem"]


def test_chain_report_is_json() -> None:
    report = ch.verify_chain([None, *diamond()], key_of)  # type: ignore[list-item]
    data: Mapping[str, Any] = report.as_json()
    assert json.loads(json.dumps(data)) == data
    assert data["problems"][0]["entry"] == "#0"
