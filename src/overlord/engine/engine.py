"""The engine: one market's users kept exact at every block, underwater users detected.

Single writer, synchronous core: :meth:`Engine.process_block` reads the market at the block
(reserves, indices, configuration and oracle prices, so oracle changes and the silent 3.5+
index checkpoint are picked up by construction; eMode categories and symbols are reused
from the previous block unless the PoolConfigurator logged anything since, in which case
the whole market is read again),
re-reads every user touched by a position-changing event since the last processed block,
rescreens every user at the block's timestamp, confirms every user the screen cannot
call exactly, and reports who is underwater, with the exact ``getUserAccountData`` tuple.

A detection is announced when a user becomes underwater, when an underwater user's
account data changes, or again after ``reannounce_interval`` seconds of block time.
Candidates are confirmed in the screen's health-factor order, lowest first, and each
detection is handed to ``on_detection`` as soon as it is confirmed, so the most urgent
user's event leaves before the others are computed.
:meth:`Engine.evaluate_prices` answers "who would be underwater at these prices" for the
users of the reserves whose prices change (targeted), without changing any state.

**Reorgs.** The engine remembers, for the last ``history_blocks`` processed blocks, the
block hash it was given and the users it re-read. :meth:`Engine.rollback` to a common
ancestor marks every user re-read after it for a new read at the next processed block
(whose logs cover everything after the ancestor on the new chain), and the market is
re-read every block anyway, so the state then equals the canonical chain's. A rollback
deeper than the history re-reads every user.

**Threads.** One thread (the block path) calls :meth:`process_block`, :meth:`rollback`
and :meth:`sync`; another (the price path) may call :meth:`evaluate_prices` at the same
time. ``lock`` is held only while the table is written and while a hypothetical
evaluation reads it, never across RPC, so the price path waits at most one table update.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from overlord.aave import AccountData, Market, UserAccount, calculate_user_account_data
from overlord.chain.logs import fetch_logs
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient
from overlord.engine.positions import PositionTable
from overlord.engine.screen import SAFE, block_factors, screen
from overlord.engine.store import Checkpoint, EngineStore, EngineStoreError, ProcessedBlock
from overlord.engine.touched import touched_users

SyncProgress = Callable[[int, int], None]
log = logging.getLogger("overlord.engine")
HISTORY_BLOCKS = 128


class Reason(StrEnum):
    """Why a detection is announced."""

    NEW = "new"
    CHANGED = "changed"
    REANNOUNCE = "reannounce"


@dataclass(frozen=True)
class Detection:
    """An underwater user to announce, with the exact account data at the block."""

    address: str
    account: AccountData
    block_number: int
    block_timestamp: int
    reason: Reason


@dataclass(frozen=True)
class BlockReport:
    """What one processed block did."""

    block_number: int
    block_timestamp: int
    elapsed_ms: float
    touched: int
    added: int
    confirmed: int
    underwater: Mapping[str, AccountData]
    detections: tuple[Detection, ...]
    candidates: Mapping[str, int] = field(default_factory=dict)  # exact HF of every confirmed user
    added_users: tuple[str, ...] = ()  # seen in this block's events, unknown until now


@dataclass
class EngineSettings:
    """Detection thresholds (base-currency units) and re-announcement interval (seconds)."""

    min_collateral_base: int = 0
    reannounce_interval: int = 300
    batch_size: int = 500
    buckets: int = 4


DetectionSink = Callable[[Detection], None]


@dataclass
class _Announced:
    account: AccountData
    at: int  # block timestamp


@dataclass
class Engine:
    """One market's engine over a JSON-RPC client (see the module docstring)."""

    client: JsonRpcClient
    pool: str
    settings: EngineSettings = field(default_factory=EngineSettings)
    client_factory: Callable[[], JsonRpcClient] | None = None
    table: PositionTable = field(default_factory=PositionTable)
    state: MarketState | None = None
    last_block: int | None = None
    underwater: dict[str, AccountData] = field(default_factory=dict)
    history_blocks: int = HISTORY_BLOCKS
    store: EngineStore | None = None
    store_errors: int = 0
    _announced: dict[str, _Announced] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reader = MarketReader(self.client, self.pool)
        self.lock = threading.RLock()
        self.history: deque[ProcessedBlock] = deque(maxlen=self.history_blocks)
        self._reread: set[str] = set()  # users to read again at the next block (a rollback)
        self._reread_all = False  # a rollback deeper than the history: read everyone again
        self._full_read_due = True  # the next market read is a full one

    # Initial sync.

    def sync(self, users: Sequence[str], block: int, progress: SyncProgress | None = None) -> int:
        """Read the market and ``users`` at ``block`` into the table; returns users read.

        Users are read in batches of ``batch_size``, ``buckets`` batches at a time, each
        worker with its own JSON-RPC client (``client_factory``).
        """
        self.state = self.reader.read_market(block)
        unique = list(dict.fromkeys(address.lower() for address in users))
        batches = [
            unique[i : i + self.settings.batch_size]
            for i in range(0, len(unique), self.settings.batch_size)
        ]
        done = 0
        saving = self._begin_saving_sync()
        try:
            for accounts in self._read_batches(batches, block, self.state):
                with self.lock:
                    for account in accounts:
                        self.table.upsert(account)
                if saving and self.store is not None:
                    saving = self._save_synced(self.store.add_synced, accounts)
                done += len(accounts)
                if progress is not None:
                    progress(done, len(unique))
            if saving and self.store is not None:
                self._save_synced(self.store.finish_sync, self.state)
        finally:
            if self.store is not None:
                self.store.abort_sync()  # nothing to abort once finished
        self.last_block = block
        return len(unique)

    def _begin_saving_sync(self) -> bool:
        return self.store is not None and self._save_synced(self.store.begin_sync)

    def _save_synced(self, write: Callable[..., None], *args: object) -> bool:
        """One write of the initial sync's transaction. If it fails, the run goes on
        without a checkpoint (a partial sync must never become one); the file keeps the
        last one it had, a consistent older state a restart can catch up from."""
        try:
            write(*args)
        except EngineStoreError as exc:
            self.store_errors += 1
            log.error(
                "cannot save the initial sync; running without a checkpoint",
                extra={"error": str(exc)},
            )
            if self.store is not None:
                self.store.abort_sync()
            self.store = None
            return False
        return True

    def restore(self) -> Checkpoint | None:
        """Load the store's state into the (empty) engine: the table, the market, the
        last block and the recent blocks' history; ``None`` when the store is empty.

        The next :meth:`process_block` reads the market in full and every event since the
        checkpoint, so the engine is then exactly at that block; a reorg while it was
        down is seen by the follower's :func:`~overlord.engine.follower.plan_head`
        against the restored hashes and rolled back as in a live run.

        Raises:
            EngineStoreError: the stored state does not decode.
        """
        if self.store is None:
            return None
        with self.lock:
            restored = self.store.load_into(self.table)
            if restored is None:
                return None
            self.state = restored.state
            self.last_block = restored.checkpoint.block
            self.history = deque(restored.history, maxlen=self.history_blocks)
            self._full_read_due = True
        return restored.checkpoint

    def _read_batches(
        self, batches: list[list[str]], block: int, state: MarketState
    ) -> Iterator[list[UserAccount]]:
        if self.settings.buckets <= 1 or self.client_factory is None or len(batches) <= 1:
            for batch in batches:
                yield self.reader.read_users(batch, block, state)
            return
        local = threading.local()
        factory = self.client_factory

        def read(batch: list[str]) -> list[UserAccount]:
            if not hasattr(local, "reader"):
                local.reader = MarketReader(factory(), self.pool)
            reader: MarketReader = local.reader
            return reader.read_users(batch, block, state)

        with ThreadPoolExecutor(max_workers=self.settings.buckets) as pool:
            yield from pool.map(read, batches)

    # Per block.

    def process_block(
        self,
        block: int,
        *,
        block_hash: str | None = None,
        on_detection: DetectionSink | None = None,
        extra_users: Iterable[str] = (),
    ) -> BlockReport:
        """Bring the engine to ``block`` and report who is underwater there.

        Reads the market, the users touched by events since the last processed block (and
        ``extra_users``, e.g. users named by logs a subscription delivered, and any user a
        rollback marked), then confirms candidates lowest health factor first, handing each
        detection to ``on_detection`` as soon as it is known. ``block_hash`` is recorded
        for :meth:`rollback`.
        """
        started = time.perf_counter()
        first = block if self.last_block is None else self.last_block + 1
        state = self._read_market(block, first)
        touched = touched_users(self.client, position_log_sources(state), first, block)
        touched |= {address.lower() for address in extra_users}
        reread = touched | self._reread
        if self._reread_all:
            reread |= set(self.table.addresses)
        new_users = tuple(sorted(a for a in reread if self.table.user_index(a) is None))
        accounts = self.reader.read_users(sorted(reread), block, state)
        moved = self._moved_by_prices(state.market) | reread
        with self.lock:
            for account in accounts:
                self.table.upsert(account)
            self.state, self.last_block = state, block
            # Requests that arrived while this block was read stay for the next one.
            self._reread -= reread
            self._reread_all, self._full_read_due = False, False
            self.history.append(ProcessedBlock(block, first, block_hash, frozenset(reread)))
        current, candidates, detections = self._underwater(
            state.market, block, state.block_timestamp, moved, on_detection
        )
        self.underwater = current
        self._save(state, self.history[-1], accounts)
        elapsed = (time.perf_counter() - started) * 1000
        return BlockReport(
            block,
            state.block_timestamp,
            elapsed,
            len(reread),
            len(new_users),
            len(candidates),
            dict(current),
            tuple(detections),
            candidates,
            new_users,
        )

    def _save(
        self, state: MarketState, processed: ProcessedBlock, accounts: list[UserAccount]
    ) -> None:
        """Checkpoint the block (after its detections are out: saving is not on the
        critical path). A failed write is logged and counted; the store keeps the changes
        for the next block's transaction, and detection goes on."""
        if self.store is None:
            return
        try:
            self.store.apply_block(state, processed, accounts)
        except EngineStoreError as exc:
            self.store_errors += 1
            log.error("cannot save the block; detection goes on", extra={"error": str(exc)})

    def _read_market(self, block: int, first: int) -> MarketState:
        """The market at ``block``: an incremental read from the last state (one round
        trip), or a full one when the configurator emitted anything in ``first..block``
        (eMode categories, reserve listings), after a rollback, or at the start."""
        previous = None if self._full_read_due else self.state
        state = self.reader.read_market(block, previous=previous)
        if (
            previous is not None
            and state.configurator
            and first <= block
            and fetch_logs(self.client, state.configurator, None, first, block)
        ):
            state = self.reader.read_market(block)
        return state

    def rollback(self, ancestor: int, *, everyone: bool = False) -> int:
        """Forget the processed blocks after ``ancestor`` (a reorg replaced them).

        Every user re-read after ``ancestor`` is read again at the next processed block,
        which also reads the new chain's logs from ``ancestor + 1``; when the history does
        not reach back to ``ancestor`` (or ``everyone``: the caller knows the reorg is
        deeper than the history), every user is. Returns the number of processed blocks
        forgotten.
        """
        with self.lock:
            self._reread_all |= everyone
            self._full_read_due = True  # the orphaned blocks may have held configurator events
            if self.last_block is None or ancestor >= self.last_block:
                return 0
            orphaned = [p for p in self.history if p.number > ancestor]
            covered = bool(self.history) and self.history[0].first <= ancestor + 1
            for processed in orphaned:
                self._reread |= processed.reread
            self._reread_all |= not covered
            self.history = deque(
                (p for p in self.history if p.number <= ancestor), maxlen=self.history_blocks
            )
            self.last_block = ancestor
            return len(orphaned)

    def reread_next(self, addresses: Iterable[str]) -> None:
        """Read ``addresses`` again at the next processed block (known or not: an unknown
        address joins the table then). For reconciliation and a grown addresses file."""
        with self.lock:
            self._reread |= {address.lower() for address in addresses}

    def drop_users(self, addresses: Iterable[str]) -> int:
        """Forget ``addresses``' positions and announcements (an addresses file shrank);
        returns how many were known. A dropped user who acts on the Pool later is seen in
        its events and joins again, like any new user."""
        dropped, wanted = 0, {address.lower() for address in addresses}
        with self.lock:
            for address in wanted:
                self._reread.discard(address)
                if self.table.user_index(address) is None:
                    continue
                self.table.remove(address)
                self.underwater.pop(address, None)
                self._announced.pop(address, None)
                dropped += 1
            if self.store is not None:
                try:
                    self.store.drop(wanted)
                except EngineStoreError as exc:
                    self.store_errors += 1
                    log.error("cannot save dropped users", extra={"error": str(exc)})
        return dropped

    def processed_hashes(self) -> dict[int, str]:
        """Block number -> hash of the recent processed blocks whose hash is known."""
        with self.lock:
            return {p.number: p.block_hash for p in self.history if p.block_hash is not None}

    def _underwater(
        self,
        market: Market,
        block: int,
        now: int,
        moved: set[str],
        on_detection: DetectionSink | None,
    ) -> tuple[dict[str, AccountData], dict[str, int], list[Detection]]:
        """Confirm the screen's candidates lowest estimate first; decide and hand over each
        detection as soon as it is confirmed."""
        factors = block_factors(market, now)
        result = screen(self.table, factors)
        uncertain = result.status != SAFE
        order = np.argsort(result.health_factor[uncertain], kind="stable")
        minimum = self.settings.min_collateral_base
        underwater: dict[str, AccountData] = {}
        health: dict[str, int] = {}
        detections: list[Detection] = []
        for user in result.users[uncertain][order]:
            address = self.table.addresses[int(user)]
            data = calculate_user_account_data(market, self.table.account(int(user)), now)
            health[address] = data.health_factor
            if not (data.is_liquidatable and data.total_collateral_base >= minimum):
                continue
            underwater[address] = data
            reason = self._reason(address, data, now, moved)
            if reason is None:
                continue
            self._announced[address] = _Announced(data, now)
            detection = Detection(address, data, block, now, reason)
            detections.append(detection)
            if on_detection is not None:
                on_detection(detection)
        for address in list(self._announced):
            if address not in underwater:
                del self._announced[address]
        return underwater, health, detections

    def _moved_by_prices(self, market: Market) -> set[str]:
        """Users of the reserves whose price differs from the previous processed block."""
        if self.state is None:
            return set()
        before = self.state.market.prices
        changed = {asset for asset, price in market.prices.items() if before.get(asset) != price}
        reserves = _reserves_moved_by(market, changed)
        return (
            {self.table.addresses[int(u)] for u in self.table.users_of_reserves(reserves)}
            if reserves
            else set()
        )

    def _reason(
        self, address: str, account: AccountData, now: int, moved: set[str]
    ) -> Reason | None:
        """Announce the newly underwater, those whose positions or prices moved, and the
        rest again after ``reannounce_interval`` (interest alone changes every tuple a
        little every block; that is not announced on its own)."""
        previous = self._announced.get(address)
        if previous is None or address not in self.underwater:
            return Reason.NEW
        if address in moved and previous.account != account:
            return Reason.CHANGED
        if now - previous.at >= self.settings.reannounce_interval:
            return Reason.REANNOUNCE
        return None

    # Hypothetical prices.

    def evaluate_prices(
        self, prices: Mapping[str, int], now: int | None = None
    ) -> dict[str, AccountData]:
        """Who would be underwater if the oracle returned ``prices`` (asset -> price).

        ``now`` is the timestamp to evaluate at (default: the last processed block's; a
        pending update is evaluated at its expected inclusion time).

        Only the users of reserves whose price changes (3.0/3.1: also members of an eMode
        category whose price source changes) are recomputed; everyone else keeps their
        current classification. Changes no state.
        """
        hypothesis = self.screen_prices(prices, now)
        outcome = dict(hypothesis.unmoved)
        outcome.update(self.confirm_hypothesis(hypothesis))
        return outcome

    def screen_prices(self, prices: Mapping[str, int], now: int | None = None) -> Hypothesis:
        """The screen half of :meth:`evaluate_prices`: who must be confirmed, lowest
        estimated health factor first, and who keeps their current classification."""
        with self.lock:
            if self.state is None:
                raise RuntimeError("the engine has not been synced")
            market = self.state.market
            changed = {
                asset.lower()
                for asset, price in prices.items()
                if market.prices.get(asset.lower()) != price
            }
            hypothetical = with_prices(market, prices)
            affected = self.table.users_of_reserves(_reserves_moved_by(market, changed))
            at = self.state.block_timestamp if now is None else now
            if at != self.state.block_timestamp:
                # Interest moves every user, not only those of the moved reserves.
                affected = np.arange(self.table.users, dtype=np.intp)
            factors = block_factors(hypothetical, at)
            result = screen(self.table, factors, affected)
            uncertain = result.status != SAFE
            order = np.argsort(result.health_factor[uncertain], kind="stable")
            addresses = self.table.addresses
            moved = {addresses[int(u)] for u in affected}
            unmoved = {a: d for a, d in self.underwater.items() if a not in moved}
            candidates = tuple(addresses[int(u)] for u in result.users[uncertain][order])
        return Hypothesis(hypothetical, at, candidates, unmoved)

    def confirm_hypothesis(self, hypothesis: Hypothesis) -> Iterator[tuple[str, AccountData]]:
        """The confirmed underwater users of a hypothesis, lazily, in the screen's order.

        The lock is held per user only, so the block path can write between two of them;
        each user is computed from the positions the engine holds at that moment.
        """
        minimum = self.settings.min_collateral_base
        for address in hypothesis.candidates:
            with self.lock:
                index = self.table.user_index(address)
                if index is None:
                    continue
                account = self.table.account(index)
            data = calculate_user_account_data(hypothesis.market, account, hypothesis.now)
            if data.is_liquidatable and data.total_collateral_base >= minimum:
                yield address, data


@dataclass(frozen=True)
class Hypothesis:
    """A screened price hypothesis: the market with the prices, the time it is evaluated at,
    the users to confirm (lowest estimated health factor first), and the underwater users
    whose positions the prices do not move (they stay as they are)."""

    market: Market
    now: int
    candidates: tuple[str, ...]
    unmoved: Mapping[str, AccountData]


def position_log_sources(state: MarketState) -> list[str]:
    """The contracts whose events change positions: the Pool and every reserve's aToken and
    debt tokens (the block path's ``eth_getLogs`` and the live ``logs`` subscription)."""
    tokens = (
        token
        for reserve in state.tokens.values()
        for token in (reserve.a_token, reserve.variable_debt_token, reserve.stable_debt_token)
        if token
    )
    return [state.pool, *tokens]


def with_prices(market: Market, prices: Mapping[str, int]) -> Market:
    """``market`` with some oracle prices replaced (asset -> price, any address case)."""
    return replace(market, prices={**market.prices, **{a.lower(): p for a, p in prices.items()}})


def _reserves_moved_by(market: Market, changed_assets: set[str]) -> list[int]:
    """Reserve ids whose account-loop price depends on one of ``changed_assets``."""
    moved = [r.id for r in market.reserves.values() if r.asset in changed_assets]
    if market.rules.emode_price_source:
        for category in market.emode_categories.values():
            if category.price_source and category.price_source.lower() in changed_assets:
                moved += [
                    r.id
                    for r in market.reserves.values()
                    if r.configuration.emode_category == category.id
                ]
    return sorted(set(moved))
