"""Languages of the web UI: the officer's choice, its translations, and dates and countries in its words.

Officers in the region read English as a second language at best, so every string a page shows goes
through `_()`: the English source strings are the default, and a catalog compiled to
`ui/locale/<lang>/LC_MESSAGES/messages.mo` translates them the moment it exists, with no code change
(extraction: `pybabel extract -F ui/babel.cfg -o ui/locale/messages.pot .`). The choice lives in a
cookie rather than the account, so the login page is already in the officer's language.

The gettext callables read the language from the template context (`lang`), not from a global or a
context variable, so two requests rendered in turn can never see each other's language.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

LOCALE_DIR: Final = Path(__file__).parent / "locale"
DEFAULT: Final = "en"
# Each language named in itself, as the picker shows it.
LANGUAGES: Final[dict[str, str]] = {"en": "English", "th": "ไทย", "vi": "Tiếng Việt"}
LANG_COOKIE: Final = "sj_lang"


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined; it is translated where it is shown."""
    return message


def language_of(request: web.Request) -> str:
    """The language the officer chose (cookie `sj_lang`), else English."""
    lang = request.cookies.get(LANG_COOKIE, DEFAULT)
    return lang if lang in LANGUAGES else DEFAULT


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalog for `lang`, or the identity when there is none yet (English is the source)."""
    if lang == DEFAULT or lang not in LANGUAGES:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [lang], domain="messages")


def _lang(context: Context) -> str:
    lang = context.get("lang", DEFAULT)
    return lang if isinstance(lang, str) else DEFAULT


@pass_context
def _gettext(context: Context, message: str) -> str:
    return str(translations(_lang(context)).gettext(message))


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return str(translations(_lang(context)).ngettext(singular, plural, n))


def _parse(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@pass_context
def day(context: Context, value: Any) -> str:
    """A stored date or timestamp as a date in the officer's language ("12 Mar 2026"); as-is if unreadable."""
    parsed = _parse(value)
    if parsed is None:
        return "" if value is None else str(value)
    return str(format_date(parsed, format="medium", locale=_lang(context)))


@pass_context
def moment(context: Context, value: Any) -> str:
    """A stored timestamp as date and time (UTC, said so), for the case timeline."""
    parsed = _parse(value)
    if not isinstance(parsed, datetime):
        return day(context, value)
    text = format_datetime(parsed, format="medium", tzinfo=UTC, locale=_lang(context))
    return f"{text} UTC"


@pass_context
def country(context: Context, code: Any) -> str:
    """An ISO 3166 country code as the country's name in the officer's language (the code if unknown)."""
    if not isinstance(code, str) or not code:
        return ""
    return str(Locale.parse(_lang(context)).territories.get(code.upper(), code))


@pass_context
def number(context: Context, value: Any) -> str:
    """A count in the officer's language's digits grouping ("12,345", "12.345"); as-is if not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return str(format_decimal(value, locale=_lang(context)))


def install(env: Environment) -> None:
    """Give templates `_`, `gettext`, `ngettext`, `{% trans %}` and the `day`/`moment`/`country`/`number` filters."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(day=day, moment=moment, country=country, number=number)
