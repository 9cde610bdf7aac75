"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers that read what the network sends.

    python tests/fuzz_atheris.py TARGET [CORPUS_DIR] [libFuzzer options, e.g. -runs=20000 -max_total_time=600]

Hypothesis (tests/sync/test_sync_handlers_fuzz.py, test_sync_messages.py) drives the handlers with inputs shaped
like messages; libFuzzer instead mutates bytes towards new branches of the parsers, so it finds what nobody
thought to shape. Each target states the one contract of its parser for *any* input: it returns a value or
raises its own error class, never anything else, and what it returns encodes back to something it reads the
same. A broken contract is an uncaught exception: libFuzzer stops, prints the input and exits non-zero.

With a CORPUS_DIR that is empty or missing, the target's seeds (valid inputs: real envelopes, messages of both
protocols, a real key grant, relay frames) are written there first, so mutation starts from inputs that reach
deep. `tests/test_fuzz_atheris.py` runs every target briefly in `make test`; `make fuzz` runs each for minutes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["crypto", "sync"]):
    from crypto.doc_keys import KeyGrantInvalid, decode_grant, encode_grant, issue_grant, new_doc_key
    from crypto.envelope import open_envelope, peek_header, seal
    from crypto.errors import EnvelopeRejected
    from crypto.identity import Identity
    from sync.errors import RemoteProtocolError
    from sync.messages import (
        Bundle,
        Grants,
        Hello,
        SignedUpdate,
        Updates,
        Versions,
        decode,
        encode,
    )
    from sync.relay_frames import FrameError, decode_deposit, decode_mail, encode_deposit, encode_mail

SENDER = Identity.from_secret_bytes(bytes(range(64)))
RECIPIENT = Identity.from_secret_bytes(bytes(range(64, 128)))
DOC = "case/0123456789AB"
ENTRY = SignedUpdate(DOC, SENDER.node_id, 1, 3, b"\x01\x02crdt update", b"s" * 64)
MESSAGES = [
    Hello(nonce=bytes(16), time=1_700_000_000),
    Versions(docs={DOC: {SENDER.node_id: 3}}, complete=True, direct=(RECIPIENT.node_id,)),
    Versions(docs={DOC: {SENDER.node_id: 3, RECIPIENT.node_id: 1}}, complete=False, want_missing=False),
    Updates(doc_id=DOC, entries=(ENTRY,)),
    Bundle(parts=(Updates(doc_id=DOC, entries=(ENTRY,)), Updates(doc_id="directory/x", entries=()))),
    Grants(grants=(b"grant",)),
]


def _grant() -> bytes:
    parties = {n.node_id: (role, n.public.kx_key) for n, role in ((SENDER, "requesting"), (RECIPIENT, "requested"))}
    return encode_grant(issue_grant(SENDER, doc_id=DOC, version=1, key=new_doc_key(), parties=parties))


def _payloads() -> list[bytes]:
    return [encode(m, 1) for m in MESSAGES if not isinstance(m, Bundle)] + [
        encode(m, 2) for m in MESSAGES if not isinstance(m, Hello)
    ]


def _envelopes() -> list[bytes]:
    return [
        seal(
            SENDER,
            recipient_id=RECIPIENT.node_id,
            recipient_kx_key=RECIPIENT.public.kx_key,
            topic=topic,
            stream=bytes(16),
            seq=seq,
            payload=payload,
        )
        for seq, (topic, payload) in enumerate([("", p) for p in _payloads()] + [(DOC, b"")], start=1)
    ]


def messages(data: bytes) -> None:
    try:
        message = decode(data)
    except RemoteProtocolError:
        return
    protocol = 1 if data[:1] == b"{" else 2
    if decode(encode(message, protocol)) != message:
        raise AssertionError("a decoded message does not survive its own encoding")


def envelopes(data: bytes) -> None:
    try:
        header = peek_header(data)
    except EnvelopeRejected:
        header = None
    try:
        opened = open_envelope(RECIPIENT, data, sender_sign_key=lambda node: SENDER.public.sign_key)
    except EnvelopeRejected:
        return
    if header is None or opened.header != header:
        raise AssertionError("an envelope that opens has another header than peek_header read")
    messages(opened.payload)


def grants(data: bytes) -> None:
    try:
        grant = decode_grant(data)
    except KeyGrantInvalid:
        return
    if encode_grant(grant) != data:  # decode_grant accepts the canonical form only
        raise AssertionError("a grant that decodes is not in canonical form")


def relay_frames(data: bytes) -> None:
    try:
        if decode_deposit(encode_deposit(decode_deposit(data))) != decode_deposit(data):
            raise AssertionError("a deposit does not survive its encoding")
    except FrameError:
        pass
    try:
        mail = decode_mail(data)
    except FrameError:
        return
    if decode_mail(encode_mail(mail)) != mail:
        raise AssertionError("mail does not survive its encoding")


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[[], list[bytes]]]] = {
    "messages": (messages, _payloads),
    "envelopes": (envelopes, _envelopes),
    "grants": (grants, lambda: [_grant()]),
    "relay_frames": (
        relay_frames,
        lambda: [encode_deposit(_envelopes()[:3]), encode_mail([(i, e) for i, e in enumerate(_envelopes()[:3])])],
    ),
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [CORPUS_DIR] [libFuzzer options]")
    target, seeds = TARGETS[argv[1]]
    options = [a for a in argv[2:] if a.startswith("-")]
    corpus = [a for a in argv[2:] if not a.startswith("-")]
    for folder in corpus[:1]:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        if not any(path.iterdir()):
            for n, seed in enumerate(seeds()):
                (path / f"seed-{n}").write_bytes(seed)
    atheris.Setup([argv[0], *options, *corpus], target)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main(sys.argv)
