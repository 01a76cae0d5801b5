"""``calculate_user_account_data`` per protocol version (spec docs/aave-v3-math.md §3).

Expected numbers are computed in each test from the spec formulas, written out with plain
Python integers (``(x*p + 5000)//10000`` is ``percentMul``, ``(a*WAD + b//2)//b`` is
``wadDiv``), never by calling the package. Reserves are updated in the block under test
(``last_update_timestamp == NOW``), so the stored indices are the normalized ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from overlord.aave import (
    EMPTY_ACCOUNT,
    NO_DEBT_HEALTH_FACTOR,
    AccountData,
    EModeCategory,
    GhoDiscount,
    Market,
    MissingPriceError,
    ProtocolVersion,
    StableDebt,
    UserAccount,
    UserReserve,
    calculate_user_account_data,
    reserve_bitmap,
    user_configuration_word,
)
from overlord.aave.interest import SECONDS_PER_YEAR
from tests.unit.aave.builders import (
    BORROWER,
    NOW,
    PRICE_SOURCE,
    RAY,
    WAD,
    asset,
    make_market,
    make_reserve,
    make_user,
)

V = ProtocolVersion
ALL_VERSIONS = list(ProtocolVersion)
BEFORE_3_5 = [v for v in ALL_VERSIONS if v not in (V.V3_5, V.V3_6)]
BEFORE_3_6 = [v for v in ALL_VERSIONS if v is not V.V3_6]
FROM_3_2 = [V.V3_2, V.V3_3, V.V3_4, V.V3_5, V.V3_6]
UP_TO_3_1 = [V.V3_0_0, V.V3_0_1, V.V3_0_2, V.V3_1]

MAX_UINT = 2**256 - 1


def percent_mul(value: int, percentage: int) -> int:
    """Spec §1.2 half-up, written out for the expected values."""
    return (value * percentage + 5000) // 10000


def wad_div(a: int, b: int) -> int:
    """Spec §1.1 half-up, written out for the expected values."""
    return (a * WAD + b // 2) // b


def averaged_health_factor(tc: int, weighted_lt: int, td: int) -> int:
    """Pre-3.5: ``wadDiv(percentMul(TC, sumLT // TC), TD)``."""
    return wad_div(percent_mul(tc, weighted_lt // tc), td)


def weighted_health_factor(weighted_lt: int, td: int) -> int:
    """3.5+: ``wadDiv(sumLT, TD) // 10000``."""
    return wad_div(weighted_lt, td) // 10000


# Spec §9.2 account-data example. These are regression aids: the vectors were derived from a
# transcription of the contract formulas, not read from a chain; the local-chain work checks
# them against the real contracts.

T0 = 1_700_000_000
EXAMPLE_NOW = T0 + 3600


def example_market(version: ProtocolVersion) -> Market:
    weth = make_reserve(
        0,
        ltv=8050,
        lt=8300,
        lb=10500,
        decimals=18,
        liquidity_index=102 * 10**25,
        liquidity_rate=2 * 10**25,
        variable_borrow_index=104 * 10**25,
        variable_rate=3 * 10**25,
        last_update=T0,
    )
    usdc = make_reserve(
        1,
        ltv=7500,
        lt=7800,
        lb=10500,
        decimals=6,
        liquidity_index=103 * 10**25,
        liquidity_rate=4 * 10**25,
        variable_borrow_index=105 * 10**25,
        variable_rate=55 * 10**24,
        last_update=T0,
    )
    return make_market(version, [weth, usdc], {0: 3000 * 10**8, 1: 99_990_000})


EXAMPLE_USER = make_user(collateral={0: 10**18}, debt={1: 2_300_000_000})


@pytest.mark.parametrize("version", BEFORE_3_5)
def test_spec_example_before_3_5(version: ProtocolVersion) -> None:
    data = calculate_user_account_data(example_market(version), EXAMPLE_USER, EXAMPLE_NOW)

    assert data.as_tuple() == (
        306000698630,
        241477366148,
        4853196249,
        8300,
        8050,
        1051777994411852483,
    )


@pytest.mark.parametrize("version", [V.V3_5, V.V3_6])
def test_spec_example_from_3_5(version: ProtocolVersion) -> None:
    data = calculate_user_account_data(example_market(version), EXAMPLE_USER, EXAMPLE_NOW)

    assert data.as_tuple() == (
        306000698630,
        241477366149,
        4853196248,
        8300,
        8050,
        1051777994407082769,
    )


# Empty users and users without debt.


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_an_empty_user_gets_zeros_and_the_max_health_factor(version: ProtocolVersion) -> None:
    market = make_market(version, [make_reserve(0, ltv=8000, lt=8500)], {0: 10**8})
    user = UserAccount(address=BORROWER, configuration=0)

    data = calculate_user_account_data(market, user, NOW)

    assert data == EMPTY_ACCOUNT
    assert data.as_tuple() == (0, 0, 0, 0, 0, 2**256 - 1)
    assert data.is_liquidatable is False


def test_an_empty_user_needs_no_prices() -> None:
    market = make_market(V.V3_6, [make_reserve(0, ltv=8000, lt=8500)], {})

    data = calculate_user_account_data(market, UserAccount(BORROWER, 0), NOW)

    assert data.health_factor == NO_DEBT_HEALTH_FACTOR == MAX_UINT


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_user_without_debt_has_the_max_health_factor(version: ProtocolVersion) -> None:
    market = make_market(version, [make_reserve(0, ltv=8000, lt=8500, decimals=6)], {0: 10**8})
    user = make_user(collateral={0: 1_000 * 10**6})

    data = calculate_user_account_data(market, user, NOW)

    # 1000 tokens at 1e8: TC = 1000e8; available = 80 % of it (exact in every rounding).
    assert data.as_tuple() == (1000 * 10**8, 0, 800 * 10**8, 8500, 8000, MAX_UINT)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_borrowing_flag_without_scaled_debt_adds_no_debt(version: ProtocolVersion) -> None:
    market = make_market(version, [make_reserve(0, ltv=8000, lt=8500, decimals=6)], {0: 10**8})
    user = UserAccount(
        address=BORROWER,
        configuration=user_configuration_word(borrowing=[0], collateral=[0]),
        positions={0: UserReserve(scaled_atoken_balance=10**6)},
    )

    data = calculate_user_account_data(market, user, NOW)

    assert (data.total_debt_base, data.health_factor) == (0, MAX_UINT)


# Collateral gate: LT = 0 collateral (spec §3.2 COLLATERAL_GATE and the 3.6 note).


def lt_zero_market(version: ProtocolVersion) -> tuple[Market, UserAccount]:
    reserves = [
        make_reserve(0, ltv=7500, lt=8000),  # 1 token at 1000e8
        make_reserve(1, ltv=0, lt=0),  # 1 token at 500e8, LT 0
        make_reserve(2, decimals=6),  # debt: 800 tokens at 1e8
    ]
    market = make_market(version, reserves, {0: 1000 * 10**8, 1: 500 * 10**8, 2: 10**8})
    user = make_user(collateral={0: 10**18, 1: 10**18}, debt={2: 800 * 10**6})
    return market, user


@pytest.mark.parametrize("version", BEFORE_3_6)
def test_lt_zero_collateral_is_left_out_before_3_6(version: ProtocolVersion) -> None:
    market, user = lt_zero_market(version)

    data = calculate_user_account_data(market, user, NOW)

    tc, td = 1000 * 10**8, 800 * 10**8
    weighted_lt = tc * 8000
    expected_hf = (
        weighted_health_factor(weighted_lt, td)
        if version is V.V3_5
        else averaged_health_factor(tc, weighted_lt, td)
    )
    assert expected_hf == WAD  # 80 % of 1000 against 800
    assert data.as_tuple() == (tc, td, 0, 8000, 7500, expected_hf)
    assert data.has_zero_ltv_collateral is False


def test_lt_zero_collateral_counts_in_tc_and_averages_but_not_in_sum_lt_on_3_6() -> None:
    market, user = lt_zero_market(V.V3_6)

    data = calculate_user_account_data(market, user, NOW)

    tc, td = 1500 * 10**8, 800 * 10**8
    weighted_lt = 1000 * 10**8 * 8000 + 500 * 10**8 * 0
    weighted_ltv = 1000 * 10**8 * 7500
    assert data.total_collateral_base == tc
    assert data.current_liquidation_threshold == weighted_lt // tc == 5333
    assert data.ltv == weighted_ltv // tc == 5000
    assert data.health_factor == weighted_health_factor(weighted_lt, td) == WAD
    assert data.available_borrows_base == 0  # floor(1500e8 * 50 %) = 750e8 <= 800e8
    assert data.has_zero_ltv_collateral is True


# eMode membership and prices (spec §3.2 rows "eMode membership" and "price").


def emode_market(version: ProtocolVersion) -> tuple[Market, UserAccount]:
    category = EModeCategory(
        id=1,
        ltv=9000,
        liquidation_threshold=9300,
        liquidation_bonus=10100,
        price_source=PRICE_SOURCE,
        collateral_bitmap=reserve_bitmap([0]),
    )
    reserves = [
        # In category 1 both by the 3.0/3.1 reserve bits and by the 3.2+ bitmap.
        make_reserve(0, ltv=7000, lt=7500, emode_category=1),
        # Category 1 by the (stale from 3.2) reserve bits only, not in the bitmap.
        make_reserve(1, ltv=6000, lt=6500, emode_category=1),
        # Debt, outside the category.
        make_reserve(2, decimals=6),
    ]
    prices = {0: 102_000_000, 1: 2 * 10**8, 2: 10**8}
    market = make_market(
        version, reserves, prices, emode=[category], extra_prices={PRICE_SOURCE: 10**8}
    )
    user = make_user(collateral={0: 1000 * 10**18, 1: 100 * 10**18}, debt={2: 500 * 10**6}, emode=1)
    return market, user


@pytest.mark.parametrize("version", UP_TO_3_1)
def test_emode_by_reserve_category_id_with_price_source_up_to_3_1(version: ProtocolVersion) -> None:
    market, user = emode_market(version)

    data = calculate_user_account_data(market, user, NOW)

    # Both collaterals carry category 1 in their bits: both priced by the source (1e8) and
    # weighted with the category's 9000/9300. The debt reserve is not in the category.
    tc = 1000 * 10**8 + 100 * 10**8
    td = 500 * 10**8
    assert data.as_tuple() == (
        tc,
        td,
        percent_mul(tc, 9000) - td,
        9300,
        9000,
        averaged_health_factor(tc, tc * 9300, td),
    )


@pytest.mark.parametrize("version", FROM_3_2)
def test_emode_by_bitmap_ignores_reserve_bits_and_price_source_from_3_2(
    version: ProtocolVersion,
) -> None:
    market, user = emode_market(version)

    data = calculate_user_account_data(market, user, NOW)

    # Reserve 0 (in the bitmap): own price 1.02e8, category weights. Reserve 1 (bits only):
    # own price 2e8, reserve weights 6000/6500.
    v0, v1 = 1000 * 102_000_000, 100 * 2 * 10**8
    tc, td = v0 + v1, 500 * 10**8
    weighted_ltv = v0 * 9000 + v1 * 6000
    weighted_lt = v0 * 9300 + v1 * 6500
    avg_ltv, avg_lt = weighted_ltv // tc, weighted_lt // tc
    assert (tc, avg_ltv, avg_lt) == (1220 * 10**8, 8508, 8840)
    if version in (V.V3_5, V.V3_6):
        hf = weighted_health_factor(weighted_lt, td)
        available = tc * avg_ltv // 10000 - td
    else:
        hf = averaged_health_factor(tc, weighted_lt, td)
        available = percent_mul(tc, avg_ltv) - td
    assert data.as_tuple() == (tc, td, available, avg_lt, avg_ltv, hf)


def test_emode_members_priced_by_the_source_need_no_price_of_their_own_on_3_0_2() -> None:
    market, user = emode_market(V.V3_0_2)
    prices = {PRICE_SOURCE: 10**8, asset(2): 10**8}  # no price for reserves 0 and 1
    market = Market(market.version, market.reserves, prices, market.emode_categories)

    data = calculate_user_account_data(market, user, NOW)

    assert data.total_collateral_base == 1100 * 10**8


def test_a_missing_emode_price_source_price_raises_on_3_0_2() -> None:
    market, user = emode_market(V.V3_0_2)
    prices = {asset(0): 10**8, asset(1): 10**8, asset(2): 10**8}
    market = Market(market.version, market.reserves, prices, market.emode_categories)

    with pytest.raises(MissingPriceError) as raised:
        calculate_user_account_data(market, user, NOW)

    assert raised.value.asset == PRICE_SOURCE


def test_an_emode_price_source_quoting_zero_falls_back_to_asset_prices_on_3_0_2() -> None:
    market, user = emode_market(V.V3_0_2)
    prices = {PRICE_SOURCE: 0, asset(0): 102_000_000, asset(1): 2 * 10**8, asset(2): 10**8}
    market = Market(market.version, market.reserves, prices, market.emode_categories)

    data = calculate_user_account_data(market, user, NOW)

    # GenericLogic: `eModeAssetPrice != 0 && ...` - a zero source price is not used.
    assert data.total_collateral_base == 1000 * 102_000_000 + 100 * 2 * 10**8


# eMode LTV: the 3.0-3.5 reserve-LTV gate vs the 3.6 ltv-zero bitmap.


def emode_ltv_market(version: ProtocolVersion, ltvzero: Sequence[int] = ()) -> Market:
    category = EModeCategory(
        id=1,
        ltv=9000,
        liquidation_threshold=9300,
        liquidation_bonus=10100,
        collateral_bitmap=reserve_bitmap([0]),
        ltvzero_bitmap=reserve_bitmap(ltvzero),
    )
    reserves = [make_reserve(0, ltv=0, lt=7500, emode_category=1), make_reserve(1, decimals=6)]
    return make_market(version, reserves, {0: 1000 * 10**8, 1: 10**8}, emode=[category])


EMODE_LTV_USER = make_user(collateral={0: 10**18}, debt={1: 100 * 10**6}, emode=1)


@pytest.mark.parametrize("version", BEFORE_3_6)
def test_a_zero_reserve_ltv_gives_zero_ltv_even_in_emode_before_3_6(
    version: ProtocolVersion,
) -> None:
    data = calculate_user_account_data(emode_ltv_market(version), EMODE_LTV_USER, NOW)

    assert (data.ltv, data.available_borrows_base, data.has_zero_ltv_collateral) == (0, 0, True)
    assert data.current_liquidation_threshold == 9300  # the category LT still applies


def test_3_6_ignores_the_reserve_ltv_of_emode_collateral() -> None:
    data = calculate_user_account_data(emode_ltv_market(V.V3_6), EMODE_LTV_USER, NOW)

    tc, td = 1000 * 10**8, 100 * 10**8
    assert data.ltv == 9000
    assert data.available_borrows_base == tc * 9000 // 10000 - td == 800 * 10**8
    assert data.has_zero_ltv_collateral is False


def test_3_6_ltvzero_bitmap_gives_zero_ltv_in_emode() -> None:
    market = emode_ltv_market(V.V3_6, ltvzero=[0])

    data = calculate_user_account_data(market, EMODE_LTV_USER, NOW)

    assert (data.ltv, data.available_borrows_base, data.has_zero_ltv_collateral) == (0, 0, True)
    assert data.current_liquidation_threshold == 9300


@pytest.mark.parametrize("version", [V.V3_0_2, V.V3_2, V.V3_5])
def test_has_zero_ltv_follows_the_reserve_ltv_not_the_emode_ltv_before_3_6(
    version: ProtocolVersion,
) -> None:
    category = EModeCategory(
        id=1,
        ltv=0,
        liquidation_threshold=9300,
        liquidation_bonus=10100,
        collateral_bitmap=reserve_bitmap([0]),
    )
    reserves = [make_reserve(0, ltv=7000, lt=7500, emode_category=1), make_reserve(1, decimals=6)]
    market = make_market(version, reserves, {0: 1000 * 10**8, 1: 10**8}, emode=[category])

    data = calculate_user_account_data(market, EMODE_LTV_USER, NOW)

    # avgLtv += value * eModeLtv (= 0) because the reserve LTV 7000 != 0: no zero-LTV flag.
    assert data.ltv == 0
    assert data.has_zero_ltv_collateral is False


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_zero_ltv_collateral_outside_emode_sets_the_zero_ltv_flag(
    version: ProtocolVersion,
) -> None:
    market = make_market(version, [make_reserve(0, ltv=0, lt=7500)], {0: 10**8})

    data = calculate_user_account_data(market, make_user(collateral={0: 10**18}), NOW)

    assert (data.total_collateral_base, data.ltv, data.has_zero_ltv_collateral) == (
        10**8,
        0,
        True,
    )


# Unknown eMode category: storage reads as zeros.


@pytest.mark.parametrize("version", UP_TO_3_1)
def test_an_unknown_emode_category_reads_as_zeros_up_to_3_1(version: ProtocolVersion) -> None:
    reserves = [make_reserve(0, ltv=7000, lt=8000, emode_category=7), make_reserve(1, decimals=6)]
    market = make_market(version, reserves, {0: 1000 * 10**8, 1: 10**8})
    user = make_user(collateral={0: 10**18}, debt={1: 100 * 10**6}, emode=7)

    data = calculate_user_account_data(market, user, NOW)

    # The reserve's bits say category 7: the all-zero category LT (0) and LTV (0) apply.
    assert data.as_tuple() == (1000 * 10**8, 100 * 10**8, 0, 0, 0, 0)
    assert data.is_liquidatable is True


@pytest.mark.parametrize("version", FROM_3_2)
def test_an_unknown_emode_category_has_an_empty_bitmap_from_3_2(version: ProtocolVersion) -> None:
    reserves = [make_reserve(0, ltv=7000, lt=8000, emode_category=7), make_reserve(1, decimals=6)]
    market = make_market(version, reserves, {0: 1000 * 10**8, 1: 10**8})
    user = make_user(collateral={0: 10**18}, debt={1: 100 * 10**6}, emode=7)

    data = calculate_user_account_data(market, user, NOW)

    assert (data.ltv, data.current_liquidation_threshold) == (7000, 8000)
    assert data.health_factor == 8 * WAD  # 80 % of 1000 against 100, exact in both formulas


# Stable debt (3.0.x and 3.1 only).


def stable_debt_user(principal: int) -> UserAccount:
    stable = StableDebt(principal=principal, rate=31_536 * 10**22, last_update_timestamp=NOW - 1)
    return UserAccount(
        address=BORROWER,
        configuration=user_configuration_word(borrowing=[0]),
        positions={0: UserReserve(scaled_variable_debt=100 * 10**18, stable_debt=stable)},
    )


@pytest.mark.parametrize("version", UP_TO_3_1)
def test_stable_debt_is_counted_up_to_3_1(version: ProtocolVersion) -> None:
    market = make_market(version, [make_reserve(0)], {0: 2000 * 10**8})

    data = calculate_user_account_data(market, stable_debt_user(50 * 10**18), NOW)

    # Rate 31.536 %/year over 1 s: binomial factor RAY + 1e19 (dt - 1 = 0 kills the other
    # terms); rayMul(50e18, RAY + 1e19) = 50e18 + 5e11.
    debt = 100 * 10**18 + 50 * 10**18 + 5 * 10**11
    assert data.total_debt_base == debt * 2000 * 10**8 // 10**18 == 30_000_000_100_000


@pytest.mark.parametrize("version", UP_TO_3_1)
def test_a_zero_stable_principal_adds_nothing(version: ProtocolVersion) -> None:
    market = make_market(version, [make_reserve(0)], {0: 2000 * 10**8})

    data = calculate_user_account_data(market, stable_debt_user(0), NOW)

    assert data.total_debt_base == 100 * 2000 * 10**8


@pytest.mark.parametrize("version", FROM_3_2)
def test_stable_debt_is_ignored_from_3_2(version: ProtocolVersion) -> None:
    market = make_market(version, [make_reserve(0)], {0: 2000 * 10**8})

    data = calculate_user_account_data(market, stable_debt_user(50 * 10**18), NOW)

    assert data.total_debt_base == 100 * 2000 * 10**8


# GHO on 3.3: valued with the discounted vGHO balance when virtual accounting is off.


def gho_market(version: ProtocolVersion, *, virtual_accounting: bool = False) -> Market:
    gho = make_reserve(0, variable_borrow_index=11 * 10**26, virtual_accounting=virtual_accounting)
    return make_market(version, [gho], {0: 10**8})


def gho_user(discount: GhoDiscount | None) -> UserAccount:
    return UserAccount(
        address=BORROWER,
        configuration=user_configuration_word(borrowing=[0]),
        positions={0: UserReserve(scaled_variable_debt=1000 * 10**18, gho_discount=discount)},
    )


def test_gho_debt_is_discounted_on_3_3() -> None:
    user = gho_user(GhoDiscount(percent=3000, last_index=RAY))

    data = calculate_user_account_data(gho_market(V.V3_3), user, NOW)

    # balance = rayMul(1000e18, 1.1 ray) = 1100e18; accrued since the last index: 100e18;
    # discount percentMul(100e18, 30 %) = 30e18; valued at 1e8 per 1e18.
    assert data.total_debt_base == (1100 - 30) * 10**8


@pytest.mark.parametrize("version", [V.V3_2, V.V3_4, V.V3_5, V.V3_6])
def test_gho_debt_is_not_discounted_outside_3_3(version: ProtocolVersion) -> None:
    user = gho_user(GhoDiscount(percent=3000, last_index=RAY))

    data = calculate_user_account_data(gho_market(version), user, NOW)

    assert data.total_debt_base == 1100 * 10**8


@pytest.mark.parametrize(
    ("discount", "virtual_accounting"),
    [
        (GhoDiscount(percent=3000, last_index=RAY), True),  # not GHO: virtual accounting on
        (GhoDiscount(percent=0, last_index=RAY), False),  # no discount percent
        (GhoDiscount(percent=3000, last_index=11 * 10**26), False),  # no interest since
        (None, False),  # no discount state cached
    ],
    ids=["virtual-accounting-on", "zero-percent", "same-index", "no-discount-state"],
)
def test_gho_discount_does_not_apply_without_its_preconditions_on_3_3(
    discount: GhoDiscount | None, virtual_accounting: bool
) -> None:
    market = gho_market(V.V3_3, virtual_accounting=virtual_accounting)

    data = calculate_user_account_data(market, gho_user(discount), NOW)

    assert data.total_debt_base == 1100 * 10**8


# 3.5 rounding: debt rounds up, collateral down.


def test_one_wei_of_debt_is_worth_at_least_one_base_unit_from_3_5() -> None:
    reserves = [make_reserve(0, ltv=8000, lt=8500, decimals=6), make_reserve(1)]
    user = make_user(collateral={0: 10**6}, debt={1: 1})

    data_34 = calculate_user_account_data(
        make_market(V.V3_4, reserves, {0: 10**8, 1: 3000 * 10**8}), user, NOW
    )
    data_35 = calculate_user_account_data(
        make_market(V.V3_5, reserves, {0: 10**8, 1: 3000 * 10**8}), user, NOW
    )

    # 1 wei * 3000e8 / 1e18: floor 0 on 3.4 (so the HF is the no-debt maximum), ceil 1 on 3.5.
    assert (data_34.total_debt_base, data_34.health_factor) == (0, MAX_UINT)
    assert data_35.total_debt_base == 1
    assert data_35.health_factor == weighted_health_factor(10**8 * 8500, 1)


def test_token_balances_round_half_up_before_3_5_and_floor_ceil_from_3_5() -> None:
    # Index 1.2 ray on both sides: 1 scaled wei is 1.2 wei.
    reserves = [
        make_reserve(0, ltv=8000, lt=8500, decimals=0, liquidity_index=12 * 10**26),
        make_reserve(1, decimals=0, variable_borrow_index=12 * 10**26),
    ]
    prices = {0: 10**8, 1: 10**8}
    user = make_user(collateral={0: 1}, debt={1: 1})

    data_34 = calculate_user_account_data(make_market(V.V3_4, reserves, prices), user, NOW)
    data_35 = calculate_user_account_data(make_market(V.V3_5, reserves, prices), user, NOW)

    # half-up: 1.2 -> 1 on both sides; 3.5: collateral floor(1.2) = 1, debt ceil(1.2) = 2.
    assert (data_34.total_collateral_base, data_34.total_debt_base) == (10**8, 10**8)
    assert (data_35.total_collateral_base, data_35.total_debt_base) == (10**8, 2 * 10**8)


# The two health-factor formulas.


def two_collateral_market(version: ProtocolVersion) -> Market:
    reserves = [
        make_reserve(0, ltv=7000, lt=8000, decimals=6),
        make_reserve(1, ltv=7000, lt=8500, decimals=6),
        make_reserve(2, decimals=6),
    ]
    return make_market(version, reserves, {0: 10**8, 1: 10**8, 2: 10**8})


TWO_COLLATERAL_USER = make_user(collateral={0: 10**6, 1: 2 * 10**6}, debt={2: 10**6})


@pytest.mark.parametrize("version", BEFORE_3_5)
def test_health_factor_goes_through_the_floored_average_before_3_5(
    version: ProtocolVersion,
) -> None:
    data = calculate_user_account_data(two_collateral_market(version), TWO_COLLATERAL_USER, NOW)

    # TC = 3e8, sumLT = 1e8*8000 + 2e8*8500 = 25000e8, avgLT = 8333 (floored from 8333.3),
    # percentMul(3e8, 8333) = 249_990_000, wadDiv(249_990_000, 1e8) = 2.4999e18.
    assert data.current_liquidation_threshold == 8333
    assert data.health_factor == wad_div(percent_mul(3 * 10**8, 8333), 10**8)
    assert data.health_factor == 2_499_900_000_000_000_000


@pytest.mark.parametrize("version", [V.V3_5, V.V3_6])
def test_health_factor_uses_the_unaveraged_weighted_sum_from_3_5(version: ProtocolVersion) -> None:
    data = calculate_user_account_data(two_collateral_market(version), TWO_COLLATERAL_USER, NOW)

    assert data.current_liquidation_threshold == 8333
    assert data.health_factor == wad_div(25_000 * 10**8, 10**8) // 10_000
    assert data.health_factor == 2_500_000_000_000_000_000


# availableBorrows: half-up before 3.5, floor from 3.5.


@pytest.mark.parametrize(
    ("version", "expected"),
    [(v, 8) for v in BEFORE_3_5] + [(V.V3_5, 7), (V.V3_6, 7)],
)
def test_available_borrows_rounds_half_up_before_3_5_and_down_from_3_5(
    version: ProtocolVersion, expected: int
) -> None:
    # 15 base units of collateral at 50 % LTV: 7.5 -> 8 (percentMul) or 7 (percentMulFloor).
    market = make_market(version, [make_reserve(0, ltv=5000, lt=6000, decimals=6)], {0: 1})

    data = calculate_user_account_data(market, make_user(collateral={0: 15 * 10**6}), NOW)

    assert data.total_collateral_base == 15
    assert data.available_borrows_base == expected


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_available_borrows_is_zero_when_debt_reaches_the_borrowing_power(
    version: ProtocolVersion,
) -> None:
    reserves = [make_reserve(0, ltv=5000, lt=6000, decimals=6), make_reserve(1, decimals=6)]
    market = make_market(version, reserves, {0: 10**8, 1: 10**8})
    user = make_user(collateral={0: 100 * 10**6}, debt={1: 50 * 10**6})

    data = calculate_user_account_data(market, user, NOW)

    assert (data.total_collateral_base, data.total_debt_base) == (100 * 10**8, 50 * 10**8)
    assert data.available_borrows_base == 0


# Loop: gaps and bound.


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_flagged_reserve_id_missing_from_the_market_is_a_gap_and_skipped(
    version: ProtocolVersion,
) -> None:
    reserves = [make_reserve(0, ltv=8000, lt=8500, decimals=6), make_reserve(2, decimals=6)]
    market = make_market(version, reserves, {0: 10**8, 2: 10**8})  # no reserve 1, no price
    user = make_user(collateral={0: 100 * 10**6, 1: 10**6}, debt={1: 10**6, 2: 10 * 10**6})

    data = calculate_user_account_data(market, user, NOW)

    assert (data.total_collateral_base, data.total_debt_base) == (100 * 10**8, 10 * 10**8)


def bounded_market(version: ProtocolVersion) -> Market:
    reserves = [make_reserve(i, ltv=8000, lt=8500, decimals=6) for i in range(3)]
    return make_market(version, reserves, {0: 10**8, 1: 10**8, 2: 10**8}, reserves_count=2)


BOUNDED_USER = make_user(collateral={0: 10**6, 2: 5 * 10**6}, debt={2: 10**6})


@pytest.mark.parametrize("version", [V.V3_0_0, V.V3_0_2, V.V3_1, V.V3_2, V.V3_3])
def test_flags_at_ids_from_reserves_count_on_are_ignored_up_to_3_3(
    version: ProtocolVersion,
) -> None:
    data = calculate_user_account_data(bounded_market(version), BOUNDED_USER, NOW)

    assert (data.total_collateral_base, data.total_debt_base) == (10**8, 0)


@pytest.mark.parametrize("version", [V.V3_4, V.V3_5, V.V3_6])
def test_every_flag_of_the_user_is_walked_from_3_4(version: ProtocolVersion) -> None:
    data = calculate_user_account_data(bounded_market(version), BOUNDED_USER, NOW)

    assert (data.total_collateral_base, data.total_debt_base) == (6 * 10**8, 10**8)


def test_reserves_count_defaults_to_one_past_the_highest_reserve_id() -> None:
    market = make_market(V.V3_3, [make_reserve(0), make_reserve(5)], {0: 1, 5: 1})

    assert market.loop_reserves_count == 6
    assert make_market(V.V3_3, [], {}).loop_reserves_count == 0
    assert bounded_market(V.V3_3).loop_reserves_count == 2


# Prices.


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_missing_price_of_a_flagged_reserve_raises_missing_price_error(
    version: ProtocolVersion,
) -> None:
    reserves = [make_reserve(0, ltv=8000, lt=8500), make_reserve(1)]
    market = make_market(version, reserves, {0: 10**8})
    user = make_user(collateral={0: 10**18}, debt={1: 10**18})

    with pytest.raises(MissingPriceError) as raised:
        calculate_user_account_data(market, user, NOW)

    assert raised.value.asset == asset(1)
    assert asset(1) in str(raised.value)


def test_an_unflagged_reserve_needs_no_price() -> None:
    reserves = [make_reserve(0, ltv=8000, lt=8500, decimals=6), make_reserve(1)]
    market = make_market(V.V3_6, reserves, {0: 10**8})

    data = calculate_user_account_data(market, make_user(collateral={0: 10**6}), NOW)

    assert data.total_collateral_base == 10**8


def test_reserve_lookup_by_asset() -> None:
    market = make_market(V.V3_6, [make_reserve(0), make_reserve(3)], {})

    assert market.reserve_by_asset(asset(3)).id == 3
    with pytest.raises(KeyError):
        market.reserve_by_asset(asset(9))


# Interest accrual inside the account computation.


@pytest.mark.parametrize(
    ("version", "debt_factor_extra"), [(V.V3_3, 0), (V.V3_4, 5 * 10**10 + 167)]
)
def test_account_data_accrues_interest_to_now_with_the_version_formula(
    version: ProtocolVersion, debt_factor_extra: int
) -> None:
    rate = 31_536 * 10**22  # 1e19 ray per second
    reserves = [
        make_reserve(0, ltv=8000, lt=8500, liquidity_rate=rate, last_update=NOW - 1),
        make_reserve(1, variable_rate=rate, last_update=NOW - 1),
    ]
    market = make_market(version, reserves, {0: 10**8, 1: 10**8})
    user = make_user(collateral={0: 10**27}, debt={1: 10**27})

    data = calculate_user_account_data(market, user, NOW)

    # Collateral: linear RAY + 1e19 on 1e27 wei; debt: binomial RAY + 1e19 (3.3) or Taylor
    # RAY + 1e19 + 5e10 + 167 (3.4). Value: wei * 1e8 / 1e18.
    assert data.total_collateral_base == (10**27 + 10**19) * 10**8 // 10**18
    assert data.total_debt_base == (10**27 + 10**19 + debt_factor_extra) * 10**8 // 10**18


def test_account_data_is_a_named_tuple_of_getuseraccountdata() -> None:
    data = AccountData(1, 2, 3, 4, 5, 6)

    assert data.as_tuple() == (1, 2, 3, 4, 5, 6)
    assert data.is_liquidatable is True
    assert AccountData(0, 0, 0, 0, 0, WAD).is_liquidatable is False
    assert AccountData(0, 0, 0, 0, 0, WAD - 1).is_liquidatable is True


def test_seconds_per_year_used_by_the_rate_helpers() -> None:
    assert 31_536 * 10**22 // SECONDS_PER_YEAR == 10**19


# The averaged pre-3.5 health factor is not monotonic in collateral prices.


def falling_collateral_market(version: ProtocolVersion, second_price: int) -> Market:
    reserves = [
        make_reserve(0, ltv=8000, lt=8250, decimals=0),
        make_reserve(1, ltv=7500, lt=7800, decimals=0),
        make_reserve(2, decimals=0),
    ]
    return make_market(version, reserves, {0: 20_000, 1: second_price, 2: 24_299})


FALLING_COLLATERAL_USER = make_user(collateral={0: 1, 1: 1}, debt={2: 1})


@pytest.mark.parametrize("version", BEFORE_3_5)
def test_averaged_health_factor_can_rise_when_a_collateral_price_falls_before_3_5(
    version: ProtocolVersion,
) -> None:
    # Collateral worth 20000 (LT 82.5 %) + 10001 (LT 78 %), debt worth 24299 base units.
    # Before: sumLT = 243_007_800, TC = 30001, avgLT = 8099 (floored from 8099.99),
    #         percentMul(30001, 8099) = 24298 -> HF = 24298 / 24299 < 1.
    # The second collateral drops to 10000: sumLT = 243_000_000, TC = 30000, avgLT = 8100,
    #         percentMul(30000, 8100) = 24300 -> HF = 24300 / 24299 > 1.
    before = calculate_user_account_data(
        falling_collateral_market(version, 10_001), FALLING_COLLATERAL_USER, NOW
    )
    after = calculate_user_account_data(
        falling_collateral_market(version, 10_000), FALLING_COLLATERAL_USER, NOW
    )

    assert before.health_factor == wad_div(percent_mul(30_001, 8099), 24_299)
    assert after.health_factor == wad_div(percent_mul(30_000, 8100), 24_299)
    assert before.is_liquidatable is True
    assert after.is_liquidatable is False


@pytest.mark.parametrize("version", [V.V3_5, V.V3_6])
def test_weighted_sum_health_factor_falls_with_the_collateral_price_from_3_5(
    version: ProtocolVersion,
) -> None:
    before = calculate_user_account_data(
        falling_collateral_market(version, 10_001), FALLING_COLLATERAL_USER, NOW
    )
    after = calculate_user_account_data(
        falling_collateral_market(version, 10_000), FALLING_COLLATERAL_USER, NOW
    )

    assert before.health_factor == weighted_health_factor(243_007_800, 24_299)
    assert after.health_factor == weighted_health_factor(243_000_000, 24_299)
    assert after.health_factor < before.health_factor
