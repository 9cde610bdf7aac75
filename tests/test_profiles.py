"""Country profiles through a real node's document store: publish, read, replicate, refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import PASSPHRASE, init_node

import node.profiles
from node.crdt import DocumentChange
from node.errors import Forbidden, NotFound, ValidationError
from node.policy import profile_doc
from node.runtime import Node, open_node

FULL: dict[str, Any] = {
    "authority": " Office of the Attorney General, International Affairs Department ",
    "languages": ["th", "EN", "en"],
    "legal_bases": ["asean_mlat", "reciprocity"],
    "treaties": ["ASEAN MLAT (2004)", "Thailand-United States MLA Treaty (1986)"],
    "requirements": {
        "bank_records": ["account_details", "court_order", "link_to_offence"],
        "statement": ["questions", "local_custom_item"],
    },
    "execution_days": {"bank_records": 90, "statement": 45},
    "urgent_channel": "Duty prosecutor, +66 2 142 1444 (24/7)\nthen e-mail oag-urgent@example.org",
    "notes": "Requests in Thai are executed faster.\n\tTranslations must be certified.",
}


@pytest.fixture
def th(tmp_path: Path) -> Iterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node shared by the tests of refused writes, which must leave it without a profile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)  # the autouse fixture is per test, this one per module
        opened = open_node(init_node(tmp_path_factory.mktemp("refusing"), "Thailand", "TH").home, PASSPHRASE)
    yield opened
    opened.close()


def _replicate(source: Node, target: Node) -> None:
    """Hand `source`'s profile to `target` as sync would: signed entries, checked on receipt."""
    target.peers.add_card(source.card(), actor="tests")
    entries = source.store.entries_missing(profile_doc(source.node_id), {})
    target.store.apply_remote(entries, via=source.node_id)


def test_put_get_list_round_trip(th: Node) -> None:
    stored = th.profiles.put("th", FULL, actor="tests")
    assert stored["node_id"] == th.node_id
    assert stored["country"] == "TH"
    assert stored["authority"] == "Office of the Attorney General, International Affairs Department"
    assert stored["languages"] == ["th", "en"]
    assert stored["legal_bases"] == ["asean_mlat", "reciprocity"]
    assert stored["treaties"] == FULL["treaties"]
    assert stored["requirements"] == FULL["requirements"]
    assert stored["execution_days"] == {"bank_records": 90, "statement": 45}
    assert all(isinstance(d, int) for d in stored["execution_days"].values())
    assert stored["urgent_channel"] == FULL["urgent_channel"]
    assert stored["notes"] == FULL["notes"].strip()
    assert isinstance(stored["updated_at"], str) and stored["updated_at"].endswith("Z")

    assert th.profiles.get("TH") == stored
    assert th.profiles.get(" th ") == stored
    assert th.profiles.list() == [stored]
    [audit] = th.db.query("SELECT actor, action, doc_id, subject FROM audit_log WHERE action = 'profile.put'")
    assert audit == {"actor": "tests", "action": "profile.put", "doc_id": f"profile/{th.node_id}", "subject": "TH"}


def test_put_survives_reopening(tmp_path: Path) -> None:
    home = init_node(tmp_path, "Thailand", "TH").home
    first = open_node(home, PASSPHRASE)
    try:
        stored = first.profiles.put("TH", FULL, actor="tests")
    finally:
        first.close()
    again = open_node(home, PASSPHRASE)
    try:
        assert again.profiles.get("TH") == stored
    finally:
        again.close()


def test_put_replaces_the_whole_profile(th: Node) -> None:
    th.profiles.put("TH", FULL, actor="tests")
    stored = th.profiles.put("TH", {"authority": "OAG", "languages": ["en"]}, actor="tests")
    assert (stored["authority"], stored["languages"]) == ("OAG", ["en"])
    assert (stored["legal_bases"], stored["treaties"]) == ([], [])
    assert (stored["requirements"], stored["execution_days"]) == ({}, {})
    assert (stored["urgent_channel"], stored["notes"]) == ("", "")
    assert th.profiles.get("TH") == stored


def test_what_get_returns_can_be_put_back(th: Node) -> None:
    stored = th.profiles.put("TH", FULL, actor="tests")
    again = th.profiles.put("TH", stored, actor="tests")
    assert {k: v for k, v in again.items() if k != "updated_at"} == {
        k: v for k, v in stored.items() if k != "updated_at"
    }


@pytest.mark.parametrize("country", ["VN", "vn", "XX", "", "Thailand"])
def test_another_countrys_profile_is_forbidden(refusing: Node, country: str) -> None:
    with pytest.raises(Forbidden, match="only its own"):
        refusing.profiles.put(country, FULL, actor="tests")
    assert refusing.store.doc_ids("profile/") == []


def test_country_in_the_body_cannot_move_the_profile(th: Node) -> None:
    assert th.profiles.put("TH", {**FULL, "country": "th"}, actor="tests")["country"] == "TH"
    with pytest.raises(ValidationError) as caught:
        th.profiles.put("TH", {**FULL, "country": "VN"}, actor="tests")
    assert set(caught.value.fields) == {"country"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("authority", 5),
        ("authority", "x" * 301),
        ("authority", "line\nbreak"),
        ("languages", "en"),
        ("languages", ["english"]),
        ("languages", ["e1"]),
        ("languages", [f"{a}{b}" for a in "abc" for b in "abcdefg"]),
        ("languages", [1]),
        ("legal_bases", ["asean_mlat", "friendship"]),
        ("legal_bases", "asean_mlat"),
        ("treaties", ["t" * 201]),
        ("treaties", [f"Treaty {i}" for i in range(101)]),
        ("treaties", ["tab\there"]),
        ("treaties", {"a": "b"}),
        ("requirements", ["court_order"]),
        ("requirements", {"teleportation": ["court_order"]}),
        ("requirements", {"bank_records": "court_order"}),
        ("requirements", {"bank_records": ["Court Order"]}),
        ("requirements", {"bank_records": ["x" * 61]}),
        ("requirements", {"bank_records": [f"item_{i}" for i in range(31)]}),
        ("execution_days", {"bank_records": -1}),
        ("execution_days", {"bank_records": 3651}),
        ("execution_days", {"bank_records": 1.5}),
        ("execution_days", {"bank_records": "30"}),
        ("execution_days", {"bank_records": True}),
        ("execution_days", {"teleportation": 3}),
        ("execution_days", [30]),
        ("urgent_channel", "x" * 501),
        ("urgent_channel", "bell\x07"),
        ("notes", "x" * 2001),
        ("notes", None),
        ("node_owner", "me"),
    ],
)
def test_each_bad_field_is_named_and_nothing_is_stored(refusing: Node, field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        refusing.profiles.put("TH", {**FULL, field: value}, actor="tests")
    assert set(caught.value.fields) == {field}
    assert field in caught.value.message
    assert refusing.store.doc_ids("profile/") == []


def test_every_bad_field_is_listed_at_once(refusing: Node) -> None:
    body = {"authority": 1, "languages": ["english"], "execution_days": {"statement": -3}, "colour": "blue"}
    with pytest.raises(ValidationError) as caught:
        refusing.profiles.put("TH", body, actor="tests")
    assert set(caught.value.fields) == {"authority", "languages", "execution_days", "colour"}
    assert "statement" in caught.value.fields["execution_days"]


@pytest.mark.parametrize("body", [None, [], "profile", 3])
def test_body_must_be_an_object(refusing: Node, body: Any) -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        refusing.profiles.put("TH", body, actor="tests")


def test_limits_themselves_are_accepted(th: Node) -> None:
    body = {
        "authority": "a" * 300,
        "languages": [f"{chr(97 + i)}{chr(97 + i)}" for i in range(20)],
        "treaties": [f"{i:03d}" + "t" * 197 for i in range(100)],
        "requirements": {"bank_records": [f"item_{i}" for i in range(30)], "statement": ["x" * 60]},
        "execution_days": {"bank_records": 0, "statement": 3650},
        "urgent_channel": "u" * 500,
        "notes": "n" * 2000,
    }
    stored = th.profiles.put("TH", body, actor="tests")
    assert stored["execution_days"] == {"bank_records": 0, "statement": 3650}
    assert len(stored["treaties"]) == 100


def test_missing_profile_is_not_found(th: Node) -> None:
    with pytest.raises(NotFound, match="VN has not published"):
        th.profiles.get("VN")
    with pytest.raises(NotFound, match="country code"):
        th.profiles.get("Viet Nam")
    assert th.profiles.list() == []


def test_peers_profiles_are_read_but_not_written(th: Node, tmp_path: Path) -> None:
    vn = open_node(init_node(tmp_path / "vn", "Viet Nam", "VN").home, PASSPHRASE)
    try:
        theirs = vn.profiles.put("VN", {"authority": "Supreme People's Procuracy", "languages": ["vi"]}, actor="t")
        _replicate(vn, th)
    finally:
        vn.close()
    mine = th.profiles.put("TH", FULL, actor="tests")
    assert th.profiles.get("VN") == theirs
    assert th.profiles.list() == [mine, theirs]
    with pytest.raises(Forbidden):
        th.profiles.put("VN", {"authority": "Hijacked"}, actor="tests")
    assert th.profiles.get("VN")["authority"] == "Supreme People's Procuracy"


def test_of_two_authorities_of_one_country_the_latest_profile_is_the_countrys(
    th: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = open_node(init_node(tmp_path / "th2", "Thailand Police", "TH").home, PASSPHRASE)
    try:
        monkeypatch.setattr(node.profiles, "utc_now", lambda: "2025-01-02T00:00:00.000Z")
        second.profiles.put("TH", {"authority": "Royal Thai Police"}, actor="t")
        _replicate(second, th)
        monkeypatch.setattr(node.profiles, "utc_now", lambda: "2025-01-01T00:00:00.000Z")
        th.profiles.put("TH", {"authority": "Office of the Attorney General"}, actor="t")
        assert th.profiles.get("TH")["authority"] == "Royal Thai Police"
        assert len(th.profiles.list()) == 2

        monkeypatch.setattr(node.profiles, "utc_now", lambda: "2025-01-03T00:00:00.000Z")
        th.profiles.put("TH", {"authority": "Office of the Attorney General"}, actor="t")
        assert th.profiles.get("TH")["authority"] == "Office of the Attorney General"
    finally:
        second.close()


def test_odd_values_from_another_version_are_read_defensively(th: Node) -> None:
    odd = {
        "country": "TH",
        "authority": 7,
        "languages": "en",
        "legal_bases": ["asean_mlat", 3, "future_convention"],
        "treaties": None,
        "requirements": {"bank_records": "court_order", "statement": ["questions", 5], "future_measure": ["x"]},
        "execution_days": {"bank_records": "ten", "statement": 12.0, "asset_freezing": -1, "other": 2.5},
        "urgent_channel": ["call"],
        "updated_at": 5,
        "from_the_future": {"a": 1},
    }

    def edit(change: DocumentChange) -> None:
        change.put_record("profile", "main", odd)

    th.store.commit_local(profile_doc(th.node_id), edit, actor="tests", action="test")
    profile = th.profiles.get("TH")
    assert profile == {
        "node_id": th.node_id,
        "country": "TH",
        "authority": "",
        "languages": [],
        "legal_bases": ["asean_mlat", "future_convention"],
        "treaties": [],
        "requirements": {"bank_records": [], "statement": ["questions"], "future_measure": ["x"]},
        "execution_days": {"statement": 12},
        "urgent_channel": "",
        "notes": "",
        "updated_at": None,
    }
