"""Invitations: two nodes trust each other's cards after one officer reads a short code to another over the phone.

Copy-pasting cards works, but it asks officers to compare node IDs by hand. With an invitation, an admin of the
inviting node makes a one-time code, reads it out (or sends it by another channel), and the invitee's node uses it
to send its own card and receive the inviter's, each side proving to the other that it knows the code.

The code is 4 groups of 4 Crockford base32 characters: 80 random bits, readable over a phone line (no letters
that sound or look alike; typed in lower case, with or without dashes, O read as 0 and I or L as 1). It is valid
for 24 hours and for one successful claim.

Protocol (this module has no I/O or clock; the caller passes `now` and does the storing and sending):

- secret S = SHA-256(code) and key K = HKDF-SHA256(S, info=b"seajust-invite-v1"). K is derived from the hash
  rather than from the code itself so the inviter, which keeps only S (never the code in clear), can compute it;
  the entropy is the same 80 bits either way.
- invite_id = first 8 bytes of SHA-256(b"id|" + code), in hex: how the inviter finds the invitation.
- The invitee sends claim = {invite_id, card: its own card, mac: HMAC-SHA256(K, card)}.
- The inviter finds the invitation by invite_id, refuses it if expired, used, or burned, checks the mac (so the
  claimant knows the code), checks the card's signature and ID, marks the invitation used, trusts the card, and
  answers {card: its own card, mac: HMAC-SHA256(K, b"answer|" + inviter card + b"|" + invitee card)}.
- The invitee checks that mac before trusting the inviter's card: only a holder of the code could make it, and
  it binds the answer to the card the invitee sent, so an answer cannot be replayed to another claim.

Why this is enough: an eavesdropper who records a claim can test guesses of the code offline, but 80 bits is far
beyond what can be searched in the 24 hours the code lives (and the claim it recorded has used the code up).
Guessing online is limited by single use and by an attempt limit: `MAX_ATTEMPTS` wrong macs under one invite_id
burn the invitation (finding a valid invite_id without the code is itself a 64-bit guess). Someone who reads the
inviter's decrypted database during the 24 hours learns S and could claim the invitation, but such a reader can
already write to the peers table; after the invitation is used or expired, S is worthless. What this does not
protect against is the code itself leaking: whoever holds it first becomes the peer, so the admin should check
the new peer's name and country (shown by both nodes) after the claim.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.card import MAX_CARD_SIZE, NodeCard, parse_card
from crypto.encoding import b64url, unb64url
from crypto.errors import CardError, CryptoError

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_BITS: Final = 80
CODE_LENGTH: Final = 16  # characters, shown as 4 groups of 4
INVITATION_LIFETIME: Final = 24 * 3600.0
MAX_ATTEMPTS: Final = 5  # wrong macs under one invitation before it is burned
INVITE_ID_BYTES: Final = 8
MAC_SIZE: Final = 32
_INFO: Final = b"seajust-invite-v1"
_MAX_CODE_INPUT: Final = 64
_ALIASES: Final = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None})
_CLAIM_KEYS: Final = frozenset({"invite_id", "card", "mac"})
_ANSWER_KEYS: Final = frozenset({"card", "mac"})


class RefusalReason(enum.StrEnum):
    """Why an invitation step was refused; short, stable strings safe to log and to show."""

    MALFORMED_CODE = "malformed_code"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    BURNED = "burned"
    WRONG_CODE = "wrong_code"
    BAD_CARD = "bad_card"
    BAD_ANSWER = "bad_answer"


_MESSAGES: Final = {
    RefusalReason.MALFORMED_CODE: "that is not an invitation code: it is 16 letters and digits, such as 7K3M-Q9XD-…",
    RefusalReason.MALFORMED: "the invitation message is malformed",
    RefusalReason.UNKNOWN: "no invitation has that code: check the code, or ask for a new invitation",
    RefusalReason.EXPIRED: "that invitation has expired: ask for a new one",
    RefusalReason.USED: "that invitation has already been used: ask for a new one",
    RefusalReason.BURNED: "that invitation was tried with wrong codes too often: ask for a new one",
    RefusalReason.WRONG_CODE: "the invitation code does not match",
    RefusalReason.BAD_CARD: "the node card sent with the invitation is not valid",
    RefusalReason.BAD_ANSWER: "the answer to the invitation does not prove knowledge of the code: do not trust it",
}


class InvitationRefused(CryptoError):
    """The invitation was refused: ask the inviting node's admin for a new code."""

    reason: RefusalReason
    detail: str

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        # The detail is fixed text written in code (or a card parser's message), never the code or a key.
        super().__init__(_MESSAGES[reason] + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvitationRefused], tuple[RefusalReason, str]]:
        return (type(self), (self.reason, self.detail))


# --- the code -----------------------------------------------------------------------------------------------------


def new_code(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh code for display, such as `7K3M-Q9XD-2HNB-V0RT`."""
    value = int.from_bytes(random_bytes(CODE_BITS // 8), "big")
    chars = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(CODE_LENGTH)))
    return "-".join(chars[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(text: str) -> str:
    """The 16 canonical characters of a code as typed: any case, dashes and spaces ignored, O→0, I/L→1."""
    if not isinstance(text, str) or len(text) > _MAX_CODE_INPUT:
        raise InvitationRefused(RefusalReason.MALFORMED_CODE)
    compact = "".join(text.split()).upper().translate(_ALIASES)
    if len(compact) != CODE_LENGTH or any(c not in CROCKFORD for c in compact):
        raise InvitationRefused(RefusalReason.MALFORMED_CODE)
    return compact


def code_secret(code: str) -> bytes:
    """S = SHA-256(code): all the inviter keeps of the code."""
    return hashlib.sha256(normalise_code(code).encode("ascii")).digest()


def invite_id(code: str) -> str:
    return hashlib.sha256(b"id|" + normalise_code(code).encode("ascii")).digest()[:INVITE_ID_BYTES].hex()


def invitation_key(secret: bytes) -> bytes:
    """K = HKDF-SHA256(S, info=b"seajust-invite-v1")."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(secret)


def _claim_mac(key: bytes, invitee_card: str) -> bytes:
    return hmac.new(key, invitee_card.encode("utf-8"), hashlib.sha256).digest()


def _answer_mac(key: bytes, inviter_card: str, invitee_card: str) -> bytes:
    data = b"answer|" + inviter_card.encode("utf-8") + b"|" + invitee_card.encode("utf-8")
    return hmac.new(key, data, hashlib.sha256).digest()


def _parse_card(text: str) -> NodeCard:
    try:
        return parse_card(text)
    except CardError as exc:
        raise InvitationRefused(RefusalReason.BAD_CARD, exc.message) from None


def _fields(message: object, keys: frozenset[str]) -> tuple[dict[str, str], bytes]:
    if not isinstance(message, Mapping) or set(message) != keys:
        raise InvitationRefused(RefusalReason.MALFORMED)
    if not all(isinstance(message[k], str) for k in keys):
        raise InvitationRefused(RefusalReason.MALFORMED)
    fields: dict[str, str] = {k: message[k] for k in keys}
    if len(fields["card"]) > MAX_CARD_SIZE:
        raise InvitationRefused(RefusalReason.MALFORMED)
    mac = unb64url(fields["mac"])
    if mac is None or len(mac) != MAC_SIZE:
        raise InvitationRefused(RefusalReason.MALFORMED)
    return fields, mac


# --- the invitee ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimState:
    """What the invitee keeps between sending its claim and reading the answer."""

    invite_id: str
    key: bytes
    card: str

    def __repr__(self) -> str:
        return f"ClaimState(invite_id={self.invite_id!r})"  # never the key


@dataclass(frozen=True)
class VerifiedCard:
    """A card that passed both the invitation's mac and its own signature check."""

    text: str
    card: NodeCard


def make_claim(code: str, own_card: str) -> tuple[dict[str, str], ClaimState]:
    """The claim to send to the inviter, and the state `verify_answer` needs."""
    key = invitation_key(code_secret(code))
    state = ClaimState(invite_id=invite_id(code), key=key, card=own_card)
    claim = {"invite_id": state.invite_id, "card": own_card, "mac": b64url(_claim_mac(key, own_card))}
    return claim, state


def verify_answer(answer: object, state: ClaimState) -> VerifiedCard:
    """The inviter's card, once the answer's mac shows it comes from a holder of the code and answers our claim."""
    fields, mac = _fields(answer, _ANSWER_KEYS)
    if not hmac.compare_digest(mac, _answer_mac(state.key, fields["card"], state.card)):
        raise InvitationRefused(RefusalReason.BAD_ANSWER)
    return VerifiedCard(fields["card"], _parse_card(fields["card"]))


# --- the inviter ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    invite_id: str
    card: str
    mac: bytes


@dataclass(frozen=True)
class InvitationRecord:
    """What the inviter stores: never the code, only S = SHA-256(code)."""

    invite_id: str
    secret: bytes
    expires_at: float
    used: bool
    failures: int


@dataclass(frozen=True)
class Answered:
    answer: dict[str, str]
    invitee: VerifiedCard


def parse_claim(message: object) -> Claim:
    fields, mac = _fields(message, _CLAIM_KEYS)
    claim_id = fields["invite_id"]
    if len(claim_id) != 2 * INVITE_ID_BYTES or any(c not in "0123456789abcdef" for c in claim_id):
        raise InvitationRefused(RefusalReason.MALFORMED)
    return Claim(invite_id=claim_id, card=fields["card"], mac=mac)


def new_record(code: str, now: float) -> InvitationRecord:
    return InvitationRecord(
        invite_id=invite_id(code),
        secret=code_secret(code),
        expires_at=now + INVITATION_LIFETIME,
        used=False,
        failures=0,
    )


def answer_claim(record: InvitationRecord | None, claim: Claim, own_card: str, now: float) -> Answered:
    """Check a claim against the stored invitation and make the answer; the caller then marks the record used.

    A `WRONG_CODE` refusal is the one the caller counts towards `MAX_ATTEMPTS`.
    """
    if record is None or record.invite_id != claim.invite_id:
        raise InvitationRefused(RefusalReason.UNKNOWN)
    if record.used:
        raise InvitationRefused(RefusalReason.USED)
    if record.failures >= MAX_ATTEMPTS:
        raise InvitationRefused(RefusalReason.BURNED)
    if now >= record.expires_at:
        raise InvitationRefused(RefusalReason.EXPIRED)
    key = invitation_key(record.secret)
    if not hmac.compare_digest(claim.mac, _claim_mac(key, claim.card)):
        raise InvitationRefused(RefusalReason.WRONG_CODE)
    invitee = VerifiedCard(claim.card, _parse_card(claim.card))
    answer = {"card": own_card, "mac": b64url(_answer_mac(key, own_card, claim.card))}
    return Answered(answer=answer, invitee=invitee)
