"""Plain words for the codes the node stores, so a page says "Waiting for us to acknowledge" and not
`awaiting_my_acknowledgement`.

The codes are fixed by `node.workflow`, `node.case_index` and `node.vocab`; the words here are the UI's
English source strings (marked with `N_` for extraction, translated when shown by the `label` filter).
A code a newer peer sent that this table does not know is shown as the code itself, escaped like any text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jinja2 import pass_context
from jinja2.runtime import Context

from node import vocab
from ui.i18n import N_, translations

STATUSES: Final[dict[str, str]] = {
    "draft": N_("Draft (not sent yet)"),
    "sent": N_("Sent"),
    "acknowledged": N_("Receipt acknowledged"),
    "in_execution": N_("Being carried out"),
    "partially_executed": N_("Partly carried out"),
    "executed": N_("Carried out"),
    "refused": N_("Refused"),
    "withdrawn": N_("Withdrawn"),
    "closed": N_("Closed"),
}

# The button that moves a case to each status.
STEPS: Final[dict[str, str]] = {
    "sent": N_("Send the request"),
    "acknowledged": N_("Acknowledge receipt"),
    "in_execution": N_("Start carrying it out"),
    "partially_executed": N_("Mark as partly carried out"),
    "executed": N_("Mark as carried out"),
    "refused": N_("Refuse the request"),
    "withdrawn": N_("Withdraw the request"),
    "closed": N_("Close the case"),
}

REASONS: Final[dict[str, str]] = {
    "awaiting_my_acknowledgement": N_("New request: acknowledge that you received it"),
    "overdue": N_("The requested-by date has passed"),
    "due_soon": N_("The requested-by date is near"),
    "urgent": N_("Marked urgent"),
    "no_acknowledgement": N_("The other side has not acknowledged it yet: consider a reminder"),
    "reminder_received": N_("The other side sent a reminder"),
}

SIDES: Final[dict[str, str]] = {
    "requesting": N_("We are the requesting authority"),
    "requested": N_("We are the requested authority"),
    "shared": N_("Shared with us for information"),
}

HISTORY: Final[dict[str, str]] = {
    "created": N_("Request created"),
    "transition": N_("Status changed"),
    "note": N_("Note"),
    "reminder": N_("Reminder"),
    "attachment": N_("File attached"),
    "edited": N_("Request edited"),
    "converted": N_("Converted into a formal request"),
    "shared": N_("Shared with another authority"),
}

ROLES: Final[dict[str, str]] = {"officer": N_("Officer"), "admin": N_("Administrator")}
PEER_ROLES: Final[dict[str, str]] = {"authority": N_("Central authority"), "secretariat": N_("Secretariat")}
SEVERITY: Final[dict[str, str]] = {"error": N_("Must be fixed"), "warning": N_("Check this")}
STANDINGS: Final[dict[str, str]] = {
    "member": N_("Member"),
    "observer": N_("Observer (no vote)"),
    "secretariat": N_("Secretariat"),
}
REVOCATIONS: Final[dict[str, str]] = {
    "compromised": N_("Keys lost or stolen"),
    "left": N_("Left the network"),
    "other": N_("Other"),
}

VOCABULARIES: Final[dict[str, Mapping[str, str]]] = {
    "status": STATUSES,
    "step": STEPS,
    "reason": REASONS,
    "side": SIDES,
    "history": HISTORY,
    "role": ROLES,
    "peer_role": PEER_ROLES,
    "severity": SEVERITY,
    "standing": STANDINGS,
    "revocation": REVOCATIONS,
    "kind": vocab.CASE_KINDS,
    "offence": vocab.OFFENCES,
    "measure": vocab.MEASURES,
    "legal_basis": vocab.LEGAL_BASES,
    "urgency": vocab.URGENCY,
    "translation": vocab.TRANSLATION_STATUS,
    "language": vocab.LANGUAGES,
}


@pass_context
def label(context: Context, code: Any, vocabulary: str) -> str:
    """`{{ case.status|label("status") }}`: the translated words for a code, or the code itself.

    Returns a plain string, so autoescape escapes it like any other text (a translation is never trusted
    as HTML, and an unknown code from a peer certainly is not).
    """
    words = VOCABULARIES[vocabulary].get(code) if isinstance(code, str) else None
    if words is None:
        return "" if code is None else str(code)
    lang = context.get("lang", "en")
    return str(translations(lang if isinstance(lang, str) else "en").gettext(words))
