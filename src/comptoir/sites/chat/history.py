"""The chat's history: every message and direct message in SQLite, numbered for good.

Ids come from the table's AUTOINCREMENT key, so they grow across the whole site and are never
given twice, not even after old rows are pruned: a client's last seen id stays meaningful across
restarts. One process writes (the hub, or the only worker); the workers read the same file
(WAL lets readers and the writer go on at once). Retention keeps at most `keep` messages per
room and none older than `keep_for`; what it removes is remembered per room (`pruned`), so a
client coming back after it can be told that its gap cannot be filled (`truncated`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Event = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    room TEXT,
    sender TEXT NOT NULL,
    recipient TEXT,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_room ON messages (room, id);
CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
CREATE INDEX IF NOT EXISTS messages_dm ON messages (recipient, sender) WHERE room IS NULL;
CREATE TABLE IF NOT EXISTS pruned (room TEXT PRIMARY KEY, upto INTEGER NOT NULL);
"""

# Pruning runs after this many writes or this many seconds, whichever first: a DELETE per
# message would double the cost of a post.
PRUNE_EVERY = 200
PRUNE_AFTER = 60.0
# Direct messages are kept under this name in `pruned` (they have no room).
DM_KEY = ""


def _row_event(row: Sequence[Any]) -> Event:
    id_, ts, room, sender, recipient, text = row
    if room is None:
        return {"type": "dm", "id": id_, "ts": ts, "from": sender, "to": recipient, "text": text}
    return {"type": "message", "id": id_, "ts": ts, "room": room, "from": sender, "text": text}


_COLUMNS = "id, ts, room, sender, recipient, text"


class History:
    """One history file: appends (one writer), reads (any process)."""

    def __init__(
        self,
        path: Path,
        *,
        keep: int = 10_000,
        keep_for: float = 30 * 86400.0,
        now: Callable[[], float] = time.time,
        writer: bool = True,
    ) -> None:
        self.path = path
        self.keep = keep
        self.keep_for = keep_for
        self.now = now
        if writer:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 5000")
        if writer:
            self.db.execute("PRAGMA journal_mode = WAL")
            # WAL with synchronous=NORMAL: a commit is not fsynced (a power cut may lose the last
            # moments), which keeps a post at tens of microseconds (docs/decisions.md).
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.executescript(_SCHEMA)
            self.prune()
        self.writes = 0
        self.pruned_at = time.monotonic()

    def close(self) -> None:
        """Close the file."""
        self.db.close()

    def append(
        self, room: str | None, sender: str, text: str, recipient: str | None = None
    ) -> Event:
        """Store a message (room None: a direct message to `recipient`); the event, with its id."""
        ts = int(self.now() * 1000)
        cur = self.db.execute(
            "INSERT INTO messages (ts, room, sender, recipient, text) VALUES (?, ?, ?, ?, ?)",
            (ts, room, sender, recipient, text),
        )
        id_ = cur.lastrowid
        assert id_ is not None
        self.writes += 1
        if self.writes >= PRUNE_EVERY or time.monotonic() - self.pruned_at > PRUNE_AFTER:
            self.prune()
        return _row_event((id_, ts, room, sender, recipient, text))

    def prune(self) -> None:
        """Apply retention: at most `keep` messages per room, none older than `keep_for`."""
        self.writes = 0
        self.pruned_at = time.monotonic()
        cutoff = int((self.now() - self.keep_for) * 1000)
        marks: dict[str, int] = {}
        for room, upto in self.db.execute(
            "SELECT COALESCE(room, ''), MAX(id) FROM messages WHERE ts < ? GROUP BY room",
            (cutoff,),
        ):
            marks[room] = upto
        for (room,) in self.db.execute("SELECT DISTINCT room FROM messages WHERE room IS NOT NULL"):
            row = self.db.execute(
                "SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (room, self.keep),
            ).fetchone()
            if row is not None:
                marks[room] = max(marks.get(room, 0), row[0])
        if not marks:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for room, upto in marks.items():
                if room == DM_KEY:
                    self.db.execute("DELETE FROM messages WHERE room IS NULL AND id <= ?", (upto,))
                else:
                    self.db.execute("DELETE FROM messages WHERE room = ? AND id <= ?", (room, upto))
                self.db.execute(
                    "INSERT INTO pruned (room, upto) VALUES (?, ?) ON CONFLICT (room) "
                    "DO UPDATE SET upto = MAX(upto, excluded.upto)",
                    (room, upto),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def last_id(self) -> int:
        """The highest id ever given (0 before the first message)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return int(row[0]) if row else 0

    def pruned_upto(self, room: str) -> int:
        """The highest id retention removed from `room` (0: nothing removed)."""
        row = self.db.execute("SELECT upto FROM pruned WHERE room = ?", (room,)).fetchone()
        return int(row[0]) if row else 0

    def recent(self, room: str, limit: int) -> list[Event]:
        """The last `limit` messages of a room, oldest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?",
            (room, limit),
        ).fetchall()
        return [_row_event(r) for r in reversed(rows)]

    def after(self, room: str, after: int, limit: int) -> list[Event]:
        """Up to `limit` messages of a room with an id above `after`, oldest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
            (room, after, limit),
        ).fetchall()
        return [_row_event(r) for r in rows]

    def before(self, room: str, before: int, limit: int) -> list[Event]:
        """Up to `limit` messages of a room with an id below `before`, oldest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (room, before, limit),
        ).fetchall()
        return [_row_event(r) for r in reversed(rows)]

    def direct_after(self, nick: str, after: int, limit: int) -> list[Event]:
        """Direct messages to or from `nick` with an id above `after`, oldest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room IS NULL AND (recipient = ? OR sender = ?)"
            " AND id > ? ORDER BY id LIMIT ?",
            (nick, nick, after, limit),
        ).fetchall()
        return [_row_event(r) for r in rows]

    def rooms(self) -> dict[str, tuple[int, int]]:
        """Room → (messages kept, last id), for every room with a message."""
        return {
            room: (count, last)
            for room, count, last in self.db.execute(
                "SELECT room, COUNT(*), MAX(id) FROM messages WHERE room IS NOT NULL GROUP BY room"
            )
        }
