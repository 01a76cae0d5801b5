"""A market whose answers cannot be of one block is refused before the table changes."""

from __future__ import annotations

import pytest

from overlord.aave import Market, Reserve
from overlord.aave.configuration import ReserveConfiguration
from overlord.aave.versions import ProtocolVersion
from overlord.chain.reader import MarketState
from overlord.chain.rpc import RpcError
from overlord.engine.engine import _check_consistent

RAY = 10**27


def _state(updated_at: int, block_timestamp: int) -> MarketState:
    reserve = Reserve(
        0, "0x" + "aa" * 20, ReserveConfiguration(), RAY, RAY, last_update_timestamp=updated_at
    )
    market = Market(ProtocolVersion.V3_6, {0: reserve}, {reserve.asset: 10**8})
    return MarketState(market, 7, block_timestamp, {}, "0x" + "01" * 20, "0x" + "02" * 20)


def test_a_reserve_updated_after_the_block_is_an_rpc_error_naming_both_times() -> None:
    with pytest.raises(RpcError, match="updated at 194, after the block's timestamp 182"):
        _check_consistent(_state(194, 182))


def test_a_reserve_updated_at_or_before_the_block_is_fine() -> None:
    _check_consistent(_state(182, 182))
    _check_consistent(_state(100, 182))
