"""Sync errors, split as h11 does: who broke the protocol decides who is told what."""

from crypto.errors import SeajustError


class ProtocolError(SeajustError):
    """The sync protocol was broken."""


class LocalProtocolError(ProtocolError):
    """This node tried to do something the sync protocol does not allow (a bug here)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the sync protocol does not allow; the session is closed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class UpdateRejected(SeajustError):
    """A document update was refused: not signed by its author, or its author may not write there."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ReplicaUnavailable(SeajustError):
    """This node could not store what a peer sent (its disk refuses writes): nothing of it is acknowledged, and
    the peer offers it again on a later session. Not the peer's fault, so never counted as a rejection."""
