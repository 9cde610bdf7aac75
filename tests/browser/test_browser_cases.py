"""An officer's day in a real browser: two authorities and the secretariat as real node processes on loopback."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from nodeproc import NodeProc, introduce, wait_until
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.processes

PASSWORD = "browser-test-password"
THAI_DASHBOARD = "ภาพรวม"  # "Dashboard" in the Thai catalog
SUMMARY = "Proceeds of an online investment fraud moved through accounts in Ha Noi"


def add_user(node: NodeProc, username: str, role: str = "officer") -> None:
    from node.cli import main as cli_main

    os.environ["SEAJUST_USER_PASSWORD"] = PASSWORD
    try:
        assert cli_main(["user", "add", str(node.home), username, "--role", role]) == 0
    finally:
        del os.environ["SEAJUST_USER_PASSWORD"]


def log_in(browser: Browser, node: NodeProc, username: str = "officer") -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{node.url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page


def test_a_request_goes_from_one_authority_to_the_other_in_the_browser(
    make_node, browser: Browser, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    th, vn = make_node("Thailand", "TH"), make_node("Viet Nam", "VN")
    sec = make_node("UNODC", "TH", "secretariat")
    for a, b in ((th, vn), (th, sec), (vn, sec)):
        introduce(a, b)
    for node in (th, vn, sec):
        add_user(node, "officer")
        node.start()

    thai = log_in(browser, th)
    thai.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    thai.goto(f"{th.url}/ui/cases/new")
    thai.check(f"#counterpart-{vn.node_id}")
    thai.check("#kind-mla")
    thai.get_by_role("button", name="Next: The facts").click()
    thai.fill("#reference", "OAG-2026-0117")
    thai.fill("#summary", SUMMARY)
    thai.check("#offences-fraud")
    thai.get_by_role("button", name="Next: Assistance requested").click()
    thai.check("#measures-bank_records")
    thai.get_by_role("button", name="Next: Legal basis and languages").click()
    thai.check("#legal_basis-asean_mlat")
    thai.check("#languages-en")
    thai.get_by_role("button", name="Next: Urgency and date").click()
    thai.get_by_role("button", name="Next: Review and save").click()
    thai.screenshot(path=str(screenshots / "new-request.png"), full_page=True)
    thai.get_by_role("button", name="Save as draft").click()
    expect(thai.locator("h1")).to_contain_text("Case")
    found = re.search(r"/ui/cases/([0-9A-Z]+)", thai.url)
    assert found, thai.url
    case_id = found.group(1)
    case_url = f"{th.url}/ui/cases/{case_id}"
    thai.click("button:has-text('Send the request')")
    expect(thai.locator("h1 .status")).to_have_text(re.compile("sent", re.IGNORECASE))
    thai.screenshot(path=str(screenshots / "case-sent.png"), full_page=True)

    viet = log_in(browser, vn)

    def on_dashboard() -> bool:
        viet.reload()
        return case_id in viet.content()

    wait_until(on_dashboard, timeout=20, what="the request on Viet Nam's dashboard")
    expect(viet.locator(f"a[href$='/ui/cases/{case_id}']").first).to_be_visible()
    viet.screenshot(path=str(screenshots / "dashboard-needs-action.png"), full_page=True)
    viet.click(f"a[href$='/ui/cases/{case_id}']")
    expect(viet.get_by_text(SUMMARY)).to_be_visible()
    viet.click("button:has-text('Acknowledge receipt')")
    expect(viet.locator("h1 .status")).to_have_text(re.compile("acknowledged", re.IGNORECASE))

    def acknowledged_on_thai_side() -> bool:
        thai.goto(case_url)
        return "acknowledged" in (thai.locator("h1 .status").text_content() or "").lower()

    wait_until(acknowledged_on_thai_side, timeout=20, what="the acknowledgement to reach Thailand")
    thai.screenshot(path=str(screenshots / "case-acknowledged.png"), full_page=True)

    # A contact point added on Thailand reaches Viet Nam's directory.
    thai.goto(f"{th.url}/ui/directory/new")
    thai.fill("#name", "Somchai Rattanakul")
    thai.fill("#email", "somchai@oag.example")
    thai.get_by_role("button", name="Add the contact point").click()
    expect(thai.get_by_role("cell", name="Somchai Rattanakul", exact=True)).to_be_visible()

    def in_viet_directory() -> bool:
        viet.goto(f"{vn.url}/ui/directory")
        return "Somchai Rattanakul" in viet.content()

    wait_until(in_viet_directory, timeout=20, what="the contact point in Viet Nam's directory")
    thai.screenshot(path=str(screenshots / "directory.png"), full_page=True)

    # The officer switches to Thai: the page, its menu and its language attribute follow.
    thai.select_option("#language-choice", value="th")
    thai.get_by_role("button", name="Change").click()
    expect(thai.locator("html")).to_have_attribute("lang", "th")
    expect(thai.get_by_role("link", name=THAI_DASHBOARD)).to_be_visible()
    thai.set_viewport_size({"width": 390, "height": 844})
    thai.goto(case_url)
    thai.screenshot(path=str(screenshots / "case-thai-phone.png"), full_page=True)

    unodc = log_in(browser, sec)
    unodc.goto(f"{sec.url}/ui/statistics")
    expect(unodc.get_by_role("heading", name=re.compile("Statistics"))).to_be_visible()
    assert SUMMARY not in unodc.content()
    unodc.screenshot(path=str(screenshots / "statistics.png"), full_page=True)
    for page in (thai, viet, unodc):
        page.close()
