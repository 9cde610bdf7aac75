"""What the pages about the network share: the messages their forms leave, and reading list-like form fields.

The pages themselves are one module each: the contact directory (`ui.pages_directory`), the country
profiles (`ui.pages_profiles`), the peers (`ui.pages_peers`), the statistics (`ui.pages_stats`) and the
secretariat's notices (`ui.pages_notices`). Like every page, they change nothing themselves: each form
becomes a call to the same `node.*` component the JSON API uses, so the rules and their messages are
the same everywhere, and a refused form is drawn again with the reasons next to the fields.

After a form succeeds, its handler redirects with `?done=<code>` (see `ui.render`); the codes of these
pages pick one of the fixed messages below, so the address bar can never make a page say anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from multidict import MultiDictProxy

from ui.i18n import N_
from ui.render import page

MESSAGES: Final[dict[str, str]] = {
    "contact_added": N_(
        "The contact point was added to the directory. The other members receive it at the next exchange."
    ),
    "contact_saved": N_("The contact point was saved."),
    "contact_deleted": N_("The contact point was removed from the directory."),
    "profile_saved": N_("Your country profile was saved. The other members receive it at the next exchange."),
    "stats_sent": N_("The report was published for the secretariat; it leaves with the next exchange."),
    "notice_published": N_("The notice was published to the network."),
    "notice_saved": N_("The notice was saved."),
    "notice_deleted": N_("The notice was deleted."),
}


def network_page(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    """`ui.render.page`, showing the message for one of this family's `?done=` codes as well."""
    message = MESSAGES.get(request.query.get("done", ""))
    return page(request, template, {**(context or {}), **({"flash": message} if message else {})}, status=status)


def lines(text: object) -> list[str]:
    """A textarea holding one item a line, as a list of the non-blank lines."""
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def chosen(form: MultiDictProxy[Any], name: str) -> list[str]:
    """The values of a group of checkboxes (or a multiple select): every `name` sent, as text."""
    return [str(v) for v in form.getall(name, [])]
