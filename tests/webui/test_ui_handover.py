"""Officer handover in the web UI: the responsible officer on the case page, "my cases", and the admin's
hand-over form on an account's page (with its form token, and only for admins)."""

from __future__ import annotations

from html import unescape

from test_ui_pages import (  # noqa: F401  (fixtures)
    PASSWORD,
    Client,
    client,
    csrf_of,
    login,
    new_case,
    node,
    officer,
    token,
    vn,
)

from node.officers import officers_of
from node.runtime import Node


def officer_of(held: Node, case_id: str) -> str | None:
    found = officers_of(held).of_case(case_id)
    return None if found is None else str(found["username"])


async def test_the_case_page_shows_and_reassigns_the_officer(client: Client, node: Node, officer: str) -> None:  # noqa: F811
    node.accounts.add("malee", PASSWORD, "officer", actor="tests")
    node.accounts.set_details("somchai", full_name="Somchai Prasert", email="", actor="tests")
    await login(client)
    case_id = await new_case(client, node)
    assert officer_of(node, case_id) == "somchai"  # who opened it answers for it
    html = unescape(await (await client.get(f"/ui/cases/{case_id}")).text())
    assert "Responsible officer" in html and "Somchai Prasert" in html

    mine = await (await client.get("/ui/cases?mine=1")).text()
    assert case_id in mine and 'id="mine"' in mine

    form = {"csrf": csrf_of(html), "username": "malee"}
    resp = await client.post(f"/ui/cases/{case_id}/officer", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("done=officer_assigned")
    assert officer_of(node, case_id) == "malee"
    assert case_id not in await (await client.get("/ui/cases?mine=1")).text()
    # Now it is Malee's: Somchai, an officer, can no longer move it.
    resp = await client.post(f"/ui/cases/{case_id}/officer", data={"csrf": form["csrf"], "username": "somchai"})
    assert resp.status == 403
    assert officer_of(node, case_id) == "malee"


async def test_an_admin_hands_over_with_the_form(client: Client, node: Node, officer: str) -> None:  # noqa: F811
    node.accounts.add("malee", PASSWORD, "officer", actor="tests")
    await login(client)
    case_id = await new_case(client, node)
    await client.post("/ui/logout", data={"csrf": await token(client)})
    await login(client, username="admin")

    page = await client.get("/ui/users/malee")
    details = {"csrf": csrf_of(await page.text()), "full_name": "Malee Chaiyaporn", "email": "malee@oag.go.th"}
    resp = await client.post("/ui/users/malee/details", data=details, allow_redirects=False)
    assert resp.status == 303
    bad = await client.post("/ui/users/malee/details", data={**details, "email": "not an address"})
    assert bad.status == 422 and "e-mail address" in unescape(await bad.text())

    html = unescape(await (await client.get("/ui/users/somchai")).text())
    assert "1 open case" in html and "Hand over" in html and 'name="to"' in html
    form = {"csrf": csrf_of(html), "to": "malee", "disable": "1"}
    resp = await client.post("/ui/users/somchai/handover", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("done=handed_over")
    result = unescape(await (await client.get(resp.headers["Location"])).text())
    assert "The open cases and directory entries were handed over." in result and "0 open cases" in result
    assert officer_of(node, case_id) == "malee"
    somchai = node.accounts.get("somchai")
    assert somchai is not None and somchai.disabled
    notes = node.cases.get(case_id)["notes"]
    assert [n["text"] for n in notes] == ["Responsibility for this case was handed over to Malee Chaiyaporn."]

    refused = await client.post("/ui/users/malee/handover", data={"csrf": form["csrf"], "to": "malee"})
    assert refused.status == 422 and "Nothing was handed over." in unescape(await refused.text())


async def test_the_handover_form_needs_its_token_and_an_admin(client: Client, node: Node, officer: str) -> None:  # noqa: F811
    await login(client)
    case_id = await new_case(client, node)
    # An officer cannot reach the form at all.
    resp = await client.post("/ui/users/somchai/handover", data={"csrf": await token(client), "to": "admin"})
    assert resp.status == 403
    await client.post("/ui/logout", data={"csrf": await token(client)})
    await login(client, username="admin")
    for form in ({"to": "admin"}, {"to": "admin", "csrf": "x" * 43}):
        resp = await client.post("/ui/users/somchai/handover", data=form)
        assert resp.status == 403
        assert "This form has expired" in await resp.text()
    assert officer_of(node, case_id) == "somchai"
    assert node.cases.get(case_id)["notes"] == []
