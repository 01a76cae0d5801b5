"""``simulate_liquidation`` and ``max_liquidation`` (spec docs/aave-v3-math.md §5).

Every expected amount is computed in the test from the Solidity formulas (LiquidationLogic,
ValidationLogic) with small round numbers. Unless a test says otherwise the indices are
exactly one ray and the reserves were updated at ``NOW``, so scaled balances are balances.

Units: collateral ``C`` has 18 decimals and costs 2000e8; debt ``D`` has 6 decimals and
costs 1e8, so 1 D is worth 1e8 base units and 1 C is worth 2000e8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from overlord.aave import (
    MAX_DEBT_TO_COVER,
    AccountData,
    ArithmeticRevert,
    EModeCategory,
    Liquidation,
    LiquidationRejected,
    LiquidationRevert,
    Market,
    ProtocolVersion,
    Reserve,
    ReserveNotListedError,
    StableDebt,
    UserAccount,
    UserReserve,
    calculate_user_account_data,
    max_liquidation,
    reserve_bitmap,
    simulate_liquidation,
    user_configuration_word,
)
from overlord.aave.liquidation import LiquidationResult, _Amounts, _capped_fee, _Pair
from tests.unit.aave import builders
from tests.unit.aave.builders import (
    BORROWER,
    NOW,
    PRICE_SOURCE,
    WAD,
    asset,
    make_reserve,
    make_user,
)

V = ProtocolVersion
ALL_VERSIONS = list(ProtocolVersion)
PER_RESERVE_CLOSE_FACTOR = [V.V3_0_0, V.V3_0_1, V.V3_0_2, V.V3_1, V.V3_2]
POSITION_WIDE_CLOSE_FACTOR = [V.V3_3, V.V3_4, V.V3_5, V.V3_6]
FROM_3_0_1 = [v for v in ALL_VERSIONS if v is not V.V3_0_0]

LIQUIDATOR = "0x00000000000000000000000000000000000000c0"
C_PRICE = 2000 * 10**8
D_PRICE = 10**8
C = 10**18  # one collateral token
D = 10**6  # one debt token


def collateral_reserve(reserve_id: int = 0, **overrides: int | bool) -> Reserve:
    """``C``: 18 decimals, LTV 80 %, LT 85 %, bonus 5 %, unless overridden."""
    settings: dict[str, int | bool] = {"ltv": 8000, "lt": 8500, "lb": 10500}
    settings.update(overrides)
    return make_reserve(reserve_id, **settings)  # type: ignore[arg-type]


def debt_reserve(reserve_id: int = 1, **overrides: int | bool) -> Reserve:
    """``D``: 6 decimals, not a collateral."""
    settings: dict[str, int | bool] = {"decimals": 6}
    settings.update(overrides)
    return make_reserve(reserve_id, **settings)  # type: ignore[arg-type]


def make_market(
    version: ProtocolVersion,
    reserves: Sequence[Reserve],
    prices: Mapping[int, int] | None = None,
    *,
    emode: Sequence[EModeCategory] = (),
    extra_prices: Mapping[str, int] | None = None,
) -> Market:
    """Prices by reserve id; by default ``C`` prices for id 0 and ``D`` prices for id 1."""
    by_id = {0: C_PRICE, 1: D_PRICE} if prices is None else prices
    return builders.make_market(version, reserves, by_id, emode=emode, extra_prices=extra_prices)


def liquidate(
    market: Market,
    user: UserAccount,
    collateral_id: int = 0,
    debt_id: int = 1,
    debt_to_cover: int = MAX_DEBT_TO_COVER,
    *,
    liquidator: str | None = LIQUIDATOR,
    oracle_sentinel_allows: bool | None = None,
) -> LiquidationResult:
    return simulate_liquidation(
        market,
        user,
        asset(collateral_id),
        asset(debt_id),
        debt_to_cover,
        now=NOW,
        liquidator=liquidator,
        oracle_sentinel_allows=oracle_sentinel_allows,
    )


def accepted(result: LiquidationResult) -> Liquidation:
    assert isinstance(result, Liquidation), result
    return result


def rejection(result: LiquidationResult) -> LiquidationRevert:
    assert isinstance(result, LiquidationRejected), result
    return result.reason


# Hand formulas (spec §1.2, §5.4).


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + 5000) // 10000


def percent_div(value: int, percentage: int) -> int:
    return (value * 10000 + percentage // 2) // percentage


def percent_div_ceil(value: int, percentage: int) -> int:
    return -(-value * 10000 // percentage)


def base_collateral(debt: int) -> int:
    """``dP * debt * cU // (cP * dU)`` for C and D."""
    return D_PRICE * debt * C // (C_PRICE * D)


def collateral_value(amount: int) -> int:
    return amount * C_PRICE // C


def debt_value(amount: int) -> int:
    return amount * D_PRICE // D


# The standard position: 10 C (20000e8) against 17500 D. HF = 85 % * 20000 / 17500 = 0.9714.


def standard_user(debt: int = 17_500 * D) -> UserAccount:
    return make_user(collateral={0: 10 * C}, debt={1: debt})


def standard_market(version: ProtocolVersion, **collateral: int | bool) -> Market:
    return make_market(version, [collateral_reserve(**collateral), debt_reserve()])


# Validation (spec §5.2), in the contract's order.


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_an_inactive_reserve_is_rejected_before_a_paused_one(version: ProtocolVersion) -> None:
    market = make_market(
        version, [collateral_reserve(active=False, paused=True), debt_reserve(paused=True)]
    )

    result = liquidate(market, standard_user())

    assert rejection(result) is LiquidationRevert.RESERVE_INACTIVE


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_an_inactive_debt_reserve_is_rejected(version: ProtocolVersion) -> None:
    market = make_market(version, [collateral_reserve(), debt_reserve(active=False)])

    assert rejection(liquidate(market, standard_user())) is LiquidationRevert.RESERVE_INACTIVE


# Up to 3.4 only the debt reserve is cached before validation, so an unlisted collateral
# asset reaches validateLiquidationCall with an all-zero configuration.
@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_4])
def test_an_unlisted_collateral_reads_as_an_inactive_reserve_up_to_3_4(
    version: ProtocolVersion,
) -> None:
    market = standard_market(version)

    result = liquidate(market, standard_user(), collateral_id=7)

    assert rejection(result) is LiquidationRevert.RESERVE_INACTIVE


# From 3.5 the collateral reserve is cached (and updated) first: the call to its zero token
# address reverts without a reason, before any validation.
@pytest.mark.parametrize("version", [V.V3_5, V.V3_6])
def test_an_unlisted_collateral_reverts_without_a_reason_from_3_5(
    version: ProtocolVersion,
) -> None:
    market = standard_market(version)

    with pytest.raises(ReserveNotListedError):
        liquidate(market, standard_user(), collateral_id=7)


# The debt reserve is cached first in every version.
@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_4, V.V3_6])
def test_an_unlisted_debt_asset_reverts_without_a_reason(version: ProtocolVersion) -> None:
    market = standard_market(version)

    with pytest.raises(ReserveNotListedError, match="no reserve is listed"):
        liquidate(market, standard_user(), debt_id=7)


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
@pytest.mark.parametrize("paused", ["collateral", "debt"])
def test_a_paused_reserve_is_rejected_even_when_the_user_is_healthy(
    version: ProtocolVersion, paused: str
) -> None:
    reserves = [
        collateral_reserve(paused=paused == "collateral"),
        debt_reserve(paused=paused == "debt"),
    ]
    market = make_market(version, reserves)

    result = liquidate(market, standard_user(debt=1000 * D))  # HF far above 1

    assert rejection(result) is LiquidationRevert.RESERVE_PAUSED


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_the_sentinel_blocks_liquidation_at_health_factor_from_0_95(
    version: ProtocolVersion,
) -> None:
    result = liquidate(standard_market(version), standard_user(), oracle_sentinel_allows=False)

    assert rejection(result) is LiquidationRevert.PRICE_ORACLE_SENTINEL_CHECK_FAILED
    assert isinstance(result, LiquidationRejected)
    td = 17_500 * 10**8
    if version is V.V3_6:  # wadDiv(sumLT, TD) // 10000
        expected_hf = (20_000 * 10**8 * 8500 * WAD + td // 2) // td // 10000
    else:  # wadDiv(percentMul(TC, avgLT), TD)
        expected_hf = (17_000 * 10**8 * WAD + td // 2) // td
    assert result.health_factor == expected_hf


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_the_sentinel_is_checked_before_the_health_factor(version: ProtocolVersion) -> None:
    result = liquidate(
        standard_market(version), standard_user(debt=1000 * D), oracle_sentinel_allows=False
    )

    assert rejection(result) is LiquidationRevert.PRICE_ORACLE_SENTINEL_CHECK_FAILED


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_the_sentinel_blocks_at_exactly_0_95(version: ProtocolVersion) -> None:
    # LT 95 %: 95 % of 20000e8 against 20000e8 of debt is exactly 0.95e18.
    market = standard_market(version, lt=9500)

    result = liquidate(market, standard_user(debt=20_000 * D), oracle_sentinel_allows=False)

    assert isinstance(result, LiquidationRejected)
    assert result.health_factor == 95 * 10**16
    assert result.reason is LiquidationRevert.PRICE_ORACLE_SENTINEL_CHECK_FAILED


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
@pytest.mark.parametrize("sentinel", [False, True, None])
def test_below_0_95_or_with_the_sentinel_allowing_liquidation_proceeds(
    version: ProtocolVersion, sentinel: bool | None
) -> None:
    user = standard_user(debt=18_000 * D)  # HF = 17000 / 18000 = 0.944

    result = liquidate(standard_market(version), user, oracle_sentinel_allows=sentinel)

    assert accepted(result).debt_repaid == 18_000 * D


@pytest.mark.parametrize("version", [V.V3_1, V.V3_6])
@pytest.mark.parametrize("which", ["collateral", "debt"])
def test_an_active_grace_period_blocks_liquidation_from_3_1(
    version: ProtocolVersion, which: str
) -> None:
    reserves = [
        collateral_reserve(grace_until=NOW if which == "collateral" else 0),
        debt_reserve(grace_until=NOW if which == "debt" else 0),
    ]

    result = liquidate(make_market(version, reserves), standard_user(debt=1000 * D))

    # `liquidationGracePeriodUntil < block.timestamp` is required, and before the HF check.
    assert rejection(result) is LiquidationRevert.LIQUIDATION_GRACE_SENTINEL_CHECK_FAILED


@pytest.mark.parametrize("version", [V.V3_1, V.V3_6])
def test_a_grace_period_that_ended_a_second_ago_allows_liquidation(
    version: ProtocolVersion,
) -> None:
    reserves = [collateral_reserve(grace_until=NOW - 1), debt_reserve(grace_until=NOW - 1)]

    result = liquidate(make_market(version, reserves), standard_user())

    assert isinstance(result, Liquidation)


@pytest.mark.parametrize("version", [V.V3_0_0, V.V3_0_2])
def test_there_is_no_grace_period_before_3_1(version: ProtocolVersion) -> None:
    reserves = [collateral_reserve(grace_until=NOW + 3600), debt_reserve(grace_until=NOW + 3600)]

    result = liquidate(make_market(version, reserves), standard_user())

    assert isinstance(result, Liquidation)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_health_factor_of_exactly_one_is_not_liquidatable(version: ProtocolVersion) -> None:
    result = liquidate(standard_market(version), standard_user(debt=17_000 * D))

    assert isinstance(result, LiquidationRejected)
    assert result.health_factor == WAD
    assert result.reason is LiquidationRevert.HEALTH_FACTOR_NOT_BELOW_THRESHOLD


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_collateral_without_the_user_flag_cannot_be_liquidated(version: ProtocolVersion) -> None:
    reserves = [collateral_reserve(), debt_reserve(), collateral_reserve(2)]
    market = make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 2: C_PRICE})
    user = make_user(collateral={0: 10 * C}, debt={1: 17_500 * D}, unflagged_collateral={2: C})

    result = liquidate(market, user, collateral_id=2)

    assert rejection(result) is LiquidationRevert.COLLATERAL_CANNOT_BE_LIQUIDATED


def lt_zero_collateral_case(version: ProtocolVersion) -> LiquidationResult:
    reserves = [collateral_reserve(), debt_reserve(), make_reserve(2, lb=10500)]  # id 2: LT 0
    market = make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 2: 1000 * 10**8})
    user = make_user(collateral={0: 10 * C, 2: C}, debt={1: 17_500 * D})
    return liquidate(market, user, collateral_id=2)


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_3, V.V3_5])
def test_lt_zero_collateral_cannot_be_liquidated_up_to_3_5(version: ProtocolVersion) -> None:
    result = lt_zero_collateral_case(version)

    assert rejection(result) is LiquidationRevert.COLLATERAL_CANNOT_BE_LIQUIDATED


def test_lt_zero_collateral_can_be_liquidated_on_3_6() -> None:
    liquidation = accepted(lt_zero_collateral_case(V.V3_6))

    # TC = 21000e8 (the LT-0 token counts), sumLT from the 10 C only: HF = 0.9714 > 0.95,
    # but the LT-0 reserve holds under 2000e8 (1 token at 1000e8): 100 % of the debt may go,
    # so the whole token goes, for percentDivCeil(1000 D, 10500) of debt.
    assert liquidation.max_liquidatable_debt == 17_500 * D
    assert liquidation.collateral_to_liquidator == C
    assert liquidation.debt_repaid == percent_div_ceil(1000 * D, 10500)
    assert liquidation.account.total_collateral_base == 21_000 * 10**8


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_a_reserve_the_user_did_not_borrow_cannot_be_repaid(version: ProtocolVersion) -> None:
    reserves = [collateral_reserve(), debt_reserve(), debt_reserve(2)]
    market = make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 2: D_PRICE})

    result = liquidate(market, standard_user(), debt_id=2)

    assert rejection(result) is LiquidationRevert.SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER


@pytest.mark.parametrize("version", [V.V3_4, V.V3_5, V.V3_6])
def test_self_liquidation_is_rejected_first_from_3_4(version: ProtocolVersion) -> None:
    market = make_market(version, [collateral_reserve(active=False), debt_reserve()])

    result = liquidate(market, standard_user(debt=1000 * D), liquidator=BORROWER)

    assert rejection(result) is LiquidationRevert.SELF_LIQUIDATION


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_3])
def test_self_liquidation_is_allowed_before_3_4(version: ProtocolVersion) -> None:
    result = liquidate(standard_market(version), standard_user(), liquidator=BORROWER)

    assert isinstance(result, Liquidation)


@pytest.mark.parametrize("version", [V.V3_4, V.V3_6])
def test_an_unknown_liquidator_is_not_a_self_liquidation(version: ProtocolVersion) -> None:
    assert isinstance(
        liquidate(standard_market(version), standard_user(), liquidator=None), Liquidation
    )


# Close factor (spec §5.3).


@pytest.mark.parametrize("version", PER_RESERVE_CLOSE_FACTOR)
def test_close_factor_is_half_of_the_reserve_debt_above_0_95_up_to_3_2(
    version: ProtocolVersion,
) -> None:
    liquidation = accepted(liquidate(standard_market(version), standard_user()))

    assert liquidation.max_liquidatable_debt == percent_mul(17_500 * D, 5000) == 8_750 * D
    assert liquidation.debt_repaid == 8_750 * D


@pytest.mark.parametrize("version", PER_RESERVE_CLOSE_FACTOR)
@pytest.mark.parametrize(("lt", "debt"), [(8500, 18_000 * D), (9500, 20_000 * D)])
def test_close_factor_is_the_whole_reserve_debt_at_or_below_0_95_up_to_3_2(
    version: ProtocolVersion, lt: int, debt: int
) -> None:
    # LT 8500 / 18000 D: HF 0.944; LT 9500 / 20000 D: HF exactly 0.95 (not above it).
    liquidation = accepted(liquidate(standard_market(version, lt=lt), standard_user(debt=debt)))

    assert liquidation.max_liquidatable_debt == debt


def two_debt_market(version: ProtocolVersion) -> Market:
    reserves = [collateral_reserve(), debt_reserve(1), debt_reserve(2)]
    return make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 2: D_PRICE})


TWO_DEBT_USER = make_user(collateral={0: 10 * C}, debt={1: 12_000 * D, 2: 5_500 * D})


@pytest.mark.parametrize("version", PER_RESERVE_CLOSE_FACTOR)
def test_two_debts_are_each_capped_at_half_of_themselves_up_to_3_2(
    version: ProtocolVersion,
) -> None:
    market = two_debt_market(version)

    first = accepted(liquidate(market, TWO_DEBT_USER, debt_id=1))
    second = accepted(liquidate(market, TWO_DEBT_USER, debt_id=2))

    assert (first.max_liquidatable_debt, second.max_liquidatable_debt) == (6_000 * D, 2_750 * D)


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_close_factor_is_half_of_the_total_debt_from_3_3(version: ProtocolVersion) -> None:
    market = two_debt_market(version)

    first = accepted(liquidate(market, TWO_DEBT_USER, debt_id=1))
    second = accepted(liquidate(market, TWO_DEBT_USER, debt_id=2))

    # TD = 17500e8, half = 8750e8. Debt 1 (12000e8) is above it: capped at 8750e8 * 1e6 / 1e8.
    # Debt 2 (5500e8) is not: all of it.
    half_of_total = percent_mul(17_500 * 10**8, 5000)
    assert first.max_liquidatable_debt == half_of_total * D // D_PRICE == 8_750 * D
    assert second.max_liquidatable_debt == 5_500 * D
    assert (first.debt_repaid, second.debt_repaid) == (8_750 * D, 5_500 * D)


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_a_debt_reserve_under_2000_base_units_may_be_repaid_in_full_from_3_3(
    version: ProtocolVersion,
) -> None:
    # 2 C (4000e8, LT 85 % -> 3400e8) against 1900 D + 1600 D: HF = 3400 / 3500 = 0.971.
    # Half of TD is 1750e8 < 1900e8, but debt 1 is under 2000e8: 100 % allowed.
    market = two_debt_market(version)
    user = make_user(collateral={0: 2 * C}, debt={1: 1_900 * D, 2: 1_600 * D})

    liquidation = accepted(liquidate(market, user, debt_id=1))

    assert liquidation.max_liquidatable_debt == 1_900 * D
    assert liquidation.debt_repaid == 1_900 * D
    assert liquidation.collateral_to_liquidator == percent_mul(base_collateral(1_900 * D), 10500)


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_a_collateral_reserve_under_2000_base_units_allows_the_whole_debt_from_3_3(
    version: ProtocolVersion,
) -> None:
    # 10 C plus 1.5 units of reserve 3 at 1000e8 (1500e8, under 2000e8), debt 18500 D.
    reserves = [collateral_reserve(), debt_reserve(), collateral_reserve(3)]
    market = make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 3: 1000 * 10**8})
    user = make_user(collateral={0: 10 * C, 3: 15 * 10**17}, debt={1: 18_500 * D})

    big = accepted(liquidate(market, user, collateral_id=0))
    small = accepted(liquidate(market, user, collateral_id=3))

    assert big.max_liquidatable_debt == 9_250 * D
    assert small.max_liquidatable_debt == 18_500 * D
    # All 1.5 units go; the debt that buys them: percentDiv(1500e8 worth of D, 10500).
    debt_worth = 1000 * 10**8 * 15 * 10**17 * D // (D_PRICE * C)
    assert small.collateral_to_liquidator == 15 * 10**17
    expected_debt = (
        percent_div_ceil(debt_worth, 10500)
        if version in (V.V3_5, V.V3_6)
        else percent_div(debt_worth, 10500)
    )
    assert small.debt_repaid == expected_debt == 1_428_571_429
    assert small.has_no_collateral_left is False


# Collateral amounts, bonus and protocol fee (spec §5.4).


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_collateral_is_the_debt_value_plus_the_bonus_minus_the_protocol_fee(
    version: ProtocolVersion,
) -> None:
    market = standard_market(version, protocol_fee=1000)  # 10 % of the bonus
    # 3000 D is under the close factor in every version.
    liquidation = accepted(liquidate(market, standard_user(), debt_to_cover=3_000 * D))

    base = base_collateral(3_000 * D)  # 1.5 C
    with_bonus = percent_mul(base, 10500)  # 1.575 C
    bonus_part = with_bonus - percent_div(with_bonus, 10500)  # 0.075 C
    fee = percent_mul(bonus_part, 1000)  # 0.0075 C
    assert (base, with_bonus, bonus_part, fee) == (
        15 * 10**17,
        1_575 * 10**15,
        75 * 10**15,
        75 * 10**14,
    )
    assert liquidation.debt_repaid == 3_000 * D
    assert liquidation.debt_to_cover == 3_000 * D
    assert liquidation.protocol_fee == fee
    assert liquidation.collateral_to_liquidator == with_bonus - fee
    assert liquidation.protocol_fee <= bonus_part
    assert liquidation.liquidation_bonus == 10500
    assert (liquidation.collateral_price, liquidation.debt_price) == (C_PRICE, D_PRICE)
    assert (liquidation.collateral_balance, liquidation.debt_balance) == (10 * C, 17_500 * D)
    assert liquidation.collateral_flag_cleared is False


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_max_debt_to_cover_liquidates_up_to_the_close_factor(version: ProtocolVersion) -> None:
    liquidation = accepted(liquidate(standard_market(version, protocol_fee=1000), standard_user()))

    # Both close-factor rules give 8750 D here (a single debt worth more than 2000e8).
    with_bonus = percent_mul(base_collateral(8_750 * D), 10500)
    fee = percent_mul(with_bonus - percent_div(with_bonus, 10500), 1000)
    assert (with_bonus, fee) == (459_375 * 10**13, 21_875 * 10**12)
    assert liquidation.debt_repaid == 8_750 * D
    assert liquidation.debt_to_cover == MAX_DEBT_TO_COVER
    assert liquidation.collateral_to_liquidator == with_bonus - fee
    assert liquidation.protocol_fee == fee


@pytest.mark.parametrize("version", [V.V3_2, V.V3_3, V.V3_6])
def test_the_emode_bonus_applies_to_collateral_in_the_category_bitmap(
    version: ProtocolVersion,
) -> None:
    category = EModeCategory(
        id=1,
        ltv=8000,
        liquidation_threshold=8500,
        liquidation_bonus=10200,
        collateral_bitmap=reserve_bitmap([0]),
    )
    market = make_market(version, [collateral_reserve(), debt_reserve()], emode=[category])
    in_emode = make_user(collateral={0: 10 * C}, debt={1: 17_500 * D}, emode=1)

    liquidation = accepted(liquidate(market, in_emode, debt_to_cover=3_000 * D))

    assert liquidation.liquidation_bonus == 10200
    assert liquidation.collateral_to_liquidator == percent_mul(base_collateral(3_000 * D), 10200)


@pytest.mark.parametrize("version", [V.V3_2, V.V3_6])
def test_collateral_outside_the_category_keeps_its_own_bonus(version: ProtocolVersion) -> None:
    category = EModeCategory(
        id=1,
        ltv=9000,
        liquidation_threshold=9300,
        liquidation_bonus=10100,
        collateral_bitmap=reserve_bitmap([1]),
    )
    market = make_market(version, [collateral_reserve(), debt_reserve()], emode=[category])
    user = make_user(collateral={0: 10 * C}, debt={1: 17_500 * D}, emode=1)

    liquidation = accepted(liquidate(market, user, debt_to_cover=3_000 * D))

    assert liquidation.liquidation_bonus == 10500


def price_source_market(version: ProtocolVersion, source_price: int) -> Market:
    category = EModeCategory(
        id=1,
        ltv=9000,
        liquidation_threshold=9300,
        liquidation_bonus=10100,
        price_source=PRICE_SOURCE,
    )
    reserves = [
        make_reserve(0, ltv=7000, lt=7500, lb=10600, emode_category=1),  # wstETH-like
        make_reserve(1, emode_category=1),  # WETH-like, 18 decimals
        make_reserve(2, ltv=7500, lt=8000, lb=10500),  # outside the category
    ]
    prices = {0: 2100 * 10**8, 1: 2100 * 10**8, 2: 1000 * 10**8}
    return make_market(
        version, reserves, prices, emode=[category], extra_prices={PRICE_SOURCE: source_price}
    )


def test_the_price_source_replaces_both_prices_for_an_emode_collateral_on_3_0_2() -> None:
    market = price_source_market(V.V3_0_2, 2000 * 10**8)
    # 10 units of 0 (at the source price: 20000e8, LT 93 %) against 9.5 of 1 (19000e8).
    user = make_user(collateral={0: 10 * WAD}, debt={1: 95 * 10**17}, emode=1)

    liquidation = accepted(liquidate(market, user))

    # HF = 18600 / 19000 = 0.979 -> 50 %: 4.75 units; same price on both sides, bonus 1 %.
    assert (liquidation.collateral_price, liquidation.debt_price) == (2000 * 10**8,) * 2
    assert liquidation.max_liquidatable_debt == 475 * 10**16
    assert liquidation.liquidation_bonus == 10100
    assert liquidation.collateral_to_liquidator == percent_mul(475 * 10**16, 10100)


def test_the_price_source_replaces_the_debt_price_even_for_collateral_outside_on_3_0_2() -> None:
    market = price_source_market(V.V3_0_2, 2000 * 10**8)
    # 20 units of 2 (20000e8, LT 80 % -> 16000e8) against 8.2 of 1 at the source (16400e8).
    user = make_user(collateral={2: 20 * WAD}, debt={1: 82 * 10**17}, emode=1)

    liquidation = accepted(liquidate(market, user, collateral_id=2))

    # HF 0.9756 -> 50 %: 4.1 units of debt at 2000e8 buy 8.2 units at 1000e8, plus 5 %.
    assert (liquidation.collateral_price, liquidation.debt_price) == (1000 * 10**8, 2000 * 10**8)
    assert liquidation.liquidation_bonus == 10500
    assert liquidation.max_liquidatable_debt == 41 * 10**17
    assert liquidation.collateral_to_liquidator == percent_mul(82 * 10**17, 10500)


def test_a_price_source_quoting_zero_makes_the_3_0_2_liquidation_revert() -> None:
    market = price_source_market(V.V3_0_2, 0)
    # Account data falls back to asset prices (GenericLogic checks the price): 10 units of 0
    # at 2100e8 (LT 93 %: 19530e8) against 10 of 1 at 2100e8: HF 0.93.
    user = make_user(collateral={0: 10 * WAD}, debt={1: 10 * WAD}, emode=1)

    with pytest.raises(ArithmeticRevert):
        liquidate(market, user)


def test_a_3_0_2_emode_liquidation_priced_by_the_source_needs_no_asset_prices() -> None:
    market = price_source_market(V.V3_0_2, 2000 * 10**8)
    market = Market(
        market.version, market.reserves, {PRICE_SOURCE: 2000 * 10**8}, market.emode_categories
    )
    user = make_user(collateral={0: 10 * WAD}, debt={1: 95 * 10**17}, emode=1)

    liquidation = accepted(liquidate(market, user))

    assert liquidation.collateral_to_liquidator == percent_mul(475 * 10**16, 10100)


# All of the collateral: the debt it buys, flags, deficit.


def all_collateral_market(version: ProtocolVersion) -> Market:
    return standard_market(version, lt=8000, protocol_fee=1000)


ALL_COLLATERAL_USER = make_user(collateral={0: 105 * 10**16}, debt={1: 2_050 * D})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_when_max_collateral_exceeds_the_balance_the_whole_balance_goes(
    version: ProtocolVersion,
) -> None:
    # 1.05 C (2100e8) against 2050 D: HF = 80 % * 2100 / 2050 = 0.82 -> 100 % close factor.
    liquidation = accepted(liquidate(all_collateral_market(version), ALL_COLLATERAL_USER))

    assert percent_mul(base_collateral(2_050 * D), 10500) == 107_625 * 10**13  # > 1.05 C
    debt_worth = C_PRICE * 105 * 10**16 * D // (D_PRICE * C)  # 2100 D
    assert liquidation.debt_repaid == percent_div(debt_worth, 10500) == 2_000 * D
    bonus_part = 105 * 10**16 - percent_div(105 * 10**16, 10500)  # 0.05 C
    assert liquidation.protocol_fee == percent_mul(bonus_part, 1000) == 5 * 10**15
    assert liquidation.collateral_to_liquidator == 1_045 * 10**15


@pytest.mark.parametrize("version", FROM_3_0_1)
def test_the_collateral_flag_clears_when_share_plus_fee_is_the_balance_from_3_0_1(
    version: ProtocolVersion,
) -> None:
    liquidation = accepted(liquidate(all_collateral_market(version), ALL_COLLATERAL_USER))

    assert liquidation.collateral_to_liquidator + liquidation.protocol_fee == 105 * 10**16
    assert liquidation.collateral_flag_cleared is True


def test_the_collateral_flag_ignores_the_fee_on_3_0_0() -> None:
    liquidation = accepted(liquidate(all_collateral_market(V.V3_0_0), ALL_COLLATERAL_USER))

    # 3.0.0 compared the liquidator's share alone (1.045 C) with the balance (1.05 C).
    assert liquidation.collateral_flag_cleared is False


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_the_collateral_flag_clears_without_a_fee_in_every_version(
    version: ProtocolVersion,
) -> None:
    market = standard_market(version, lt=8000)

    liquidation = accepted(liquidate(market, ALL_COLLATERAL_USER))

    assert liquidation.protocol_fee == 0
    assert liquidation.collateral_to_liquidator == 105 * 10**16
    assert liquidation.collateral_flag_cleared is True


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_taking_all_collateral_turns_the_rest_of_the_debt_into_deficit_from_3_3(
    version: ProtocolVersion,
) -> None:
    liquidation = accepted(liquidate(all_collateral_market(version), ALL_COLLATERAL_USER))

    # TC (2100e8) == value of the collateral taken before the fee (1.05 C * 2000e8).
    assert liquidation.has_no_collateral_left is True
    assert liquidation.deficit_created == 2_050 * D - 2_000 * D


@pytest.mark.parametrize("version", PER_RESERVE_CLOSE_FACTOR)
def test_there_is_no_deficit_before_3_3(version: ProtocolVersion) -> None:
    liquidation = accepted(liquidate(all_collateral_market(version), ALL_COLLATERAL_USER))

    assert (liquidation.has_no_collateral_left, liquidation.deficit_created) == (False, 0)


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_other_collateral_left_means_no_deficit(version: ProtocolVersion) -> None:
    reserves = [collateral_reserve(lt=8000), debt_reserve(), collateral_reserve(2, lt=8000)]
    market = make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 2: 10**8})
    user = make_user(collateral={0: 105 * 10**16, 2: WAD}, debt={1: 2_050 * D})

    liquidation = accepted(liquidate(market, user))

    assert liquidation.collateral_to_liquidator == 105 * 10**16
    assert (liquidation.has_no_collateral_left, liquidation.deficit_created) == (False, 0)


def debt_rounding_market(version: ProtocolVersion) -> Market:
    return standard_market(version, lt=8000, lb=10400)


DEBT_ROUNDING_USER = make_user(collateral={0: C}, debt={1: 1_950 * D})


def test_the_debt_for_all_the_collateral_rounds_half_up_up_to_3_4() -> None:
    liquidation = accepted(liquidate(debt_rounding_market(V.V3_4), DEBT_ROUNDING_USER))

    # 1 C is worth 2000 D; 2000e6 * 10000 / 10400 = 1923076923.08 -> half-up 1923076923.
    assert liquidation.debt_repaid == percent_div(2_000 * D, 10400) == 1_923_076_923
    assert liquidation.deficit_created == 1_950 * D - 1_923_076_923


@pytest.mark.parametrize("version", [V.V3_5, V.V3_6])
def test_the_debt_for_all_the_collateral_rounds_up_from_3_5(version: ProtocolVersion) -> None:
    liquidation = accepted(liquidate(debt_rounding_market(version), DEBT_ROUNDING_USER))

    assert liquidation.debt_repaid == percent_div_ceil(2_000 * D, 10400) == 1_923_076_924
    assert liquidation.deficit_created == 1_950 * D - 1_923_076_924


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_2])
def test_stable_debt_counts_as_debt_to_liquidate_up_to_3_1_only(version: ProtocolVersion) -> None:
    stable = StableDebt(principal=17_500 * D, rate=0, last_update_timestamp=NOW)
    user = UserAccount(
        address=BORROWER,
        configuration=user_configuration_word(borrowing=[1], collateral=[0]),
        positions={
            0: UserReserve(scaled_atoken_balance=10 * C),
            1: UserReserve(stable_debt=stable),
        },
    )

    result = liquidate(standard_market(version), user)

    if version is V.V3_0_2:
        assert accepted(result).max_liquidatable_debt == 8_750 * D
    else:
        # Stable debt is gone from 3.2: no debt, so HF is the maximum.
        assert rejection(result) is LiquidationRevert.HEALTH_FACTOR_NOT_BELOW_THRESHOLD


# Protocol fee cap (3.0.1+): the scaled fee may exceed what the liquidator's share leaves.


def fee_cap_market(version: ProtocolVersion) -> Market:
    # 0-decimal tokens at 1e8; collateral liquidity index 1.1 ray.
    reserves = [
        make_reserve(
            0,
            ltv=7500,
            lt=8000,
            lb=10500,
            decimals=0,
            protocol_fee=1000,
            liquidity_index=11 * 10**26,
        ),
        make_reserve(1, decimals=0),
    ]
    return make_market(version, reserves, {0: 10**8, 1: 10**8})


@pytest.mark.parametrize("version", [V.V3_0_1, V.V3_0_2, V.V3_1, V.V3_2, V.V3_3, V.V3_4])
def test_the_fee_is_capped_to_the_remaining_scaled_balance_with_half_up_math(
    version: ProtocolVersion,
) -> None:
    # 95 scaled at 1.1 ray: balance rayMul(95, 1.1) = 104.5 -> 105. Debt 200 (HF 0.42).
    user = make_user(collateral={0: 95}, debt={1: 200})

    liquidation = accepted(liquidate(fee_cap_market(version), user))

    # All 105 go (210 > 105) for percentDiv(105, 10500) = 100 of debt.
    # bonus part 105 - 100 = 5, fee percentMul(5, 10 %) = 1 (0.5 rounds up), share 104.
    # Burn rayDiv(104, 1.1) = 94.5 -> 95 scaled: nothing remains, but rayDiv(1, 1.1) = 1
    # scaled is needed for the fee -> fee = rayMul(0, 1.1) = 0.
    assert liquidation.collateral_balance == 105
    assert liquidation.debt_repaid == 100
    assert liquidation.collateral_to_liquidator == 104
    assert liquidation.protocol_fee == 0
    assert liquidation.collateral_flag_cleared is True  # compared with the uncapped fee


@pytest.mark.parametrize("version", [V.V3_5, V.V3_6])
def test_the_fee_is_capped_to_the_remaining_scaled_balance_with_floor_ceil_math(
    version: ProtocolVersion,
) -> None:
    # 100 scaled at 1.1 ray: balance floor(110) = 110. Debt 200.
    user = make_user(collateral={0: 100}, debt={1: 200})

    liquidation = accepted(liquidate(fee_cap_market(version), user))

    # All 110 go for percentDivCeil(110, 10500) = ceil(104.76) = 105 of debt. Bonus part
    # 110 - percentDiv(110, 10500) = 110 - 105 = 5, fee 1, share 109. Burn ceil(109/1.1) =
    # 100 scaled: nothing remains; the fee needs ceil(1/1.1) = 1 -> fee floor(0 * 1.1) = 0.
    assert liquidation.collateral_balance == 110
    assert liquidation.debt_repaid == 105
    assert liquidation.collateral_to_liquidator == 109
    assert liquidation.protocol_fee == 0


def test_a_fee_overshooting_the_scaled_balance_reverts_on_3_0_0() -> None:
    user = make_user(collateral={0: 95}, debt={1: 200})

    with pytest.raises(ArithmeticRevert):
        liquidate(fee_cap_market(V.V3_0_0), user)


def test_the_uncapped_fee_is_kept_when_it_fits_on_3_0_0() -> None:
    liquidation = accepted(liquidate(all_collateral_market(V.V3_0_0), ALL_COLLATERAL_USER))

    assert liquidation.protocol_fee == 5 * 10**15


def test_the_fee_cap_guard_rejects_a_share_larger_than_the_scaled_balance() -> None:
    # Defensive branch of the private helper, unreachable through simulate_liquidation: with
    # an index of at least one ray the share never exceeds the scaled balance. Called directly.
    market = fee_cap_market(V.V3_0_2)
    user = make_user(collateral={0: 95}, debt={1: 200})
    account = AccountData(105 * 10**8, 200 * 10**8, 0, 8000, 7500, 42 * 10**16)
    pair = _Pair(market.rules, market.reserves[0], market.reserves[1], None, account, 105, 200)
    # A share of 200 needs rayDiv(200, 1.1) = 182 scaled, more than the 95 held.
    amounts = _Amounts(collateral=200, debt=100, fee=1, collateral_base=0)

    with pytest.raises(ArithmeticRevert, match="exceeds the scaled collateral"):
        _capped_fee(market, user, pair, amounts, NOW)


# Zero prices.


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_a_zero_collateral_price_makes_the_liquidation_revert(version: ProtocolVersion) -> None:
    market = make_market(version, [collateral_reserve(), debt_reserve()], {0: 0, 1: D_PRICE})

    with pytest.raises(ArithmeticRevert):
        liquidate(market, standard_user())


# Dust rule (3.3+, spec §5.5).


DUSTY_USER = standard_user(debt=18_000 * D)  # HF 0.944: the whole debt may go


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_leaving_less_than_1000_base_units_of_debt_is_rejected_from_3_3(
    version: ProtocolVersion,
) -> None:
    result = liquidate(standard_market(version), DUSTY_USER, debt_to_cover=17_500 * D)

    # Debt left: 500 D = 500e8 < 1000e8; collateral left 10 - 9.1875 C = 1625e8.
    assert rejection(result) is LiquidationRevert.MUST_NOT_LEAVE_DUST


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_leaving_less_than_1000_base_units_of_collateral_is_rejected_from_3_3(
    version: ProtocolVersion,
) -> None:
    user = standard_user(debt=19_500 * D)

    result = liquidate(standard_market(version), user, debt_to_cover=18_500 * D)

    # Collateral left: 20000e8 - 18500e8 * 1.05 = 575e8; debt left 1000e8 is fine.
    assert rejection(result) is LiquidationRevert.MUST_NOT_LEAVE_DUST


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_leaving_exactly_1000_base_units_of_debt_is_accepted_from_3_3(
    version: ProtocolVersion,
) -> None:
    liquidation = accepted(
        liquidate(standard_market(version), DUSTY_USER, debt_to_cover=17_000 * D)
    )

    assert debt_value(18_000 * D - liquidation.debt_repaid) == 1_000 * 10**8
    left = 10 * C - liquidation.collateral_to_liquidator - liquidation.protocol_fee
    assert collateral_value(left) == 20_000 * 10**8 - 17_850 * 10**8


@pytest.mark.parametrize("version", PER_RESERVE_CLOSE_FACTOR)
def test_there_is_no_dust_rule_before_3_3(version: ProtocolVersion) -> None:
    liquidation = accepted(
        liquidate(standard_market(version), DUSTY_USER, debt_to_cover=17_500 * D)
    )

    assert liquidation.debt_repaid == 17_500 * D
    assert liquidation.collateral_to_liquidator == percent_mul(base_collateral(17_500 * D), 10500)


# max_liquidation.


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_max_liquidation_is_the_max_debt_to_cover_call_when_that_is_accepted(
    version: ProtocolVersion,
) -> None:
    market = standard_market(version)

    best = max_liquidation(market, standard_user(), asset(0), asset(1), now=NOW)

    assert best == liquidate(market, standard_user())
    assert accepted(best).debt_repaid == 8_750 * D


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_6])
def test_max_liquidation_passes_on_other_rejections(version: ProtocolVersion) -> None:
    market = standard_market(version)

    best = max_liquidation(market, standard_user(debt=1000 * D), asset(0), asset(1), now=NOW)

    assert rejection(best) is LiquidationRevert.HEALTH_FACTOR_NOT_BELOW_THRESHOLD


def dust_market(version: ProtocolVersion) -> Market:
    return two_debt_market(version)


# 2.3 C (4600e8, 3910e8 weighted) against 2100 D1 + 1900 D2: HF 0.9775, half of TD = 2000e8.
DEBT_SHORT_USER = make_user(collateral={0: 23 * 10**17}, debt={1: 2_100 * D, 2: 1_900 * D})


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_max_liquidation_shrinks_the_debt_when_the_max_leaves_debt_dust(
    version: ProtocolVersion,
) -> None:
    market = dust_market(version)
    full = liquidate(market, DEBT_SHORT_USER)

    best = accepted(max_liquidation(market, DEBT_SHORT_USER, asset(0), asset(1), now=NOW))

    # MAX repays 2000 D of 2100 D: 100e8 left < 1000e8. Shrink the debt by the 900e8 short.
    assert rejection(full) is LiquidationRevert.MUST_NOT_LEAVE_DUST
    assert best.debt_to_cover == best.debt_repaid == 1_100 * D
    assert debt_value(2_100 * D - best.debt_repaid) >= 1_000 * 10**8
    left = 23 * 10**17 - best.collateral_to_liquidator - best.protocol_fee
    assert collateral_value(left) == 4_600 * 10**8 - 1_155 * 10**8
    assert rejection(liquidate(market, DEBT_SHORT_USER, debt_to_cover=1_100 * D + 1)) is (
        LiquidationRevert.MUST_NOT_LEAVE_DUST
    )


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_max_liquidation_with_the_account_data_given_is_the_same_and_uses_it(
    version: ProtocolVersion,
) -> None:
    market = dust_market(version)
    data = calculate_user_account_data(market, DEBT_SHORT_USER, NOW)

    given = max_liquidation(market, DEBT_SHORT_USER, asset(0), asset(1), now=NOW, account=data)

    assert given == max_liquidation(market, DEBT_SHORT_USER, asset(0), asset(1), now=NOW)
    # It is the one the attempts validate with, not recomputed.
    healthy = replace(data, health_factor=WAD)
    rejected = max_liquidation(
        market, DEBT_SHORT_USER, asset(0), asset(1), now=NOW, account=healthy
    )
    assert rejection(rejected) is LiquidationRevert.HEALTH_FACTOR_NOT_BELOW_THRESHOLD


def collateral_short_market(version: ProtocolVersion) -> Market:
    reserves = [collateral_reserve(), debt_reserve(), collateral_reserve(3)]
    return make_market(version, reserves, {0: C_PRICE, 1: D_PRICE, 3: 1000 * 10**8})


# 1.1 C (2200e8) + 2.5 units at 1000e8 (2500e8) against 4000 D: HF 0.99875; half of TD 2000e8.
COLLATERAL_SHORT_USER = make_user(collateral={0: 11 * 10**17, 3: 25 * 10**17}, debt={1: 4_000 * D})


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_max_liquidation_searches_below_the_periphery_estimate_when_it_leaves_dust(
    version: ProtocolVersion,
) -> None:
    market = collateral_short_market(version)
    # The periphery estimate: 1.05 C would be taken, leaving 100e8; give back 900e8 worth
    # (0.45 C), and the debt that buys 0.6 C is percentDivCeil(1200 D, 10500) = 1142857143.
    estimate = percent_div_ceil(1_200 * D, 10500)
    assert estimate == 1_142_857_143
    # ...which still takes 600000000075000000 wei and leaves 999.99999985e8: rejected.
    taken = percent_mul(base_collateral(estimate), 10500)
    assert collateral_value(11 * 10**17 - taken) == 99_999_999_985
    assert rejection(liquidate(market, COLLATERAL_SHORT_USER, debt_to_cover=estimate)) is (
        LiquidationRevert.MUST_NOT_LEAVE_DUST
    )

    best = accepted(max_liquidation(market, COLLATERAL_SHORT_USER, asset(0), asset(1), now=NOW))

    # One unit less takes 599999999550000000 wei and leaves 1000.0000009e8.
    assert best.debt_to_cover == best.debt_repaid == estimate - 1
    assert best.collateral_to_liquidator == percent_mul(base_collateral(estimate - 1), 10500)
    left = 11 * 10**17 - best.collateral_to_liquidator - best.protocol_fee
    assert collateral_value(left) == 100_000_000_090
    assert debt_value(4_000 * D - best.debt_repaid) >= 1_000 * 10**8


@pytest.mark.parametrize("version", POSITION_WIDE_CLOSE_FACTOR)
def test_max_liquidation_finds_the_largest_accepted_amount_well_below_the_estimate(
    version: ProtocolVersion,
) -> None:
    # Collateral 0: 700.01 tokens of 6 decimals at 3e8 (2100.03e8); plus 2500e8 elsewhere;
    # 4000 D of debt. HF 0.9775: half of TD (2000 D) may go, which takes 699999999 units
    # and leaves 10001 units (0.030003e8): dust.
    reserves = [
        make_reserve(0, ltv=8000, lt=8500, lb=10500, decimals=6),
        debt_reserve(),
        collateral_reserve(3),
    ]
    market = make_market(version, reserves, {0: 3 * 10**8, 1: D_PRICE, 3: 1000 * 10**8})
    user = make_user(collateral={0: 700_010_000, 3: 25 * 10**17}, debt={1: 4_000 * D})
    # Periphery estimate: short = 1000e8 - 3000300; give back short * 1e6 // 3e8 = 333323332
    # units of the 699999999, and cover percentDivCeil(3 * 366676667, 10500) of debt.
    estimate = percent_div_ceil(
        3 * (699_999_999 - (10**11 - 3_000_300) * 10**6 // (3 * 10**8)), 10500
    )
    assert estimate == 1_047_647_620
    # Exact answer: the collateral left must be worth 1000e8, i.e. at least
    # ceil(1e11 / 300) = 333333334 units, so at most 366676666 may be taken:
    # percentMul(d // 3, 10500) <= 366676666  <=>  d // 3 <= 349215872  <=>  d <= 1047647618.
    largest = 3 * 349_215_872 + 2
    assert percent_mul(largest // 3, 10500) == 366_676_666
    assert percent_mul((largest + 1) // 3, 10500) == 366_676_667

    best = accepted(max_liquidation(market, user, asset(0), asset(1), now=NOW))

    assert best.debt_to_cover == best.debt_repaid == largest == 1_047_647_618
    assert best.collateral_to_liquidator == 366_676_666
    assert rejection(liquidate(market, user, debt_to_cover=largest + 1)) is (
        LiquidationRevert.MUST_NOT_LEAVE_DUST
    )
