"""The printable formal request: generated from case JSON and read back with python-docx."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from docx import Document

from node.export import CONFIDENTIALITY_STATEMENT, DOCX_MEDIA_TYPE, TITLES, export_filename, request_document
from node.vocab import CASE_KINDS

GENERATED_AT = "2026-03-14T09:30:00Z"
THAI = "ผู้ต้องสงสัยโอนเงินผ่านบัญชีธนาคารกรุงเทพ"
KHMER = "ការស្នើសុំជំនួយផ្លូវច្បាប់"
VIETNAMESE = "Bộ Công an Việt Nam"
SHA_A = "a" * 63 + "1"
SHA_B = "0123456789abcdef" * 4


def full_case() -> dict[str, Any]:
    return {
        "id": "c-7f3a9e",
        "kind": "mla",
        "status": "sent",
        "reference": "TH-2026-0042",
        "references": {"requesting": "TH-2026-0042", "requested": "VN/BCA/2026/117"},
        "requesting": {"node_id": "n-th", "name": "Office of the Attorney General", "country": "TH"},
        "requested": {"node_id": "n-vn", "name": VIETNAMESE, "country": "VN"},
        "summary": f"Between January and March 2025 the suspects laundered proceeds.\n{THAI}\n\nSecond paragraph.",
        "offences": ["money_laundering", "fraud"],
        "measures": ["bank_records", "asset_freezing"],
        "legal_basis": ["asean_mlat", "bilateral_treaty"],
        "treaty": "Treaty between Thailand and Viet Nam on Mutual Legal Assistance (2013)",
        "urgency": "urgent",
        "urgency_reason": "Funds are about to be moved offshore",
        "requested_by": "2026-04-01",
        "languages": ["en", "th"],
        "translation": "certified",
        "provided": ["summary_of_facts", "account_details"],
        "created_at": "2026-03-01T08:00:00Z",
        "sent_at": "2026-03-10T08:00:00Z",
        "history": [
            {"type": "note", "text": "Informal: call Minh before sending", "at": "2026-03-02T08:00:00Z"},
            {"type": "transition", "from": "draft", "to": "sent", "at": "2026-03-10T08:00:00Z"},
        ],
        "attachments": [
            {
                "id": "a1",
                "name": "bank-statements.pdf",
                "media_type": "application/pdf",
                "size": 204800,
                "sha256": SHA_A,
                "language": "th",
                "translation": "certified",
            },
            {"id": "a2", "name": f"{KHMER}.docx", "sha256": SHA_B, "language": "km"},
        ],
    }


REQUESTING = {
    "authority": "Office of the Attorney General",
    "name": "Somchai Prasert",
    "title": "Director, International Affairs",
    "email": "ia@ago.example.th",
    "phone": "+66 2 000 0000",
    "country": "TH",
}


def all_text(data: bytes) -> str:
    """Every piece of text in the document: body, tables (nested too), headers and footers."""
    document = Document(io.BytesIO(data))
    parts = [element.text or "" for element in document.element.body.iter() if element.tag.endswith("}t")]
    for section in document.sections:
        for part in (section.header, section.footer):
            parts += [element.text or "" for element in part._element.iter() if element.tag.endswith("}t")]
    return "\n".join(parts)


def paragraph_texts(data: bytes) -> list[str]:
    return [paragraph.text for paragraph in Document(io.BytesIO(data)).paragraphs]


@pytest.fixture
def exported() -> bytes:
    return request_document(full_case(), requesting=REQUESTING, generated_at=GENERATED_AT)


def test_is_a_docx_that_python_docx_reopens(exported: bytes) -> None:
    assert exported.startswith(b"PK")
    assert DOCX_MEDIA_TYPE == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    document = Document(io.BytesIO(exported))
    assert document.core_properties.title == "Request for Mutual Legal Assistance in Criminal Matters"


def test_title_is_the_first_heading(exported: bytes) -> None:
    document = Document(io.BytesIO(exported))
    title = document.paragraphs[0]
    assert title.text == "Request for Mutual Legal Assistance in Criminal Matters"
    assert title.style is not None
    assert title.style.name == "Title"


def test_numbered_sections_in_order(exported: bytes) -> None:
    headings = [
        p.text for p in Document(io.BytesIO(exported)).paragraphs if p.style is not None and p.style.name == "Heading 1"
    ]
    numbered = [h for h in headings if re.match(r"\d+\. ", h)]
    assert [h.split(".")[0] for h in numbered] == [str(n) for n in range(1, 10)]
    assert numbered[7] == "8. Confidentiality"
    assert "Contact point" in headings


def test_table_has_both_references_authorities_and_dates(exported: bytes) -> None:
    table = Document(io.BytesIO(exported)).tables[0]
    rows = {row.cells[0].text: row.cells[1].text for row in table.rows}
    assert rows["Reference of the requesting authority"] == "TH-2026-0042"
    assert rows["Reference of the requested authority"] == "VN/BCA/2026/117"
    assert rows["Requesting authority"] == "Office of the Attorney General, Thailand"
    assert rows["Requested authority"] == f"{VIETNAMESE}, Viet Nam"
    assert rows["Date"] == "10 March 2026"
    assert rows["Execution requested by"] == "1 April 2026"
    assert "ASEAN Treaty on Mutual Legal Assistance in Criminal Matters (2004)" in rows["Legal basis"]
    assert "Bilateral treaty: Treaty between Thailand and Viet Nam" in rows["Legal basis"]


def test_summary_survives_with_thai_and_newlines(exported: bytes) -> None:
    paragraphs = paragraph_texts(exported)
    assert f"Between January and March 2025 the suspects laundered proceeds.\n{THAI}" in paragraphs
    assert "Second paragraph." in paragraphs


def test_labels_not_codes(exported: bytes) -> None:
    text = all_text(exported)
    for label in (
        "Money laundering",
        "Fraud",
        "Bank records",
        "Asset freezing or confiscation",
        "ASEAN Treaty on Mutual Legal Assistance in Criminal Matters (2004)",
        "Summary of the facts",
        "Account numbers, holders and period",
        "English, Thai",
        "Certified translation",
    ):
        assert label in text, label
    for code in ("money_laundering", "bank_records", "asean_mlat", "account_details"):
        assert code not in text, code


def test_urgent_banner_with_reason(exported: bytes) -> None:
    paragraphs = paragraph_texts(exported)
    assert paragraphs[1] == "URGENT"
    assert "Reason for urgency: Funds are about to be moved offshore" in paragraphs


def test_not_urgent_has_no_banner() -> None:
    case = full_case() | {"urgency": "normal"}
    text = all_text(request_document(case, generated_at=GENERATED_AT))
    assert "URGENT" not in text
    assert "Funds are about to be moved offshore" not in text


def test_each_annex_with_its_sha256(exported: bytes) -> None:
    text = all_text(exported)
    for name, digest in (("bank-statements.pdf", SHA_A), (f"{KHMER}.docx", SHA_B)):
        assert name in text
        assert digest in text
    annexes = Document(io.BytesIO(exported)).tables[1]
    assert SHA_A in annexes.rows[1].cells[1].text
    assert "bank-statements.pdf" in annexes.rows[1].cells[1].text
    assert SHA_B in annexes.rows[2].cells[1].text


def test_notes_are_never_printed(exported: bytes) -> None:
    assert "call Minh" not in all_text(exported)


def test_confidentiality_contact_signature_footer(exported: bytes) -> None:
    paragraphs = paragraph_texts(exported)
    text = all_text(exported)
    assert CONFIDENTIALITY_STATEMENT in paragraphs
    assert "E-mail: ia@ago.example.th" in paragraphs
    assert "Name: Somchai Prasert" in paragraphs
    assert "Title: Director, International Affairs" in paragraphs
    assert "Date: 10 March 2026" in paragraphs
    footer = Document(io.BytesIO(exported)).sections[0].footer.paragraphs[0].text
    assert "Case c-7f3a9e" in footer
    assert f"Generated by SEAJust Node on {GENERATED_AT}" in footer
    assert "TH-2026-0042" in Document(io.BytesIO(exported)).sections[0].header.paragraphs[0].text
    assert "PAGE" in Document(io.BytesIO(exported)).sections[0].footer._element.xml
    assert text.count(SHA_A) == 1


def test_minimal_case_exports() -> None:
    data = request_document({"id": "c-1", "kind": "extradition"}, generated_at=GENERATED_AT)
    paragraphs = paragraph_texts(data)
    assert paragraphs[0] == "Request for Extradition"
    assert "No annexes." in paragraphs
    assert "Case c-1" in Document(io.BytesIO(data)).sections[0].footer.paragraphs[0].text


@pytest.mark.parametrize(
    "case",
    [
        {},
        {"id": None, "kind": None, "references": None, "requesting": None, "attachments": None, "history": None},
        {"offences": "fraud", "measures": 7, "attachments": ["x", None, {"size": "big"}], "references": "oops"},
        {"summary": "nul\x00 and vertical tab\x0b and lone surrogate \ud800 here", "requested_by": "soon"},
        {"languages": [None, 3, {"a": 1}], "legal_basis": [["nested"]], "urgency": "urgent", "urgency_reason": None},
    ],
)
def test_hostile_or_empty_cases_export(case: dict[str, Any]) -> None:
    data = request_document(case, requesting={"authority": None}, requested="nonsense", generated_at="not a date")  # type: ignore[arg-type]
    assert Document(io.BytesIO(data)).paragraphs[0].text


def test_control_characters_are_replaced_not_fatal() -> None:
    data = request_document({"summary": "before\x00after"}, generated_at=GENERATED_AT)
    assert "before\ufffdafter" in paragraph_texts(data)


def test_unknown_codes_are_printed_as_is() -> None:
    case = {
        "id": "c-2",
        "kind": "joint_investigation_team",
        "offences": ["piracy_2030"],
        "measures": ["drone_survey"],
        "legal_basis": ["asean_extradition_treaty"],
        "provided": ["satellite_images"],
        "languages": ["tet", "xx"],
        "translation": "machine",
        "requesting": {"country": "ZZ"},
        "attachments": [{"name": "a.bin", "sha256": "abc", "language": "qq"}],
    }
    text = all_text(request_document(case, generated_at=GENERATED_AT))
    for code in (
        "joint_investigation_team",
        "piracy_2030",
        "drone_survey",
        "asean_extradition_treaty",
        "satellite_images",
        "Tetum, xx",
        "machine",
        "ZZ",
        "qq",
    ):
        assert code in text, code


@pytest.mark.parametrize("kind", sorted(CASE_KINDS))
def test_every_kind_has_a_title(kind: str) -> None:
    assert kind in TITLES
    assert paragraph_texts(request_document({"kind": kind}, generated_at=GENERATED_AT))[0] == TITLES[kind]


def test_consultation_says_it_is_not_a_formal_request() -> None:
    text = all_text(request_document({"kind": "consultation"}, generated_at=GENERATED_AT))
    assert "not itself a formal request" in text


def test_same_input_same_text() -> None:
    first = request_document(full_case(), requesting=REQUESTING, generated_at=GENERATED_AT)
    second = request_document(full_case(), requesting=REQUESTING, generated_at=GENERATED_AT)
    assert all_text(first) == all_text(second)


# --- file name ---------------------------------------------------------------------------------

SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+\.docx")


def test_filename_from_reference() -> None:
    assert export_filename({"id": "c-1", "kind": "mla", "reference": "TH-2026-0042"}) == "request-TH-2026-0042.docx"
    assert (
        export_filename({"kind": "extradition", "reference": "TH-2026-0042"}) == "extradition-request-TH-2026-0042.docx"
    )


def test_filename_falls_back_to_id_then_case() -> None:
    assert export_filename({"id": "c-7f3a9e", "kind": "mla"}) == "request-c-7f3a9e.docx"
    assert export_filename({"id": "c-7f3a9e", "reference": "ที่ สตช."}) == "request-c-7f3a9e.docx"
    assert export_filename({}) == "request-case.docx"
    assert export_filename({"id": None, "kind": None, "reference": None}) == "request-case.docx"


@pytest.mark.parametrize(
    "reference",
    [
        "../../etc/passwd",
        "..",
        "a/b\\c",
        "C:\\Windows\\system32",
        "TH/2026/0042\x00.exe",
        "Bộ Công an 2026/117",
        "ที่ อส 0001/2569",
        "ref\r\nContent-Type: text/html",
        '"; filename="evil.sh',
        "x" * 5000,
        "-" * 30,
        ".hidden",
    ],
)
def test_filename_is_safe_for_hostile_references(reference: str) -> None:
    name = export_filename({"id": "../c/1", "kind": "../mla", "reference": reference})
    assert SAFE_NAME.fullmatch(name), name
    assert name.isascii()
    assert ".." not in name
    assert len(name) <= 120
    assert name.startswith("request-")


def test_filename_keeps_what_it_can_of_unicode() -> None:
    assert export_filename({"reference": "Bộ Công an 2026/117"}) == "request-Bo-Cong-an-2026-117.docx"


def test_purpose_names_both_authorities(exported: bytes) -> None:
    purpose = paragraph_texts(exported)[paragraph_texts(exported).index("1. Purpose and legal basis") + 1]
    assert purpose.startswith("The requesting authority, Office of the Attorney General, Thailand,")
    assert f"the requested authority, {VIETNAMESE}, Viet Nam," in purpose
    assert "mutual legal assistance" in purpose


def test_a_draft_is_marked_as_such_in_the_header(exported: bytes) -> None:
    def header(data: bytes) -> str:
        return str(Document(io.BytesIO(data)).sections[0].header.paragraphs[0].text)

    assert "DRAFT" not in header(exported)
    draft = request_document(full_case() | {"status": "draft"}, generated_at=GENERATED_AT)
    assert header(draft).startswith("DRAFT - NOT SENT")
