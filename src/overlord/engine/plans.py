"""The best liquidation of an underwater user: every valid pair sized exactly, best gain.

For each (collateral, debt) pair the user has flags on, :func:`max_liquidation` gives the
largest liquidation the Pool accepts (3.3+: shrunk for the dust rule); the pair with the
highest gross gain (collateral received minus debt repaid, in base currency, each leg
floored) wins. Costs (swap fees, flash-loan premium, gas) and the net profit come with
the planner of the liquidation-plans issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from overlord.aave import (
    AccountData,
    Liquidation,
    Market,
    UserAccount,
    calculate_user_account_data,
    max_liquidation,
)
from overlord.aave.configuration import flagged_reserves


@dataclass(frozen=True)
class Plan:
    """A sized liquidation and its gross gain in base-currency units."""

    liquidation: Liquidation
    gross_gain_base: int


def gross_gain(market: Market, liquidation: Liquidation) -> int:
    """Collateral received minus debt repaid, in base currency (each leg floored)."""
    collateral = market.reserve_by_asset(liquidation.collateral_asset).configuration.unit
    debt = market.reserve_by_asset(liquidation.debt_asset).configuration.unit
    received = liquidation.collateral_to_liquidator * liquidation.collateral_price // collateral
    return received - liquidation.debt_repaid * liquidation.debt_price // debt


def candidate_pairs(market: Market, user: UserAccount) -> list[tuple[str, str]]:
    """(collateral asset, debt asset) for every collateral flag x borrowing flag."""
    flags = list(flagged_reserves(user.configuration))
    collaterals = [market.reserves[i].asset for i, _b, c in flags if c and i in market.reserves]
    debts = [market.reserves[i].asset for i, b, _c in flags if b and i in market.reserves]
    return [(c, d) for c in collaterals for d in debts]


def best_plan(
    market: Market,
    user: UserAccount,
    now: int,
    liquidator: str | None,
    account: AccountData | None = None,
) -> Plan | None:
    """The accepted liquidation with the highest gross gain, or ``None`` if none is.

    ``account``: the user's account data at ``now`` if the caller has it (the engine has
    just confirmed it); computed once otherwise, and shared by every pair's attempts."""
    if account is None:
        account = calculate_user_account_data(market, user, now)
    best: Plan | None = None
    for collateral, debt in candidate_pairs(market, user):
        result = max_liquidation(
            market, user, collateral, debt, now=now, liquidator=liquidator, account=account
        )
        if isinstance(result, Liquidation):
            gain = gross_gain(market, result)
            if best is None or gain > best.gross_gain_base:
                best = Plan(result, gain)
    return best
