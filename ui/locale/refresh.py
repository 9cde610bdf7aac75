"""Refresh the UI's translation catalogs: extract, update Thai and Vietnamese, compile.

    .venv/bin/python -m ui.locale.refresh          # from the repository root

1. Extract every `_()`/`N_()`/`ngettext()` string of `ui/` (mapping `ui/babel.cfg`, as
   `pybabel extract -F ui/babel.cfg -o ui/locale/messages.pot .` does) into `messages.pot`, plus the
   labels of `node.vocab` that `ui.labels` translates (kinds, offences, measures, legal bases,
   urgency, translation status, languages, content items): they live outside `ui/` as plain dictionaries, so no
   extractor sees them, yet the `label` filter looks them up in the catalog.
2. Merge the template into `<lang>/LC_MESSAGES/messages.po` for each language (new strings arrive
   empty, removed ones become obsolete `#~` entries, as `pybabel update` does).
3. Compile each `.po` to `.mo` (as `pybabel compile -d ui/locale`), refusing a catalog whose
   translation drops or adds a placeholder.

Then translate the empty entries and run it again; `tests/webui/test_ui_i18n.py` fails while a page's
string has no translation or a `.mo` is older than its `.po`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from node import vocab

LOCALE_DIR: Final = Path(__file__).parent
ROOT: Final = LOCALE_DIR.parent.parent
LANGS: Final = ("th", "vi")
VOCAB: Final = {
    "CASE_KINDS": vocab.CASE_KINDS,
    "OFFENCES": vocab.OFFENCES,
    "MEASURES": vocab.MEASURES,
    "LEGAL_BASES": vocab.LEGAL_BASES,
    "URGENCY": vocab.URGENCY,
    "TRANSLATION_STATUS": vocab.TRANSLATION_STATUS,
    "LANGUAGES": vocab.LANGUAGES,
    "CONTENT_ITEMS": vocab.CONTENT_ITEMS,
}
HEADER: Final = dict(project="SEAJust Node", version="0.1.0", copyright_holder="SEAJust", charset="utf-8")


def template() -> Catalog:
    """The catalog template: the strings of `ui/`, then the `node.vocab` labels."""
    with open(LOCALE_DIR.parent / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    catalog = Catalog(**HEADER)  # type: ignore[arg-type]
    for filename, lineno, message, comments, context in extract_from_dir(str(ROOT), method_map, options_map):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for name, words in VOCAB.items():
        for code, text in words.items():
            catalog.add(text, None, [("node/vocab.py", 0)], auto_comments=[f"vocab.{name}[{code!r}]"])
    return catalog


def _write_po(path: Path, catalog: Catalog) -> None:
    with open(path, "wb") as out:
        write_po(out, catalog, width=100, include_lineno=False)


def update(pot: Catalog, langs: Iterable[str] = LANGS) -> None:
    for lang in langs:
        po_path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
        if po_path.exists():
            with open(po_path, "rb") as src:
                catalog = read_po(src, locale=lang)
        else:
            po_path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, **HEADER)  # type: ignore[arg-type]
        catalog.update(pot, no_fuzzy_matching=True)  # short UI strings: guesses mislead
        _write_po(po_path, catalog)


def compile_catalogs(langs: Iterable[str] = LANGS) -> list[str]:
    """Compile each `.po` to `.mo`; the problems found (placeholders that do not match), if any."""
    problems: list[str] = []
    for lang in langs:
        po_path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
        with open(po_path, "rb") as src:
            catalog = read_po(src, locale=lang)
        for message, errors in catalog.check():
            if message.fuzzy:  # not compiled
                continue
            problems += [f"{lang}: {message.id!r}: {error}" for error in errors]
        with open(po_path.with_suffix(".mo"), "wb") as out:
            write_mo(out, catalog)
    return problems


def main() -> int:
    pot = template()
    _write_po(LOCALE_DIR / "messages.pot", pot)
    update(pot)
    problems = compile_catalogs()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
