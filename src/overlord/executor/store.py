"""Every liquidation attempt the executor makes, in a SQLite file (WAL).

One row per event acted on: what was planned (pair, amounts, estimated net profit and its
costs), what happened (status, transaction, block, gas) and, for a mined liquidation, what
it realized (the ``LiquidationCall`` amounts and the net profit valued the same way as the
estimate). Amounts are stored as decimal text: they exceed SQLite's 64-bit integers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    """How an attempt ended."""

    EXECUTED = "executed"  # mined, and the LiquidationCall was found
    REVERTED = "reverted"  # mined and reverted
    FAILED = "failed"  # a node error before or while sending (the error says which)
    SKIPPED_HEALTHY = "skipped_healthy"  # the re-check found the user at HF >= 1
    SKIPPED_NO_PLAN = "skipped_no_plan"  # no pair the Pool would accept
    SKIPPED_UNPROFITABLE = "skipped_unprofitable"  # net below PROFIT_MIN_USD
    SKIPPED_INVENTORY = "skipped_inventory"  # the liquidator lacks the debt asset
    SKIPPED_DUPLICATE = "skipped_duplicate"  # this event was handled already


@dataclass(frozen=True)
class Attempt:
    """One row. Base-currency amounts are in the market's base units (USD x 1e8)."""

    event_id: str
    user: str
    trigger_block: int
    status: Status
    recheck_block: int | None = None
    health_factor: int | None = None
    collateral_asset: str | None = None
    debt_asset: str | None = None
    debt_to_cover: int | None = None
    planned_debt_repaid: int | None = None
    planned_collateral_received: int | None = None
    estimated_gross_base: int | None = None
    estimated_gas_base: int | None = None
    estimated_net_base: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    gas_used: int | None = None
    realized_debt_repaid: int | None = None
    realized_collateral_received: int | None = None
    realized_gas_base: int | None = None
    realized_net_base: int | None = None
    error: str | None = None


_COLUMNS = tuple(f.name for f in fields(Attempt))
_INTEGER_COLUMNS = frozenset(("trigger_block", "recheck_block", "block_number", "gas_used"))
# Integers that may exceed 64 bits: stored as decimal text.
_TEXT_NUMBERS = frozenset(
    (
        "health_factor",
        "debt_to_cover",
        "planned_debt_repaid",
        "planned_collateral_received",
        "estimated_gross_base",
        "estimated_gas_base",
        "estimated_net_base",
        "realized_debt_repaid",
        "realized_collateral_received",
        "realized_gas_base",
        "realized_net_base",
    )
)


def _column_type(name: str) -> str:
    return "INTEGER" if name in _INTEGER_COLUMNS else "TEXT"


class AttemptStore:
    """The attempts file. Thread-safe; each write is committed at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        columns = ", ".join(f"{name} {_column_type(name)}" for name in _COLUMNS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, {columns})")
        self._db.execute("CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id)")

    def record(self, attempt: Attempt) -> None:
        """Append one attempt."""
        values = [
            str(v) if name in _TEXT_NUMBERS and v is not None else v
            for name, v in ((name, getattr(attempt, name)) for name in _COLUMNS)
        ]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._lock:
            self._db.execute(
                f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
                values,
            )

    def seen(self, event_id: str) -> bool:
        """Whether an attempt for ``event_id`` was recorded (an event delivered twice)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM attempts WHERE event_id = ? AND status != ? LIMIT 1",
                (event_id, Status.SKIPPED_DUPLICATE.value),
            ).fetchone()
        return row is not None

    def attempts(self) -> Iterator[Attempt]:
        """Every attempt, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM attempts ORDER BY id"  # noqa: S608
            ).fetchall()
        for row in rows:
            values: dict[str, Any] = {
                name: (int(v) if name in _TEXT_NUMBERS and v is not None else v)
                for name, v in zip(_COLUMNS, row, strict=True)
            }
            values["status"] = Status(values["status"])
            yield Attempt(**values)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AttemptStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
