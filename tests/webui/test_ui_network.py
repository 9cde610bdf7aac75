"""The network and administration pages over a real aiohttp server: directory, profiles, peers, statistics,
notices and users, each form with its field errors, its CSRF guard and its permissions.

Thailand's node runs in process with the UI; Viet Nam's is a home whose card Thailand trusts (and whose
own updates, made in process, reach Thailand the way sync would deliver them). The secretariat is a
third node that trusts both and holds Thailand's report. Accounts use a cheap Argon2 setting.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from html import unescape
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
from node.errors import NotFound
from node.policy import directory_doc, report_doc
from node.runtime import Node, open_node
from ui import svg_charts
from ui.web import setup_ui

Client = TestClient[web.Request, web.Application]

PASSWORD = "a long enough passphrase"
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_JSON = re.compile(r'<pre class="json" id="report-json" tabindex="0">(.*?)</pre>', re.S)


def _cheap_accounts(node: Node) -> None:
    node.accounts = Accounts(node.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    node.accounts.add("somchai", PASSWORD, "officer", actor="tests")
    node.accounts.add("admin", PASSWORD, "admin", actor="tests")


@pytest.fixture
def vn(tmp_path: Path) -> NodeProc:
    return init_node(tmp_path / "vn", "Viet Nam", "VN")


@pytest.fixture
async def node(tmp_path: Path, vn: NodeProc) -> AsyncIterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)  # the app closes it
    opened.peers.add_card(card_of(vn), actor="tests")
    _cheap_accounts(opened)
    yield opened


async def _browser(node: Node, aiohttp_client: Any) -> Client:
    app = create_app(node)
    if aiohttp_jinja2.APP_KEY not in app:  # until node.app.create_app calls setup_ui itself
        setup_ui(app)
    browser: Client = await aiohttp_client(app)
    return browser


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> Client:
    return await _browser(node, aiohttp_client)


def _send_cases(node: Node, counterpart: str, n: int) -> None:
    for i in range(n):
        case = node.cases.create(
            {
                "kind": "mla",
                "counterpart": counterpart,
                "reference": f"OAG-{i}",
                "summary": "Laundering through Zephyrine Holdings",
                "offences": ["money_laundering"],
                "measures": ["bank_records"],
                "legal_basis": ["asean_mlat"],
                "languages": ["en"],
                "urgency": "normal",
            },
            actor="tests",
        )
        node.cases.transition(case["id"], {"to": "sent", "force": True, "reason": "tests"}, actor="tests")


@pytest.fixture
async def secretariat(tmp_path: Path, node: Node, vn: NodeProc) -> AsyncIterator[Node]:
    """UNODC's node, trusting Thailand and Viet Nam, holding Thailand's report for the current quarter."""
    _send_cases(node, vn.node_id, 3)
    node.reporting.send(actor="tests")
    opened = open_node(init_node(tmp_path / "sec", "UNODC", "AT", role="secretariat").home, PASSPHRASE)
    opened.peers.add_card(node.card(), actor="tests")
    opened.peers.add_card(card_of(vn), actor="tests")
    opened.store.apply_remote(node.store.entries_missing(report_doc(node.node_id), {}), via=node.node_id)
    _cheap_accounts(opened)
    yield opened


@pytest.fixture
async def sec_client(secretariat: Node, aiohttp_client: Any) -> Client:
    return await _browser(secretariat, aiohttp_client)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form token"
    return found.group(1)


async def login(client: Client, username: str = "somchai") -> None:
    page = await client.get("/ui/login")
    form = {"csrf": csrf_of(await page.text()), "username": username, "password": PASSWORD}
    resp = await client.post("/ui/login", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()


async def token(client: Client, path: str = "/ui/") -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return csrf_of(await resp.text())


async def html_of(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path)
    text = await resp.text()
    assert resp.status == status, text
    assert "style=" not in text and "<script" not in text and "<style" not in text  # the CSP forbids them
    return text


def _contact_form(csrf: str, **fields: str | list[str]) -> list[tuple[str, str]]:
    base: dict[str, str | list[str]] = {
        "name": "Somchai Rattanakul",
        "title": "Director, International Affairs",
        "authority": "Office of the Attorney General",
        "email": "somchai@ago.go.th",
        "phone": "+66 2 141 1234",
        "languages": ["th", "en"],
        "expertise": ["extradition", "asset recovery"],
        "other_expertise": "maritime piracy\n",
    }
    base.update(fields)
    form = [("csrf", csrf)]
    for name, value in base.items():
        form.extend((name, v) for v in ([value] if isinstance(value, str) else value))
    return form


# --- the directory ----------------------------------------------------------------------------------------------


async def test_add_search_edit_and_remove_a_contact_point(client: Client, node: Node) -> None:
    await login(client)
    resp = await client.post(
        "/ui/directory/new", data=_contact_form(await token(client, "/ui/directory/new")), allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/ui/directory?done=contact_added"
    (contact,) = node.directory.list()
    assert contact["country"] == "TH" and contact["languages"] == ["th", "en"]
    assert contact["expertise"] == ["extradition", "asset recovery", "maritime piracy"]
    html = await html_of(client, resp.headers["Location"])
    assert "The contact point was added" in html and f'href="/ui/directory/{contact["id"]}/edit"' in html

    for query, found in (
        ("country=TH&expertise=extradition", True),
        ("country=TH&expertise=piracy", True),
        ("country=VN", False),
        ("expertise=cybercrime", False),
        ("q=ago.go.th", True),
    ):
        html = await html_of(client, f"/ui/directory?{query}")
        assert ("Somchai Rattanakul" in html) is found, query
    assert '<option value="TH" selected>' in await html_of(client, "/ui/directory?country=th")

    edit = f"/ui/directory/{contact['id']}/edit"
    html = await html_of(client, edit)
    assert 'value="Somchai Rattanakul"' in html and re.search(r'value="extradition" checked', html)
    assert "maritime piracy" in html
    form = _contact_form(csrf_of(html), name="Somchai R.", languages=["th"], expertise=[], other_expertise="")
    resp = await client.post(edit, data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    saved = node.directory.get(contact["id"])
    assert saved["name"] == "Somchai R." and saved["languages"] == ["th"] and saved["expertise"] == []

    resp = await client.post(
        f"/ui/directory/{contact['id']}/delete", data={"csrf": csrf_of(html)}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"].endswith("done=contact_deleted")
    assert node.directory.list() == []


async def test_the_contact_form_shows_field_errors_and_keeps_the_input(client: Client, node: Node) -> None:
    await login(client)
    csrf = await token(client, "/ui/directory/new")
    resp = await client.post(
        "/ui/directory/new", data=_contact_form(csrf, name="", email="not-an-address", phone="call me")
    )
    html = await resp.text()
    assert resp.status == 422
    assert "The contact point was not saved." in html
    for name in ("name", "email", "phone"):
        assert f'id="{name}-error"' in html and f'aria-describedby="{name}-error"' in html
    assert "is required" in html and "must be an e-mail address" in html
    assert 'value="not-an-address"' in html and 'value="call me"' in html and "maritime piracy" in html
    assert re.search(r'value="asset recovery" checked', html)
    assert node.directory.list() == []


async def test_another_authoritys_contact_point_cannot_be_changed(client: Client, node: Node, vn: NodeProc) -> None:
    viet = open_node(vn.home, PASSPHRASE)
    try:
        theirs = viet.directory.create({"name": "Nguyen Van A", "country": "VN"}, actor="tests")
        node.store.apply_remote(viet.store.entries_missing(directory_doc(viet.node_id), {}), via=viet.node_id)
    finally:
        viet.close()
    await login(client)
    html = await html_of(client, "/ui/directory?country=VN")
    assert "Nguyen Van A" in html and f"/ui/directory/{theirs['id']}/edit" not in html
    assert (await client.get(f"/ui/directory/{theirs['id']}/edit")).status == 403
    csrf = await token(client, "/ui/directory")
    resp = await client.post(f"/ui/directory/{theirs['id']}/edit", data=_contact_form(csrf, name="Changed"))
    assert resp.status == 403
    resp = await client.post(f"/ui/directory/{theirs['id']}/delete", data={"csrf": csrf})
    assert resp.status == 403
    assert node.directory.get(theirs["id"])["name"] == "Nguyen Van A"


async def test_a_contact_name_is_escaped(client: Client, node: Node) -> None:
    await login(client)
    csrf = await token(client, "/ui/directory/new")
    for payload in XSS:
        resp = await client.post("/ui/directory/new", data=_contact_form(csrf, name=payload), allow_redirects=False)
        assert resp.status == 303, await resp.text()
    html = await html_of(client, "/ui/directory")
    for payload in XSS:
        assert payload not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    edit = await html_of(client, f"/ui/directory/{node.directory.list(q='img')[0]['id']}/edit")
    assert XSS[1] not in edit and 'value="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in edit


# --- country profiles -------------------------------------------------------------------------------------------


def _profile_form(csrf: str, **extra: str) -> list[tuple[str, str]]:
    form = [
        ("csrf", csrf),
        ("authority", "Office of the Attorney General"),
        ("languages", "th"),
        ("languages", "en"),
        ("legal_bases", "asean_mlat"),
        ("legal_bases", "reciprocity"),
        ("treaties", "Treaty with Viet Nam (2013)\n\n  ASEAN MLAT  \n"),
        ("req-bank_records", "court_order"),
        ("req-bank_records", "account_details"),
        ("req-statement", "questions"),
        ("days-bank_records", "60"),
        ("days-statement", ""),
        ("urgent_channel", "Call +66 2 141 1234, day and night"),
        ("notes", "Send a copy by e-mail."),
    ]
    return [(k, v) for k, v in form if k not in extra] + list(extra.items())


async def test_edit_this_countrys_profile(client: Client, node: Node) -> None:
    await login(client)
    html = await html_of(client, "/ui/profiles")
    assert 'href="/ui/profiles/TH/edit"' in html and "Publish the profile of Thailand" in html
    csrf = await token(client, "/ui/profiles/TH/edit")
    resp = await client.post("/ui/profiles/TH/edit", data=_profile_form(csrf), allow_redirects=False)
    assert resp.status == 303, await resp.text()
    profile = node.profiles.get("TH")
    assert profile["languages"] == ["th", "en"] and profile["legal_bases"] == ["asean_mlat", "reciprocity"]
    assert profile["treaties"] == ["Treaty with Viet Nam (2013)", "ASEAN MLAT"]
    assert profile["requirements"] == {"bank_records": ["court_order", "account_details"], "statement": ["questions"]}
    assert profile["execution_days"] == {"bank_records": 60}
    assert profile["urgent_channel"] == "Call +66 2 141 1234, day and night"
    listing = await html_of(client, "/ui/profiles?done=profile_saved")
    assert "Your country profile was saved." in listing and "Court order or warrant" in listing
    edit = await html_of(client, "/ui/profiles/TH/edit")
    assert re.search(r'name="req-bank_records" type="checkbox" value="court_order" checked', edit)
    assert 'value="60"' in edit and "Treaty with Viet Nam (2013)\nASEAN MLAT" in edit


async def test_the_profile_form_shows_field_errors(client: Client, node: Node) -> None:
    await login(client)
    csrf = await token(client, "/ui/profiles/TH/edit")
    form = _profile_form(csrf, **{"days-statement": "two weeks", "treaties": "x" * 201})
    resp = await client.post("/ui/profiles/TH/edit", data=form)
    html = await resp.text()
    assert resp.status == 422
    assert "The profile was not saved." in html
    assert 'id="days-statement-error"' in html and "must be a whole number of days" in html
    assert 'id="treaties-error"' in html and "at most 200 characters" in html
    assert 'value="two weeks"' in html and 'value="60"' in html
    assert re.search(r'name="req-statement" type="checkbox" value="questions" checked', html)
    with pytest.raises(NotFound):
        node.profiles.get("TH")


async def test_another_countrys_profile_cannot_be_edited(client: Client, node: Node) -> None:
    await login(client)
    resp = await client.get("/ui/profiles/VN/edit")
    assert resp.status == 403 and "only its own country profile" in await resp.text()
    csrf = await token(client, "/ui/profiles")
    resp = await client.post("/ui/profiles/VN/edit", data=_profile_form(csrf))
    assert resp.status == 403
    assert node.profiles.list() == []


# --- guards -----------------------------------------------------------------------------------------------------


async def test_forms_without_the_token_change_nothing(client: Client, node: Node) -> None:
    await login(client, "admin")
    mine = node.directory.create({"name": "Kept"}, actor="tests")
    for path, form in (
        ("/ui/directory/new", _contact_form("")[1:]),
        (f"/ui/directory/{mine['id']}/edit", [("name", "Changed")]),
        (f"/ui/directory/{mine['id']}/delete", []),
        ("/ui/profiles/TH/edit", _profile_form("")[1:]),
        ("/ui/statistics/send", []),
        ("/ui/users", [("username", "intruder"), ("password", PASSWORD), ("role", "admin")]),
        ("/ui/users/somchai/role", [("role", "admin")]),
        ("/ui/users/somchai/password", [("password", "x" * 20), ("password_again", "x" * 20)]),
        ("/ui/users/somchai/enabled", [("enabled", "0")]),
    ):
        for data in (form, [*form, ("csrf", "x" * 43)]):
            resp = await client.post(path, data=data)
            assert resp.status == 403, path
            assert "This form has expired" in await resp.text()
    assert [c["name"] for c in node.directory.list()] == ["Kept"]
    assert node.profiles.list() == [] and node.reporting.sent_log() == []
    assert [(u.username, u.role, u.disabled) for u in node.accounts.list()] == [
        ("admin", "admin", False),
        ("somchai", "officer", False),
    ]


async def test_an_officer_cannot_reach_the_administration_pages(client: Client, node: Node) -> None:
    await login(client)
    csrf = await token(client)
    for path in ("/ui/users", "/ui/users/admin", "/ui/users/somchai"):
        resp = await client.get(path)
        assert resp.status == 403, path
        assert "for administrators" in await resp.text()
    for path, form in (
        ("/ui/users/somchai/role", {"role": "admin"}),
        ("/ui/users/admin/password", {"password": "y" * 20, "password_again": "y" * 20}),
        ("/ui/users/admin/enabled", {"enabled": "0"}),
    ):
        assert (await client.post(path, data={"csrf": csrf, **form})).status == 403, path
    assert node.accounts.get("somchai").role == "officer"  # type: ignore[union-attr]
    assert not node.accounts.get("admin").disabled  # type: ignore[union-attr]


# --- users ------------------------------------------------------------------------------------------------------


async def test_an_admin_manages_accounts(client: Client, node: Node) -> None:
    await login(client, "admin")
    csrf = await token(client, "/ui/users")
    resp = await client.post("/ui/users", data={"csrf": csrf, "username": "X", "password": "short", "role": "officer"})
    html = await resp.text()
    assert resp.status == 422 and 'id="username-error"' in html and 'id="password-error"' in html
    assert "at least 12 characters" in html and 'value="X"' in html

    html = await html_of(client, "/ui/users/somchai")
    assert "Account somchai" in html
    resp = await client.post("/ui/users/somchai/role", data={"csrf": csrf, "role": "admin"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/users/somchai?done=role_changed"
    assert node.accounts.get("somchai").role == "admin"  # type: ignore[union-attr]
    assert "The role was changed." in await html_of(client, resp.headers["Location"])
    resp = await client.post("/ui/users/somchai/role", data={"csrf": csrf, "role": "chief"})
    assert resp.status == 422 and "must be officer or admin" in await resp.text()

    form = {"csrf": csrf, "password": "a brand new passphrase", "password_again": "a brand new passphrase!"}
    resp = await client.post("/ui/users/somchai/password", data=form)
    html = await resp.text()
    assert resp.status == 422 and 'id="password_again-error"' in html and "not the same" in html
    resp = await client.post("/ui/users/somchai/password", data={**form, "password": "aaaa", "password_again": "aaaa"})
    assert resp.status == 422 and 'id="password-error"' in await resp.text()
    resp = await client.post(
        "/ui/users/somchai/password", data={**form, "password_again": form["password"]}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"].endswith("done=password_set")
    assert node.accounts.authenticate("somchai", "a brand new passphrase", client="tests").username == "somchai"

    resp = await client.post("/ui/users/somchai/enabled", data={"csrf": csrf, "enabled": "0"}, allow_redirects=False)
    assert resp.status == 303 and node.accounts.get("somchai").disabled  # type: ignore[union-attr]
    resp = await client.post("/ui/users/somchai/enabled", data={"csrf": csrf, "enabled": "1"}, allow_redirects=False)
    assert resp.status == 303 and not node.accounts.get("somchai").disabled  # type: ignore[union-attr]
    assert (await client.get("/ui/users/nobody")).status == 404


async def test_the_last_admin_is_kept(client: Client, node: Node) -> None:
    await login(client, "admin")
    csrf = await token(client, "/ui/users/admin")
    resp = await client.post("/ui/users/admin/role", data={"csrf": csrf, "role": "officer"})
    html = await resp.text()
    assert resp.status == 403
    assert "The role was not changed." in html and "last enabled admin" in html
    resp = await client.post("/ui/users/admin/enabled", data={"csrf": csrf, "enabled": "0"})
    html = await resp.text()
    assert resp.status == 403 and "That change was not made." in html and "last enabled admin" in html
    admin = node.accounts.get("admin")
    assert admin is not None and admin.role == "admin" and not admin.disabled


# --- peers ------------------------------------------------------------------------------------------------------


async def test_peers_show_their_node_ids(client: Client, node: Node, vn: NodeProc) -> None:
    await login(client)
    html = await html_of(client, "/ui/peers")
    groups = vn.node_id.split("-")
    assert len(groups) == 5 and len(groups[-1]) == 1
    shown = "".join(f'<span class="node-id-group">{g}</span>' for g in groups)
    assert shown in html.replace('<span class="node-id-dash">-</span>', "")
    assert "Viet Nam" in html and "Not connected" in html and "Never" in html
    assert node.node_id.split("-")[0] in html  # this node's own ID, for the other side to compare


# --- statistics -------------------------------------------------------------------------------------------------


async def test_the_preview_is_exactly_what_is_sent(client: Client, node: Node, vn: NodeProc) -> None:
    _send_cases(node, vn.node_id, 3)
    await login(client)
    period = node.reporting.period_or_default(None)
    html = await html_of(client, "/ui/statistics")
    assert "<svg" in html and 'href="/ui/statistics/preview?period=' in html
    assert "Money laundering" in html and "Vietnam" in html  # the country as Babel names it

    page = await html_of(client, f"/ui/statistics/preview?period={period}")
    found = _JSON.search(page)
    assert found, "the preview has no JSON"
    assert json.loads(unescape(found.group(1))) == node.reporting.preview(period)
    assert "No report has been sent from this node yet." in page
    assert "Cases" in page and "Money laundering" in page  # the readable table

    resp = await client.post(
        "/ui/statistics/send", data={"csrf": csrf_of(page), "period": period}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"/ui/statistics/preview?period={period}&done=stats_sent"
    (entry,) = node.reporting.sent_log()
    assert entry["period"] == period and entry["payload"] == node.reporting.preview(period)
    assert entry["trigger"] == "on demand"
    page = await html_of(client, resp.headers["Location"])
    assert "The report was published for the secretariat" in page and "By hand" in page

    older = await html_of(client, "/ui/statistics/preview?period=2020-Q1")
    assert json.loads(unescape(_JSON.search(older).group(1))) == node.reporting.preview("2020-Q1")  # type: ignore[union-attr]
    bad = await html_of(client, "/ui/statistics?period=2026-Q9")
    assert 'id="period-error"' in bad and f'<option value="{period}" selected>' in bad


async def test_the_secretariat_sees_the_network(sec_client: Client, secretariat: Node, node: Node) -> None:
    await login(sec_client)
    period = secretariat.reporting.period_or_default(None)
    html = await html_of(sec_client, "/ui/statistics")
    assert "Statistics of the network" in html
    for chart in ("chart-trend", "chart-by-member", "chart-by-kind", "chart-by-counterpart-country", "chart-pairs"):
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart' in html and f'id="{chart}"' in html, chart
    assert "Thailand → Vietnam" in html and "Reported" in html and "No report yet" in html
    assert f'href="/ui/statistics.csv?period={period}"' in html
    assert "Laundering through Zephyrine" not in html

    resp = await sec_client.get(f"/ui/statistics.csv?period={period}")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert f'filename="seajust-statistics-{period}.csv"' in resp.headers["Content-Disposition"]
    text = await resp.text()
    assert text == secretariat.reporting.csv(period)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["period", "section", "key", "value"] and [period, "summary", "reporting_nodes", "1"] in rows

    assert (await sec_client.get("/ui/statistics/preview")).status == 403  # the secretariat reports nothing
    await sec_client.post("/ui/logout", data={"csrf": await token(sec_client)})
    resp = await sec_client.get("/ui/statistics.csv", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/ui/login")


# --- notices ----------------------------------------------------------------------------------------------------


async def test_the_secretariat_publishes_edits_and_deletes_notices(sec_client: Client, secretariat: Node) -> None:
    await login(sec_client)
    html = await html_of(sec_client, "/ui/notices")
    assert "Publish a notice" in html
    form = {
        "csrf": csrf_of(html),
        "title": "",
        "category": "training",
        "starts_on": "2026-11-03",
        "ends_on": "2026-11-01",
        "location": "Bangkok",
        "link": "javascript:alert(1)",
        "body": "Electronic evidence workshop",
    }
    resp = await sec_client.post("/ui/notices", data=form)
    html = await resp.text()
    assert resp.status == 422 and "The notice was not published." in html
    assert 'id="title-error"' in html and 'id="link-error"' in html and "must be an http or https address" in html
    assert 'value="Bangkok"' in html and "Electronic evidence workshop" in html
    assert secretariat.notices.list() == []

    form.update(title="Regional workshop", link="https://www.unodc.org/workshop")
    resp = await sec_client.post("/ui/notices", data=form)
    assert resp.status == 422 and 'id="ends_on-error"' in await resp.text()
    form.update(ends_on="2026-11-05")
    resp = await sec_client.post("/ui/notices", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/notices?done=notice_published"
    (notice,) = secretariat.notices.list()
    html = await html_of(sec_client, resp.headers["Location"])
    assert "Regional workshop" in html and 'href="https://www.unodc.org/workshop"' in html
    assert f'href="/ui/notices/{notice["id"]}/edit"' in html

    edit = f"/ui/notices/{notice['id']}/edit"
    html = await html_of(sec_client, edit)
    assert 'value="Regional workshop"' in html and 'value="2026-11-03"' in html
    resp = await sec_client.post(edit, data={**form, "title": XSS[0]}, allow_redirects=False)
    assert resp.status == 303
    resp = await sec_client.post(edit, data={**form, "title": ""})
    assert resp.status == 422 and "cannot be empty" in await resp.text()
    html = await html_of(sec_client, "/ui/notices")
    assert XSS[0] not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    resp = await sec_client.post(
        f"/ui/notices/{notice['id']}/delete", data={"csrf": form["csrf"]}, allow_redirects=False
    )
    assert resp.status == 303 and secretariat.notices.list() == []
    resp = await sec_client.post(f"/ui/notices/{notice['id']}/delete", data={"csrf": form["csrf"]})
    assert resp.status == 404


async def test_an_authority_reads_notices_but_cannot_publish(client: Client, node: Node) -> None:
    await login(client)
    html = await html_of(client, "/ui/notices")
    assert "Publish a notice" not in html and "has not published any notice yet" in html
    form = {"csrf": csrf_of(html), "title": "Fake meeting", "category": "meeting"}
    resp = await client.post("/ui/notices", data=form)
    assert resp.status == 403 and "only the network secretariat publishes notices" in await resp.text()
    assert node.notices.list() == []


# --- charts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("draw", [svg_charts.bar_chart, svg_charts.column_chart])
def test_chart_labels_are_escaped(draw: Any) -> None:
    bars: list[tuple[str, int | None]] = [(XSS[0], 3), (XSS[1], None), ("Thailand & Viet Nam", 12)]
    svg = str(draw(bars, title='Cases <"by"> kind', chart_id="chart-x", hidden_text="<hidden>"))
    for payload in XSS:
        assert payload not in svg
    assert "&lt;script&gt;" in svg and "Thailand &amp; Viet Nam" in svg and "&lt;hidden&gt;" in svg
    assert "style=" not in svg and "<script" not in svg
    root = ET.fromstring(svg)  # well-formed: every label is text, not markup
    ns = "{http://www.w3.org/2000/svg}"
    assert root.attrib["role"] == "img" and root.find(f"{ns}title").text == 'Cases <"by"> kind'  # type: ignore[union-attr]
    labels = [t.text for t in root.iter(f"{ns}text") if "chart-label" in t.attrib["class"]]
    assert labels == [XSS[0], XSS[1], "Thailand & Viet Nam"]
    assert [t.text for t in root.iter(f"{ns}title")][1:] == [
        f"{XSS[0]}: 3",
        f"{XSS[1]}: <hidden>",
        "Thailand & Viet Nam: 12",
    ]
    widths = [float(r.attrib["width" if draw is svg_charts.bar_chart else "height"]) for r in root.iter(f"{ns}rect")]
    assert widths[1] == 0 and widths[2] > widths[0] > 0


def test_charts_refuse_a_bad_id_and_draw_nothing_for_no_data() -> None:
    with pytest.raises(ValueError):
        svg_charts.bar_chart([("a", 1)], title="t", chart_id='x" onload="alert(1)')
    assert svg_charts.bar_chart([], title="t", chart_id="chart-empty") == ""
    assert svg_charts.column_chart([], title="t", chart_id="chart-empty") == ""
