"""Reconciler: a periodic background check that the engine's positions equal the chain's.

The engine keeps every user's positions up to date from events. A missed or misread event
would leave a user wrong until they act again; the reconciler finds such users. Each round
walks every user of the table in chunks: for a chunk it captures, under ``engine.lock``,
the last processed block, the market state of that block and the chunk's stored accounts,
then reads the same users from the chain *at that block* on its own client, and compares
what the account math uses:

- the configuration flags (borrowing, collateral) of every reserve;
- the eMode category;
- for each reserve flagged on both sides: the scaled aToken balance, the scaled variable
  debt, the stable debt (principal, rate, timestamp) and the 3.3 GHO discount.

A table-made and a reader-made account differ in form, not in what the math reads: the
table stores a row (zero balances included) for every flagged reserve, where the reader
has no position for a flagged reserve id without a reserve (a dropped reserve's gap); the
table keeps stable debt only under a borrowing flag. So positions are compared through
:meth:`UserAccount.position` (an absent position is zero balances), stable debt and the
GHO discount are ignored where the reserve is not borrowed, and a zero-principal stable
debt or a zero-percent discount counts as none (the math gives them no weight).

Each difference becomes a :class:`Mismatch`: logged as a warning, handed to
``on_mismatch``, and the user is marked for :meth:`Engine.reread_next`, so the next
processed block heals them (a request that lands while a block is being read can be
cleared with that block's bookkeeping; the next round then finds the user again and asks
again). A user whose read fails (an :class:`RpcError`) is counted in
``errors`` and skipped until the next round; one bad answer in a batch fails the batch, so
a failed chunk is split in halves until the bad users are isolated.

Users dropped on purpose (:meth:`Engine.drop_users`, an addresses file that shrank) keep
their index in the table with no positions. Give the reconciler the dropped set
(``dropped``, e.g. :meth:`AddressesWatcher.dropped_users`) or it would see each of them
as "empty in the table, positions on chain" and read them back in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final

from overlord.aave import UserAccount, UserReserve
from overlord.aave.configuration import flagged_reserves
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient, RpcError, RpcTransportError
from overlord.engine.engine import Engine

log = logging.getLogger("overlord.reconcile")

BALANCE_FIELDS: Final = (
    "scaled_atoken_balance",
    "scaled_variable_debt",
    "stable_debt",
    "gho_discount",
)


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field the table and the chain disagree on, with both values."""

    field: str  # "emode_category", "reserve[3].collateral", "reserve[3].scaled_variable_debt"
    stored: object
    chain: object


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A user whose stored positions differ from the chain's at ``block``."""

    user: str
    block: int
    differences: tuple[FieldDifference, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the differing fields."""
        return tuple(difference.field for difference in self.differences)


@dataclass(frozen=True)
class ReconcileReport:
    """What one round did.

    ``block`` is the block of the last chunk compared (chunks are captured one by one, so a
    round may span blocks; each mismatch names its own), ``None`` when nothing was
    compared. ``skipped`` counts users not compared because the engine had no settled block
    (before its first sync, or between a rollback and the next processed block).
    """

    users_checked: int
    mismatches: list[Mismatch]
    block: int | None
    elapsed_s: float
    errors: int = 0
    skipped: int = 0


MismatchSink = Callable[[Mismatch], None]


def account_differences(stored: UserAccount, chain: UserAccount) -> tuple[FieldDifference, ...]:
    """What the account math would see differently in ``stored`` and ``chain`` (see the
    module docstring for what is compared and how the two forms are normalised)."""
    found: list[FieldDifference] = []
    if stored.emode_category != chain.emode_category:
        found.append(FieldDifference("emode_category", stored.emode_category, chain.emode_category))
    ours = _flags(stored)
    theirs = _flags(chain)
    for reserve_id in sorted(ours.keys() | theirs.keys()):
        name = f"reserve[{reserve_id}]"
        mine, other = ours.get(reserve_id, (False, False)), theirs.get(reserve_id, (False, False))
        for label, a, b in zip(("borrowing", "collateral"), mine, other, strict=True):
            if a != b:
                found.append(FieldDifference(f"{name}.{label}", a, b))
        if reserve_id in ours and reserve_id in theirs:
            found += _position_differences(
                name,
                _normalised(stored.position(reserve_id), borrowing=mine[0]),
                _normalised(chain.position(reserve_id), borrowing=other[0]),
            )
    return tuple(found)


def _flags(account: UserAccount) -> dict[int, tuple[bool, bool]]:
    return {
        rid: (borrowing, collateral)
        for rid, borrowing, collateral in flagged_reserves(account.configuration)
    }


def _normalised(position: UserReserve, *, borrowing: bool) -> UserReserve:
    """``position`` with what the math ignores set to ``None``: stable debt and the GHO
    discount outside a borrowing flag, a zero-principal stable debt, a 0 % discount."""
    stable, discount = position.stable_debt, position.gho_discount
    if not borrowing or (stable is not None and stable.principal == 0):
        stable = None
    if not borrowing or (discount is not None and discount.percent == 0):
        discount = None
    return UserReserve(
        position.scaled_atoken_balance, position.scaled_variable_debt, stable, discount
    )


def _position_differences(
    name: str, stored: UserReserve, chain: UserReserve
) -> list[FieldDifference]:
    return [
        FieldDifference(f"{name}.{field}", getattr(stored, field), getattr(chain, field))
        for field in BALANCE_FIELDS
        if getattr(stored, field) != getattr(chain, field)
    ]


@dataclass(frozen=True)
class _Capture:
    """A chunk as the engine held it: block, market state and stored accounts."""

    block: int
    state: MarketState
    accounts: dict[str, UserAccount]


class Reconciler:
    """Compares the engine's table with the chain every ``interval_s`` (module docstring).

    Args:
        engine: the engine whose table is checked.
        client_factory: makes the reconciler's own JSON-RPC client (clients are not
            thread-safe, and the block path has its own).
        interval_s: seconds between the end of a round and the start of the next.
        chunk: users per capture and per chain read.
        on_mismatch: called with each mismatch (after it is logged).
        dropped: the addresses dropped on purpose; one the table holds without positions
            is not compared (a dropped user who came back through events is).
    """

    def __init__(
        self,
        engine: Engine,
        client_factory: Callable[[], JsonRpcClient],
        *,
        interval_s: float,
        chunk: int = 500,
        on_mismatch: MismatchSink | None = None,
        dropped: Callable[[], Collection[str]] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the reconcile interval must be positive")
        if chunk < 1:
            raise ValueError("the reconcile chunk must hold at least one user")
        self.engine = engine
        self.client_factory = client_factory
        self.interval_s = interval_s
        self.chunk = chunk
        self.on_mismatch = on_mismatch
        self.dropped = dropped
        self.rounds = 0
        self.users_checked = 0
        self.mismatches = 0
        self.errors = 0
        self.failures = 0  # rounds that raised (run() logs and goes on)
        self.last_report: ReconcileReport | None = None
        self._client: JsonRpcClient | None = None
        self._reader: MarketReader | None = None

    # One round.

    def reconcile_once(self) -> ReconcileReport:
        """Compare every user of the table with the chain, chunk by chunk."""
        started = time.perf_counter()
        with self.engine.lock:
            total = self.engine.table.users
        dropped = frozenset(a.lower() for a in self.dropped()) if self.dropped else frozenset()
        checked = errors = skipped = 0
        mismatches: list[Mismatch] = []
        block: int | None = None
        for start in range(0, total, self.chunk):
            indices = range(start, min(start + self.chunk, total))
            capture = self._capture(indices, dropped)
            if capture is None:
                skipped += len(indices)
                continue
            # The chain is read at the block the chunk was captured at, so a block the
            # engine processes meanwhile changes nothing here: both sides describe that
            # block. Only a reorg of that very block between the capture and the read
            # can make a user differ; the re-read it triggers is then merely redundant.
            chain, failed = self._read(list(capture.accounts), capture.block, capture.state)
            errors += failed
            checked += len(chain)
            block = capture.block
            for account in chain:
                differences = account_differences(capture.accounts[account.address], account)
                if differences:
                    mismatch = Mismatch(account.address, capture.block, differences)
                    mismatches.append(mismatch)
                    self._report(mismatch)
        report = ReconcileReport(
            checked, mismatches, block, time.perf_counter() - started, errors, skipped
        )
        self.rounds += 1
        self.users_checked += checked
        self.mismatches += len(mismatches)
        self.errors += errors
        self.last_report = report
        log.info(
            "reconcile round done",
            extra={
                "users_checked": checked,
                "mismatches": len(mismatches),
                "errors": errors,
                "skipped": skipped,
                "block": block,
                "elapsed_s": round(report.elapsed_s, 3),
            },
        )
        return report

    def _capture(self, indices: range, dropped: frozenset[str]) -> _Capture | None:
        """The chunk's stored accounts with the block and state they belong to, or ``None``
        when the engine has no settled block (not synced, or rolled back and not yet
        advanced: its state is then of an orphaned block)."""
        engine = self.engine
        with engine.lock:
            block, state = engine.last_block, engine.state
            if block is None or state is None or state.block_number != block:
                return None
            accounts: dict[str, UserAccount] = {}
            for index in indices:
                account = engine.table.account(index)
                if account.address in dropped and _empty(account):
                    continue
                accounts[account.address] = account
        return _Capture(block, state, accounts)

    def _read(
        self, addresses: Sequence[str], block: int, state: MarketState
    ) -> tuple[list[UserAccount], int]:
        """The users read from the chain, and how many could not be read.

        One user's bad answer fails a whole batch, so a failed batch is split in halves
        until the users who fail alone are found; a node that cannot be reached fails the
        whole chunk at once (asking it user by user would not help).
        """
        if not addresses:
            return [], 0
        try:
            return self._chain_reader().read_users(addresses, block, state), 0
        except RpcTransportError as exc:
            self._read_failed(addresses, block, exc)
            return [], len(addresses)
        except RpcError as exc:
            if len(addresses) == 1:
                self._read_failed(addresses, block, exc)
                return [], 1
        middle = len(addresses) // 2
        first, first_failed = self._read(addresses[:middle], block, state)
        second, second_failed = self._read(addresses[middle:], block, state)
        return first + second, first_failed + second_failed

    def _chain_reader(self) -> MarketReader:
        if self._reader is None:
            self._client = self.client_factory()
            self._reader = MarketReader(self._client, self.engine.pool)
        return self._reader

    @staticmethod
    def _read_failed(addresses: Sequence[str], block: int, exc: RpcError) -> None:
        log.warning(
            "reconcile read failed, users skipped this round",
            extra={
                "users": len(addresses),
                "first_user": addresses[0],
                "block": block,
                "error": str(exc),
            },
        )

    def _report(self, mismatch: Mismatch) -> None:
        log.warning(
            "cached positions differ from the chain",
            extra={
                "user": mismatch.user,
                "block": mismatch.block,
                "fields": list(mismatch.fields),
                "stored": {d.field: _loggable(d.stored) for d in mismatch.differences},
                "chain": {d.field: _loggable(d.chain) for d in mismatch.differences},
            },
        )
        self.engine.reread_next([mismatch.user])
        if self.on_mismatch is not None:
            try:
                self.on_mismatch(mismatch)
            except Exception:  # a failing sink must not stop the round
                log.exception("on_mismatch callback failed", extra={"user": mismatch.user})

    # The background thread.

    def run(self, stop: threading.Event) -> None:
        """Run a round every ``interval_s`` until ``stop`` is set; a round that raises is
        logged and counted in ``failures``, and the next one runs as usual."""
        try:
            while not stop.wait(self.interval_s):
                try:
                    self.reconcile_once()
                except Exception as exc:  # the thread must outlive any one round
                    self.failures += 1
                    log.exception(
                        "reconcile round failed", extra={"error": f"{type(exc).__name__}: {exc}"}
                    )
        finally:
            self.close()

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run :meth:`run` on a daemon thread named ``reconcile``; returns the thread."""
        thread = threading.Thread(target=self.run, args=(stop,), name="reconcile", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Close the reconciler's client (a later round opens a new one)."""
        if self._client is not None:
            self._client.close()
        self._client = self._reader = None


def _empty(account: UserAccount) -> bool:
    return account.configuration == 0 and account.emode_category == 0


def _loggable(value: object) -> object:
    """Ints, bools and ``None`` as they are; anything else (stable debt, discount) as text."""
    return value if value is None or isinstance(value, int) else repr(value)
