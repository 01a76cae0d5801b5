"""The engine: one market's users kept exact at every block, underwater users detected.

Single writer, synchronous core: :meth:`Engine.process_block` reads the market at the block
(reserves, indices, configuration, eMode categories and oracle prices, so configurator and
oracle changes and the silent 3.5+ index checkpoint are picked up by construction),
re-reads every user touched by a position-changing event since the last processed block,
rescreens every user at the block's timestamp, confirms every user the screen cannot
call exactly, and reports who is underwater, with the exact ``getUserAccountData`` tuple.

A detection is announced when a user becomes underwater, when an underwater user's
account data changes, or again after ``reannounce_interval`` seconds of block time.
:meth:`Engine.evaluate_prices` answers "who would be underwater at these prices" for the
users of the reserves whose prices change (targeted), without changing any state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from overlord.aave import AccountData, Market, UserAccount
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient
from overlord.engine.positions import PositionTable
from overlord.engine.screen import SAFE, block_factors, confirm, screen
from overlord.engine.touched import touched_users

SyncProgress = Callable[[int, int], None]


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
    _announced: dict[str, _Announced] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reader = MarketReader(self.client, self.pool)

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
        for accounts in self._read_batches(batches, block, self.state):
            for account in accounts:
                self.table.upsert(account)
            done += len(accounts)
            if progress is not None:
                progress(done, len(unique))
        self.last_block = block
        return len(unique)

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

    def process_block(self, block: int) -> BlockReport:
        """Bring the engine to ``block`` and report who is underwater there."""
        started = time.perf_counter()
        state = self.reader.read_market(block)
        first = block if self.last_block is None else self.last_block + 1
        tokens = [
            t
            for r in state.tokens.values()
            for t in (r.a_token, r.variable_debt_token, r.stable_debt_token)
            if t
        ]
        touched = touched_users(self.client, [self.pool, *tokens], first, block)
        new_users = tuple(sorted(a for a in touched if self.table.user_index(a) is None))
        for account in self.reader.read_users(sorted(touched), block, state):
            self.table.upsert(account)
        moved = self._moved_by_prices(state.market) | touched
        self.state, self.last_block = state, block
        current, candidates = self._underwater(state.market, state.block_timestamp)
        detections = self._detections(current, block, state.block_timestamp, moved)
        self.underwater = current
        elapsed = (time.perf_counter() - started) * 1000
        return BlockReport(
            block,
            state.block_timestamp,
            elapsed,
            len(touched),
            len(new_users),
            len(candidates),
            dict(current),
            tuple(detections),
            candidates,
            new_users,
        )

    def _underwater(
        self, market: Market, now: int
    ) -> tuple[dict[str, AccountData], dict[str, int]]:
        factors = block_factors(market, now)
        result = screen(self.table, factors)
        candidates = result.users[result.status != SAFE]
        exact = confirm(self.table, factors, candidates)
        minimum = self.settings.min_collateral_base
        underwater = {
            self.table.addresses[user]: data
            for user, data in exact.items()
            if data.is_liquidatable and data.total_collateral_base >= minimum
        }
        health = {self.table.addresses[user]: data.health_factor for user, data in exact.items()}
        return underwater, health

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

    def _detections(
        self, current: Mapping[str, AccountData], block: int, now: int, moved: set[str]
    ) -> list[Detection]:
        """Announce the newly underwater, those whose positions or prices moved, and the
        rest again after ``reannounce_interval`` (interest alone changes every tuple a
        little every block; that is not announced on its own)."""
        detections = []
        for address, account in current.items():
            previous = self._announced.get(address)
            if previous is None or address not in self.underwater:
                reason = Reason.NEW
            elif address in moved and previous.account != account:
                reason = Reason.CHANGED
            elif now - previous.at >= self.settings.reannounce_interval:
                reason = Reason.REANNOUNCE
            else:
                continue
            self._announced[address] = _Announced(account, now)
            detections.append(Detection(address, account, block, now, reason))
        for address in list(self._announced):
            if address not in current:
                del self._announced[address]
        return detections

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
        exact = confirm(self.table, factors, result.users[result.status != SAFE])
        minimum = self.settings.min_collateral_base
        moved = {self.table.addresses[int(u)] for u in affected}
        outcome = {a: d for a, d in self.underwater.items() if a not in moved}
        outcome.update(
            {
                self.table.addresses[user]: data
                for user, data in exact.items()
                if data.is_liquidatable and data.total_collateral_base >= minimum
            }
        )
        return outcome


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
