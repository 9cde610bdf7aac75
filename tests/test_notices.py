"""Network notices through real nodes' document stores: publish, read, replicate, refuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from nodeproc import PASSPHRASE, init_node

import node.notices
from crypto.authorship import sign_update
from node.crdt import CrdtDocument, DocumentChange
from node.errors import Forbidden, NotFound, ValidationError
from node.notices import Notices
from node.policy import notices_doc
from node.runtime import Node, open_node
from sync.errors import UpdateRejected
from sync.messages import SignedUpdate

MEETING: dict[str, Any] = {
    "title": " Annual meeting of the network ",
    "body": "Agenda:\n1. Statistics\n2. Electronic evidence\n\tDraft conclusions attached.",
    "category": "meeting",
    "starts_on": "2026-03-10",
    "ends_on": "2026-03-12",
    "location": "Bangkok, UN Conference Centre",
    "link": "https://www.unodc.org/seajust/annual-meeting",
}


def _open(base: Path, name: str, country: str, role: str = "authority") -> Node:
    return open_node(init_node(base, name, country, role=role).home, PASSPHRASE)


@pytest.fixture
def unodc(tmp_path: Path) -> Iterator[Node]:
    opened = _open(tmp_path / "unodc", "UNODC", "AT", role="secretariat")
    yield opened
    opened.close()


@pytest.fixture
def th(tmp_path: Path) -> Iterator[Node]:
    opened = _open(tmp_path / "th", "Thailand", "TH")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One secretariat node shared by the tests of refused writes, which must leave it without notices."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)  # the autouse fixture is per test, this one per module
        opened = _open(tmp_path_factory.mktemp("refusing"), "UNODC", "AT", role="secretariat")
    yield opened
    opened.close()


def _trust(a: Node, b: Node) -> None:
    a.peers.add_card(b.card(), actor="tests")
    b.peers.add_card(a.card(), actor="tests")


def _replicate(source: Node, target: Node, owner: Node | None = None) -> None:
    """Hand `owner`'s notices document (`source`'s own by default) to `target` as sync would."""
    doc_id = notices_doc((owner or source).node_id)
    target.store.apply_remote(source.store.entries_missing(doc_id, {}), via=source.node_id)


def _clock(monkeypatch: pytest.MonkeyPatch, at: str) -> None:
    monkeypatch.setattr(node.notices, "utc_now", lambda: at)


def test_publish_get_list_round_trip(unodc: Node) -> None:
    stored = unodc.notices.create(MEETING, actor="tests")
    assert stored == {
        **MEETING,
        "title": "Annual meeting of the network",
        "id": stored["id"],
        "publisher": unodc.node_id,
        "published_at": stored["published_at"],
        "updated_at": stored["published_at"],
    }
    assert len(stored["id"]) == 16
    assert isinstance(stored["published_at"], str) and stored["published_at"].endswith("Z")
    assert unodc.notices.get(stored["id"]) == stored
    assert unodc.notices.list() == [stored]
    assert unodc.store.doc_ids("notices/") == [notices_doc(unodc.node_id)]
    [audit] = unodc.db.query("SELECT actor, action, doc_id, subject FROM audit_log WHERE action = 'notice.create'")
    assert audit == {
        "actor": "tests",
        "action": "notice.create",
        "doc_id": f"notices/{unodc.node_id}",
        "subject": stored["id"],
    }


def test_only_title_and_category_are_needed(unodc: Node) -> None:
    stored = unodc.notices.create({"title": "Network newsletter", "category": "announcement"}, actor="tests")
    assert (stored["body"], stored["location"], stored["link"]) == ("", "", "")
    assert (stored["starts_on"], stored["ends_on"]) == (None, None)


def test_notices_survive_reopening(tmp_path: Path) -> None:
    home = init_node(tmp_path, "UNODC", "AT", role="secretariat").home
    first = open_node(home, PASSPHRASE)
    try:
        stored = first.notices.create(MEETING, actor="tests")
    finally:
        first.close()
    again = open_node(home, PASSPHRASE)
    try:
        assert again.notices.list() == [stored]
    finally:
        again.close()


def test_an_authority_may_not_publish(th: Node) -> None:
    with pytest.raises(Forbidden, match="only the network secretariat publishes notices"):
        th.notices.create(MEETING, actor="tests")
    with pytest.raises(Forbidden, match="only the network secretariat"):
        th.notices.update("0123456789abcdef", {"title": "x"}, actor="tests")
    with pytest.raises(Forbidden, match="only the network secretariat"):
        th.notices.delete("0123456789abcdef", actor="tests")
    assert th.store.doc_ids("notices/") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", None),
        ("title", ""),
        ("title", "   "),
        ("title", 5),
        ("title", "x" * 201),
        ("title", "two\nlines"),
        ("body", "x" * 5001),
        ("body", "bell\x07"),
        ("body", ["text"]),
        ("category", None),
        ("category", "party"),
        ("category", "Meeting"),
        ("starts_on", "2026-13-01"),
        ("starts_on", "2026/03/10"),
        ("starts_on", "20260310"),
        ("starts_on", "2026-W11-2"),
        ("starts_on", "2026-03-10T09:00:00"),
        ("starts_on", 20260310),
        ("ends_on", "2026-03-09"),  # before starts_on
        ("ends_on", "tomorrow"),
        ("location", "x" * 301),
        ("location", "Room 1\nBangkok"),
        ("location", 3),
        ("link", "ftp://files.example.org/agenda.pdf"),
        ("link", "javascript:alert(1)"),
        ("link", "www.unodc.org"),
        ("link", "https://"),
        ("link", "https://exa mple.org/"),
        ("link", "https://[::1/agenda"),
        ("link", "https://example.org/" + "x" * 481),
        ("link", 42),
        ("colour", "blue"),
    ],
)
def test_each_bad_field_is_named_and_nothing_is_stored(refusing: Node, field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        refusing.notices.create({**MEETING, field: value}, actor="tests")
    assert set(caught.value.fields) == {field}
    assert field in caught.value.message
    assert refusing.store.doc_ids("notices/") == []


@pytest.mark.parametrize("missing", ["title", "category"])
def test_title_and_category_are_required(refusing: Node, missing: str) -> None:
    body = {k: v for k, v in MEETING.items() if k != missing}
    with pytest.raises(ValidationError) as caught:
        refusing.notices.create(body, actor="tests")
    assert set(caught.value.fields) == {missing}
    assert "required" in caught.value.fields[missing]


def test_every_bad_field_is_listed_at_once(refusing: Node) -> None:
    body = {"title": "", "category": "party", "starts_on": "soon", "link": "mailto:a@b.org", "colour": "blue"}
    with pytest.raises(ValidationError) as caught:
        refusing.notices.create(body, actor="tests")
    assert set(caught.value.fields) == {"title", "category", "starts_on", "link", "colour"}


@pytest.mark.parametrize("body", [None, [], "notice", 3])
def test_body_must_be_an_object(refusing: Node, body: Any) -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        refusing.notices.create(body, actor="tests")


def test_limits_and_loose_forms_are_accepted(unodc: Node) -> None:
    stored = unodc.notices.create(
        {
            "title": "t" * 200,
            "body": "line\r\n" * 833 + "xx",
            "category": "working_group",
            "starts_on": "2026-03-10",
            "ends_on": "2026-03-10",
            "location": "l" * 300,
            "link": "HTTP://example.org/" + "x" * 481,
            "id": "ignored",
            "publisher": "ignored",
            "published_at": "ignored",
        },
        actor="tests",
    )
    assert len(stored["body"]) == 5000 and "\r\n" in stored["body"]
    assert stored["starts_on"] == stored["ends_on"] == "2026-03-10"
    assert len(stored["link"]) == 500
    assert (stored["id"], stored["publisher"]) != ("ignored", "ignored")
    for dateless in ({"starts_on": "2026-01-01"}, {"ends_on": "2026-01-01"}, {"starts_on": None, "ends_on": ""}):
        assert unodc.notices.create({"title": "Call", "category": "announcement", **dateless}, actor="t")


def test_update_changes_only_the_fields_given(unodc: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    _clock(monkeypatch, "2026-01-01T00:00:00.000Z")
    stored = unodc.notices.create(MEETING, actor="tests")
    _clock(monkeypatch, "2026-01-02T00:00:00.000Z")
    changed = unodc.notices.update(stored["id"], {"location": "Hanoi", "ends_on": None}, actor="tests")
    assert changed == {**stored, "location": "Hanoi", "ends_on": None, "updated_at": "2026-01-02T00:00:00.000Z"}
    assert changed["published_at"] == "2026-01-01T00:00:00.000Z"
    assert unodc.notices.get(stored["id"]) == changed
    assert unodc.notices.update(stored["id"], changed, actor="tests") == changed  # what GET returns goes back


def test_an_update_that_changes_nothing_stores_nothing(unodc: Node) -> None:
    stored = unodc.notices.create(MEETING, actor="tests")
    before = unodc.store.versions(notices_doc(unodc.node_id))
    assert unodc.notices.update(stored["id"], {"title": MEETING["title"], "category": "meeting"}, actor="t") == stored
    assert unodc.notices.update(stored["id"], {}, actor="t") == stored
    assert unodc.store.versions(notices_doc(unodc.node_id)) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"category": "party"}, "category"),
        ({"ends_on": "2026-03-01"}, "ends_on"),  # before the stored starts_on
        ({"starts_on": "2026-04-01"}, "ends_on"),  # after the stored ends_on
        ({"publisher_name": "UNODC"}, "publisher_name"),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(unodc: Node, change: dict[str, Any], field: str) -> None:
    stored = unodc.notices.create(MEETING, actor="tests")
    with pytest.raises(ValidationError) as caught:
        unodc.notices.update(stored["id"], change, actor="tests")
    assert set(caught.value.fields) == {field}
    assert unodc.notices.get(stored["id"]) == stored


def test_delete_withdraws_the_notice(unodc: Node) -> None:
    kept = unodc.notices.create({"title": "Training", "category": "training"}, actor="tests")
    gone = unodc.notices.create(MEETING, actor="tests")
    unodc.notices.delete(gone["id"], actor="tests")
    assert unodc.notices.list() == [kept]
    with pytest.raises(NotFound):
        unodc.notices.get(gone["id"])
    with pytest.raises(NotFound):
        unodc.notices.update(gone["id"], {"title": "Back"}, actor="tests")
    with pytest.raises(NotFound):
        unodc.notices.delete(gone["id"], actor="tests")
    actions = [r["action"] for r in unodc.db.query("SELECT action FROM audit_log WHERE action LIKE 'notice.%'")]
    assert actions == ["notice.create", "notice.create", "notice.delete"]


def test_list_is_newest_first_and_filters(unodc: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[dict[str, Any]] = []
    for at, fields in [
        ("2026-01-01T00:00:00.000Z", {"category": "meeting", "starts_on": "2026-02-27", "ends_on": "2026-03-02"}),
        ("2026-01-03T00:00:00.000Z", {"category": "training", "starts_on": "2026-02-28"}),
        ("2026-01-02T00:00:00.000Z", {"category": "meeting", "starts_on": "2026-03-01"}),
        ("2026-01-04T00:00:00.000Z", {"category": "announcement"}),
    ]:
        _clock(monkeypatch, at)
        published.append(unodc.notices.create({"title": f"Notice {at}", **fields}, actor="tests"))
    first, second, third, fourth = published
    assert unodc.notices.list() == [fourth, second, third, first]
    assert unodc.notices.list(category="meeting") == [third, first]
    assert unodc.notices.list(category="working_group") == []

    def on(day: date) -> Notices:
        return Notices(unodc.store, unodc.node_id, "secretariat", today=lambda: day)

    assert on(date(2026, 3, 1)).list(upcoming=True) == [third, first]  # the training started yesterday
    assert on(date(2026, 2, 28)).list(upcoming=True) == [second, third, first]
    assert on(date(2026, 3, 2)).list(upcoming=True) == [first]  # its last day
    assert on(date(2026, 3, 3)).list(upcoming=True) == []
    assert on(date(2026, 3, 1)).list(category="meeting", upcoming=True) == [third, first]
    with pytest.raises(ValidationError) as caught:
        unodc.notices.list(category="party")
    assert set(caught.value.fields) == {"category"}


def test_a_secretariat_notice_reaches_an_authority(unodc: Node, th: Node) -> None:
    _trust(unodc, th)
    stored = unodc.notices.create(MEETING, actor="tests")
    _replicate(unodc, th)
    assert th.notices.list() == [stored]
    assert th.notices.get(stored["id"]) == stored
    assert th.notices.list(category="meeting") == [stored]
    with pytest.raises(Forbidden, match="only the network secretariat"):
        th.notices.update(stored["id"], {"title": "Cancelled"}, actor="tests")
    with pytest.raises(Forbidden, match="only the network secretariat"):
        th.notices.delete(stored["id"], actor="tests")
    assert th.notices.get(stored["id"]) == stored

    changed = unodc.notices.update(stored["id"], {"title": "Annual meeting (postponed)"}, actor="tests")
    unodc.notices.delete(unodc.notices.create({"title": "x", "category": "training"}, actor="t")["id"], actor="t")
    _replicate(unodc, th)
    assert th.notices.list() == [changed]


def test_each_secretariat_node_edits_only_its_own_notices(unodc: Node, tmp_path: Path) -> None:
    regional = _open(tmp_path / "regional", "UNODC Regional Office", "TH", role="secretariat")
    try:
        _trust(unodc, regional)
        theirs = unodc.notices.create(MEETING, actor="tests")
        _replicate(unodc, regional)
        mine = regional.notices.create({"title": "Training on e-evidence", "category": "training"}, actor="t")
        assert {n["id"] for n in regional.notices.list()} == {theirs["id"], mine["id"]}
        with pytest.raises(Forbidden, match="another secretariat node"):
            regional.notices.update(theirs["id"], {"title": "Hijacked"}, actor="tests")
        with pytest.raises(Forbidden, match="another secretariat node"):
            regional.notices.delete(theirs["id"], actor="tests")
        assert regional.notices.get(theirs["id"]) == theirs
    finally:
        regional.close()


def _forge(author: Node, doc_id: str, edit: Callable[[DocumentChange], None]) -> SignedUpdate:
    """A correctly signed update of `doc_id` by `author`, never checked against the write rule: what a
    modified node could send."""
    held = author.store.get(doc_id)
    assert held is not None
    body = held.copy().change(edit)
    assert body is not None
    seq = author.store.versions(doc_id).get(author.node_id, 0) + 1
    sig = sign_update(author.identity, doc_id=doc_id, seq_from=seq, seq_to=seq, update=body)
    return SignedUpdate(doc_id, author.node_id, seq, seq, body, sig)


def test_an_authority_cannot_forge_a_notice_into_the_secretariats_document(unodc: Node, th: Node) -> None:
    _trust(unodc, th)
    stored = unodc.notices.create(MEETING, actor="tests")
    _replicate(unodc, th)
    doc_id = notices_doc(unodc.node_id)
    with pytest.raises(Forbidden):  # its own node refuses to make the change at all
        th.store.commit_local(doc_id, lambda c: c.put_record("notices", "f" * 16, MEETING), actor="t", action="t")

    def edit(change: DocumentChange) -> None:
        change.put_record("notices", "f" * 16, {**MEETING, "title": "Meeting cancelled", "published_at": "2099"})
        change.put_record("notices", stored["id"], {"link": "https://phishing.example.org/"})

    forged = _forge(th, doc_id, edit)
    before = unodc.store.versions(doc_id)
    with pytest.raises(UpdateRejected) as caught:
        unodc.store.apply_remote([forged], via=th.node_id)
    assert caught.value.reason == "not_permitted"
    assert unodc.store.versions(doc_id) == before
    assert unodc.notices.list() == [stored]


def test_an_authority_cannot_publish_notices_even_in_its_own_document(unodc: Node, th: Node) -> None:
    """It owns notices/<its id>, but only the secretariat publishes: refused locally and on receipt."""
    _trust(unodc, th)
    doc_id = notices_doc(th.node_id)

    def edit(change: DocumentChange) -> None:
        change.put_record("notices", "f" * 16, {**MEETING, "published_at": "2099-01-01T00:00:00.000Z"})

    with pytest.raises(Forbidden):
        th.store.commit_local(doc_id, edit, actor="tests", action="test")
    body = CrdtDocument().change(edit)
    assert body is not None
    forged = SignedUpdate(
        doc_id, th.node_id, 1, 1, body, sign_update(th.identity, doc_id=doc_id, seq_from=1, seq_to=1, update=body)
    )
    with pytest.raises(UpdateRejected) as refused:
        unodc.store.apply_remote([forged], via=th.node_id)
    assert refused.value.reason == "not_permitted"
    assert unodc.store.doc_ids("notices/") == [] and unodc.notices.list() == []


def test_odd_values_from_another_version_are_read_defensively(unodc: Node) -> None:
    odd = {
        "title": ["Meeting"],
        "body": 7,
        "category": "webinar",
        "starts_on": "2026-02-30",
        "ends_on": 20260301,
        "location": None,
        "link": {"href": "https://example.org"},
        "published_at": 5,
        "from_the_future": {"a": 1},
    }

    def edit(change: DocumentChange) -> None:
        change.put_record("notices", "abc", odd)

    unodc.store.commit_local(notices_doc(unodc.node_id), edit, actor="tests", action="test")
    assert unodc.notices.list() == [
        {
            "id": "abc",
            "publisher": unodc.node_id,
            "title": "",
            "body": "",
            "category": "webinar",
            "starts_on": None,
            "ends_on": None,
            "location": "",
            "link": "",
            "published_at": None,
            "updated_at": None,
        }
    ]
    assert unodc.notices.list(upcoming=True) == []
