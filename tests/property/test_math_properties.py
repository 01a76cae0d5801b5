"""Property tests of the exact Aave v3 math (spec docs/aave-v3-math.md §1, §3, §4, §5).

Markets are small and random: 1 to 4 reserves of 18, 6 or 8 decimals, random LTV/LT/bonus,
indices at or above one ray, rates, timestamps, prices, an optional eMode category (with a
3.0/3.1 price source sometimes), and users holding anything from dust to large balances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from overlord.aave import (
    EModeCategory,
    Liquidation,
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    UserAccount,
    UserReserve,
    calculate_user_account_data,
    max_liquidation,
    user_configuration_word,
)
from overlord.aave.errors import ArithmeticRevert, DivisionByZero, Uint256Overflow
from overlord.aave.versions import Rounding
from overlord.aave.wadray import (
    HALF_RAY,
    HALF_WAD,
    RAY,
    UINT256_MAX,
    WAD,
    mul_div_ceil,
    mul_div_floor,
    percent_div,
    percent_div_ceil,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    ray_div,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    ray_to_wad,
    wad_div,
    wad_mul,
    wad_to_ray,
)

MAX = UINT256_MAX
V = ProtocolVersion
ALL_VERSIONS = list(ProtocolVersion)
NOW = 1_700_000_000
BORROWER = "0x00000000000000000000000000000000000000b0"
PRICE_SOURCE = "0x0000000000000000000000000000000000005e00"

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Rounding helpers against their definitions over rationals.


def half_up(value: Fraction) -> int:
    """``floor(x + 1/2)``."""
    return math.floor(value + Fraction(1, 2))


@dataclass(frozen=True)
class Helper:
    """A contract helper, its exact definition and the contract's revert condition."""

    name: str
    function: Callable[..., int]
    arity: int
    exact: Callable[..., int]
    overflows: Callable[..., bool]
    divisor: int | None = None  # argument position that must be non-zero


def _mul_overflow(half: int) -> Callable[[int, int], bool]:
    # Assembly: `if iszero(or(iszero(b), iszero(gt(a, div(sub(not(0), HALF), b))))) revert`.
    return lambda a, b: b != 0 and a > (MAX - half) // b


def _div_overflow(unit: int) -> Callable[[int, int], bool]:
    # Assembly: `if or(iszero(b), iszero(iszero(gt(a, div(sub(not(0), div(b, 2)), UNIT)))))`.
    return lambda a, b: a > (MAX - b // 2) // unit


HELPERS: tuple[Helper, ...] = (
    Helper(
        "wad_mul", wad_mul, 2, lambda a, b: half_up(Fraction(a * b, WAD)), _mul_overflow(HALF_WAD)
    ),
    Helper(
        "ray_mul", ray_mul, 2, lambda a, b: half_up(Fraction(a * b, RAY)), _mul_overflow(HALF_RAY)
    ),
    Helper(
        "percent_mul",
        percent_mul,
        2,
        lambda a, b: half_up(Fraction(a * b, 10_000)),
        _mul_overflow(5_000),
    ),
    Helper(
        "wad_div", wad_div, 2, lambda a, b: half_up(Fraction(a * WAD, b)), _div_overflow(WAD), 1
    ),
    Helper(
        "ray_div", ray_div, 2, lambda a, b: half_up(Fraction(a * RAY, b)), _div_overflow(RAY), 1
    ),
    Helper(
        "percent_div",
        percent_div,
        2,
        lambda a, b: half_up(Fraction(a * 10_000, b)),
        _div_overflow(10_000),
        1,
    ),
    Helper(
        "ray_mul_floor",
        ray_mul_floor,
        2,
        lambda a, b: math.floor(Fraction(a * b, RAY)),
        _mul_overflow(0),
    ),
    Helper(
        "ray_mul_ceil",
        ray_mul_ceil,
        2,
        lambda a, b: math.ceil(Fraction(a * b, RAY)),
        _mul_overflow(0),
    ),
    Helper(
        "ray_div_floor",
        ray_div_floor,
        2,
        lambda a, b: math.floor(Fraction(a * RAY, b)),
        lambda a, b: a > MAX // RAY,
        1,
    ),
    Helper(
        "ray_div_ceil",
        ray_div_ceil,
        2,
        lambda a, b: math.ceil(Fraction(a * RAY, b)),
        lambda a, b: a > MAX // RAY,
        1,
    ),
    Helper(
        "percent_mul_floor",
        percent_mul_floor,
        2,
        lambda a, b: math.floor(Fraction(a * b, 10_000)),
        _mul_overflow(0),
    ),
    Helper(
        "percent_mul_ceil",
        percent_mul_ceil,
        2,
        lambda a, b: math.ceil(Fraction(a * b, 10_000)),
        _mul_overflow(0),
    ),
    Helper(
        "percent_div_ceil",
        percent_div_ceil,
        2,
        lambda a, b: math.ceil(Fraction(a * 10_000, b)),
        lambda a, b: a > MAX // 10_000,
        1,
    ),
    Helper(
        "mul_div_ceil",
        mul_div_ceil,
        3,
        lambda a, b, c: math.ceil(Fraction(a * b, c)),
        lambda a, b, c: b != 0 and a > MAX // b,
        2,
    ),
    Helper(
        "mul_div_floor",
        mul_div_floor,
        3,
        lambda a, b, c: math.floor(Fraction(a * b, c)),
        lambda a, b, c: b != 0 and a > MAX // b,
        2,
    ),
    Helper("wad_to_ray", wad_to_ray, 1, lambda a: a * 10**9, lambda a: a > MAX // 10**9),
    Helper("ray_to_wad", ray_to_wad, 1, lambda a: half_up(Fraction(a, 10**9)), lambda a: False),
)

UINT256 = st.one_of(
    st.integers(0, 2**64),
    st.integers(0, 2**128),
    st.integers(0, 2**160),
    st.integers(0, MAX),
    st.sampled_from([0, 1, 2, HALF_RAY, RAY, MAX // RAY, MAX // WAD, MAX]),
)


@pytest.mark.parametrize("helper", HELPERS, ids=[h.name for h in HELPERS])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_rounding_helper_is_its_rational_definition_or_reverts_at_the_contract_bound(
    helper: Helper, data: st.DataObject
) -> None:
    args = data.draw(st.tuples(*[UINT256] * helper.arity), label="args")

    if helper.divisor is not None and args[helper.divisor] == 0:
        with pytest.raises(ArithmeticRevert):
            helper.function(*args)
        if not helper.overflows(*args):
            with pytest.raises(DivisionByZero):
                helper.function(*args)
    elif helper.overflows(*args):
        with pytest.raises(Uint256Overflow):
            helper.function(*args)
    else:
        result = helper.function(*args)
        assert result == helper.exact(*args)
        assert 0 <= result <= MAX


# Random markets.


def asset(reserve_id: int) -> str:
    return f"0x{reserve_id + 0xA0:040x}"


FLAGS = ("none", "collateral", "debt", "both")
SCALED = st.one_of(st.integers(0, 10), st.integers(0, 10**9), st.integers(0, 10**24))


@dataclass(frozen=True)
class Scenario:
    """A market, a user and the reserve a property is about."""

    market: Market
    user: UserAccount
    subject: int

    def with_version(self, version: ProtocolVersion) -> Scenario:
        market = Market(
            version, self.market.reserves, self.market.prices, self.market.emode_categories
        )
        return Scenario(market, self.user, self.subject)

    def with_price(self, reserve_id: int, price: int) -> Scenario:
        prices = {**self.market.prices, asset(reserve_id): price}
        market = Market(
            self.market.version, self.market.reserves, prices, self.market.emode_categories
        )
        return Scenario(market, self.user, self.subject)


@st.composite
def reserves(draw: st.DrawFn, reserve_id: int) -> Reserve:
    lt = draw(st.integers(0, 9_500))
    configuration = ReserveConfiguration(
        ltv=draw(st.integers(0, lt)),
        liquidation_threshold=lt,
        liquidation_bonus=draw(st.integers(10_000, 11_500)),
        decimals=draw(st.sampled_from([18, 6, 8])),
        liquidation_protocol_fee=draw(st.sampled_from([0, 0, 1_000, 5_000, 10_000])),
        emode_category=draw(st.sampled_from([0, 1])),
        virtual_accounting_active=True,
    )
    last_update = draw(st.integers(NOW - 10**6, NOW))
    return Reserve(
        id=reserve_id,
        asset=asset(reserve_id),
        configuration=configuration,
        liquidity_index=draw(st.integers(RAY, 3 * RAY)),
        variable_borrow_index=draw(st.integers(RAY, 3 * RAY)),
        current_liquidity_rate=draw(st.integers(0, RAY // 2)),
        current_variable_borrow_rate=draw(st.integers(0, RAY // 2)),
        last_update_timestamp=last_update,
    )


@st.composite
def emode_categories(draw: st.DrawFn, count: int) -> EModeCategory:
    lt = draw(st.integers(1, 9_800))
    return EModeCategory(
        id=1,
        ltv=draw(st.integers(0, lt)),
        liquidation_threshold=lt,
        liquidation_bonus=draw(st.integers(10_000, 11_000)),
        price_source=draw(st.sampled_from([None, PRICE_SOURCE])),
        collateral_bitmap=draw(st.integers(0, 2**count - 1)),
        ltvzero_bitmap=draw(st.integers(0, 2**count - 1)),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    versions: Sequence[ProtocolVersion] = ALL_VERSIONS,
    subject_flags: str | None = None,
    allow_debt: bool = True,
) -> Scenario:
    """A random market and user; ``subject`` gets ``subject_flags`` and a non-zero balance."""
    count = draw(st.integers(1, 4))
    subject = draw(st.integers(0, count - 1))
    market_reserves = {i: draw(reserves(i)) for i in range(count)}
    prices = {asset(i): draw(st.integers(1, 10**13)) for i in range(count)}
    categories: dict[int, EModeCategory] = {}
    if draw(st.booleans()):
        category = draw(emode_categories(count))
        categories[1] = category
        if category.price_source is not None:
            prices[category.price_source] = draw(st.integers(1, 10**13))
    borrowing: list[int] = []
    collateral: list[int] = []
    positions: dict[int, UserReserve] = {}
    for i in range(count):
        flags = subject_flags if i == subject and subject_flags else draw(st.sampled_from(FLAGS))
        minimum = 1 if i == subject and subject_flags else 0
        scaled_a = draw(st.integers(minimum, 10**24) | st.integers(minimum, 10 + minimum))
        scaled_v = draw(st.integers(minimum, 10**24) | st.integers(minimum, 10 + minimum))
        if flags in ("collateral", "both"):
            collateral.append(i)
        if flags in ("debt", "both"):
            borrowing.append(i)
        positions[i] = UserReserve(
            scaled_atoken_balance=scaled_a, scaled_variable_debt=scaled_v if allow_debt else 0
        )
    user = UserAccount(
        address=BORROWER,
        configuration=user_configuration_word(borrowing=borrowing, collateral=collateral),
        # Users can only enter configured categories (validateSetUserEMode).
        emode_category=draw(st.sampled_from([0, 1])) if categories else 0,
        positions=positions,
    )
    market = Market(draw(st.sampled_from(list(versions))), market_reserves, prices, categories)
    return Scenario(market, user, subject)


@FAST
@given(scenario=scenarios(subject_flags="debt"), rise=st.integers(1, 10**13))
def test_health_factor_never_rises_when_a_debt_price_rises(scenario: Scenario, rise: int) -> None:
    old_price = scenario.market.prices[asset(scenario.subject)]
    before = calculate_user_account_data(scenario.market, scenario.user, NOW)

    after = calculate_user_account_data(
        scenario.with_price(scenario.subject, old_price + rise).market, scenario.user, NOW
    )

    assert after.health_factor <= before.health_factor
    assert after.total_debt_base >= before.total_debt_base


@FAST
@given(
    scenario=scenarios(versions=[V.V3_5, V.V3_6], subject_flags="collateral"),
    fall=st.floats(0, 1),
)
def test_health_factor_never_rises_when_a_collateral_price_falls_from_3_5(
    scenario: Scenario, fall: float
) -> None:
    """From 3.5 HF = wadDiv(sum(value * LT), TD) / 10000 is monotonic in every value.

    Before 3.5 it is not: the floored average LT can jump up when TC shrinks; see
    ``test_averaged_health_factor_can_rise_when_a_collateral_price_falls_before_3_5``.
    """
    old_price = scenario.market.prices[asset(scenario.subject)]
    new_price = old_price - int(old_price * fall)
    before = calculate_user_account_data(scenario.market, scenario.user, NOW)

    after = calculate_user_account_data(
        scenario.with_price(scenario.subject, new_price).market, scenario.user, NOW
    )

    assert after.health_factor <= before.health_factor
    assert after.total_collateral_base <= before.total_collateral_base


@FAST
@given(scenario=scenarios(allow_debt=False))
def test_health_factor_is_the_uint256_max_whenever_there_is_no_debt(scenario: Scenario) -> None:
    data = calculate_user_account_data(scenario.market, scenario.user, NOW)

    assert data.total_debt_base == 0
    assert data.health_factor == 2**256 - 1


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@FAST
@given(scenario=scenarios(versions=[V.V3_4]))
def test_3_5_rounding_moves_totals_by_at_most_one_token_unit_per_reserve(
    scenario: Scenario,
) -> None:
    """3.4 and 3.5 differ only in rounding (same indices, same prices, same LT gate).

    Collateral: the aToken balance is ``round(s*i)`` on 3.4 and ``floor(s*i)`` on 3.5, which
    differ by 0 or 1 token unit, and both are valued with ``floor(bal * p / u)``. Since
    ``floor(x + y) - floor(x) <= ceil(y)``, each counted collateral reserve loses at most
    ``ceil(p / u)`` base units:  0 <= TC_3.4 - TC_3.5 <= sum(ceil(p_i / u_i)).

    Debt: the balance is ``round(s*i)`` on 3.4 and ``ceil(s*i)`` on 3.5 (0 or 1 unit more),
    valued with floor on 3.4 and ``mulDivCeil`` on 3.5. Since
    ``ceil(x + y) <= floor(x) + 1 + ceil(y)``, each borrowed reserve adds at most
    ``ceil(p / u) + 1``:  0 <= TD_3.5 - TD_3.4 <= sum(ceil(p_i / u_i) + 1).
    """
    market, user = scenario.market, scenario.user
    tc_bound = td_bound = 0
    for reserve in market.reserves.values():
        price, unit = market.prices[reserve.asset], reserve.configuration.unit
        word = user.configuration >> (2 * reserve.id)
        if word & 2 and reserve.configuration.liquidation_threshold != 0:
            tc_bound += ceil_div(price, unit)
        if word & 1:
            td_bound += ceil_div(price, unit) + 1

    v34 = calculate_user_account_data(market, user, NOW)
    v35 = calculate_user_account_data(scenario.with_version(V.V3_5).market, user, NOW)

    assert 0 <= v34.total_collateral_base - v35.total_collateral_base <= tc_bound
    assert 0 <= v35.total_debt_base - v34.total_debt_base <= td_bound


# Liquidations.


@st.composite
def liquidatable_scenarios(draw: st.DrawFn) -> Scenario:
    """Collateral reserve 0 and debt reserve 1, steered to a health factor in 0.3 to 1.

    The debt is sized from a probe: the health factor is inversely proportional to the
    debt, so a probe with a debt worth about the collateral tells which debt gives the
    target. The probe only steers the inputs; the assertions never use the package's
    numbers as expectations.
    """
    scenario = draw(scenarios(subject_flags=None))
    count = len(scenario.market.reserves)
    all_reserves = dict(scenario.market.reserves)
    # A liquidatable collateral in every version (LT != 0), mostly with a realistic LT.
    lt = draw(st.integers(5_000, 9_500) | st.integers(1, 9_500))
    first = all_reserves[0]
    all_reserves[0] = replace(
        first,
        configuration=replace(
            first.configuration, liquidation_threshold=lt, ltv=min(first.configuration.ltv, lt)
        ),
    )
    if count == 1:
        all_reserves[1] = draw(reserves(1))
    prices = dict(scenario.market.prices)
    prices.setdefault(asset(1), draw(st.integers(1, 10**13)))
    market = Market(scenario.market.version, all_reserves, prices, scenario.market.emode_categories)
    configuration = scenario.user.configuration & ~0b1111
    if draw(st.booleans()):  # drop the user's other collateral half of the time
        configuration &= ~user_configuration_word(collateral=range(count))
    configuration |= user_configuration_word(borrowing=[1], collateral=[0])
    # Collateral worth up to 1e7 units of base currency ($10M on an 8-decimal base), dust too.
    worth = draw(st.integers(1, 999)) * 10 ** draw(st.integers(0, 13))
    unit, index = all_reserves[0].configuration.unit, all_reserves[0].liquidity_index
    collateral_scaled = ceil_div(worth * unit, prices[asset(0)]) * RAY // index + 1

    def user_owing(debt_scaled: int) -> UserAccount:
        positions = {
            **scenario.user.positions,
            0: UserReserve(scaled_atoken_balance=collateral_scaled),
            1: UserReserve(scaled_variable_debt=debt_scaled),
        }
        return UserAccount(BORROWER, configuration, scenario.user.emode_category, positions)

    # Probe with a debt worth about the collateral, then scale it to the target HF.
    debt_unit, debt_index = (
        all_reserves[1].configuration.unit,
        all_reserves[1].variable_borrow_index,
    )
    probe_debt = ceil_div(worth * debt_unit, prices[asset(1)]) * RAY // debt_index + 1
    probe = calculate_user_account_data(market, user_owing(probe_debt), NOW)
    # Target HF in thousandths: just under 1 (50 % close factor) or anywhere down to 0.3.
    target = draw(st.integers(950, 999) | st.integers(300, 999))
    debt_scaled = max(1, probe_debt * min(probe.health_factor, 10**24) // (target * 10**15))
    return Scenario(market, user_owing(debt_scaled), 0)


@MEDIUM
@given(scenario=liquidatable_scenarios())
def test_a_liquidation_never_takes_more_than_the_collateral_and_the_fee_stays_in_the_bonus(
    scenario: Scenario,
) -> None:
    market, user = scenario.market, scenario.user
    try:
        result = max_liquidation(market, user, asset(0), asset(1), now=NOW)
    except ArithmeticRevert:
        # 3.0.0 only: no fee cap, so a fee above the remaining scaled collateral makes the
        # transfer underflow and the call revert (aave-v3-core PR #709).
        assert market.version is V.V3_0_0
        event("3.0.0 fee overshoot reverts")
        return
    if not isinstance(result, Liquidation):
        event(f"rejected: {result.reason.value}")
        return  # not liquidatable (HF >= 1, LT gate, ...): nothing to check
    event(f"seized all collateral: {result.collateral_flag_cleared}")
    event(f"shrunk for the dust rule: {result.debt_to_cover != 2**256 - 1}")

    collateral = market.reserves[0].configuration
    debt_unit, collateral_unit = market.reserves[1].configuration.unit, collateral.unit
    bonus, balance = result.liquidation_bonus, result.collateral_balance
    # Spec §5.4, recomputed from the reported prices and the amount actually covered.
    actual_debt = min(result.debt_to_cover, result.max_liquidatable_debt)
    base = (
        result.debt_price * actual_debt * collateral_unit // (result.collateral_price * debt_unit)
    )
    seized = min((base * bonus + 5_000) // 10_000, balance)
    bonus_part = seized - (seized * 10_000 + bonus // 2) // bonus
    uncapped_fee = (
        (bonus_part * collateral.liquidation_protocol_fee + 5_000) // 10_000
        if collateral.liquidation_protocol_fee
        else 0
    )

    assert result.collateral_to_liquidator <= balance
    assert result.collateral_to_liquidator + result.protocol_fee <= balance
    assert result.collateral_to_liquidator == seized - uncapped_fee
    assert 0 <= result.protocol_fee <= uncapped_fee <= bonus_part
    assert result.debt_repaid <= result.debt_balance
    if result.has_no_collateral_left:
        assert market.rules.bad_debt_deficit
        assert result.deficit_created == result.debt_balance - result.debt_repaid
    else:
        assert result.deficit_created == 0
    if market.rules.dust_rule:
        # The contract compares with the uncapped fee: collateral left = balance - seized.
        debt_left, collateral_left = result.debt_balance - result.debt_repaid, balance - seized
        if debt_left and collateral_left:
            debt_left_base = (
                ceil_div(debt_left * result.debt_price, debt_unit)
                if market.rules.debt_value_rounding is Rounding.CEIL
                else debt_left * result.debt_price // debt_unit
            )
            assert debt_left_base >= 1_000 * 10**8
            assert collateral_left * result.collateral_price // collateral_unit >= 1_000 * 10**8


# Configuration words.

FIELD_WIDTHS = {
    "ltv": 16,
    "liquidation_threshold": 16,
    "liquidation_bonus": 16,
    "decimals": 8,
    "reserve_factor": 16,
    "borrow_cap": 36,
    "supply_cap": 36,
    "liquidation_protocol_fee": 16,
    "emode_category": 8,
    "unbacked_mint_cap": 36,
    "debt_ceiling": 40,
}
FLAG_FIELDS = (
    "active",
    "frozen",
    "borrowing_enabled",
    "stable_borrowing_enabled",
    "paused",
    "borrowable_in_isolation",
    "siloed_borrowing",
    "flash_loan_enabled",
    "virtual_accounting_active",
)
CONFIGURATIONS = st.builds(
    ReserveConfiguration,
    **{name: st.integers(0, 2**width - 1) for name, width in FIELD_WIDTHS.items()},
    **{name: st.booleans() for name in FLAG_FIELDS},
)


@settings(max_examples=300, deadline=None)
@given(configuration=CONFIGURATIONS)
def test_reserve_configuration_round_trips_through_its_word(
    configuration: ReserveConfiguration,
) -> None:
    word = configuration.encode()

    assert 0 <= word < 2**253
    assert ReserveConfiguration.decode(word) == configuration


@settings(max_examples=300, deadline=None)
@given(word=st.integers(0, MAX))
def test_any_word_decodes_and_re_encodes_without_its_unused_top_bits(word: int) -> None:
    assert ReserveConfiguration.decode(word).encode() == word & (2**253 - 1)
