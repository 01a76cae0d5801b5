"""The best liquidation of an underwater user: every valid pair sized exactly, best net profit.

For each (collateral, debt) pair the user has flags on, :func:`max_liquidation` gives the
largest liquidation the Pool accepts (3.3+: shrunk for the dust rule). Each is valued in the
market's base currency (USD with 8 decimals on the USD-based markets), integers only:

* gross gain: collateral received minus debt repaid, each leg valued at the oracle prices
  the liquidation uses, floored (a loss stays negative);
* swap cost: ``fee_bps`` of the collateral's value, rounded up, when the collateral must be
  sold for the debt asset (none when they are the same asset);
* flash-loan premium: ``flash_loan_premium_bps`` of the debt repaid's value, rounded up,
  when the debt is flash-loaned (none in inventory mode: the liquidator holds the debt);
* gas: a fixed ``gas_cost_base`` (``GAS_COST_USD``); the executor replaces it with
  ``eth_estimateGas`` x gas price x the native token's price before it sends.

The net profit is the gross gain minus the three costs; the pair with the highest net wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from overlord.aave import (
    AccountData,
    Liquidation,
    Market,
    UserAccount,
    calculate_user_account_data,
    max_liquidation,
)
from overlord.aave.configuration import flagged_reserves

BPS = 10_000


@dataclass(frozen=True)
class CostModel:
    """What a liquidation costs besides the debt it repays (see the module docstring)."""

    fee_bps: int = 30
    flash_loan_premium_bps: int | None = None  # None: inventory mode, no flash loan
    gas_cost_base: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.fee_bps <= BPS:
            raise ValueError(f"fee_bps must be within 0..{BPS}, not {self.fee_bps}")
        premium = self.flash_loan_premium_bps
        if premium is not None and not 0 <= premium <= BPS:
            raise ValueError(f"flash_loan_premium_bps must be within 0..{BPS}, not {premium}")
        if self.gas_cost_base < 0:
            raise ValueError(f"gas_cost_base must not be negative, not {self.gas_cost_base}")

    @classmethod
    def from_usd(
        cls,
        *,
        fee_bps: int,
        gas_cost_usd: Decimal,
        base_currency_unit: int,
        flash_loan_premium_bps: int | None = None,
    ) -> CostModel:
        """The model for a USD-based market (``base_currency_unit`` base units per dollar)."""
        gas = int((gas_cost_usd * base_currency_unit).to_integral_value(rounding="ROUND_CEILING"))
        return cls(fee_bps, flash_loan_premium_bps, gas)

    def with_gas(self, gas_cost_base: int) -> CostModel:
        """The same model with another gas cost (the executor's estimate)."""
        return replace(self, gas_cost_base=gas_cost_base)


@dataclass(frozen=True)
class Plan:
    """A sized liquidation and what it earns, in base-currency units."""

    liquidation: Liquidation
    gross_gain_base: int
    swap_cost_base: int = 0
    flash_loan_premium_base: int = 0
    gas_cost_base: int = 0

    @property
    def net_profit_base(self) -> int:
        """Gross gain minus swap cost, flash-loan premium and gas; negative for a loss."""
        return (
            self.gross_gain_base
            - self.swap_cost_base
            - self.flash_loan_premium_base
            - self.gas_cost_base
        )


def gross_gain(market: Market, liquidation: Liquidation) -> int:
    """Collateral received minus debt repaid, in base currency (each leg floored)."""
    return collateral_value(market, liquidation) - debt_value(market, liquidation)


def collateral_value(market: Market, liquidation: Liquidation) -> int:
    """The collateral the liquidator receives, in base currency (floored)."""
    unit = market.reserve_by_asset(liquidation.collateral_asset).configuration.unit
    return liquidation.collateral_to_liquidator * liquidation.collateral_price // unit


def debt_value(market: Market, liquidation: Liquidation) -> int:
    """The debt the liquidator repays, in base currency (floored)."""
    unit = market.reserve_by_asset(liquidation.debt_asset).configuration.unit
    return liquidation.debt_repaid * liquidation.debt_price // unit


def _ceil_bps(value: int, bps: int) -> int:
    return -(-value * bps // BPS)


def plan_of(market: Market, liquidation: Liquidation, costs: CostModel) -> Plan:
    """Value one sized liquidation under ``costs``."""
    received, repaid = collateral_value(market, liquidation), debt_value(market, liquidation)
    same_asset = liquidation.collateral_asset.lower() == liquidation.debt_asset.lower()
    premium_bps = costs.flash_loan_premium_bps
    return Plan(
        liquidation,
        received - repaid,
        swap_cost_base=0 if same_asset else _ceil_bps(received, costs.fee_bps),
        flash_loan_premium_base=0 if premium_bps is None else _ceil_bps(repaid, premium_bps),
        gas_cost_base=costs.gas_cost_base,
    )


def candidate_pairs(market: Market, user: UserAccount) -> list[tuple[str, str]]:
    """(collateral asset, debt asset) for every collateral flag x borrowing flag."""
    flags = list(flagged_reserves(user.configuration))
    collaterals = [market.reserves[i].asset for i, _b, c in flags if c and i in market.reserves]
    debts = [market.reserves[i].asset for i, b, _c in flags if b and i in market.reserves]
    return [(c, d) for c in collaterals for d in debts]


def ranked_plans(
    market: Market,
    user: UserAccount,
    now: int,
    liquidator: str | None,
    account: AccountData | None = None,
    costs: CostModel | None = None,
) -> list[Plan]:
    """Every pair the Pool would accept, sized to its maximum, best net profit first
    (ties: the order of :func:`candidate_pairs`).

    ``account``: the user's account data at ``now`` if the caller has it (the engine has
    just confirmed it); computed once otherwise, and shared by every pair's attempts."""
    if account is None:
        account = calculate_user_account_data(market, user, now)
    model = costs or CostModel()
    plans = []
    for collateral, debt in candidate_pairs(market, user):
        result = max_liquidation(
            market, user, collateral, debt, now=now, liquidator=liquidator, account=account
        )
        if isinstance(result, Liquidation):
            plans.append(plan_of(market, result, model))
    return sorted(plans, key=lambda plan: -plan.net_profit_base)


def best_plan(
    market: Market,
    user: UserAccount,
    now: int,
    liquidator: str | None,
    account: AccountData | None = None,
    costs: CostModel | None = None,
) -> Plan | None:
    """The accepted liquidation with the highest net profit, or ``None`` if none is (see
    :func:`ranked_plans`)."""
    plans = ranked_plans(market, user, now, liquidator, account, costs)
    return plans[0] if plans else None
