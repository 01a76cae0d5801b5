"""On-demand health factors: a user's exact account data at any block, for the tracker.

For each new liquidation the tracker asks for the user's account data at the block before
it (the state the liquidator acted on) and at its block (after it). Both come from our own
exact math over state read at that block (:class:`~overlord.chain.reader.MarketReader`),
which equals ``Pool.getUserAccountData`` there wei for wei; reading past blocks needs an
archive node (the devnet keeps every block). Markets are cached for a few blocks, since a
burst of liquidations shares them.

A subgraph record has no block number; :meth:`OnDemandHealth.block_of` takes it from the
transaction's receipt.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from overlord.aave import AccountData, calculate_user_account_data
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.tracker.records import LiquidationRecord

MARKETS_CACHED: Final = 8


@dataclass(frozen=True, slots=True)
class HealthAround:
    """A liquidated user's account data at the block before the liquidation and at its block."""

    block: int
    before: AccountData
    after: AccountData


class OnDemandHealth:
    """Exact account data of one user at one block (see the module docstring). Thread-safe."""

    def __init__(self, client: JsonRpcClient, pool: str) -> None:
        self.client = client
        self.reader = MarketReader(client, pool)
        self._markets: OrderedDict[int, MarketState] = OrderedDict()
        self._lock = threading.Lock()
        self.queries = 0

    def market_at(self, block: int) -> MarketState:
        """The market as of the end of ``block`` (cached for the last few blocks)."""
        with self._lock:
            if block in self._markets:
                self._markets.move_to_end(block)
                return self._markets[block]
            state = self.reader.read_market(block)
            self._markets[block] = state
            while len(self._markets) > MARKETS_CACHED:
                self._markets.popitem(last=False)
            return state

    def account_at(self, user: str, block: int) -> AccountData:
        """``user``'s account data at the end of ``block``, by our exact math.

        Raises:
            RpcError: the node cannot serve that block (pruned state) or answered garbage.
            AaveMathError: the Pool would revert too.
        """
        state = self.market_at(block)
        with self._lock:
            self.queries += 1
            (account,) = self.reader.read_users([user], block, state)
        return calculate_user_account_data(state.market, account, state.block_timestamp)

    def block_of(self, record: LiquidationRecord) -> int:
        """The block of ``record``: its own, else its transaction receipt's."""
        if record.block_number is not None:
            return record.block_number
        with self._lock:
            receipt = self.client.call("eth_getTransactionReceipt", [record.tx_hash])
        if not isinstance(receipt, dict) or not isinstance(receipt.get("blockNumber"), str):
            raise RpcError(
                "eth_getTransactionReceipt", f"no receipt for liquidation {record.tx_hash}"
            )
        return int(receipt["blockNumber"], 16)

    def around(self, record: LiquidationRecord) -> HealthAround:
        """The liquidated user's account data just before and just after ``record``."""
        block = self.block_of(record)
        before = self.account_at(record.user, max(block - 1, 0))
        return HealthAround(block, before, self.account_at(record.user, block))
