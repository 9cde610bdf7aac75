"""Sync messages: every message survives both wire encodings (protocol 1, JSON; protocol 2, MessagePack), and
`decode` is strict: whatever the bytes, it returns a message or raises `RemoteProtocolError`, never a KeyError,
TypeError or ValueError."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import RemoteProtocolError
from sync.messages import (
    MAX_ENTRIES_PER_MESSAGE,
    PROTOCOL_VERSION,
    Bundle,
    Grants,
    Hello,
    Message,
    SignedUpdate,
    Updates,
    Versions,
    b64d,
    b64e,
    decode,
    encode,
)

DOC = "directory/AAAA-BBBB"
ENTRY = SignedUpdate(DOC, "author-1", 3, 5, b"\x01\x00crdt", b"\xaa" * 64)

ROUND_TRIPS: list[Message] = [
    Hello(nonce=bytes(range(16)), time=1_700_000_000),
    Hello(nonce=b"\xff" * 16, time=0, reply_to=bytes(range(16, 32))),
    Hello(nonce=b"\xff" * 16, time=0, upto=None),  # a protocol-1 node's
    Versions(docs={DOC: {"author-1": 5}}, complete=True, direct=("node-a", "node-b")),
    Grants(grants=(b"grant one", b"\x00" * 300)),
    Versions(docs={}, complete=True),
    Versions(docs={DOC: {"author-1": 5, "author-2": 1}, "directory/other": {}}, complete=False),
    Versions(docs={DOC: {"author-1": 5}}, complete=False, want_missing=False),
    Updates(doc_id=DOC, entries=()),
    Updates(doc_id=DOC, entries=(ENTRY, SignedUpdate(DOC, "author-2", 1, 1, b"", b"sig"))),
]


@pytest.mark.parametrize("protocol", [1, 2])
@pytest.mark.parametrize("message", ROUND_TRIPS, ids=lambda m: type(m).__name__)
def test_each_message_survives_its_encoding(message: Message, protocol: int) -> None:
    decoded = decode(encode(message, protocol))
    if protocol == 2 and isinstance(message, Updates):  # protocol 2 carries updates as a bundle
        assert decoded == Bundle(parts=(message,))
    else:
        assert decoded == message


def test_a_bundle_survives_protocol_2_and_has_no_protocol_1_form() -> None:
    bundle = Bundle(
        parts=(Updates(DOC, (ENTRY,)), Updates("case/OTHER", (SignedUpdate("case/OTHER", "b", 1, 2, b"x", b"s"),)))
    )
    assert decode(encode(bundle, 2)) == bundle
    with pytest.raises(ValueError):
        encode(bundle, 1)


def test_protocol_1_is_compact_sorted_json_with_unpadded_base64url() -> None:
    payload = encode(Hello(nonce=b"\xfb\xff", time=7))
    assert payload == b'{"nonce":"-_8","protocol":1,"t":"hello","time":7,"upto":%d}' % PROTOCOL_VERSION


def test_a_hello_is_json_in_every_protocol() -> None:
    # A protocol-1 node reads it, sees `protocol` 1, ignores `upto`: the two then speak protocol 1.
    hello = Hello(nonce=bytes(16), time=7)
    assert encode(hello, 2) == encode(hello, 1)
    assert json.loads(encode(hello, 2))["protocol"] == 1


def test_protocol_2_carries_bytes_raw_and_is_smaller() -> None:
    # What one note costs on the wire: the body and signature are no longer base64 text.
    note = Updates(
        "case/0123456789AB", (SignedUpdate("case/0123456789AB", "25V8-N29J-N0T7-6F91-P", 7, 7, bytes(380), bytes(64)),)
    )
    ack = Versions(
        {"case/0123456789AB": {"25V8-N29J-N0T7-6F91-P": 7, "3JV4-ZKGQ-PP7F-Q9X2-A": 3}},
        complete=False,
        want_missing=False,
    )
    assert len(encode(note, 2)) <= 380 + 64 + 60 < len(encode(note, 1)) - 150
    assert len(encode(ack, 2)) < len(encode(ack, 1)) - 30
    assert msgpack.unpackb(encode(note, 2))[1][0][1][0][3] == bytes(380)


def test_entries_take_the_document_of_their_message() -> None:
    # The wire form has no per-entry document: an entry cannot claim a document other than its envelope's.
    decoded = decode(encode(Updates(doc_id="directory/x", entries=(ENTRY,))))
    assert isinstance(decoded, Updates)
    assert [e.doc_id for e in decoded.entries] == ["directory/x"]


@given(st.binary(max_size=64))
def test_base64_round_trip(data: bytes) -> None:
    assert b64d(b64e(data)) == data
    assert "=" not in b64e(data)


def _hello(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"t": "hello", "nonce": b64e(bytes(16)), "time": 100, "protocol": 1}
    body.update(overrides)
    return body


def _updates(entries: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"t": "updates", "doc": DOC, "entries": entries}
    body.update(overrides)
    return body


def _entry(author: Any = "a", seq_from: Any = 1, seq_to: Any = 1, body: Any = "AA", sig: Any = "AA") -> list[Any]:
    return [author, seq_from, seq_to, body, sig]


def test_the_valid_bodies_these_tests_start_from_decode() -> None:
    # So each rejection below is caused by the one field it changes.
    assert decode(json.dumps(_hello()).encode()) == Hello(nonce=bytes(16), time=100, upto=None)
    assert decode(json.dumps(_updates([_entry()])).encode()) == Updates(
        DOC, (SignedUpdate(DOC, "a", 1, 1, b"\x00", b"\x00"),)
    )
    assert decode(b'{"t":"versions","docs":{"d":{"a":0}},"complete":true,"want":true}') == Versions(
        {"d": {"a": 0}}, True
    )


BAD_BODIES: dict[str, Any] = {
    "not an object": [1, 2],
    "a string": "hello",
    "no type": {"nonce": "AA"},
    "unknown type": {"t": "goodbye"},
    "type not a string": {"t": ["hello"]},
    "hello without nonce": {k: v for k, v in _hello().items() if k != "nonce"},
    "hello nonce not text": _hello(nonce=16),
    "hello nonce bad base64": _hello(nonce="A"),
    "hello without time": {k: v for k, v in _hello().items() if k != "time"},
    "hello time negative": _hello(time=-1),
    "hello time a float": _hello(time=1.5),
    "hello time a bool": _hello(time=True),
    "hello time a string": _hello(time="100"),
    "hello time too big": _hello(time=2**63),
    "hello without protocol": {k: v for k, v in _hello().items() if k != "protocol"},
    "hello reply_to not text": _hello(reply_to=5),
    "hello upto negative": _hello(upto=-2),
    "hello upto a string": _hello(upto="2"),
    "versions without docs": {"t": "versions", "complete": True, "want": True},
    "versions without complete": {"t": "versions", "docs": {}},
    "versions complete not bool": {"t": "versions", "docs": {}, "complete": 1, "want": True},
    "versions without want": {"t": "versions", "docs": {}, "complete": False},
    "versions want not bool": {"t": "versions", "docs": {}, "complete": False, "want": 0},
    "versions complete but not wanting": {"t": "versions", "docs": {}, "complete": True, "want": False},
    "versions docs a list": {"t": "versions", "docs": [], "complete": True, "want": True},
    "versions vector a list": {"t": "versions", "docs": {"d": [1]}, "complete": True, "want": True},
    "versions seq negative": {"t": "versions", "docs": {"d": {"a": -1}}, "complete": True, "want": True},
    "versions seq a string": {"t": "versions", "docs": {"d": {"a": "1"}}, "complete": True, "want": True},
    "versions seq null": {"t": "versions", "docs": {"d": {"a": None}}, "complete": True, "want": True},
    "versions empty doc id": {"t": "versions", "docs": {"": {}}, "complete": True, "want": True},
    "versions empty author": {"t": "versions", "docs": {"d": {"": 1}}, "complete": True, "want": True},
    "versions doc id too long": {"t": "versions", "docs": {"d" * 513: {}}, "complete": True, "want": True},
    "updates without doc": {"t": "updates", "entries": []},
    "updates doc empty": _updates([], doc=""),
    "updates doc a number": _updates([], doc=7),
    "updates doc too long": _updates([], doc="d" * 513),
    "updates without entries": {"t": "updates", "doc": DOC},
    "updates entries an object": _updates({}),
    "updates too many entries": _updates([_entry()] * (MAX_ENTRIES_PER_MESSAGE + 1)),
    "entry an object": _updates([{"author": "a"}]),
    "entry four fields": _updates([_entry()[:4]]),
    "entry six fields": _updates([[*_entry(), "x"]]),
    "entry author empty": _updates([_entry(author="")]),
    "entry author a number": _updates([_entry(author=1)]),
    "entry seq_from zero": _updates([_entry(seq_from=0, seq_to=1)]),
    "entry seq_to before seq_from": _updates([_entry(seq_from=3, seq_to=2)]),
    "entry seq negative": _updates([_entry(seq_from=-1)]),
    "entry seq a float": _updates([_entry(seq_to=1.0)]),
    "entry seq too big": _updates([_entry(seq_to=2**63)]),
    "entry body not text": _updates([_entry(body=None)]),
    "entry sig bad base64": _updates([_entry(sig="AAAAA")]),
    "second entry bad": _updates([_entry(), _entry(seq_from=0)]),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_bodies_are_the_peers_fault(body: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(json.dumps(body).encode())
    assert info.value.reason == "malformed"


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"\xff\xfe\x00", b"nul\x00", b"[" * 100_000 + b"]" * 100_000, b'{"t":"hello"'],
    ids=["empty", "truncated", "not utf-8", "not json", "deeply nested", "unterminated"],
)
def test_payloads_that_are_not_json_are_refused(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed"):
        decode(payload)


def test_a_huge_integer_is_refused_as_malformed() -> None:
    with pytest.raises(RemoteProtocolError):
        decode(b'{"t":"hello","time":' + b"9" * 5000 + b"}")


@pytest.mark.parametrize(
    "payload",
    [
        rb'{"t":"versions","docs":{"directory/\ud800":{}},"complete":false}',
        rb'{"t":"versions","docs":{"d":{"\udfff":1}},"complete":false}',
        rb'{"t":"updates","doc":"directory/\ud800","entries":[]}',
    ],
    ids=["doc id", "author", "updates doc"],
)
def test_strings_that_are_not_valid_unicode_are_refused(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _shaped(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of a known type whose fields are arbitrary, so decoding gets past the type switch."""
    fields = ["nonce", "time", "reply_to", "protocol", "docs", "complete", "doc", "entries"]
    return st.dictionaries(st.sampled_from(fields), JSON, max_size=6).map(lambda d: {**d, "t": kind})


def _decodes_or_is_refused(payload: bytes) -> None:
    try:
        message = decode(payload)
    except RemoteProtocolError:
        return
    assert isinstance(message, Hello | Versions | Updates | Grants | Bundle)
    protocol = 1 if payload[:1] == b"{" else 2
    assert decode(encode(message, protocol)) == message


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_remote_protocol_error(payload: bytes) -> None:
    _decodes_or_is_refused(payload)


@settings(max_examples=200)
@given(JSON | _shaped("hello") | _shaped("versions") | _shaped("updates"))
def test_arbitrary_json_decodes_or_raises_remote_protocol_error(value: Any) -> None:
    _decodes_or_is_refused(json.dumps(value).encode())


SCALAR = st.none() | st.booleans() | st.integers(min_value=-2, max_value=2**64) | st.text(max_size=6)


@given(
    st.sampled_from(["hello", "versions", "updates"]),
    st.lists(st.lists(SCALAR, min_size=5, max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.dictionaries(st.text(max_size=4), SCALAR, max_size=3), max_size=3),
)
def test_arbitrary_entries_and_vectors_decode_or_raise_remote_protocol_error(
    kind: str, entries: list[Any], docs: dict[str, Any]
) -> None:
    body = {"t": kind, "doc": DOC, "entries": entries, "docs": docs, "complete": True, "want": True}
    _decodes_or_is_refused(json.dumps(body).encode())


# -- protocol 2: MessagePack --------------------------------------------------------------------------------------


def _packed(*fields: Any) -> bytes:
    packed: bytes = msgpack.packb(list(fields), use_bin_type=True)
    return packed


GOOD_ENTRY = ["a", 1, 1, b"\x00", b"\x00"]


def test_the_valid_protocol_2_bodies_these_tests_start_from_decode() -> None:
    assert decode(_packed(1, {"d": {"a": 0}}, True, True)) == Versions({"d": {"a": 0}}, True)
    assert decode(_packed(1, {}, False, False, ["n"])) == Versions({}, False, False, direct=("n",))
    assert decode(_packed(2, [[DOC, [GOOD_ENTRY]]])) == Bundle(
        (Updates(DOC, (SignedUpdate(DOC, "a", 1, 1, b"\x00", b"\x00"),)),)
    )
    assert decode(_packed(3, [b"g"])) == Grants((b"g",))


BAD_V2: dict[str, bytes] = {
    "empty": b"",
    "a map": msgpack.packb({"t": 1}),
    "an integer": msgpack.packb(7),
    "empty array": _packed(),
    "type a bool": _packed(True, {}, True, True),
    "type a string": _packed("versions", {}, True, True),
    "unknown type": _packed(9, []),
    "a hello": _packed(0, b"nonce", 100),
    "extra data": _packed(3, [b"g"]) + b"\x00",
    "truncated": _packed(2, [[DOC, [GOOD_ENTRY]]])[:-3],
    "ext type": _packed(1, msgpack.ExtType(5, b"x"), True, True),
    "versions too few fields": _packed(1, {}, True),
    "versions too many fields": _packed(1, {}, False, False, [], "x"),
    "versions docs a list": _packed(1, [], True, True),
    "versions complete not bool": _packed(1, {}, 1, True),
    "versions complete but not wanting": _packed(1, {}, True, False),
    "versions bytes doc id": _packed(1, {b"d": {}}, True, True),
    "versions seq negative": _packed(1, {"d": {"a": -1}}, True, True),
    "versions seq too big": _packed(1, {"d": {"a": 2**63}}, True, True),
    "versions seq a float": _packed(1, {"d": {"a": 1.0}}, True, True),
    "versions direct not a list": _packed(1, {}, False, False, "n"),
    "bundle empty": _packed(2, []),
    "bundle not a list": _packed(2, {DOC: []}),
    "bundle part one field": _packed(2, [[DOC]]),
    "bundle doc empty": _packed(2, [["", [GOOD_ENTRY]]]),
    "bundle doc bytes": _packed(2, [[DOC.encode(), [GOOD_ENTRY]]]),
    "bundle doc twice": _packed(2, [[DOC, [GOOD_ENTRY]], [DOC, []]]),
    "bundle entries not a list": _packed(2, [[DOC, GOOD_ENTRY]]),
    "entry body as text": _packed(2, [[DOC, [["a", 1, 1, "AA", b"\x00"]]]]),
    "entry sig as text": _packed(2, [[DOC, [["a", 1, 1, b"\x00", "AA"]]]]),
    "entry seq_from zero": _packed(2, [[DOC, [["a", 0, 1, b"", b""]]]]),
    "entry seq_to before seq_from": _packed(2, [[DOC, [["a", 3, 2, b"", b""]]]]),
    "entry four fields": _packed(2, [[DOC, [GOOD_ENTRY[:4]]]]),
    "entry author bytes": _packed(2, [[DOC, [[b"a", 1, 1, b"", b""]]]]),
    "too many entries in all": _packed(2, [[DOC, [GOOD_ENTRY] * 6_000], ["d2", [GOOD_ENTRY] * 6_000]]),
    "string not utf-8": b"\x92\x01\xa2\xff\xfe",
    "grants empty": _packed(3, []),
    "grants text": _packed(3, ["g"]),
    "grant empty": _packed(3, [b""]),
    "grant too large": _packed(3, [b"g" * (64 * 1024 + 1)]),
    "forged array length": b"\xdd\xff\xff\xff\xff",
    "deeply nested": b"\x91" * 100_000 + b"\x01",
}


@pytest.mark.parametrize("payload", BAD_V2.values(), ids=BAD_V2.keys())
def test_malformed_protocol_2_payloads_are_the_peers_fault(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(payload)
    assert info.value.reason == "malformed"


PACKABLE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.integers(0, 4), st.lists(PACKABLE, max_size=5))
def test_arbitrary_protocol_2_arrays_decode_or_raise_remote_protocol_error(kind: int, fields: list[Any]) -> None:
    _decodes_or_is_refused(_packed(kind, *fields))


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=6),
            st.lists(st.lists(PACKABLE | st.binary(max_size=4), min_size=5, max_size=5), max_size=3),
        ),
        max_size=3,
    )
)
def test_arbitrary_bundles_decode_or_raise_remote_protocol_error(parts: list[Any]) -> None:
    _decodes_or_is_refused(_packed(2, [list(p) for p in parts]))
