"""The project's error tree starts here, because `crypto` is the lowest layer and imports nothing else.

Each error's docstring is the explanation an officer or operator sees, so an error raised without
a message still says something useful. Messages never carry key material, passphrases or payloads.
"""

from __future__ import annotations

import enum


def _first_line(doc: str | None) -> str:
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return "error"


class SeajustError(Exception):
    """SEAJust Node could not do that."""

    message: str

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            message = _first_line(type(self).__doc__)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CryptoError(SeajustError):
    """A cryptographic check or operation failed."""


class WrongPassphrase(CryptoError):
    """The passphrase does not open this node's keys."""


class KeyFileError(CryptoError):
    """The node's key file is missing, damaged, or written by an unsupported version."""


class NodeIdError(CryptoError):
    """That is not a valid node ID: check it against the sender's node card."""


class CardError(CryptoError):
    """That node card is not valid: ask the other node to send it again."""


class SignatureInvalid(CryptoError):
    """The signature does not verify: the data was altered or was not signed by that key."""


class RejectReason(enum.StrEnum):
    """Why an incoming envelope was refused; short, stable strings safe to log and to count."""

    MALFORMED = "malformed"
    WRONG_RECIPIENT = "wrong_recipient"
    UNTRUSTED_SENDER = "untrusted_sender"
    DECRYPT_FAILED = "decrypt_failed"
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"


class EnvelopeRejected(CryptoError):
    """An incoming sync message was refused and discarded."""

    reason: RejectReason
    detail: str

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        # Only the reason and a fixed, code-written detail go into the message: never payload bytes,
        # which may be case content, and never anything that helps an attacker tune a forgery.
        super().__init__(f"envelope rejected: {reason.value}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[EnvelopeRejected], tuple[RejectReason, str]]:
        # Exceptions pickle their `args` by default, which would not fit this constructor.
        return (type(self), (self.reason, self.detail))
