"""The error tree: one root, docstrings as default messages, envelope rejections with a stable reason."""

import pickle

import pytest

from crypto.errors import (
    CardError,
    CryptoError,
    EnvelopeRejected,
    KeyFileError,
    NodeIdError,
    RejectReason,
    SeajustError,
    SignatureInvalid,
    WrongPassphrase,
)


def test_default_message_is_the_docstring_first_line() -> None:
    error = WrongPassphrase()
    assert error.message == "The passphrase does not open this node's keys."
    assert str(error) == error.message
    assert SeajustError().message == "SEAJust Node could not do that."


def test_explicit_message() -> None:
    error = NodeIdError("node ID check character does not match: mistyped?")
    assert error.message == str(error) == "node ID check character does not match: mistyped?"


@pytest.mark.parametrize(
    "cls", [CryptoError, WrongPassphrase, KeyFileError, NodeIdError, CardError, SignatureInvalid, EnvelopeRejected]
)
def test_tree(cls: type[Exception]) -> None:
    assert issubclass(cls, CryptoError)
    assert issubclass(cls, SeajustError)
    assert cls.__doc__


def test_reject_reasons_are_stable_strings() -> None:
    assert {r.value for r in RejectReason} == {
        "malformed",
        "wrong_recipient",
        "untrusted_sender",
        "decrypt_failed",
        "bad_signature",
        "replay",
    }
    assert str(RejectReason.REPLAY) == "replay"


def test_envelope_rejected() -> None:
    error = EnvelopeRejected(RejectReason.DECRYPT_FAILED)
    assert error.reason is RejectReason.DECRYPT_FAILED
    assert "decrypt_failed" in str(error)
    detailed = EnvelopeRejected(RejectReason.MALFORMED, "truncated")
    assert "malformed" in detailed.message and "truncated" in detailed.message
    again = pickle.loads(pickle.dumps(detailed))
    assert (again.reason, again.detail, again.message) == (detailed.reason, "truncated", detailed.message)
