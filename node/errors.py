"""The node's errors. Each docstring is what the officer or operator is told.

Every error a user can cause derives from `SeajustError` (rooted in `crypto.errors`, the lowest
layer) and carries the HTTP status the API maps it to, so one middleware and one CLI handler
turn any of them into a clear message without a traceback.
"""

from crypto.errors import SeajustError


class NodeError(SeajustError):
    """The node could not do that."""

    http_status = 400


class HomeNotFound(NodeError):
    """No node home here: create one with `seajust init HOME --name ... --country ...`."""


class HomeExists(NodeError):
    """That folder already holds a node; choose another folder or remove it first."""


class ConfigError(NodeError):
    """The node's configuration file is invalid."""


class PassphraseMissing(NodeError):
    """No passphrase: set SEAJUST_PASSPHRASE, pass --passphrase-file, or run in a terminal."""


class StorageError(NodeError):
    """The node's database could not be opened or written."""

    http_status = 503


class StorageFull(StorageError):
    """The disk holding the node's database is full, so nothing was changed; free space on it and writes resume."""

    http_status = 507


class StorageReadOnly(StorageError):
    """The node's database cannot be written (read-only or failing disk), so nothing was changed; reads still work."""

    http_status = 503


class SchemaTooNew(StorageError):
    """The database was written by a newer version of SEAJust Node; upgrade before starting it."""


class ValidationError(NodeError):
    """Some fields are missing or invalid."""

    http_status = 422

    def __init__(self, message: str | None = None, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class BadRequest(NodeError):
    """The request body is not valid JSON of the expected shape."""

    http_status = 400


class Unauthorized(NodeError):
    """Missing or invalid API token: send `Authorization: Bearer TOKEN` (create one with `seajust token create`)."""

    http_status = 401


class Forbidden(NodeError):
    """This node may not change that."""

    http_status = 403


class NotFound(NodeError):
    """No such record."""

    http_status = 404


class PeerError(NodeError):
    """That peer cannot be trusted as given."""

    http_status = 422


class CheckFailed(NodeError):
    """The draft does not meet the requested state's requirements yet."""

    http_status = 409

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(
            "the draft cannot be sent yet: "
            + "; ".join(p["message"] for p in problems[:5])
            + ("" if len(problems) <= 5 else f" (and {len(problems) - 5} more)")
        )
        self.problems = problems


class Conflict(NodeError):
    """That was already done, or contradicts what is recorded."""

    http_status = 409


class CatchingUp(NodeError):
    """This node was restored from a backup and is getting its own later changes back from its peers first."""

    http_status = 503
