"""The web UI in Thai and Vietnamese: the pages an officer uses every day speak the chosen language, every
string of those pages has a translation, and the compiled catalogs the node loads match their sources.

The expected words are read from the `.po` files (the source of the translations) and the pages are
rendered from the `.mo` files (what the node loads), so a page that shows the translation proves both
that the string is wrapped and that the compiled catalog is current.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from html import unescape
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from babel.dates import format_date
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from nodeproc import PASSPHRASE, NodeProc, card_of, init_node

from node.accounts import Accounts
from node.app import create_app
from node.runtime import Node, open_node
from ui import i18n
from ui.labels import VOCABULARIES
from ui.render import DONE, NAVIGATION
from ui.web import setup_ui

Client = TestClient[web.Request, web.Application]

PASSWORD = "a long enough passphrase"
LANGS = ("th", "vi")
TEMPLATES = Path(i18n.__file__).parent / "templates"
# The layout and the pages an officer sees every day: every string they show must be translated.
DAILY_TEMPLATES = (
    "base.html",
    "_macros.html",
    "_peer_table.html",
    "dashboard.html",
    "cases.html",
    "case.html",
    "login.html",
    "error.html",
)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def po_path(lang: str) -> Path:
    return i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


def catalog_of(lang: str) -> Catalog:
    with open(po_path(lang), "rb") as po:
        return read_po(po, locale=lang)


def translated(catalog: Catalog, msgid: str) -> str:
    message = catalog.get(msgid)
    assert message is not None and not message.fuzzy, f"{catalog.locale}: {msgid!r} is not translated"
    string = message.string[0] if isinstance(message.string, tuple) else message.string
    assert string, f"{catalog.locale}: {msgid!r} has an empty translation"
    return str(string)


def template_msgids(name: str) -> set[str]:
    """The singular msgids a template passes to `_`/`gettext`/`ngettext`, as `pybabel extract` finds them."""
    found: set[str] = set()
    for _lineno, message, _comments, _context in extract_from_file(
        "jinja2", str(TEMPLATES / name), options={"extensions": "jinja2.ext.i18n"}
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def text_of(fragment: str) -> str:
    return _SPACE.sub(" ", unescape(_TAGS.sub(" ", fragment))).strip()


def region(html: str, pattern: str) -> str:
    found = re.search(pattern, html, re.S)
    assert found, f"no {pattern!r} in the page"
    return found.group(0)


@pytest.fixture
def vn(tmp_path: Path) -> NodeProc:
    return init_node(tmp_path / "vn", "Viet Nam", "VN")


@pytest.fixture
async def node(tmp_path: Path, vn: NodeProc) -> AsyncIterator[Node]:
    opened = open_node(init_node(tmp_path, "Thailand", "TH").home, PASSPHRASE)  # the app closes it
    opened.peers.add_card(card_of(vn), actor="tests")
    opened.accounts = Accounts(opened.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    opened.accounts.add("somchai", PASSWORD, "officer", actor="tests")
    yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: Any) -> Client:
    app = create_app(node)
    if aiohttp_jinja2.APP_KEY not in app:  # until node.app.create_app calls setup_ui itself
        setup_ui(app)
    browser: Client = await aiohttp_client(app)
    return browser


async def sign_in(client: Client, lang: str) -> None:
    client.session.cookie_jar.update_cookies({i18n.LANG_COOKIE: lang})
    page = await (await client.get("/ui/login")).text()
    assert f'<html lang="{lang}">' in page
    found = _CSRF.search(page)
    assert found
    form = {"csrf": found.group(1), "username": "somchai", "password": PASSWORD}
    resp = await client.post("/ui/login", data=form, allow_redirects=False)
    assert resp.status == 303


def make_case(node: Node) -> str:
    body = {
        "counterpart": node.peers.all()[0].node_id,
        "kind": "mla",
        "reference": "OAG-2026-117",
        "summary": "Laundering through Zephyrine Holdings",
        "offences": ["money_laundering", "fraud"],
        "measures": ["bank_records"],
        "legal_basis": ["asean_mlat"],
        "urgency": "urgent",
        "urgency_reason": "the accounts may be emptied",
        "requested_by": "2099-06-30",
        "languages": ["en"],
    }
    return str(node.cases.create(body, actor="user:somchai")["id"])


def assert_layout_in(html: str, catalog: Catalog, lang: str) -> None:
    """The header, menu and footer are in `lang`, with no English source string left in them."""
    assert f'<html lang="{lang}">' in html
    nav = region(html, r'<nav class="main-nav".*?</nav>')
    shown = [text_of(link) for link in re.findall(r"<a [^>]*>.*?</a>", nav, re.S)]
    expected = [translated(catalog, text) for _path, text, admin in NAVIGATION if not admin]
    assert shown == expected
    chrome = region(html, r"<header.*?</header>") + region(html, r"<footer.*?</footer>")
    chrome_text = text_of(chrome)
    for msgid in template_msgids("base.html") | {text for _path, text, _admin in NAVIGATION}:
        english = msgid.split("%(")[0].strip()
        assert english not in chrome_text and english not in unescape(chrome), f"{lang}: {msgid!r} left in English"
    assert translated(catalog, "Sign out") in chrome_text
    assert translated(catalog, "Signed in as %(name)s") % {"name": "somchai"} in chrome_text
    footer = (
        "SEAJust Node: cooperation between central authorities in criminal matters. "
        "Cases are shared only with the authorities they concern."
    )
    assert translated(catalog, footer) in chrome_text


def headings(html: str) -> list[str]:
    return [text_of(h) for h in re.findall(r"<h[1-3][^>]*>.*?</h[1-3]>", html, re.S)]


@pytest.mark.parametrize(
    ("lang", "dashboard", "kind"),
    [
        ("th", "ภาพรวม", "ความช่วยเหลือซึ่งกันและกันในเรื่องทางอาญา"),
        ("vi", "Tổng quan", "Tương trợ tư pháp về hình sự"),
    ],
    ids=LANGS,
)
async def test_dashboard_and_case_page_in_the_chosen_language(
    client: Client, node: Node, lang: str, dashboard: str, kind: str
) -> None:
    catalog = catalog_of(lang)
    case_id = make_case(node)
    await sign_in(client, lang)

    resp = await client.get("/ui/")
    assert resp.status == 200
    html = await resp.text()
    assert_layout_in(html, catalog, lang)
    titles = headings(html)
    assert titles[0] == translated(catalog, "Dashboard") == dashboard
    for heading in ("Recent cases", "Other authorities"):
        assert translated(catalog, heading) in titles
    text = text_of(html)
    for english in ("Dashboard", "Recent cases", "Other authorities", "Requested by", "Mutual legal assistance"):
        assert english not in text, f"{lang}: {english!r} left in English on the dashboard"
    assert kind in text  # the case's kind, through the `label` filter
    assert translated(catalog, "Draft (not sent yet)") in text

    resp = await client.get(f"/ui/cases/{case_id}")
    assert resp.status == 200
    html = await resp.text()
    assert_layout_in(html, catalog, lang)
    titles = headings(html)
    assert titles[0].startswith(translated(catalog, "Case %(id)s") % {"id": case_id})
    for heading in ("What you can do now", "The request", "History", "Dates", "Files", "Add a note"):
        assert translated(catalog, heading) in titles, f"{lang}: heading {heading!r}"
        assert heading not in titles
    text = text_of(html)
    for label in (
        "Draft (not sent yet)",
        "Mutual legal assistance",
        "Money laundering",
        "Fraud",
        "Bank records",
        "ASEAN Treaty on Mutual Legal Assistance in Criminal Matters (2004)",
        "We are the requesting authority",
        "Send the request",
        "Requesting authority",
        "Requested authority",
        "Offences",
        "Measures sought",
        "Legal basis",
        "Summary of the facts",
    ):
        assert translated(catalog, label) in text, f"{lang}: {label!r}"
        assert label not in text, f"{lang}: {label!r} left in English"
    assert kind in text

    # Dates follow the locale: the requested-by date as Babel writes it in this language, not in English.
    due = format_date(date(2099, 6, 30), format="medium", locale=lang)
    assert due in text and due != format_date(date(2099, 6, 30), format="medium", locale="en")
    assert "Jun 30, 2099" not in text and "2099-06-30" not in text


async def test_login_page_in_the_chosen_language(client: Client) -> None:
    for lang in LANGS:
        catalog = catalog_of(lang)
        client.session.cookie_jar.update_cookies({i18n.LANG_COOKIE: lang})
        html = await (await client.get("/ui/login")).text()
        assert f'<html lang="{lang}">' in html
        text = text_of(region(html, r"<main.*?</main>"))
        for msgid in template_msgids("login.html"):
            assert translated(catalog, msgid) in text or msgid.startswith("Wrong")
            assert msgid not in text


@pytest.mark.parametrize("lang", LANGS)
def test_every_string_of_the_daily_pages_is_translated(lang: str) -> None:
    catalog = catalog_of(lang)
    assert catalog.num_plurals == 1  # Thai and Vietnamese: one form whatever the number
    wanted: set[str] = set()
    for name in DAILY_TEMPLATES:
        wanted |= template_msgids(name)
    wanted |= {text for _path, text, _admin in NAVIGATION}
    wanted |= set(DONE.values())
    for words in VOCABULARIES.values():  # statuses, steps, reasons, kinds, offences, measures, legal bases…
        wanted |= set(words.values())
    missing = []
    for msgid in sorted(wanted):
        message = catalog.get(msgid)
        string = message.string if message is not None else ""
        if isinstance(string, tuple):
            string = string[0]
        if message is None or message.fuzzy or not string:
            missing.append(msgid)
    assert not missing, f"{lang}: {len(missing)} strings without a translation: {missing}"


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_their_placeholders(lang: str) -> None:
    catalog = catalog_of(lang)
    problems = [f"{message.id!r}: {errors}" for message, errors in catalog.check()]
    assert not problems
    for message in catalog:
        if not message.id or not message.string:
            continue
        source = message.id if isinstance(message.id, tuple) else (message.id,)
        target = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)s", source[0]))
        for string in target:
            if string:
                assert set(re.findall(r"%\(\w+\)s", string)) == wanted, f"{lang}: {message.id!r}"


@pytest.mark.parametrize("lang", LANGS)
def test_compiled_catalogs_are_up_to_date(lang: str, tmp_path: Path) -> None:
    """A `.po` edited without `pybabel compile -d ui/locale` (or `python -m ui.locale.refresh`) fails here."""
    fresh = tmp_path / "messages.mo"
    with open(fresh, "wb") as out:
        write_mo(out, catalog_of(lang))
    committed = po_path(lang).with_suffix(".mo")
    assert committed.exists(), f"{committed} is missing: compile the catalogs"

    def messages(path: Path) -> dict[Any, Any]:
        with open(path, "rb") as mo:
            catalog = read_mo(mo)

        def key(value: Any) -> Any:
            return tuple(value) if isinstance(value, list | tuple) else value

        return {key(message.id): key(message.string) for message in catalog if message.id}

    assert messages(committed) == messages(fresh), f"{committed} is older than its .po: compile the catalogs"
    # And the node reads the committed file as gettext does.
    loaded = Translations(BytesIO(committed.read_bytes()))
    sample = next(m for m in catalog_of(lang) if m.id and isinstance(m.id, str) and m.string and not m.fuzzy)
    assert loaded.gettext(sample.id) == sample.string


@pytest.mark.parametrize(("lang", "shown"), [("en", "12,345"), ("vi", "12.345"), ("th", "12,345")])
def test_counts_follow_the_language(lang: str, shown: str) -> None:
    from jinja2 import Environment

    from ui import i18n

    env = Environment(autoescape=True)
    i18n.install(env)
    assert env.from_string("{{ n|number }}").render(n=12345, lang=lang) == shown
