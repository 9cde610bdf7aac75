"""The Network page in a real browser: the secretariat's admin founds the network, a member sees the roster,
and the secretariat revokes a node, which then leaves the member's directory and peers."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodeproc import introduce, wait_until
from playwright.sync_api import Browser, expect
from test_browser_cases import add_user, log_in

pytestmark = pytest.mark.processes


def test_found_the_network_and_revoke_a_node_in_the_browser(make_node, browser: Browser, screenshots: Path) -> None:  # type: ignore[no-untyped-def]
    sec = make_node("UNODC", "AT", "secretariat")
    th, ph = make_node("Thailand", "TH"), make_node("Philippines", "PH")
    for node in (th, ph):
        introduce(sec, node)
    for node in (sec, th, ph):
        add_user(node, "admin", role="admin")
        node.start()

    unodc = log_in(browser, sec, "admin")
    unodc.get_by_role("link", name="Network").click()
    expect(unodc.get_by_role("heading", name="No roster yet")).to_be_visible()
    unodc.fill("#network-name", "SEAJust")
    unodc.get_by_role("button", name="Found the network").click()
    expect(unodc.get_by_role("status").or_(unodc.locator(".flash, .notice")).first).to_contain_text("founded")
    expect(unodc.locator("h1")).to_have_text("SEAJust")
    unodc.screenshot(path=str(screenshots / "network.png"), full_page=True)

    thai = log_in(browser, th, "admin")
    wait_until(lambda: len(th.api("GET", "/api/v1/roster")["members"]) == 3, what="the roster at Thailand")
    thai.goto(f"{th.url}/ui/roster")
    expect(thai.locator("table")).to_contain_text("Philippines")
    expect(thai.locator("details.revoke")).to_have_count(1)  # only its own row: it is not a secretariat

    unodc.goto(f"{sec.url}/ui/roster")
    row = unodc.locator("tr", has_text="Philippines")
    row.locator("summary").click()
    row.locator("select").select_option("compromised")
    row.get_by_role("button", name="Revoke this node").click()
    expect(unodc.locator("main")).to_contain_text("The node was revoked.")
    expect(unodc.locator("main")).to_contain_text("Keys lost or stolen")
    wait_until(lambda: ph.node_id not in {p["node_id"] for p in th.api("GET", "/api/v1/peers")}, what="revocation")
    thai.goto(f"{th.url}/ui/roster")
    expect(thai.locator("section[aria-labelledby='revoked-heading']")).to_contain_text("Keys lost or stolen")
    thai.goto(f"{th.url}/ui/peers")
    expect(thai.locator("main")).not_to_contain_text("Philippines")
