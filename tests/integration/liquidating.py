"""Liquidations on the devnet for the tests: who is underwater, and liquidate them for real."""

from __future__ import annotations

from overlord.aave import calculate_user_account_data
from overlord.chain import aave_abi
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.transactions import Tx, TxSender
from overlord.engine.follower import NodeChain
from overlord.engine.plans import best_plan

WAD = 10**18


def underwater_users(devnet: Devnet, rpc: JsonRpcClient) -> list[str]:
    """The seeded users below health factor 1 now, lowest first."""
    reader = MarketReader(rpc, devnet.manifest.pool)
    block = NodeChain(rpc).latest().number
    state = reader.read_market(block)
    accounts = reader.read_users(list(devnet.users), block, state)
    scored = [
        (calculate_user_account_data(state.market, a, state.block_timestamp), a.address)
        for a in accounts
    ]
    return [
        user
        for data, user in sorted(scored, key=lambda s: s[0].health_factor)
        if data.health_factor < WAD and data.total_debt_base > 0
    ]


def liquidate(devnet: Devnet, rpc: JsonRpcClient, users: list[str]) -> list[int]:
    """Liquidate each of ``users`` with its best plan, one block each; their blocks."""
    reader = MarketReader(rpc, devnet.manifest.pool)
    liquidator = devnet.manifest.accounts["liquidator"]
    approvals = [
        Tx(liquidator, r.asset, aave_abi.APPROVE.encode(devnet.manifest.pool, 2**256 - 1), "ok")
        for r in devnet.manifest.reserves
    ]
    TxSender(rpc).send(approvals)
    blocks = []
    for user in users:
        block = NodeChain(rpc).latest().number
        state = reader.read_market(block)
        (account,) = reader.read_users([user], block, state)
        plan = best_plan(state.market, account, state.block_timestamp + 1, liquidator)
        assert plan is not None, user
        call = plan.liquidation
        data = aave_abi.LIQUIDATION_CALL.encode(
            call.collateral_asset, call.debt_asset, user, call.debt_to_cover, False
        )
        (receipt,) = TxSender(rpc).send(
            [Tx(liquidator, devnet.manifest.pool, data, "liquidate", 2_000_000)]
        )
        blocks.append(int(str(receipt["blockNumber"]), 16))
    return blocks
