"""A case as a printable formal request (DOCX), for the formal (central authority / diplomatic) channel.

The layout follows the content a request must carry under ASEAN MLAT Article 6 and the UNODC Mutual
Legal Assistance Request Writer Tool: who asks whom, on what legal basis, the facts, the offences,
the assistance sought, time limits, confidentiality, and the annexes, each annex with its SHA-256 so
the paper copy can be matched to the electronic one. The informal thread (notes in the case
history) is never printed: it is working correspondence, not part of the request.

`case` is the case JSON of the node's API. Every key may be missing, null or of an unexpected
type (a newer node may write codes this one does not know): unknown codes are printed as-is and
nothing in the case makes the export fail.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.text.paragraph import Paragraph

from node.countries import COUNTRIES
from node.vocab import CONTENT_ITEMS, LANGUAGES, LEGAL_BASES, MEASURES, OFFENCES, TRANSLATION_STATUS

DOCX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

TITLES: Final[dict[str, str]] = {
    "mla": "Request for Mutual Legal Assistance in Criminal Matters",
    "extradition": "Request for Extradition",
    "transfer_of_proceedings": "Request for Transfer of Criminal Proceedings",
    "consultation": "Informal Consultation",
    "other": "Request for Cooperation in Criminal Matters",
}

# What the requesting authority asks for, completing "... respectfully requests the requested authority ..."
_PURPOSES: Final[dict[str, str]] = {
    "mla": "to provide mutual legal assistance in the criminal matter described below",
    "extradition": "to extradite the person sought in the criminal matter described below",
    "transfer_of_proceedings": "to take over the criminal proceedings in the matter described below",
    "other": "to cooperate in the criminal matter described below",
}

CONFIDENTIALITY_STATEMENT: Final = (
    "The requesting authority asks the requested State to keep this request, its contents and the fact that it "
    "has been made confidential, except to the extent necessary to execute it. If the request cannot be executed "
    "without breaching confidentiality, the requested State is asked to inform the requesting authority before "
    "taking any action, so that it may decide whether the request should nevertheless be executed."
)

_FILENAME_PREFIXES: Final[dict[str, str]] = {
    "extradition": "extradition-request",
    "transfer_of_proceedings": "transfer-request",
    "consultation": "consultation",
}
_FILENAME_PART_MAX: Final = 80

_NOT_PROVIDED: Final = "Not provided."
_MONOSPACE: Final = "Courier New"
# Characters XML 1.0 cannot carry (lxml refuses them): C0 controls except tab/newline/CR, lone surrogates, U+FFFE/F.
_XML_ILLEGAL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def request_document(
    case: Mapping[str, Any],
    *,
    requesting: Mapping[str, Any] | None = None,
    requested: Mapping[str, Any] | None = None,
    generated_at: str,
) -> bytes:
    """The case as a formal request document: the bytes of a .docx file (`DOCX_MEDIA_TYPE`).

    `requesting` / `requested` are the authorities' contact blocks ({"authority", "name", "title",
    "email", "phone", "country"}); without them the parties recorded in the case are used.
    """
    case = _mapping(case)
    requesting = _mapping(requesting)
    requested = _mapping(requested)
    kind = _text(case.get("kind"))
    title = request_title(kind)
    requesting_authority = _authority(requesting, _mapping(case.get("requesting")))
    requested_authority = _authority(requested, _mapping(case.get("requested")))
    request_date = _date(case.get("sent_at")) or _date(generated_at) or _text(generated_at)

    document = Document()
    _set_up_page(document, case, generated_at)
    _set_properties(document, case, title, generated_at)

    document.add_heading(title, level=0)
    if _text(case.get("urgency")) == "urgent":
        _urgent_banner(document, _text(case.get("urgency_reason")))

    _overview_table(document, case, requesting_authority, requested_authority, request_date)

    document.add_heading("1. Purpose and legal basis", level=1)
    document.add_paragraph(_purpose(kind, requesting_authority, requested_authority))
    _code_list(document, _legal_bases(case), empty="No legal basis has been stated.")

    document.add_heading("2. Summary of facts", level=1)
    _free_text(document, _text(case.get("summary")))

    document.add_heading("3. Offences", level=1)
    _code_list(document, _labels(case.get("offences"), OFFENCES), empty=_NOT_PROVIDED)

    document.add_heading("4. Assistance requested", level=1)
    _code_list(document, _labels(case.get("measures"), MEASURES), empty=_NOT_PROVIDED)

    document.add_heading("5. Content provided", level=1)
    document.add_paragraph("This request contains or is accompanied by the following:")
    _code_list(document, _labels(case.get("provided"), CONTENT_ITEMS), empty=_NOT_PROVIDED)

    document.add_heading("6. Languages and translation", level=1)
    languages = ", ".join(_labels(case.get("languages"), LANGUAGES)) or _NOT_PROVIDED
    _labelled(document, "Language(s) of the request: ", languages)
    _labelled(document, "Translation: ", _label(case.get("translation"), TRANSLATION_STATUS) or _NOT_PROVIDED)

    document.add_heading("7. Time limits and urgency", level=1)
    _time_limits(document, case)

    document.add_heading("8. Confidentiality", level=1)
    document.add_paragraph(CONFIDENTIALITY_STATEMENT)

    document.add_heading("9. Annexes", level=1)
    _annexes(document, case.get("attachments"))

    document.add_heading("Contact point", level=1)
    _contact(document, requesting, requesting_authority)

    _signature(document, requesting, requesting_authority, request_date)

    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def request_title(kind: str) -> str:
    """The document title for a case kind; an unknown kind is named as-is."""
    if kind in TITLES:
        return TITLES[kind]
    return f"Request for Cooperation in Criminal Matters ({kind})" if kind else TITLES["other"]


def export_filename(case: Mapping[str, Any]) -> str:
    """An ASCII-only file name without path characters, e.g. "request-TH-2026-0042.docx".

    Made from the kind and this node's reference (or the case id when the reference has no
    usable characters), so it is safe in a Content-Disposition header and on any file system.
    """
    case = _mapping(case)
    prefix = _FILENAME_PREFIXES.get(_text(case.get("kind")), "request")
    part = _filename_part(_text(case.get("reference"))) or _filename_part(_text(case.get("id"))) or "case"
    return f"{prefix}-{part}.docx"


def _filename_part(value: str) -> str:
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    # Dots are dropped too, so no ".." or hidden-file name can come out; "-" and "_" stay.
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_only)
    slug = re.sub(r"-{2,}", "-", slug).strip("-_")
    return slug[:_FILENAME_PART_MAX].rstrip("-_")


# --- reading the case defensively -------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    """Any JSON value as text a document can hold; None is the empty string."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _XML_ILLEGAL.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))


def _codes(value: object) -> list[str]:
    """A list of codes; a lone string counts as one code, anything else that is not a list as none."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return []
    return [text for text in (_text(item).strip() for item in value) if text]


def _label(code: object, labels: Mapping[str, str]) -> str:
    text = _text(code).strip()
    return labels.get(text, text)


def _labels(codes: object, labels: Mapping[str, str]) -> list[str]:
    return [labels.get(code, code) for code in _codes(codes)]


def _country(code: object) -> str:
    text = _text(code).strip()
    return COUNTRIES.get(text.upper(), text)


def _date(value: object) -> str:
    """An ISO date or timestamp as "14 March 2026" (unambiguous in every member state); "" if it is not one."""
    text = _text(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return ""
    return f"{parsed.day} {parsed:%B %Y}"


def _authority(contact: Mapping[str, Any], party: Mapping[str, Any]) -> str:
    """ "Office of the Attorney General, Thailand" from the contact block, else from the case's party."""
    name = _text(contact.get("authority")) or _text(party.get("name")) or _text(party.get("node_id"))
    country = _country(contact.get("country") or party.get("country"))
    return ", ".join(part for part in (name, country) if part)


def _legal_bases(case: Mapping[str, Any]) -> list[str]:
    treaty = _text(case.get("treaty")).strip()
    bases = []
    for code in _codes(case.get("legal_basis")):
        label = LEGAL_BASES.get(code, code)
        bases.append(f"{label}: {treaty}" if code == "bilateral_treaty" and treaty else label)
    if treaty and "bilateral_treaty" not in _codes(case.get("legal_basis")):
        bases.append(f"{LEGAL_BASES['bilateral_treaty']}: {treaty}")
    return bases


def _purpose(kind: str, requesting_authority: str, requested_authority: str) -> str:
    # Authorities are named in apposition ("the requesting authority, Bộ Công an, ..."): no article is
    # put before a name that may not be English.
    asker = f"The requesting authority, {requesting_authority}," if requesting_authority else "The requesting authority"
    asked = f"the requested authority, {requested_authority}," if requested_authority else "the requested authority"
    if kind == "consultation":
        return (
            f"{asker} consults {asked} informally, in advance of a possible formal request, on the matter described "
            "below. This document is not itself a formal request."
        )
    purpose = _PURPOSES.get(kind, _PURPOSES["other"])
    return f"{asker} respectfully requests {asked} {purpose}, on the following legal basis:"


# --- building the document --------------------------------------------------------------------


def _set_up_page(document: DocxDocument, case: Mapping[str, Any], generated_at: str) -> None:
    section = document.sections[0]
    for side in ("left_margin", "right_margin"):
        setattr(section, side, Cm(2.2))
    reference = _text(case.get("reference"))
    header = section.header.paragraphs[0]
    # A printed draft must not pass for a request that has been sent.
    draft = "DRAFT - NOT SENT    " if _text(case.get("status")) == "draft" else ""
    header.text = f"{draft}CONFIDENTIAL" + (f"    Ref. {reference}" if reference else "")
    header.alignment = WD_ALIGN_PARAGRAPH.RIGHT

    footer = section.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    case_id = _text(case.get("id"))
    footer.add_run((f"Case {case_id}  ·  " if case_id else "") + f"Generated by SEAJust Node on {_text(generated_at)}")
    footer.add_run("  ·  Page ")
    _field(footer, "PAGE", "1")
    footer.add_run(" of ")
    _field(footer, "NUMPAGES", "1")
    for run in footer.runs:
        run.font.size = Pt(8)


def _field(paragraph: Paragraph, instruction: str, placeholder: str) -> None:
    """A Word field (PAGE, NUMPAGES) the word processor fills in when it lays the pages out."""
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), instruction)
    run = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = placeholder
    run.append(text)
    field.append(run)
    paragraph._p.append(field)


def _set_properties(document: DocxDocument, case: Mapping[str, Any], title: str, generated_at: str) -> None:
    properties = document.core_properties
    properties.title = title
    properties.subject = _text(case.get("reference")) or _text(case.get("id"))
    properties.author = "SEAJust Node"
    properties.last_modified_by = "SEAJust Node"
    properties.comments = f"Generated by SEAJust Node on {_text(generated_at)}"
    try:
        created = datetime.fromisoformat(generated_at)
    except (TypeError, ValueError):
        return
    if created.tzinfo is not None:
        created = created.astimezone(UTC)
    properties.created = properties.modified = created


def _urgent_banner(document: DocxDocument, reason: str) -> None:
    banner = document.add_paragraph()
    banner.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = banner.add_run("URGENT")
    run.bold = True
    run.font.size = Pt(16)
    run.font.color.rgb = RGBColor(0xC0, 0x00, 0x00)
    if reason.strip():
        detail = document.add_paragraph()
        detail.alignment = WD_ALIGN_PARAGRAPH.CENTER
        detail.add_run("Reason for urgency: ").bold = True
        detail.add_run(reason)


def _overview_table(
    document: DocxDocument,
    case: Mapping[str, Any],
    requesting_authority: str,
    requested_authority: str,
    request_date: str,
) -> None:
    references = _mapping(case.get("references"))
    rows = [
        ("Requesting authority", requesting_authority),
        ("Requested authority", requested_authority),
        ("Reference of the requesting authority", _text(references.get("requesting"))),
        ("Reference of the requested authority", _text(references.get("requested"))),
        ("Date", request_date),
        ("Legal basis", "\n".join(_legal_bases(case))),
        ("Execution requested by", _date(case.get("requested_by")) or _text(case.get("requested_by"))),
    ]
    own = _text(case.get("reference"))
    if own and own not in (_text(references.get("requesting")), _text(references.get("requested"))):
        rows.insert(4, ("Reference of this office", own))
    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for label, value in rows:
        cells = table.add_row().cells
        cells[0].width, cells[1].width = Cm(5.5), Cm(11)
        cells[0].paragraphs[0].add_run(label).bold = True
        cells[1].paragraphs[0].add_run(value or "—")


def _free_text(document: DocxDocument, text: str) -> None:
    """Free text as paragraphs (blank lines) and line breaks (single newlines)."""
    blocks = [block.strip("\n") for block in re.split(r"\n\s*\n", text) if block.strip()]
    if not blocks:
        document.add_paragraph(_NOT_PROVIDED)
    for block in blocks:
        document.add_paragraph().add_run(block)  # python-docx turns "\n" into <w:br/> and "\t" into <w:tab/>


def _code_list(document: DocxDocument, labels: Sequence[str], *, empty: str) -> None:
    if not labels:
        document.add_paragraph(empty)
    for label in labels:
        document.add_paragraph(label, style="List Bullet")


def _labelled(document: DocxDocument, label: str, value: str) -> None:
    paragraph = document.add_paragraph()
    paragraph.add_run(label).bold = True
    paragraph.add_run(value)


def _time_limits(document: DocxDocument, case: Mapping[str, Any]) -> None:
    urgent = _text(case.get("urgency")) == "urgent"
    requested_by = _date(case.get("requested_by")) or _text(case.get("requested_by"))
    if urgent:
        document.add_paragraph("This request is urgent. The requested State is asked to give it priority.")
        reason = _text(case.get("urgency_reason"))
        if reason.strip():
            _labelled(document, "Reason for urgency: ", reason)
    elif _text(case.get("urgency")) not in ("", "normal"):
        _labelled(document, "Urgency: ", _text(case.get("urgency")))
    if requested_by:
        _labelled(document, "Execution is requested by: ", requested_by)
    if not urgent and not requested_by:
        document.add_paragraph("No particular time limit applies.")


def _annexes(document: DocxDocument, attachments: object) -> None:
    items = [item for item in attachments if isinstance(item, Mapping)] if isinstance(attachments, list) else []
    if not items:
        document.add_paragraph("No annexes.")
        return
    document.add_paragraph(
        "Each annex is identified by the SHA-256 digest of its electronic file, so that this paper copy can be "
        "matched with the copy transmitted electronically."
    )
    table = document.add_table(rows=1, cols=4)
    table.style = "Table Grid"
    for cell, heading in zip(table.rows[0].cells, ("No.", "Document", "Language", "Size"), strict=True):
        cell.paragraphs[0].add_run(heading).bold = True
    for number, item in enumerate(items, start=1):
        cells = table.add_row().cells
        cells[0].text = str(number)
        name = cells[1].paragraphs[0]
        name.add_run(_text(item.get("name")) or _text(item.get("id")) or "(unnamed)")
        media_type = _text(item.get("media_type"))
        if media_type:
            name.add_run(f"\n{media_type}").font.size = Pt(8)
        digest = cells[1].add_paragraph()
        digest.add_run("SHA-256: ").font.size = Pt(8)
        hex_digest = digest.add_run(_text(item.get("sha256")) or "—")
        hex_digest.font.name = _MONOSPACE
        hex_digest.font.size = Pt(8)
        language = _label(item.get("language"), LANGUAGES)
        translation = _label(item.get("translation"), TRANSLATION_STATUS)
        cells[2].text = "\n".join(part for part in (language, translation) if part) or "—"
        cells[3].text = _size(item.get("size"))
        for cell, width in zip(cells, (Cm(1.2), Cm(9.8), Cm(3.5), Cm(2)), strict=True):
            cell.width = width


def _size(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value) or "—"
    if value < 1024:
        return f"{value} bytes"
    if value < 1024 * 1024:
        return f"{value / 1024:.1f} KB"
    return f"{value / (1024 * 1024):.1f} MB"


def _contact(document: DocxDocument, contact: Mapping[str, Any], authority: str) -> None:
    rows = [
        ("Authority", authority),
        ("Name", _text(contact.get("name"))),
        ("Title", _text(contact.get("title"))),
        ("E-mail", _text(contact.get("email"))),
        ("Telephone", _text(contact.get("phone"))),
    ]
    rows = [(label, value) for label, value in rows if value]
    if not rows:
        document.add_paragraph(_NOT_PROVIDED)
    for label, value in rows:
        _labelled(document, f"{label}: ", value)


def _signature(document: DocxDocument, contact: Mapping[str, Any], authority: str, request_date: str) -> None:
    document.add_paragraph()
    if authority:
        document.add_paragraph(f"For and on behalf of {authority}")
    document.add_paragraph()
    document.add_paragraph("_" * 40)
    _labelled(document, "Name: ", _text(contact.get("name")))
    _labelled(document, "Title: ", _text(contact.get("title")))
    _labelled(document, "Date: ", request_date)
    document.add_paragraph("Signature and official seal")
