"""A node restored from a backup takes back its own later updates from its peers before it writes.

Its peers may hold updates this node signed after the backup was taken. A change made before
they are back would take sequence numbers the peers already hold, and the peers would ignore
it as already seen: that change would be lost for everyone but this node. So `seajust
restore` leaves a marker file (`HOME/catching-up`), and while it is there the node refuses
every local document change (`CatchingUp`, HTTP 503).

The marker goes once every trusted peer has sent its complete version list (in a session or
by relay mail) and this node holds, for every document, at least the highest sequence number
of its own that any of those lists named: from then on its next number is fresh everywhere.
An operator whose peer will never answer removes the marker by hand (the node picks that up
at once); the node then risks exactly the loss described above for what that peer held.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from node.documents import utc_now
from sync.messages import VersionVector

log = logging.getLogger(__name__)

MARKER_NAME = "catching-up"


def mark(home: Path, *, backup_created_at: str) -> None:
    """Leave the marker in a node home (at restore)."""
    text = json.dumps({"restored_at": utc_now(), "backup_created_at": backup_created_at}) + "\n"
    (home / MARKER_NAME).write_text(text, encoding="utf-8")


class CatchUp:
    """Tracks which peers answered and what of this node's own work they hold, until nothing is missing."""

    def __init__(
        self,
        marker: Path,
        me: str,
        *,
        peers: Callable[[], Iterable[str]],
        held: Callable[[str], VersionVector],
    ) -> None:
        self._marker = marker
        self._me = me
        self._peers = peers
        self._held = held
        self.active = marker.exists()
        self.answered: set[str] = set()
        self.need: dict[str, int] = {}  # doc -> this node's highest seq any answering peer holds

    def refusal(self) -> str | None:
        """Why a local change must wait, or None; the DocumentStore asks before every change."""
        if not self.active:
            return None
        if not self._marker.exists():  # removed by the operator
            self.active = False
            log.warning("catch-up marker removed by hand: local changes allowed again")
            return None
        waiting = self.waiting_for()
        if waiting:
            return (
                f"this node was restored from a backup and is catching up: {len(waiting)} trusted peer(s) have not "
                "answered yet, and changes made now could be lost; try again once they have"
            )
        return (
            "this node was restored from a backup and is still receiving its own later changes back from its "
            "peers; try again in a moment"
        )

    def waiting_for(self) -> list[str]:
        return sorted(set(self._peers()) - self.answered)

    def behind(self) -> dict[str, int]:
        """Documents whose own updates a peer holds beyond what this node holds: doc -> how many."""
        gaps = {}
        for doc_id, seq in self.need.items():
            have = self._held(doc_id).get(self._me, 0)
            if have < seq:
                gaps[doc_id] = seq - have
        return gaps

    def versions_received(self, peer: str, docs: Mapping[str, VersionVector]) -> None:
        """A peer's complete version list: what it holds of this node's work."""
        if not self.active:
            return
        self.answered.add(peer)
        for doc_id, vector in docs.items():
            seq = vector.get(self._me, 0)
            if seq > self.need.get(doc_id, 0):
                self.need[doc_id] = seq
        self.check()

    def check(self) -> bool:
        """End the catch-up if nothing is missing any more; True once it is over."""
        if not self.active:
            return True
        if self.waiting_for() or self.behind():
            return False
        self.active = False
        try:
            self._marker.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # allowed now; the next start checks again
            log.warning("could not remove the catch-up marker: %s", exc.strerror or exc)
        log.info("caught up with every trusted peer after the restore: local changes allowed again")
        return True
