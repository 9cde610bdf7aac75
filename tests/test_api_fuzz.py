"""The HTTP API under schemathesis, driven by the OpenAPI document the node itself serves.

One real node process on loopback, holding a contact, a case shared with a trusted peer and a
note, is sent requests generated from its own `/api/v1/openapi.json`: valid ones and deliberately
invalid ones (wrong types, missing fields, bad headers), some aimed at the IDs it really holds.
For every request:

* the answer is never a 5xx, and the process is still running;
* the status code is one the document lists for that operation, with the documented content type and,
  where schemathesis can check it, a body matching the documented schema;
* a refused request (4xx) changes nothing: the database (every table, as `seajust dump` would write
  it) is the same before and after.

The normal suite sends a few examples per operation; `make soak` sends many more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodeproc import PASSPHRASE, NodeProc, init_node, introduce
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from crypto.keystore import load_keyfile
from node.config import NodeHome
from node.openapi import openapi_document
from node.runtime import open_node
from node.storage import Database

pytestmark = pytest.mark.processes

DOCUMENT_PATH = "/api/v1/openapi.json"  # schemathesis leaves out the operation that serves the document itself
OPERATIONS = [
    (path, method.upper())
    for path, item in openapi_document()["paths"].items()
    for method in item
    if method != "parameters" and path != DOCUMENT_PATH
]
EXAMPLES = 6  # per operation in the normal suite: the whole file stays well under a minute
SOAK_EXAMPLES = 300
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class FuzzedNode:
    proc: NodeProc
    db: Database  # the test's own connection to the node's database, to compare it before and after
    schema: OpenApiSchema
    known: dict[str, list[str]]  # path parameter -> IDs the node really holds
    http: requests.Session

    def snapshot(self) -> list[str]:
        return list(self.db.dump_sql())

    def alive(self) -> bool:
        return self.proc.proc is not None and self.proc.proc.poll() is None


def _seed(home: Path, counterpart: str) -> dict[str, list[str]]:
    """Give the node something to find: a contact, a case with an attachment, and this quarter's report settled."""
    node = open_node(home, PASSPHRASE)
    try:
        contact = node.directory.create({"name": "Somchai", "country": "TH"}, actor="tests")
        case = node.cases.create(
            {"kind": "mla", "counterpart": counterpart, "reference": "TH-FUZZ-1", "summary": "s", "languages": ["en"]},
            actor="tests",
        )
        attachment = node.cases.add_attachment(
            case["id"], name="a.pdf", media_type="application/pdf", data=b"%PDF-1", meta={}, actor="tests"
        )
        node.reporting.scheduled()  # the run due 10 s after start would otherwise change the database mid-test
        return {
            "contact_id": [contact["id"]],
            "case_id": [case["id"]],
            "attachment_id": [str(attachment["id"])],
            "country": ["TH", "VN"],
        }
    finally:
        node.close()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedNode]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)
        base = tmp_path_factory.mktemp("api-fuzz")
        th, vn = init_node(base, "Thailand", "TH"), init_node(base, "Viet Nam", "VN")
        introduce(th, vn)
        known = _seed(th.home, vn.node_id)
        th.start()
        home = NodeHome(th.home)
        db = Database(home.database, load_keyfile(home.keyfile, PASSPHRASE).db_key)
        http = requests.Session()
        try:
            schema = schemathesis.openapi.from_url(th.url + DOCUMENT_PATH)
            yield FuzzedNode(th, db, schema, {k: v for k, v in known.items() if v}, http)
        finally:
            http.close()
            th.stop()
            db.close()


def test_the_served_document_is_the_nodes_own(fuzzed: FuzzedNode) -> None:
    served = fuzzed.http.get(fuzzed.proc.url + DOCUMENT_PATH, timeout=10).json()
    assert served == openapi_document()
    found = [(op.path, op.method.upper()) for op in _operations(fuzzed.schema)]
    assert (sorted(set(OPERATIONS) - set(found)), sorted(set(found) - set(OPERATIONS))) == ([], [])


def test_the_snapshot_sees_what_a_request_changes(fuzzed: FuzzedNode) -> None:
    """So "refused and changed nothing" below is not true merely because the test cannot see a change."""
    before = fuzzed.snapshot()
    response = fuzzed.http.post(
        fuzzed.proc.url + "/api/v1/contacts",
        json={"name": "Niran", "country": "TH"},
        headers={"Authorization": f"Bearer {fuzzed.proc.token}"},
        timeout=10,
    )
    assert response.status_code == 201
    assert fuzzed.snapshot() != before


def _operations(schema: OpenApiSchema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _strategy(fuzzed: FuzzedNode, path: str, method: str) -> st.SearchStrategy[Any]:
    operation = fuzzed.schema[path][method]
    names = [p.name for p in operation.path_parameters]
    aimed = {name: fuzzed.known[name] for name in names if name in fuzzed.known}
    strategies = [operation.as_strategy(generation_mode=mode) for mode in MODES]
    if aimed:
        chosen = st.fixed_dictionaries({name: st.sampled_from(ids) for name, ids in aimed.items()})
        strategies += [
            chosen.flatmap(lambda ids, m=mode: operation.as_strategy(m, path_parameters=ids)) for mode in MODES
        ]
    return st.one_of(strategies)


def _check(fuzzed: FuzzedNode, case: Any, authenticated: bool) -> None:
    headers = {"Authorization": f"Bearer {fuzzed.proc.token}"} if authenticated else None
    before = fuzzed.snapshot()
    response = case.call(base_url=fuzzed.proc.url, session=fuzzed.http, headers=headers, timeout=30)
    request = case.as_curl_command(headers=headers)
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}\n{request}"
    assert fuzzed.alive(), f"the node stopped after\n{request}"
    case.validate_response(response, checks=CHECKS, headers=headers)
    if 400 <= response.status_code < 500:
        after = fuzzed.snapshot()
        changed = sorted(set(before) ^ set(after))[:5]
        assert after == before, f"refused with {response.status_code} but changed {changed}\n{request}"


def _run(fuzzed: FuzzedNode, path: str, method: str, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=_strategy(fuzzed, path, method), authenticated=st.integers(0, 9).map(bool))
    def fuzz(case: Any, authenticated: bool) -> None:
        _check(fuzzed, case, authenticated)

    fuzz()


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_generated_requests(fuzzed: FuzzedNode, path: str, method: str) -> None:
    _run(fuzzed, path, method, EXAMPLES)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_generated_requests_soak(fuzzed: FuzzedNode, path: str, method: str) -> None:
    _run(fuzzed, path, method, int(os.environ.get("SEAJUST_FUZZ_EXAMPLES", SOAK_EXAMPLES)))


# -- what the fuzzing found, kept as regression tests --------------------------------------------------------


def _post_form(fuzzed: FuzzedNode, body: bytes, content_type: str) -> requests.Response:
    case_id = fuzzed.known["case_id"][0]
    return fuzzed.http.post(
        f"{fuzzed.proc.url}/api/v1/cases/{case_id}/attachments",
        data=body,
        headers={"Authorization": f"Bearer {fuzzed.proc.token}", "Content-Type": content_type},
        timeout=10,
    )


def _form(*parts: tuple[bytes, bytes]) -> bytes:
    """A multipart body with boundary `b` from (part headers, part body) pairs, written byte for byte."""
    return b"".join(b"--b\r\n" + headers + b"\r\n\r\n" + body + b"\r\n" for headers, body in parts) + b"--b--\r\n"


FILE_PART = (b'Content-Disposition: form-data; name="file"; filename="a.pdf"\r\nContent-Type: application/pdf', b"%PDF")

MALFORMED_FORMS = {
    # a control character in a part header: aiohttp's parser raises InvalidHeader, which was a 500
    "control character in a part header": (_form((b'Content-Disposition: form-data; name="\x1f"', b"x")), "b"),
    "part header without a colon": (_form((b"Content-Disposition form-data", b"x"), FILE_PART), "b"),
    "unknown charset of a text field": (
        _form(
            FILE_PART,
            (b'Content-Disposition: form-data; name="language"\r\nContent-Type: text/plain; charset=x-nope', b"en"),
        ),
        "b",
    ),
    "no boundary": (_form(FILE_PART), ""),
}


@pytest.mark.parametrize("form", MALFORMED_FORMS.values(), ids=MALFORMED_FORMS.keys())
def test_a_malformed_upload_form_is_a_400_and_changes_nothing(fuzzed: FuzzedNode, form: tuple[bytes, str]) -> None:
    body, boundary = form
    before = fuzzed.snapshot()
    content_type = f"multipart/form-data; boundary={boundary}" if boundary else "multipart/form-data"
    response = _post_form(fuzzed, body, content_type)
    assert response.status_code == 400, response.text
    assert "multipart" in response.json()["error"]
    assert fuzzed.snapshot() == before


def test_a_well_formed_upload_form_still_attaches(fuzzed: FuzzedNode) -> None:
    response = _post_form(fuzzed, _form(FILE_PART), "multipart/form-data; boundary=b")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a.pdf"


def _poison(value: Any, how: str) -> Any:
    """The same JSON with every string (or number) replaced by one a JSON parser accepts but no document can hold:
    a lone surrogate (valid JSON `\\ud800`, not valid Unicode) or an integer beyond 64 bits."""
    if isinstance(value, dict):
        return {k: _poison(v, how) for k, v in value.items()}
    if isinstance(value, list):
        return [_poison(v, how) for v in value]
    if isinstance(value, str) and how == "surrogate":
        return value + "\ud800"
    if isinstance(value, int | float) and not isinstance(value, bool) and how == "huge":
        return 2**64 + 1
    if isinstance(value, str) and how == "huge":
        return 2**64 + 1
    return value


JSON_OPERATIONS = [(p, m) for p, m in OPERATIONS if "requestBody" in openapi_document()["paths"][p][m.lower()]]


@pytest.mark.parametrize(("path", "method"), JSON_OPERATIONS, ids=[f"{m} {p}" for p, m in JSON_OPERATIONS])
@pytest.mark.parametrize("how", ["surrogate", "huge"])
def test_json_no_document_can_hold_is_refused(fuzzed: FuzzedNode, path: str, method: str, how: str) -> None:
    operation = fuzzed.schema[path][method]
    names = [p.name for p in operation.path_parameters]
    ids = {name: fuzzed.known[name][0] for name in names if name in fuzzed.known}

    @settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(path_parameters=ids or None))
    def fuzz(case: Any) -> None:
        if not isinstance(case.body, dict | list) or case.media_type != "application/json":
            return
        before = fuzzed.snapshot()
        response = fuzzed.http.request(
            method,
            fuzzed.proc.url + case.formatted_path,
            data=json.dumps(_poison(case.body, how)).encode(),
            headers={"Authorization": f"Bearer {fuzzed.proc.token}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code < 500, f"{response.status_code} {response.text[:200]} {case.formatted_path}"
        assert fuzzed.alive()
        if response.status_code >= 400:
            assert fuzzed.snapshot() == before

    fuzz()


LONE_SURROGATE = b'"\\ud800"'  # valid JSON text for a string that is not valid Unicode

SURROGATE_BODIES = {
    "PUT /api/v1/cases/{case_id}/officer": b'{"username": ' + LONE_SURROGATE + b"}",
    "PUT /api/v1/contacts/{contact_id}/account": b'{"username": ' + LONE_SURROGATE + b"}",
    "PATCH /api/v1/cases/{case_id}": b'{"summary": ' + LONE_SURROGATE + b"}",
    "PUT /api/v1/profiles/{country}": b'{"authority": ' + LONE_SURROGATE + b"}",
    "POST /api/v1/stats/send": b'{"period": ' + LONE_SURROGATE + b"}",
    "POST /api/v1/contacts": b'{"name": "x", "country": "TH", ' + LONE_SURROGATE + b': "key"}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("body", SURROGATE_BODIES.values(), ids=SURROGATE_BODIES.keys())
def test_json_text_that_is_not_unicode_is_a_400_and_changes_nothing(fuzzed: FuzzedNode, body: bytes) -> None:
    """A lone surrogate escape is valid JSON but no document can hold it: pycrdt panicked (a BaseException
    that got past the error middleware) or the answer could not be encoded, both a 500."""
    label = next(k for k, v in SURROGATE_BODIES.items() if v == body)
    method, _, template = label.partition(" ") if label.startswith(("PUT", "PATCH", "POST")) else ("POST", "", "")
    path = template or "/api/v1/contacts"
    for name, ids in fuzzed.known.items():
        path = path.replace("{" + name + "}", ids[0])
    before = fuzzed.snapshot()
    response = fuzzed.http.request(
        method,
        fuzzed.proc.url + path,
        data=body,
        headers={"Authorization": f"Bearer {fuzzed.proc.token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert fuzzed.snapshot() == before


URL_TEXT_NOT_UNICODE = [
    "/api/v1/contacts/%ED%A0%80",
    "/api/v1/contacts/%FF",
    "/api/v1/contacts?q=%ED%A0%80",
    "/api/v1/cases?counterpart=%FF&q=%ED%A0%80",
    "/api/v1/profiles/%ED%A0%80",
    "/api/v1/notices/%FF",
    "/api/v1/cases/{case_id}/attachments/%ED%A0%80",
]


@pytest.mark.parametrize("path", URL_TEXT_NOT_UNICODE)
def test_url_text_that_is_not_unicode_is_never_a_500(fuzzed: FuzzedNode, path: str) -> None:
    path = path.replace("{case_id}", fuzzed.known["case_id"][0])
    response = fuzzed.http.get(
        fuzzed.proc.url + path, headers={"Authorization": f"Bearer {fuzzed.proc.token}"}, timeout=30
    )
    assert response.status_code < 500, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    response.json()


UPLOAD_NAMES = {
    "raw filename bytes": (b'filename="\xff\xfe.pdf"', "b"),
    "percent-encoded surrogate": (b"filename*=UTF-8''%ED%A0%80.pdf", "b"),
}


@pytest.mark.parametrize("disposition", [v[0] for v in UPLOAD_NAMES.values()], ids=UPLOAD_NAMES.keys())
def test_an_upload_name_that_is_not_unicode_is_never_a_500(fuzzed: FuzzedNode, disposition: bytes) -> None:
    part = (b'Content-Disposition: form-data; name="file"; ' + disposition + b"\r\nContent-Type: application/pdf", b"%")
    before = fuzzed.snapshot()
    response = _post_form(fuzzed, _form(part), "multipart/form-data; boundary=b")
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert fuzzed.snapshot() == before


def test_a_raw_upload_name_that_is_not_unicode_is_never_a_500(fuzzed: FuzzedNode) -> None:
    case_id = fuzzed.known["case_id"][0]
    response = fuzzed.http.post(
        f"{fuzzed.proc.url}/api/v1/cases/{case_id}/attachments?name=%ED%A0%80.pdf",
        data=b"%PDF",
        headers={"Authorization": f"Bearer {fuzzed.proc.token}", "Content-Type": "application/pdf"},
        timeout=10,
    )
    assert response.status_code < 500, response.text
