"""The network's shared vocabularies: fixed, documented codes used in case records and country profiles.

Codes, not free text, because two authorities must read the same request the same way and the
secretariat counts by them (issue 5); labels are for people and will be translated by the UI.
A code is never renamed or reused once released: a node running an older version must read
every code a newer one writes (unknown codes are shown as-is, never dropped).
"""

from __future__ import annotations

from typing import Final

CASE_KINDS: Final[dict[str, str]] = {
    "mla": "Mutual legal assistance",
    "extradition": "Extradition",
    "transfer_of_proceedings": "Transfer of criminal proceedings",
    "consultation": "Informal consultation (before a formal request)",
    "other": "Other cooperation",
}

OFFENCES: Final[dict[str, str]] = {
    "drug_trafficking": "Drug trafficking",
    "trafficking_in_persons": "Trafficking in persons",
    "migrant_smuggling": "Migrant smuggling",
    "money_laundering": "Money laundering",
    "corruption": "Corruption",
    "cybercrime": "Cybercrime",
    "terrorism": "Terrorism and its financing",
    "wildlife_crime": "Wildlife crime",
    "fisheries_crime": "Fisheries crime",
    "firearms_trafficking": "Firearms trafficking",
    "fraud": "Fraud",
    "falsified_medical_products": "Falsified medical products",
    "other": "Other offence",
}

MEASURES: Final[dict[str, str]] = {
    "bank_records": "Bank records",
    "statement": "Witness or suspect statement",
    "search_and_seizure": "Search and seizure",
    "asset_freezing": "Asset freezing or confiscation",
    "electronic_evidence": "Electronic evidence preservation or production",
    "service_of_documents": "Service of documents",
    "locate_persons": "Identification and location of persons",
    "provisional_arrest": "Provisional arrest",
    "other": "Other measure",
}

LEGAL_BASES: Final[dict[str, str]] = {
    "asean_mlat": "ASEAN Treaty on Mutual Legal Assistance in Criminal Matters (2004)",
    "untoc": "UN Convention against Transnational Organized Crime (UNTOC)",
    "uncac": "UN Convention against Corruption (UNCAC)",
    "un_drugs_1988": "UN Convention against Illicit Traffic in Narcotic Drugs (1988)",
    "bilateral_treaty": "Bilateral treaty",
    "reciprocity": "Reciprocity",
    "domestic_law": "Domestic law of the requested state",
}

URGENCY: Final[dict[str, str]] = {"normal": "Normal", "urgent": "Urgent"}

TRANSLATION_STATUS: Final[dict[str, str]] = {
    "not_needed": "No translation needed",
    "needed": "Translation needed",
    "in_progress": "Translation in progress",
    "certified": "Certified translation",
}

# Items a requested state may require for a measure (a profile names them per measure; a draft
# records which it contains). Suggestions: a profile may name others as lowercase slugs.
CONTENT_ITEMS: Final[dict[str, str]] = {
    "summary_of_facts": "Summary of the facts",
    "offence_provisions": "Text of the offence and penalty provisions",
    "link_to_offence": "Link between the assistance sought and the offence",
    "court_order": "Court order or warrant",
    "asset_offence_link": "Link between the asset and the offence",
    "asset_details": "Description and location of the assets",
    "account_details": "Account numbers, holders and period",
    "person_identity": "Identity, nationality and location of the person",
    "questions": "Questions to be put to the witness or suspect",
    "procedure": "Procedure to be followed (oath, presence of officials)",
    "confidentiality": "Confidentiality requirements",
    "dual_criminality": "Statement on dual criminality",
    "reciprocity_assurance": "Assurance of reciprocity",
    "arrest_warrant": "Arrest warrant or judgment",
    "photograph_fingerprints": "Photograph and fingerprints",
    "time_limits": "Time limits and reasons for urgency",
    "data_preservation_reference": "Reference of an earlier preservation request",
}

# ISO 639-1 codes of the languages SEAJust members work in, first; any two-letter code is accepted.
LANGUAGES: Final[dict[str, str]] = {
    "en": "English",
    "fr": "French",
    "th": "Thai",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "ms": "Malay",
    "km": "Khmer",
    "lo": "Lao",
    "my": "Burmese",
    "tl": "Filipino",
    "zh": "Chinese",
    "tet": "Tetum",
    "pt": "Portuguese",
}
