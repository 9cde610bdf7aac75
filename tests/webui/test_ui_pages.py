"""The web UI over a real aiohttp server on loopback: sign-in, guards, forms and what the pages show.

Thailand's node runs in process with the UI added; Viet Nam's node is only a home whose card Thailand
trusts, so it can be the counterpart of a case. Accounts use a deliberately cheap Argon2 setting: the
tests check the UI's behaviour, not the hash's cost.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from nodeproc import PASSPHRASE, NodeProc, card_of, init_node
from yarl import URL

from node.accounts import Accounts
from node.app import create_app
from node.runtime import Node, open_node
from ui import i18n
from ui.headers import SECURITY_HEADERS
from ui.web import setup_ui

Client = TestClient[web.Request, web.Application]

PASSWORD = "a long enough passphrase"
SUMMARY = "Laundering through Zephyrine Holdings; การฟอกเงินผ่านบัญชีธนาคาร in Bangkok"
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def vn(tmp_path: Path) -> NodeProc:
    return init_node(tmp_path / "vn", "Viet Nam", "VN")


@pytest.fixture
async def node(tmp_path: Path, vn: NodeProc) -> AsyncIterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)  # the app closes it
    opened.peers.add_card(card_of(vn), actor="tests")
    opened.accounts = Accounts(opened.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> Client:
    app = create_app(node)
    if aiohttp_jinja2.APP_KEY not in app:  # until node.app.create_app calls setup_ui itself
        setup_ui(app)
    browser: Client = await aiohttp_client(app)
    return browser


@pytest.fixture
def officer(node: Node) -> str:
    node.accounts.add("somchai", PASSWORD, "officer", actor="tests")
    node.accounts.add("admin", PASSWORD, "admin", actor="tests")
    return "somchai"


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form token"
    return found.group(1)


async def login(client: Client, username: str = "somchai", password: str = PASSWORD, **extra: str) -> Any:
    page = await client.get("/ui/login")
    assert page.status == 200
    form = {"csrf": csrf_of(await page.text()), "username": username, "password": password, **extra}
    return await client.post("/ui/login", data=form, allow_redirects=False)


async def token(client: Client, path: str = "/ui/") -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return csrf_of(await resp.text())


async def new_case(client: Client, node: Node, **fields: Any) -> str:
    form: list[tuple[str, str]] = [
        ("csrf", await token(client, "/ui/cases/new")),
        ("counterpart", node.peers.all()[0].node_id),
        ("kind", "mla"),
        ("reference", "OAG-2026-117"),
        ("summary", SUMMARY),
        ("offences", "money_laundering"),
        ("offences", "fraud"),
        ("measures", "bank_records"),
        ("legal_basis", "asean_mlat"),
        ("urgency", "normal"),
        ("requested_by", "2099-06-30"),
        ("languages", "en"),
    ]
    form = [(k, v) for k, v in form if k not in fields] + [(k, str(v)) for k, v in fields.items()]
    resp = await client.post("/ui/cases/new", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    found = re.fullmatch(r"/ui/cases/([0-9A-Z]+)\?done=created", resp.headers["Location"])
    assert found, resp.headers["Location"]
    return found.group(1)


async def test_security_headers_on_every_response(client: Client, officer: str) -> None:
    responses = [
        await client.get("/ui/login"),
        await client.get("/ui/cases", allow_redirects=False),
        await client.get("/ui/static/app.css"),
        await client.get("/healthz"),
        await client.get("/api/v1/node"),  # refused: no token
        await client.get("/nowhere"),
    ]
    assert [r.status for r in responses] == [200, 303, 200, 200, 401, 404]
    for resp in responses:
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (resp.url, name)
    assert "frame-ancestors 'none'" in responses[0].headers["Content-Security-Policy"]
    html = await responses[0].text()
    assert "<script" not in html and "style=" not in html and "<style" not in html


async def test_pages_need_a_session(client: Client, officer: str) -> None:
    for path in ("/ui/", "/ui/cases?status=sent", "/ui/cases/new", "/ui/users"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/ui/login"), path
    resp = await client.get("/ui/cases?status=sent", allow_redirects=False)
    assert URL(resp.headers["Location"]).query["next"] == "/ui/cases?status=sent"
    resp = await client.get("/ui", allow_redirects=False)
    assert resp.status == 303


async def test_login_brings_the_officer_back(client: Client, officer: str) -> None:
    resp = await login(client, next="/ui/cases?status=sent")
    assert resp.status == 303
    assert resp.headers["Location"] == "/ui/cases?status=sent"
    cookie = resp.cookies["sj_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    page = await client.get("/ui/")
    html = await page.text()
    assert page.status == 200
    assert "Signed in as somchai" in html and "Needs action" in html and "Viet Nam" in html
    assert 'href="/ui/users"' not in html  # officers do not see the administration menu


async def test_login_refuses_and_locks_out(client: Client, officer: str) -> None:
    resp = await login(client, password="not the password at all")
    assert resp.status == 401
    assert "Wrong user name or password." in await resp.text()
    assert "sj_session" not in resp.cookies
    resp = await login(client, username="nobody", password="not the password at all")
    assert resp.status == 401
    assert "Wrong user name or password." in await resp.text()
    statuses = [(await login(client, password=f"wrong password {i}")).status for i in range(4)]
    assert statuses[-1] == 429
    resp = await login(client)  # the right password does not help while locked
    assert resp.status == 429
    assert "try again in" in await resp.text()
    assert int(resp.headers["Retry-After"]) > 0
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_forms_without_the_right_token_change_nothing(client: Client, node: Node, officer: str) -> None:
    page = await client.get("/ui/login")
    resp = await client.post("/ui/login", data={"username": "somchai", "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 403
    assert "This form has expired; reload the page and try again" in await resp.text()
    assert csrf_of(await page.text())
    assert (await login(client)).status == 303
    case_id = await new_case(client, node)
    before = node.cases.get(case_id)["history"]
    for form in ({"text": "no token"}, {"text": "wrong token", "csrf": "x" * 43}):
        resp = await client.post(f"/ui/cases/{case_id}/notes", data=form)
        assert resp.status == 403
        assert "This form has expired; reload the page and try again" in await resp.text()
    resp = await client.post(f"/ui/cases/{case_id}/transition", data={"to": "sent", "csrf": ""})
    assert resp.status == 403
    upload = FormData()
    upload.add_field("file", b"%PDF-1.4 x", filename="x.pdf", content_type="application/pdf")
    resp = await client.post(f"/ui/cases/{case_id}/attachments", data=upload)
    assert resp.status == 403
    case = node.cases.get(case_id)
    assert case["history"] == before and case["status"] == "draft" and not case["attachments"]


async def test_a_request_made_with_the_form_is_listed_and_shown(client: Client, node: Node, officer: str) -> None:
    await login(client)
    case_id = await new_case(client, node)
    case = node.cases.get(case_id)
    assert case["created_by"] == "user:somchai"
    assert case["offences"] == ["money_laundering", "fraud"] and case["requested_by"] == "2099-06-30"
    listing = await (await client.get("/ui/cases")).text()
    assert f'href="/ui/cases/{case_id}"' in listing and "Viet Nam" in listing
    filtered = await (await client.get("/ui/cases?status=sent")).text()
    assert case_id not in filtered
    found = await (await client.get("/ui/cases?q=Zephyrine")).text()
    assert case_id in found
    page = await client.get(f"/ui/cases/{case_id}?done=created")
    html = await page.text()
    assert page.status == 200
    assert "The request was saved as a draft" in html
    assert unescape(SUMMARY) in unescape(html) and "OAG-2026-117" in html
    assert "Money laundering" in html and "Bank records" in html
    assert 'value="sent"' in html and 'value="withdrawn"' in html  # the two moves open to the requesting side
    assert "Check before sending" in html


async def test_the_form_shows_what_is_wrong_and_keeps_the_input(client: Client, node: Node, officer: str) -> None:
    await login(client)
    form = {
        "csrf": await token(client, "/ui/cases/new"),
        "counterpart": "",
        "kind": "mla",
        "reference": "REF-77",
        "summary": "kept text",
        "requested_by": "31/12/2099",
        "offences": "fraud",
    }
    resp = await client.post("/ui/cases/new", data=form)
    html = await resp.text()
    assert resp.status == 422
    assert "The request was not saved." in html
    assert 'id="counterpart-error"' in html and 'id="requested_by-error"' in html
    assert "must be a date like 2026-12-31" in html
    assert 'value="REF-77"' in html and "kept text" in html and 'value="31/12/2099"' in html
    assert re.search(r'value="fraud" checked', html)
    assert node.cases.index.counts() == {}


async def test_status_buttons_and_a_refused_move(client: Client, node: Node, officer: str) -> None:
    await login(client)
    case_id = await new_case(client, node)
    csrf = await token(client, f"/ui/cases/{case_id}")
    resp = await client.post(
        f"/ui/cases/{case_id}/transition", data={"csrf": csrf, "to": "sent"}, allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    assert node.cases.get(case_id)["status"] == "sent"
    page = await (await client.get(resp.headers["Location"])).text()
    assert "The status of the case was changed." in page and "Withdraw the request" in page
    assert 'value="acknowledged"' not in page  # only Viet Nam acknowledges
    resp = await client.post(f"/ui/cases/{case_id}/transition", data={"csrf": csrf, "to": "acknowledged"})
    html = await resp.text()
    assert resp.status == 409
    assert "That change was not made." in html
    assert "only the requested authority can acknowledge a request" in html
    assert node.cases.get(case_id)["status"] == "sent"


async def test_user_text_is_escaped(client: Client, node: Node, officer: str) -> None:
    await login(client)
    case_id = await new_case(client, node, reference=XSS[1], summary=XSS[0])
    csrf = await token(client, f"/ui/cases/{case_id}")
    for payload in XSS:
        resp = await client.post(f"/ui/cases/{case_id}/notes", data={"csrf": csrf, "text": payload})
        assert resp.status == 200 and resp.url.path == f"/ui/cases/{case_id}"
    pages = [await (await client.get(path)).text() for path in (f"/ui/cases/{case_id}", "/ui/cases", "/ui/")]
    for html in pages:
        for payload in XSS:
            assert payload not in html
        assert "<img src=x" not in html and "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages[0]
    notes = [e["text"] for e in node.cases.get(case_id)["notes"]]
    assert notes == XSS


async def test_attach_and_download_a_file(client: Client, node: Node, officer: str) -> None:
    await login(client)
    case_id = await new_case(client, node)
    data = b"%PDF-1.4 statement of account QUOKKA-99187\n" + bytes(range(256)) * 8
    upload = FormData()
    upload.add_field("csrf", await token(client, f"/ui/cases/{case_id}"))
    upload.add_field("language", "en")
    upload.add_field("translation", "not_needed")
    upload.add_field("file", data, filename="statement.pdf", content_type="application/pdf")
    resp = await client.post(f"/ui/cases/{case_id}/attachments", data=upload, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    attachment = node.cases.get(case_id)["attachments"][0]
    html = await (await client.get(f"/ui/cases/{case_id}")).text()
    link = f"/ui/cases/{case_id}/attachments/{attachment['id']}"
    assert link in html and "statement.pdf" in html
    got = await client.get(link)
    assert got.status == 200 and await got.read() == data
    assert got.headers["Content-Disposition"].startswith('attachment; filename="statement.pdf"')
    assert got.headers["Content-Security-Policy"]


async def test_logout_ends_the_session(client: Client, officer: str) -> None:
    resp = await login(client)
    session_id = resp.cookies["sj_session"].value
    resp = await client.post("/ui/logout", data={"csrf": await token(client)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/ui/login")
    assert (await client.get("/ui/", allow_redirects=False)).status == 303
    client.session.cookie_jar.update_cookies({"sj_session": session_id})  # the old cookie is worthless now
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_administration_is_for_admins(client: Client, node: Node, officer: str) -> None:
    await login(client)
    resp = await client.get("/ui/users")
    assert resp.status == 403
    assert "for administrators" in await resp.text()
    await client.post("/ui/logout", data={"csrf": await token(client)})
    await login(client, username="admin")
    html = await (await client.get("/ui/users")).text()
    assert "somchai" in html and 'href="/ui/users"' in html
    form = {"csrf": csrf_of(html), "username": "nguyen", "password": PASSWORD, "role": "officer"}
    resp = await client.post("/ui/users", data=form, allow_redirects=False)
    assert resp.status == 303
    assert node.accounts.get("nguyen") is not None


async def test_language_cookie_sets_the_page_language(client: Client, officer: str) -> None:
    html = await (await client.get("/ui/login")).text()
    assert '<html lang="en">' in html
    form = {"csrf": csrf_of(html), "lang": "th", "next": "/ui/login"}
    resp = await client.post("/ui/language", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/login"
    assert resp.cookies["sj_lang"].value == "th"
    html = await (await client.get("/ui/login")).text()
    assert '<html lang="th">' in html
    await login(client)
    assert '<span class="brand-country">ไทย</span>' in await (await client.get("/ui/")).text()  # Thailand, in Thai


async def test_first_admin_with_the_setup_code(client: Client, node: Node) -> None:
    resp = await client.get("/ui/login", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/setup"
    code = node.accounts.setup_code()
    assert code
    csrf = await token(client, "/ui/setup")
    form = {"csrf": csrf, "code": "WRONG-CODE", "username": "admin", "password": PASSWORD, "password_again": PASSWORD}
    resp = await client.post("/ui/setup", data=form)
    assert resp.status == 422 and "setup code is wrong" in await resp.text()
    resp = await client.post("/ui/setup", data={**form, "code": code}, allow_redirects=False)
    assert resp.status == 303
    assert "Signed in as admin" in await (await client.get("/ui/")).text()
    assert (await client.get("/ui/setup", allow_redirects=False)).status == 303


def test_a_compiled_catalog_translates_the_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(locale="th")
    catalog.add("Sign in", "เข้าสู่ระบบ")
    catalog.add("Signed in as %(name)s", "เข้าสู่ระบบเป็น %(name)s")
    (tmp_path / "th" / "LC_MESSAGES").mkdir(parents=True)
    with open(tmp_path / "th" / "LC_MESSAGES" / "messages.mo", "wb") as mo:
        write_mo(mo, catalog)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        env = jinja2.Environment(autoescape=True)
        i18n.install(env)
        template = env.from_string(
            '{{ _("Sign in") }}|{{ _("Signed in as %(name)s", name=who) }}|{{ "2026-03-12"|day }}'
        )
        assert template.render(lang="th", who="<b>") == "เข้าสู่ระบบ|เข้าสู่ระบบเป็น &lt;b&gt;|12 มี.ค. 2026"
        assert template.render(lang="en", who="<b>") == "Sign in|Signed in as &lt;b&gt;|Mar 12, 2026"
    finally:
        i18n.translations.cache_clear()


async def test_every_free_text_field_of_a_case_renders_inert(client: Client, node: Node, officer: str) -> None:
    """Payloads in every field an officer or the counterpart can fill in reach the pages only as text."""
    await login(client)
    payload = XSS[1]
    case = node.cases.create(
        {
            "kind": "mla",
            "counterpart": next(p.node_id for p in node.peers.all()),
            "reference": payload[:100],
            "summary": XSS[0] + "\n" + payload,
            "treaty": payload,
            "urgency": "urgent",
            "urgency_reason": payload,
            "offences": ["fraud"],
            "measures": ["bank_records"],
            "legal_basis": ["bilateral_treaty"],
            "languages": ["en"],
        },
        actor="tests",
    )
    node.cases.add_note(case["id"], {"text": payload}, actor=payload)
    node.cases.add_attachment(
        case["id"],
        name=payload.replace('"', "") + ".pdf",
        media_type="application/pdf",
        data=b"%PDF",
        meta={},
        actor="t",
    )
    node.cases.transition(case["id"], {"to": "withdrawn", "reason": payload}, actor="tests")
    node.directory.create({"name": payload, "title": payload, "authority": payload}, actor="tests")
    for path in (f"/ui/cases/{case['id']}", "/ui/cases", "/ui/", "/ui/directory", f"/ui/cases?q={payload}"):
        html = await (await client.get(path)).text()
        assert "<img src=x" not in html and "<script>alert" not in html, path
