"""SEAJust Node's cryptography: identities, node IDs and cards, envelopes, signed updates, key file.

Everything here is a pure function or a small value type, with randomness and clocks passed in
where tests need to pin them, so each property (what a relay can see, what a tampered byte
does) is tested byte for byte without a network or a database. The one exception is
`keystore`, which reads and writes the key file, because its format and its safe writing are
one concern. Nothing here logs, and no error message carries a secret or a payload.
"""
