"""The new request wizard, walked as a browser without JavaScript would: each step submits every control the
page's form holds (the steps not shown included), plus the officer's answers and the button pressed.

Thailand's node runs in process with the UI; Viet Nam's card is trusted, and Viet Nam's country profile
(signed by Viet Nam, applied as if by sync) says it accepts Vietnamese only, acts on the ASEAN treaty and
needs a court order and the account details for bank records.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from nodeproc import PASSPHRASE, NodeProc, card_of, init_node

from node.accounts import Accounts
from node.app import create_app
from node.policy import profile_doc
from node.runtime import Node, open_node
from ui.web import setup_ui

Client = TestClient[web.Request, web.Application]
Fields = list[tuple[str, str]]

PASSWORD = "a long enough passphrase"
SUMMARY = "Laundering through Zephyrine Holdings; การฟอกเงินผ่านบัญชีธนาคาร in Bangkok"
XSS = "<script>alert(1)</script>"
VN_PROFILE = {
    "authority": "Supreme People's Procuracy",
    "languages": ["vi"],
    "legal_bases": ["asean_mlat", "reciprocity"],
    "requirements": {"bank_records": ["court_order", "account_details"]},
    "execution_days": {"bank_records": 120},
    "urgent_channel": "Duty prosecutor: +84 24 0000 0000",
}


@pytest.fixture
def vn(tmp_path: Path) -> NodeProc:
    home = init_node(tmp_path / "vn", "Viet Nam", "VN")
    other = open_node(home.home, PASSPHRASE)
    try:
        other.profiles.put(home.country, VN_PROFILE, actor="tests")
    finally:
        other.close()
    return home


@pytest.fixture
async def node(tmp_path: Path, vn: NodeProc) -> AsyncIterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)  # the app closes it
    opened.peers.add_card(card_of(vn), actor="tests")
    other = open_node(vn.home, PASSPHRASE)
    try:
        entries = other.store.entries_missing(profile_doc(other.node_id), {})
    finally:
        other.close()
    opened.store.apply_remote(entries, via=vn.node_id)
    opened.accounts = Accounts(opened.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    opened.accounts.add("somchai", PASSWORD, "officer", actor="tests")
    yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> Client:
    app = create_app(node)
    if aiohttp_jinja2.APP_KEY not in app:
        setup_ui(app)
    browser: Client = await aiohttp_client(app)
    page = await browser.get("/ui/login")
    form = dict(Form.of(await page.text(), "/ui/login").fields)
    resp = await browser.post(
        "/ui/login", data={**form, "username": "somchai", "password": PASSWORD}, allow_redirects=False
    )
    assert resp.status == 303
    return browser


class Form(HTMLParser):
    """The controls a browser submits from one form: named inputs (checked ones for boxes), textareas, selects."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.fields: Fields = []
        self.text: tuple[str, list[str]] | None = None
        self.select: str | None = None

    @classmethod
    def of(cls, html: str, action: str = "/ui/cases/new") -> Form:
        parser = cls(action)
        parser.feed(html)
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        if not self.inside or "name" not in a:
            return
        kind = a.get("type", "text")
        if (
            tag == "input"
            and kind not in ("submit", "button")
            and (kind not in ("checkbox", "radio") or "checked" in a)
        ):
            self.fields.append((a["name"], a.get("value", "on")))
        elif tag == "textarea":
            self.text = (a["name"], [])
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select and "selected" in a:
            self.fields.append((self.select, a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self.text:
            self.text[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self.text:
            self.fields.append((self.text[0], unescape("".join(self.text[1])).removeprefix("\n")))
            self.text = None
        elif tag == "select":
            self.select = None


def answer(fields: Fields, **answers: str | Iterable[str]) -> Fields:
    """The form's fields with these answered (a list for checkboxes: the boxes ticked)."""
    out = [(k, v) for k, v in fields if k not in answers]
    for name, value in answers.items():
        out.extend((name, v) for v in ([value] if isinstance(value, str) else value))
    return out


async def press(client: Client, html: str, go: str, **answers: str | Iterable[str]) -> web.Response | Any:
    """Answer the current step of the page `html` and press the button `go` (a step number or "save")."""
    fields = answer(Form.of(html).fields, **answers)
    return await client.post("/ui/cases/new", data=[*fields, ("go", go)], allow_redirects=False)


def shown_step(html: str) -> int:
    found = re.search(r'aria-current="step">\s*<span class="wizard-number">(\d)</span>', html)
    assert found, "no current step"
    return int(found.group(1))


def problems(html: str) -> list[str]:
    return re.findall(r'data-code="([a-z_]+)"', html)


async def walk(client: Client, vn: NodeProc, *, summary: str = SUMMARY) -> str:
    """Every step answered in order (the items are ticked once step 3 shows them); the review page's HTML."""
    html = await (await client.get("/ui/cases/new")).text()
    sequence: list[tuple[str, dict[str, Any]]] = [
        ("2", {"counterpart": vn.node_id, "kind": "mla"}),
        ("3", {"reference": "OAG-2026-117", "summary": summary, "offences": ["money_laundering", "fraud"]}),
        ("3", {"measures": ["bank_records"]}),  # "show what the requested state requires"
        ("4", {"provided": ["court_order", "account_details"]}),
        ("5", {"legal_basis": ["asean_mlat"], "languages": ["vi"]}),
        ("6", {"urgency": "normal", "requested_by": "2099-06-30"}),
    ]
    for go, answers in sequence:
        resp = await press(client, html, go, **answers)
        assert resp.status == 200, await resp.text()
        html = await resp.text()
        assert shown_step(html) == int(go)
    return html


async def test_walking_every_step_creates_the_case(client: Client, node: Node, vn: NodeProc) -> None:
    html = await (await client.get("/ui/cases/new")).text()
    assert "Vietnamese" in html and "Duty prosecutor" in html  # the profile summary beside the authority
    resp = await press(client, html, "2", counterpart=vn.node_id, kind="mla")
    resp = await press(client, await resp.text(), "3", reference="OAG-2026-117", summary=SUMMARY, offences=["fraud"])
    resp = await press(client, await resp.text(), "3", measures=["bank_records"])  # "show what it requires"
    html = await resp.text()
    assert 'id="provided-court_order"' in html and "Court order or warrant" in html
    resp = await press(client, html, "4", provided=["court_order", "account_details"])
    html = await resp.text()
    assert shown_step(html) == 4
    assert re.search(r'for="languages-vi">Vietnamese <span class="tag tag-ok">Accepted by', html)
    assert re.search(r'for="legal_basis-asean_mlat">[^<]*<span class="tag tag-ok">', html)
    resp = await press(client, html, "5", legal_basis=["asean_mlat"], languages=["vi", "en"])
    html = await resp.text()
    assert "Average execution time" in html and "120 days" in html
    resp = await press(
        client, html, "6", urgency="urgent", urgency_reason="Funds about to move", requested_by="2099-06-30"
    )
    html = await resp.text()
    assert shown_step(html) == 6 and problems(html) == []
    assert "No problems found" in html and "Zephyrine Holdings" in html
    assert node.cases.index.counts() == {}  # nothing saved before "Save as draft"
    resp = await press(client, html, "save")
    assert resp.status == 303, await resp.text()
    found = re.fullmatch(r"/ui/cases/([0-9A-Z]+)\?done=created", resp.headers["Location"])
    assert found
    case = node.cases.get(found.group(1))
    assert case["requested"]["node_id"] == vn.node_id and case["kind"] == "mla"
    assert case["references"]["requesting"] == "OAG-2026-117" and case["summary"] == SUMMARY
    assert case["offences"] == ["fraud"] and case["measures"] == ["bank_records"]
    assert case["provided"] == ["court_order", "account_details"]
    assert case["legal_basis"] == ["asean_mlat"] and case["languages"] == ["en", "vi"]  # in the form's order
    assert case["urgency"] == "urgent" and case["urgency_reason"] == "Funds about to move"
    assert case["requested_by"] == "2099-06-30" and case["created_by"] == "user:somchai"
    assert node.cases.check(case["id"]) == []


async def test_back_keeps_every_answer(client: Client, vn: NodeProc) -> None:
    review = await walk(client, vn)
    html = review
    for step in (5, 4, 3, 2, 1):
        resp = await press(client, html, str(step))
        html = await resp.text()
        assert shown_step(html) == step
    assert sorted(Form.of(html).fields) == sorted(Form.of(review).fields)
    assert re.search(f'id="counterpart-{vn.node_id}"[^>]* checked', html)  # step 1 shows the choice ticked
    html = await (await press(client, html, "6")).text()
    assert shown_step(html) == 6 and "Zephyrine Holdings" in html and problems(html) == []


async def test_review_lists_what_the_country_needs_until_it_is_fixed(client: Client, vn: NodeProc) -> None:
    html = await (await client.get("/ui/cases/new")).text()
    for go, answers in (
        ("2", {"counterpart": vn.node_id}),
        ("3", {"summary": "Facts", "offences": ["fraud"]}),
        ("4", {"measures": ["bank_records"]}),
        ("5", {"legal_basis": ["asean_mlat"], "languages": ["en"]}),
        ("6", {"requested_by": "2099-06-30"}),
    ):
        html = await (await press(client, html, go, **answers)).text()
    assert shown_step(html) == 6
    assert problems(html) == ["language_not_accepted", "required_item_missing", "required_item_missing"]
    assert "does not accept requests in en; it accepts: vi" in html
    assert "the requested state requires: court order or warrant" in html
    # each problem leads back to the step that fixes it
    assert re.search(r'does not accept requests in en.*?name="go" value="4"', html, re.S)
    assert re.search(r"court order or warrant.*?name=\"go\" value=\"3\"", html, re.S)
    html = await (await press(client, html, "4")).text()
    html = await (await press(client, html, "6", languages=["en", "vi"])).text()
    assert problems(html) == ["required_item_missing", "required_item_missing"]
    html = await (await press(client, html, "3")).text()
    assert 'id="provided-account_details"' in html
    html = await (await press(client, html, "6", provided=["court_order", "account_details"])).text()
    assert problems(html) == [] and "No problems found" in html


async def test_the_json_check_gives_the_same_problems(client: Client, vn: NodeProc) -> None:
    html = await (await client.get("/ui/cases/new")).text()
    fields = answer(
        Form.of(html).fields,
        counterpart=vn.node_id,
        summary="Facts",
        offences=["fraud"],
        measures=["bank_records"],
        provided=["court_order"],
        legal_basis=["asean_mlat"],
        languages=["en"],
    )
    resp = await client.post("/ui/cases/new/check", data=fields)
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    assert [(p["code"], p["step"]) for p in body["problems"]] == [
        ("language_not_accepted", 4),
        ("required_item_missing", 3),
    ]
    assert body["problems"][1]["item"] == "account_details" and body["invalid"] == {}
    review = await (await client.post("/ui/cases/new", data=[*fields, ("go", "6")])).text()
    assert problems(review) == [p["code"] for p in body["problems"]]
    fixed = await client.post(
        "/ui/cases/new/check", data=answer(fields, languages=["vi"], provided=["court_order", "account_details"])
    )
    assert (await fixed.json())["problems"] == []
    empty = await (await client.post("/ui/cases/new/check", data=Form.of(html).fields)).json()
    assert empty["invalid"]["counterpart"]["step"] == 1
    assert empty["invalid"]["counterpart"]["label"] == "Requested authority"
    for forged in (
        [(k, v) for k, v in fields if k != "csrf"],
        [*[(k, v) for k, v in fields if k != "csrf"], ("csrf", "x" * 43)],
    ):
        resp = await client.post("/ui/cases/new/check", data=forged)
        assert resp.status == 403


async def test_refused_answers_are_shown_at_their_step(client: Client, node: Node, vn: NodeProc) -> None:
    review = await walk(client, vn)
    resp = await press(client, review, "save", requested_by="31/12/2099", treaty="a\nb")
    html = await resp.text()
    assert resp.status == 422
    assert "The request was not saved." in html and shown_step(html) == 4  # the treaty comes first
    assert 'id="treaty-error"' in html and 'id="requested_by-error"' in html
    assert re.search(r'<section class="wizard-step" aria-labelledby="step-4-title">', html)  # shown, not hidden
    assert "must be a date like 2026-12-31" in html and "(step 5: Urgency and date)" in html
    resp = await press(client, html, "save", treaty="")
    html = await resp.text()
    assert resp.status == 422 and shown_step(html) == 5 and 'value="31/12/2099"' in html
    html = await (await press(client, html, "6")).text()
    assert "These answers cannot be saved as they are:" in html and "must be a date like 2026-12-31" in html
    assert node.cases.index.counts() == {}
    resp = await press(client, html, "save", requested_by="2099-12-31")
    assert resp.status == 303


async def test_the_summary_is_escaped_on_the_review_page(client: Client, vn: NodeProc) -> None:
    html = await walk(client, vn, summary=XSS)
    assert XSS not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<script src="/ui/static/wizard.js"' not in html  # the review has no live panel
    step_one = await (await client.get("/ui/cases/new")).text()
    assert '<script src="/ui/static/wizard.js" defer></script>' in step_one and 'aria-live="polite"' in step_one
    js = await client.get("/ui/static/wizard.js")
    assert js.status == 200 and "innerHTML" not in await js.text()
