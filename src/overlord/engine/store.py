"""The engine's checkpoint: its whole state in SQLite, one transaction per block.

``DATA_DIR/engine.sqlite`` (WAL) holds what a restart needs to go live in seconds instead
of re-reading every user: every user's positions (see :mod:`overlord.engine.state_codec`),
the market of the last saved block (reserves, eMode categories, prices, token addresses),
the checkpoint (that block's number, hash and timestamp) and the recent blocks' hashes
and re-read users, which let a restart roll back a reorg that happened while it was down
exactly as the live follower does.

**Atomicity.** :meth:`EngineStore.apply_block` writes a block's re-read users, the new
market and the checkpoint in one transaction, so the file always holds the state of one
whole block: a crash (``kill -9`` included) leaves the previous block or this one, never
half of it. The initial sync is one transaction too: no checkpoint exists until every
user is in.

**A write that fails** (a full disk, a data directory made read-only) is an
:class:`EngineStoreError` naming the file and the cause; nothing is lost: the block's
changes stay pending in memory and go out with the next block's transaction, so the file
still holds one consistent block (an older one) and catches up when writes succeed again.

Thread-safe: the block path writes, the addresses watcher may drop users, a reader (the
fault suite, ``overlord verify --state``) may open the file at the same time; WAL lets
readers see the last committed block while the writer goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from overlord.aave import UserAccount
from overlord.chain.reader import MarketState
from overlord.engine.positions import PositionTable
from overlord.engine.state_codec import (
    StateCodecError,
    decode_positions,
    encode_positions,
    market_state_document,
    market_state_from_document,
    records_of,
)

ENGINE_DB: Final = "engine.sqlite"
SCHEMA_VERSION: Final = 1
LOW_DISK_BYTES: Final = 1 << 20

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block INTEGER NOT NULL,
    hash TEXT,
    timestamp INTEGER NOT NULL,
    market TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    first INTEGER NOT NULL,
    hash TEXT,
    reread TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    address TEXT PRIMARY KEY,
    emode INTEGER NOT NULL,
    positions BLOB NOT NULL,
    extras TEXT
);
"""


class EngineStoreError(Exception):
    """The store cannot be used or written (names the file and the cause)."""


@dataclass(frozen=True)
class ProcessedBlock:
    """What processing one block did to the table: for rolling it back after a reorg.

    ``first``..``number`` is the range of blocks whose logs were read; ``reread`` the users
    whose rows were read at ``number``; ``block_hash`` the hash the block was processed as
    (``None`` when the caller did not know it).
    """

    number: int
    first: int
    block_hash: str | None
    reread: frozenset[str]


@dataclass(frozen=True)
class Checkpoint:
    """The last saved block and how many users the store holds."""

    block: int
    block_hash: str | None
    block_timestamp: int
    users: int


@dataclass(frozen=True)
class Restored:
    """What :meth:`EngineStore.load_into` put back: the market, the checkpoint, the
    remembered blocks (oldest first)."""

    state: MarketState
    checkpoint: Checkpoint
    history: tuple[ProcessedBlock, ...]


@dataclass
class _Pending:
    """Changes not yet written (a failed write keeps them for the next transaction)."""

    accounts: dict[str, UserAccount]
    dropped: set[str]
    blocks: dict[int, ProcessedBlock]
    state: MarketState | None = None
    block_hash: str | None = None


class EngineStore:
    """The checkpoint file of one Pool on one chain (see the module docstring)."""

    def __init__(self, path: Path, *, pool: str, chain_id: int, history_blocks: int = 128) -> None:
        self.path = path
        self.history_blocks = history_blocks
        self._lock = threading.Lock()
        self._pending = _Pending({}, set(), {})
        self._sync_open = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except OSError as exc:
            raise EngineStoreError(f"cannot open {path}: {exc}") from None
        except sqlite3.Error as exc:
            raise EngineStoreError(f"cannot open {path}: {_cause(exc, path.parent)}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints
            self._db.executescript(_SCHEMA)
            self._claim(pool.lower(), chain_id)
        except sqlite3.Error as exc:
            self._db.close()
            raise EngineStoreError(f"cannot use {path}: {_cause(exc, self.path.parent)}") from None

    def close(self) -> None:
        """Close the file (pending changes not yet written stay unwritten)."""
        self._db.close()

    def __enter__(self) -> EngineStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _claim(self, pool: str, chain_id: int) -> None:
        """Tie a new file to the Pool and chain; refuse a file of another."""
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        wanted = {"schema": str(SCHEMA_VERSION), "pool": pool, "chain_id": str(chain_id)}
        if not rows:
            with self._transaction():
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", wanted.items())
            return
        for key, value in wanted.items():
            if rows.get(key) != value:
                raise EngineStoreError(
                    f"{self.path} holds the state of {key} {rows.get(key)}, not {value}; "
                    "use another data directory, or delete the file for a fresh sync"
                )

    # Reading.

    def checkpoint(self) -> Checkpoint | None:
        """The last saved block, or ``None`` when nothing was saved yet."""
        with self._lock:
            row = self._db.execute("SELECT block, hash, timestamp FROM checkpoint").fetchone()
            if row is None:
                return None
            (users,) = self._db.execute("SELECT count(*) FROM users").fetchone()
        return Checkpoint(int(row[0]), row[1], int(row[2]), int(users))

    def addresses(self) -> list[str]:
        """Every stored user's address, in the order they were stored."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT address FROM users ORDER BY rowid")]

    def accounts(self) -> Iterator[UserAccount]:
        """Every stored user's account (for checks; the engine loads with
        :meth:`load_into`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT address, emode, positions, extras FROM users ORDER BY rowid"
            ).fetchall()
        for address, emode, blob, extras in rows:
            yield decode_positions(address, int(emode), bytes(blob), extras)

    def market(self) -> MarketState | None:
        """The market of the checkpoint block, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT market FROM checkpoint").fetchone()
        return None if row is None else self._market(row[0])

    def load_into(self, table: PositionTable) -> Restored | None:
        """Fill the empty ``table`` with every stored user; ``None`` when nothing was saved.

        Users are loaded in their stored order with numpy in one pass; the few with
        extras (stable debt, a GHO discount) or balances of 2**128 and more go in one by
        one.

        Raises:
            EngineStoreError: the file does not decode (names the user or field).
        """
        if table.users:
            raise ValueError("load_into needs an empty table")
        with self._lock:
            row = self._db.execute(
                "SELECT block, hash, timestamp, market FROM checkpoint"
            ).fetchone()
            if row is None:
                return None
            users = self._db.execute(
                "SELECT address, emode, positions, extras FROM users ORDER BY rowid"
            ).fetchall()
            blocks = self._db.execute(
                "SELECT number, first, hash, reread FROM blocks ORDER BY number"
            ).fetchall()
        state = self._market(row[3])
        try:
            _bulk_load(table, users)
            history = tuple(
                ProcessedBlock(int(n), int(f), h, frozenset(json.loads(r))) for n, f, h, r in blocks
            )
        except (StateCodecError, ValueError) as exc:
            raise EngineStoreError(f"{self.path} does not decode: {exc}") from None
        checkpoint = Checkpoint(int(row[0]), row[1], int(row[2]), len(users))
        return Restored(state, checkpoint, history)

    def _market(self, text: str) -> MarketState:
        try:
            return market_state_from_document(json.loads(text))
        except (StateCodecError, ValueError) as exc:
            raise EngineStoreError(
                f"{self.path}: the stored market does not decode: {exc}"
            ) from None

    # Writing.

    def begin_sync(self) -> None:
        """Start the initial sync's transaction: every user is replaced, and no
        checkpoint exists until :meth:`finish_sync` commits."""
        with self._lock:
            self._pending = _Pending({}, set(), {})
            self._write(lambda: self._db.execute("BEGIN IMMEDIATE"))
            self._sync_open = True
            self._write(self._clear)

    def add_synced(self, accounts: Iterable[UserAccount]) -> None:
        """Add a batch of the initial sync's users (inside :meth:`begin_sync`)."""
        with self._lock:
            if not self._sync_open:
                raise RuntimeError("add_synced outside begin_sync")
            self._write(lambda: self._put_accounts(accounts))

    def finish_sync(self, state: MarketState) -> None:
        """Commit the initial sync at ``state``'s block."""
        with self._lock:
            if not self._sync_open:
                raise RuntimeError("finish_sync outside begin_sync")
            self._sync_open = False
            try:
                self._put_checkpoint(state, None)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise EngineStoreError(
                    f"cannot write {self.path}: {_cause(exc, self.path.parent)}"
                ) from None

    def abort_sync(self) -> None:
        """Give up an initial sync's transaction (the file keeps what it had)."""
        with self._lock:
            if self._sync_open:
                self._sync_open = False
                self._rollback()

    def apply_block(
        self,
        state: MarketState,
        block: ProcessedBlock,
        accounts: Sequence[UserAccount],
        dropped: Iterable[str] = (),
    ) -> None:
        """Save one processed block in one transaction: its re-read users, ``dropped``
        users removed, the market and the checkpoint, the block in the history.

        Raises:
            EngineStoreError: the write failed; the changes stay pending and go out with
                the next call (see the module docstring).
        """
        with self._lock:
            pending = self._pending
            pending.accounts.update((a.address.lower(), a) for a in accounts)
            for address in dropped:
                pending.accounts.pop(address.lower(), None)
                pending.dropped.add(address.lower())
            pending.blocks = {n: b for n, b in pending.blocks.items() if n < block.number}
            pending.blocks[block.number] = block
            pending.state, pending.block_hash = state, block.block_hash
            self._flush()

    def drop(self, addresses: Iterable[str]) -> None:
        """Remove users now (an addresses file shrank); pending if the write fails."""
        with self._lock:
            for address in addresses:
                self._pending.accounts.pop(address.lower(), None)
                self._pending.dropped.add(address.lower())
            self._flush()

    @property
    def pending(self) -> int:
        """Users and blocks whose changes are not written yet (0 when all is saved)."""
        with self._lock:
            p = self._pending
            return len(p.accounts) + len(p.dropped) + len(p.blocks)

    def _flush(self) -> None:
        pending = self._pending
        if self._sync_open:
            raise RuntimeError("a block cannot be saved inside the initial sync")

        def write() -> None:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "DELETE FROM users WHERE address = ?", ((a,) for a in sorted(pending.dropped))
            )
            self._put_accounts(pending.accounts.values())
            for stored in pending.blocks.values():
                self._db.execute(
                    "DELETE FROM blocks WHERE number >= ?", (stored.number,)
                )  # a rolled-back block's row is replaced
                self._db.execute(
                    "INSERT INTO blocks VALUES (?, ?, ?, ?)",
                    (
                        stored.number,
                        stored.first,
                        stored.block_hash,
                        json.dumps(sorted(stored.reread)),
                    ),
                )
            if pending.state is not None:
                self._put_checkpoint(pending.state, pending.block_hash)
                self._db.execute(
                    "DELETE FROM blocks WHERE number <= ?",
                    (pending.state.block_number - self.history_blocks,),
                )
            self._db.execute("COMMIT")

        try:
            write()
        except sqlite3.Error as exc:
            self._rollback()
            raise EngineStoreError(
                f"cannot write {self.path}: {_cause(exc, self.path.parent)}"
            ) from None
        self._pending = _Pending({}, set(), {})

    def _write(self, action: Any) -> None:
        try:
            action()
        except sqlite3.Error as exc:
            self._sync_open = False
            self._rollback()
            raise EngineStoreError(
                f"cannot write {self.path}: {_cause(exc, self.path.parent)}"
            ) from None

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction is gone with the failure that brought us here

    def _clear(self) -> None:
        for table in ("users", "blocks", "checkpoint"):
            self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names

    def _put_accounts(self, accounts: Iterable[UserAccount]) -> None:
        self._db.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
            "emode = excluded.emode, positions = excluded.positions, extras = excluded.extras",
            (
                (account.address.lower(), account.emode_category, *encode_positions(account))
                for account in accounts
            ),
        )

    def _put_checkpoint(self, state: MarketState, block_hash: str | None) -> None:
        market = json.dumps(market_state_document(state), separators=(",", ":"))
        self._db.execute(
            "INSERT INTO checkpoint VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "block = excluded.block, hash = excluded.hash, timestamp = excluded.timestamp, "
            "market = excluded.market",
            (state.block_number, block_hash, state.block_timestamp, market),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        self._db.execute("COMMIT")


def _cause(exc: sqlite3.Error, directory: Path | None = None) -> str:
    """SQLite's message, with what it usually means for a data directory (SQLite says
    "unable to open" or "disk I/O error" where the system said read-only or full)."""
    message = str(exc)
    if "readonly" in message or "read-only" in message:
        return f"{message} (the data directory or file is read-only)"
    if "full" in message:
        return f"{message} (the disk is full)"
    if directory is not None:
        if not os.access(directory, os.W_OK):
            return f"{message} (the data directory {directory} is read-only)"
        free = shutil.disk_usage(directory).free
        if free < LOW_DISK_BYTES:
            return f"{message} (the disk is full: {free:,} bytes free in {directory})"
    return message


def _bulk_load(table: PositionTable, users: Sequence[tuple[Any, ...]]) -> None:
    """Stored users into the empty ``table``: columns in one numpy pass for the plain
    ones, :meth:`PositionTable.upsert` for users with extras or huge balances."""
    plain: list[tuple[str, int, bytes]] = []
    special: list[UserAccount] = []
    for address, emode, blob, extras in users:
        data = bytes(blob)
        records_of(data, address)  # a torn blob is an error here, not a shifted table
        if extras is None:
            plain.append((address, int(emode), data))
        else:
            special.append(decode_positions(address, int(emode), data, extras))
    if not plain:
        for account in special:
            table.upsert(account)
        return
    records = records_of(b"".join(blob for _a, _e, blob in plain), "(all)")
    counts = np.fromiter(
        (len(blob) // records.dtype.itemsize for _a, _e, blob in plain), dtype=np.intp
    )
    row_user = np.repeat(np.arange(len(plain), dtype=np.intp), counts)
    a, v = records["a"].astype(np.uint64), records["v"].astype(np.uint64)
    huge = (a[:, 0] | a[:, 1] | v[:, 0] | v[:, 1]) != 0
    huge_users = set(row_user[huge].tolist())
    if huge_users:
        keep = ~np.isin(row_user, list(huge_users))
        special += [_decoded(plain[u]) for u in sorted(huge_users)]
        kept_users = [u for u in range(len(plain)) if u not in huge_users]
        renumber = np.full(len(plain), -1, dtype=np.intp)
        renumber[kept_users] = np.arange(len(kept_users), dtype=np.intp)
        plain = [plain[u] for u in kept_users]
        records, a, v, row_user = records[keep], a[keep], v[keep], renumber[row_user[keep]]
    table.bulk_add(
        [address for address, _e, _b in plain],
        np.fromiter((emode for _a, emode, _b in plain), dtype=np.uint8, count=len(plain)),
        row_user,
        records["reserve"].astype(np.int16),
        records["flags"].astype(np.uint8),
        (a[:, 2].copy(), a[:, 3].copy()),
        (v[:, 2].copy(), v[:, 3].copy()),
    )
    for account in special:
        table.upsert(account)


def _decoded(user: tuple[str, int, bytes]) -> UserAccount:
    address, emode, blob = user
    return decode_positions(address, emode, blob, None)
