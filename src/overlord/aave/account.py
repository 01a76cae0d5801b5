"""``GenericLogic.calculateUserAccountData`` and ``Pool.getUserAccountData``, per version.

Spec: docs/aave-v3-math.md §3. :func:`calculate_user_account_data` returns the six values
``getUserAccountData`` returns at a block whose timestamp is ``now``, given the market state
the Pool holds at that block. Every difference between versions is read from the market's
:class:`~overlord.aave.versions.ProtocolRules`; this module has no version checks of its own.

Also here: the per-reserve balances of a user at ``now`` (aToken balance, variable and
stable debt), which the liquidation math reads the same way the tokens' ``balanceOf`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from overlord.aave.configuration import (
    EModeCategory,
    ReserveConfiguration,
    flagged_reserves,
    is_reserve_in_bitmap,
)
from overlord.aave.interest import compounded_interest_binomial, normalized_debt, normalized_income
from overlord.aave.market import Market, Reserve, UserAccount, UserReserve
from overlord.aave.versions import (
    EModeLtv,
    EModeMembership,
    HealthFactorFormula,
    LoopBound,
    ProtocolRules,
    Rounding,
)
from overlord.aave.wadray import (
    UINT256_MAX,
    checked,
    mul_div_ceil,
    mul_div_floor,
    percent_mul,
    percent_mul_floor,
    ray_mul,
    wad_div,
)

NO_DEBT_HEALTH_FACTOR = UINT256_MAX
"""The health factor of a user without debt: ``type(uint256).max``."""

LIQUIDATION_HEALTH_FACTOR_THRESHOLD = 10**18
"""A user is liquidatable when the health factor is strictly below 1e18."""

ACCOUNT_DATA_KEYS = (
    "totalCollateralBase",
    "totalDebtBase",
    "availableBorrowsBase",
    "currentLiquidationThreshold",
    "ltv",
    "healthFactor",
)
"""The names of ``getUserAccountData``'s six outputs, in order (the ABI's names)."""


@dataclass(frozen=True, slots=True)
class AccountData:
    """The six outputs of ``Pool.getUserAccountData``, in order, plus one internal flag.

    Base amounts are in the oracle's base-currency units, ``current_liquidation_threshold``
    and ``ltv`` in bps, ``health_factor`` in wad. ``has_zero_ltv_collateral`` is computed by
    the contract too but not returned by ``getUserAccountData``.
    """

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int
    has_zero_ltv_collateral: bool = False

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        """The tuple ``getUserAccountData`` returns."""
        return (
            self.total_collateral_base,
            self.total_debt_base,
            self.available_borrows_base,
            self.current_liquidation_threshold,
            self.ltv,
            self.health_factor,
        )

    @property
    def is_liquidatable(self) -> bool:
        """Whether the health factor is below 1 (``HF < 1e18``)."""
        return self.health_factor < LIQUIDATION_HEALTH_FACTOR_THRESHOLD


EMPTY_ACCOUNT = AccountData(0, 0, 0, 0, 0, NO_DEBT_HEALTH_FACTOR)


# Per-reserve balances at a timestamp.


def reserve_income_index(reserve: Reserve, now: int) -> int:
    """The reserve's normalized income (liquidity index) at ``now``."""
    return normalized_income(
        reserve.liquidity_index,
        reserve.current_liquidity_rate,
        reserve.last_update_timestamp,
        now,
    )


def reserve_debt_index(rules: ProtocolRules, reserve: Reserve, now: int) -> int:
    """The reserve's normalized variable debt (borrow index) at ``now``."""
    return normalized_debt(
        reserve.variable_borrow_index,
        reserve.current_variable_borrow_rate,
        reserve.last_update_timestamp,
        now,
        rules.compounded_interest,
    )


def atoken_balance(rules: ProtocolRules, reserve: Reserve, position: UserReserve, now: int) -> int:
    """``aToken.balanceOf(user)`` at ``now``."""
    return rules.token_math.a_balance(
        position.scaled_atoken_balance, reserve_income_index(reserve, now)
    )


def variable_debt_balance(
    rules: ProtocolRules, reserve: Reserve, position: UserReserve, now: int
) -> int:
    """``variableDebtToken.balanceOf(user)`` at ``now`` (3.3 GHO: the discounted balance)."""
    scaled = position.scaled_variable_debt
    if scaled == 0:
        return 0
    index = reserve_debt_index(rules, reserve, now)
    balance = rules.token_math.v_balance(scaled, index)
    discount = position.gho_discount
    if (
        rules.gho_discounted_debt
        and not reserve.configuration.virtual_accounting_active
        and discount is not None
        and discount.percent != 0
        and index != discount.last_index
    ):
        # GhoVariableDebtToken.balanceOf: the discount applies to the interest accrued
        # since the user's last action.
        accrued = balance - ray_mul(scaled, discount.last_index)
        balance -= percent_mul(accrued, discount.percent)
    return balance


def stable_debt_balance(rules: ProtocolRules, position: UserReserve, now: int) -> int:
    """``stableDebtToken.balanceOf(user)`` at ``now`` (0 from 3.2, where stable debt is gone)."""
    stable = position.stable_debt
    if not rules.stable_debt or stable is None or stable.principal == 0:
        return 0
    factor = compounded_interest_binomial(stable.rate, stable.last_update_timestamp, now)
    return ray_mul(stable.principal, factor)


def total_debt_balance(
    rules: ProtocolRules, reserve: Reserve, position: UserReserve, now: int
) -> int:
    """The user's whole debt in the reserve, variable plus stable, in token units."""
    return variable_debt_balance(rules, reserve, position, now) + stable_debt_balance(
        rules, position, now
    )


def debt_value(rules: ProtocolRules, debt: int, price: int, unit: int) -> int:
    """A debt amount in base currency: floor before 3.5, ``mulDivCeil`` from 3.5."""
    if rules.debt_value_rounding is Rounding.CEIL:
        return mul_div_ceil(debt, price, unit)
    return mul_div_floor(debt, price, unit)


def collateral_value(collateral: int, price: int, unit: int) -> int:
    """A collateral amount in base currency (floor in every version)."""
    return mul_div_floor(collateral, price, unit)


# eMode.


def user_emode_category(market: Market, user: UserAccount) -> EModeCategory | None:
    """The user's eMode category, or ``None`` outside eMode.

    A category id that was never configured reads as all zeros from storage, as on chain.
    """
    if user.emode_category == 0:
        return None
    category = market.emode_categories.get(user.emode_category)
    if category is None:
        return EModeCategory(
            id=user.emode_category, ltv=0, liquidation_threshold=0, liquidation_bonus=0
        )
    return category


def in_emode(
    rules: ProtocolRules, emode: EModeCategory, reserve_id: int, configuration: ReserveConfiguration
) -> bool:
    """Whether the reserve belongs to the user's eMode category, by the version's rule."""
    if rules.emode_membership is EModeMembership.RESERVE_CATEGORY_ID:
        return configuration.emode_category == emode.id
    return is_reserve_in_bitmap(emode.collateral_bitmap, reserve_id)


def emode_source_price(market: Market, emode: EModeCategory | None) -> int:
    """3.0/3.1: the oracle price of the category's price source, or 0 when there is none."""
    if emode is None or not market.rules.emode_price_source or not emode.price_source:
        return 0
    return market.price(emode.price_source)


def reserve_price(
    market: Market, reserve: Reserve, emode: EModeCategory | None, emode_price: int
) -> int:
    """The price ``calculateUserAccountData`` uses for the reserve (3.0/3.1 eMode override)."""
    if emode is not None and emode_price != 0 and reserve.configuration.emode_category == emode.id:
        return emode_price
    return market.price(reserve.asset)


def collateral_weights(
    rules: ProtocolRules, emode: EModeCategory | None, reserve: Reserve
) -> tuple[int, int]:
    """``(ltv, liquidation threshold)`` the reserve contributes as the user's collateral."""
    configuration = reserve.configuration
    if emode is None or not in_emode(rules, emode, reserve.id, configuration):
        return configuration.ltv, configuration.liquidation_threshold
    if rules.emode_ltv is EModeLtv.RESERVE_LTV_GATES:
        # 3.0 to 3.5: a reserve LTV of 0 wins over the category LTV.
        ltv = 0 if configuration.ltv == 0 else emode.ltv
    else:
        ltv = 0 if is_reserve_in_bitmap(emode.ltvzero_bitmap, reserve.id) else emode.ltv
    return ltv, emode.liquidation_threshold


# The account.


def _zero_ltv(rules: ProtocolRules, configuration: ReserveConfiguration, ltv: int) -> bool:
    """Whether the collateral sets ``hasZeroLtvCollateral``.

    Up to 3.5 the contract tests the reserve's own LTV (an eMode LTV of 0 adds nothing to
    the average but does not set the flag); from 3.6 it tests the effective LTV.
    """
    if rules.emode_ltv is EModeLtv.RESERVE_LTV_GATES:
        return configuration.ltv == 0
    return ltv == 0


def _walk(
    rules: ProtocolRules, market: Market, user: UserAccount
) -> Iterator[tuple[Reserve, bool, bool]]:
    bound = market.loop_reserves_count if rules.loop_bound is LoopBound.RESERVES_COUNT else None
    for reserve_id, borrowing, collateral in flagged_reserves(user.configuration):
        if bound is not None and reserve_id >= bound:
            return
        reserve = market.reserves.get(reserve_id)
        if reserve is not None:  # a dropped reserve leaves a gap that the loop skips
            yield reserve, borrowing, collateral


def calculate_user_account_data(market: Market, user: UserAccount, now: int) -> AccountData:
    """The account data ``getUserAccountData(user)`` returns at a block with timestamp ``now``.

    Raises:
        MissingPriceError: a price the contract would read is not in ``market.prices``.
        ArithmeticRevert: the contract would revert (overflow, division by zero).
    """
    if user.configuration == 0:
        return EMPTY_ACCOUNT
    rules = market.rules
    emode = user_emode_category(market, user)
    emode_price = emode_source_price(market, emode)
    total_collateral = total_debt = weighted_ltv = weighted_threshold = 0
    has_zero_ltv = False
    for reserve, borrowing, collateral in _walk(rules, market, user):
        configuration = reserve.configuration
        price = reserve_price(market, reserve, emode, emode_price)
        position = user.position(reserve.id)
        if collateral and (
            configuration.liquidation_threshold != 0
            or not rules.collateral_needs_liquidation_threshold
        ):
            value = collateral_value(
                atoken_balance(rules, reserve, position, now), price, configuration.unit
            )
            total_collateral += value
            ltv, threshold = collateral_weights(rules, emode, reserve)
            if _zero_ltv(rules, configuration, ltv):
                has_zero_ltv = True
            else:
                weighted_ltv += value * ltv
            weighted_threshold += value * threshold
        if borrowing:
            debt = total_debt_balance(rules, reserve, position, now)
            total_debt += debt_value(rules, debt, price, configuration.unit)
    for total in (total_collateral, total_debt, weighted_ltv, weighted_threshold):
        checked(total)
    return _account_data(
        rules, total_collateral, total_debt, weighted_ltv, weighted_threshold, has_zero_ltv
    )


def _account_data(
    rules: ProtocolRules,
    total_collateral: int,
    total_debt: int,
    weighted_ltv: int,
    weighted_threshold: int,
    has_zero_ltv: bool,
) -> AccountData:
    average_ltv = weighted_ltv // total_collateral if total_collateral else 0
    average_threshold = weighted_threshold // total_collateral if total_collateral else 0
    if total_debt == 0:
        health_factor = NO_DEBT_HEALTH_FACTOR
    elif rules.health_factor is HealthFactorFormula.WEIGHTED_SUM:
        health_factor = wad_div(weighted_threshold, total_debt) // 10_000
    else:
        health_factor = wad_div(percent_mul(total_collateral, average_threshold), total_debt)
    if rules.available_borrows_rounding is Rounding.FLOOR:
        borrowable = percent_mul_floor(total_collateral, average_ltv)
    else:
        borrowable = percent_mul(total_collateral, average_ltv)
    available_borrows = borrowable - total_debt if borrowable > total_debt else 0
    return AccountData(
        total_collateral_base=total_collateral,
        total_debt_base=total_debt,
        available_borrows_base=available_borrows,
        current_liquidation_threshold=average_threshold,
        ltv=average_ltv,
        health_factor=health_factor,
        has_zero_ltv_collateral=has_zero_ltv,
    )
