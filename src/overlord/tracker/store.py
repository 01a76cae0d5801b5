"""The tracker's persistent state: each source's cursor and the seen-set, in SQLite.

``DATA_DIR/tracker.sqlite`` (WAL). The prior tracker kept its seen-set in memory, so every
restart ran the bootstrap logic again and anything liquidated while it was down was never
reported; here the seen-set and the cursors survive restarts.

The contract that makes "nothing lost" hold: :meth:`TrackerStore.commit` records a poll's
new records as seen *and* moves the source's cursor in one transaction, and the tracker
calls it only after it has delivered those records. A crash before the commit re-delivers
them on the next start (at least once, with stable ids); a crash after it has lost
nothing. Each row keeps the whole record, so ``overlord backfill`` and reports can read the
history without a node.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from overlord.tracker.records import LiquidationRecord

TRACKER_DB: Final = "tracker.sqlite"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    user TEXT NOT NULL,
    suppressed INTEGER NOT NULL,
    record TEXT NOT NULL,
    first_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (timestamp);
"""


class TrackerStoreError(Exception):
    """The data directory or its database cannot be used (names the path and the cause)."""


class TrackerStore:
    """The cursors and the seen-set (see the module docstring). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise TrackerStoreError(f"tracker store {path}: {exc}") from exc
        self._lock = threading.Lock()

    @classmethod
    def in_dir(cls, data_dir: Path) -> TrackerStore:
        """The store of a data directory."""
        return cls(data_dir / TRACKER_DB)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> TrackerStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def cursor(self, source: str) -> str | None:
        """Where ``source``'s next poll starts; ``None`` before its first commit."""
        with self._lock:
            row = self._db.execute(
                "SELECT cursor FROM cursors WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else str(row[0])

    def unseen(self, records: Iterable[LiquidationRecord]) -> list[LiquidationRecord]:
        """``records`` not in the seen-set, each once, in their order."""
        distinct = list({record.id: record for record in records}.values())
        if not distinct:
            return []
        with self._lock:
            known = {
                row[0]
                for chunk in _chunks([record.id for record in distinct], 500)
                for row in self._db.execute(
                    f"SELECT id FROM seen WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608 (placeholders only)
                    chunk,
                )
            }
        return [record for record in distinct if record.id not in known]

    def commit(
        self,
        source: str,
        cursor: str,
        records: Sequence[LiquidationRecord],
        *,
        suppressed: bool = False,
    ) -> None:
        """Mark ``records`` seen and set ``source``'s cursor, atomically.

        ``suppressed`` marks a bootstrap batch: seen, never delivered.
        """
        now = time.time()
        rows = [
            (
                record.id,
                record.source.value,
                record.timestamp,
                record.user,
                int(suppressed),
                json.dumps(record.to_document(), sort_keys=True),
                now,
            )
            for record in records
        ]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.execute(
                    "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(source) "
                    "DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                    (source, cursor, now),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise TrackerStoreError(f"tracker store {self.path}: {exc}") from exc

    def seen_total(self) -> int:
        """How many liquidations are in the seen-set."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])

    def seen_ids(self) -> set[str]:
        """Every id in the seen-set (delivered or suppressed at a bootstrap)."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM seen")}

    def recent(self, count: int) -> list[LiquidationRecord]:
        """The ``count`` most recent seen liquidations (by timestamp, then id), newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM seen ORDER BY timestamp DESC, id DESC LIMIT ?", (count,)
            ).fetchall()
        return [LiquidationRecord.from_document(json.loads(row[0])) for row in rows]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
