"""The embedded demo: a narrated market history on the local chain, checked exactly.

Until the engine lands this is Overlord's main job (``make run``): it drives a seeded
devnet through a scenario, then reads every user at the final block, computes the six
``getUserAccountData`` outputs with the exact math, compares them with the Pool's own
answers, and ranks the borrowers closest to (or past) liquidation with the best
liquidation of each, sized by ``max_liquidation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overlord.aave import AccountData, Liquidation, UserAccount, calculate_user_account_data
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.engine.plans import best_plan


@dataclass(frozen=True)
class Borrower:
    """A user's exact account data and, if liquidatable, the most profitable liquidation."""

    user: UserAccount
    account: AccountData
    best: Liquidation | None
    gross_gain_base: int


@dataclass(frozen=True)
class MarketCheck:
    """Every user checked against the Pool at one block, and the riskiest borrowers."""

    block: int
    users_checked: int
    mismatches: int
    underwater: int
    riskiest: tuple[Borrower, ...]


def check_market(
    client: JsonRpcClient, pool: str, users: Sequence[str], liquidator: str, *, top: int = 10
) -> MarketCheck:
    """Verify every user at the head block and rank the ``top`` lowest health factors."""
    reader = MarketReader(client, pool)
    block = int(client.call("eth_blockNumber"), 16)
    state = reader.read_market(block)
    accounts = reader.read_users(users, block, state)
    chain = reader.read_account_data(users, block)
    now = state.block_timestamp
    ours = [calculate_user_account_data(state.market, user, now) for user in accounts]
    mismatches = sum(o.as_tuple() != tuple(c) for o, c in zip(ours, chain, strict=True))
    borrowers = sorted(
        (pair for pair in zip(accounts, ours, strict=True) if pair[1].total_debt_base > 0),
        key=lambda pair: pair[1].health_factor,
    )
    riskiest = []
    for user, account in borrowers[:top]:
        plan = best_plan(state.market, user, now, liquidator) if account.is_liquidatable else None
        best, gain = (plan.liquidation, plan.gross_gain_base) if plan else (None, 0)
        riskiest.append(Borrower(user, account, best, gain))
    underwater = sum(account.is_liquidatable for account in ours)
    return MarketCheck(block, len(accounts), mismatches, underwater, tuple(riskiest))
