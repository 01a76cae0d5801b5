"""WadRayMath, PercentageMath, MathUtils.mulDivCeil and TokenMath against the contracts.

Vectors come from the upstream Foundry tests (spec docs/aave-v3-math.md §9.1). The overflow
boundaries are the exact conditions of the Solidity assembly, e.g. ``rayMul`` reverts iff
``b != 0 and a > (2**256 - 1 - HALF_RAY) / b``, i.e. iff ``a*b + HALF_RAY > 2**256 - 1``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from overlord.aave.errors import ArithmeticRevert, DivisionByZero, Uint256Overflow
from overlord.aave.interest import SECONDS_PER_YEAR, compounded_interest_taylor, linear_interest
from overlord.aave.tokenmath import DirectedTokenMath, HalfUpTokenMath
from overlord.aave.versions import ProtocolVersion, rules_for
from overlord.aave.wadray import (
    HALF_PERCENTAGE_FACTOR,
    HALF_RAY,
    HALF_WAD,
    PERCENTAGE_FACTOR,
    RAY,
    UINT256_MAX,
    WAD,
    WAD_RAY_RATIO,
    checked,
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
Binary = Callable[[int, int], int]


def test_constants_have_the_contract_values() -> None:
    assert (WAD, HALF_WAD, RAY, HALF_RAY, WAD_RAY_RATIO) == (
        10**18,
        5 * 10**17,
        10**27,
        5 * 10**26,
        10**9,
    )
    assert (PERCENTAGE_FACTOR, HALF_PERCENTAGE_FACTOR) == (10_000, 5_000)
    assert MAX == 2**256 - 1


# Upstream vectors (spec §9.1).


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (25 * 10**17, 5 * 10**17, 125 * 10**16),
        (4122 * 10**17, 10**18, 4122 * 10**17),
        (6 * 10**18, 2 * 10**18, 12 * 10**18),
    ],
)
def test_wad_mul_matches_the_upstream_vectors(a: int, b: int, expected: int) -> None:
    assert wad_mul(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (25 * 10**26, 5 * 10**26, 125 * 10**25),
        (4122 * 10**26, 10**27, 4122 * 10**26),
        (6 * 10**27, 2 * 10**27, 12 * 10**27),
    ],
)
def test_ray_mul_matches_the_upstream_vectors(a: int, b: int, expected: int) -> None:
    assert ray_mul(a, b) == expected


def test_wad_div_matches_the_upstream_vectors() -> None:
    assert wad_div(8745 * 10**15, 67 * 10**16) == 13_052238805970149254
    assert wad_div(25 * 10**17, 5 * 10**17) == 5 * 10**18


def test_ray_div_matches_the_upstream_vector() -> None:
    assert ray_div(8745 * 10**24, 67 * 10**25) == 13_052238805970149253731343284


def test_ray_to_wad_and_wad_to_ray_match_the_upstream_vectors() -> None:
    assert ray_to_wad(10**27) == 10**18
    assert wad_to_ray(4122 * 10**17) == 4122 * 10**26


def test_ray_mul_floor_matches_the_upstream_vectors() -> None:
    assert ray_mul_floor(3, 5) == 0
    assert ray_mul_floor(10**27, 5 * 10**27) == 5 * 10**27


@pytest.mark.parametrize(
    ("value", "percentage", "expected"),
    [
        (10**18, 5000, 5 * 10**17),
        (142515 * 10**14, 7442, 106059663 * 10**11),
        (9087312 * 10**27, 1333, 1211338689600000000000000000000000),
    ],
)
def test_percent_mul_matches_the_upstream_vectors(
    value: int, percentage: int, expected: int
) -> None:
    assert percent_mul(value, percentage) == expected


@pytest.mark.parametrize(
    ("value", "percentage", "expected"),
    [
        (10**18, 5000, 2 * 10**18),
        (142515 * 10**14, 7442, 19_150094060736361193),
        (9087312 * 10**27, 1333, 68171882970742685671417854463615904),
    ],
)
def test_percent_div_matches_the_upstream_vectors(
    value: int, percentage: int, expected: int
) -> None:
    assert percent_div(value, percentage) == expected


def test_mul_div_ceil_matches_the_upstream_vectors() -> None:
    assert mul_div_ceil(5, 5, 3) == 9
    assert mul_div_ceil(12, 6, 4) == 18


def test_linear_interest_of_8_percent_over_7_years_is_1_56_ray() -> None:
    assert linear_interest(8 * 10**25, 0, 7 * SECONDS_PER_YEAR) == 156 * 10**25


def test_taylor_compounding_of_100000_percent_over_10000_years_matches_upstream() -> None:
    factor = compounded_interest_taylor(1000 * 10**27, 0, 10_000 * SECONDS_PER_YEAR)

    assert factor == 166666716666676666667666666666666600000000000000


# Rounding directions on small numbers a reader can check.


def test_half_up_helpers_round_exact_halves_up() -> None:
    assert wad_mul(1, HALF_WAD) == 1  # 0.5 -> 1
    assert wad_mul(1, HALF_WAD - 1) == 0
    assert ray_mul(1, HALF_RAY) == 1
    assert ray_mul(1, HALF_RAY - 1) == 0
    assert percent_mul(1, 5000) == 1
    assert percent_mul(1, 4999) == 0
    assert ray_div(1, 2 * RAY) == 1  # 0.5 -> 1
    assert wad_div(1, 2 * WAD) == 1
    assert percent_div(1, 20_000) == 1


def test_ray_to_wad_rounds_half_up_at_half_a_gwei() -> None:
    assert ray_to_wad(5 * 10**8) == 1
    assert ray_to_wad(5 * 10**8 - 1) == 0
    assert ray_to_wad(15 * 10**8 - 1) == 1
    assert ray_to_wad(15 * 10**8) == 2


def test_ray_to_wad_never_reverts_even_at_the_largest_input() -> None:
    assert MAX % 10**9 == 129_639_935  # below half a gwei: rounds down
    assert ray_to_wad(MAX) == MAX // 10**9
    assert ray_to_wad(MAX - 129_639_935 - 1) == (MAX - 129_639_935 - 1) // 10**9 + 1


def test_floor_and_ceil_variants_differ_by_one_on_inexact_results() -> None:
    assert (ray_mul_floor(3, 5), ray_mul_ceil(3, 5)) == (0, 1)
    assert (ray_mul_floor(RAY, 7), ray_mul_ceil(RAY, 7)) == (7, 7)
    assert (ray_div_floor(1, 3 * RAY), ray_div_ceil(1, 3 * RAY)) == (0, 1)
    assert (ray_div_floor(6, 3 * RAY), ray_div_ceil(6, 3 * RAY)) == (2, 2)
    assert (percent_mul_floor(15, 5000), percent_mul_ceil(15, 5000)) == (7, 8)
    assert percent_mul(15, 5000) == 8
    assert percent_div_ceil(1, 3) == 3334
    assert percent_div(1, 3) == 3333
    assert (mul_div_floor(7, 3, 2), mul_div_ceil(7, 3, 2)) == (10, 11)


def test_percent_mul_by_zero_is_zero_even_for_the_largest_value() -> None:
    assert percent_mul(MAX, 0) == 0
    assert percent_mul_floor(MAX, 0) == 0
    assert percent_mul_ceil(MAX, 0) == 0


def test_multiplications_by_zero_never_overflow() -> None:
    assert wad_mul(MAX, 0) == 0
    assert ray_mul(MAX, 0) == 0
    assert ray_mul_floor(MAX, 0) == 0
    assert ray_mul_ceil(MAX, 0) == 0
    assert mul_div_ceil(MAX, 0, 7) == 0


# Overflow exactly at the contract boundary.


def test_checked_accepts_the_largest_uint256_and_rejects_one_more() -> None:
    assert checked(MAX) == MAX
    with pytest.raises(Uint256Overflow):
        checked(MAX + 1)


@pytest.mark.parametrize(
    ("function", "half", "unit"),
    [
        (ray_mul, HALF_RAY, RAY),
        (wad_mul, HALF_WAD, WAD),
        (percent_mul, HALF_PERCENTAGE_FACTOR, PERCENTAGE_FACTOR),
    ],
    ids=["ray_mul", "wad_mul", "percent_mul"],
)
def test_half_up_multiplication_overflows_exactly_when_product_plus_half_exceeds_max(
    function: Binary, half: int, unit: int
) -> None:
    # b = 1: a*b + half == MAX is the last value that fits.
    largest = MAX - half

    assert function(largest, 1) == MAX // unit
    with pytest.raises(Uint256Overflow):
        function(largest + 1, 1)


@pytest.mark.parametrize(
    ("function", "half"),
    [(ray_mul, HALF_RAY), (wad_mul, HALF_WAD), (percent_mul, HALF_PERCENTAGE_FACTOR)],
    ids=["ray_mul", "wad_mul", "percent_mul"],
)
@pytest.mark.parametrize("b", [3, 10**27 + 7, 2**128 + 1])
def test_half_up_multiplication_uses_the_assembly_bound_a_le_max_minus_half_over_b(
    function: Binary, half: int, b: int
) -> None:
    a = (MAX - half) // b

    function(a, b)
    with pytest.raises(Uint256Overflow):
        function(a + 1, b)


@pytest.mark.parametrize(
    ("function", "unit"),
    [(ray_div, RAY), (wad_div, WAD), (percent_div, PERCENTAGE_FACTOR)],
    ids=["ray_div", "wad_div", "percent_div"],
)
def test_half_up_division_overflows_exactly_when_a_times_unit_plus_half_b_exceeds_max(
    function: Binary, unit: int
) -> None:
    # Choose a and b with a*unit + b//2 == MAX exactly.
    a = MAX // unit
    b = 2 * (MAX - a * unit)
    assert a * unit + b // 2 == MAX

    assert function(a, b) == (a * unit + b // 2) // b
    with pytest.raises(Uint256Overflow):
        function(a + 1, b)
    with pytest.raises(Uint256Overflow):
        function(a, b + 2)  # b//2 grows by one


@pytest.mark.parametrize(
    "function", [ray_mul_floor, ray_mul_ceil, percent_mul_floor, percent_mul_ceil]
)
def test_directed_multiplication_overflows_exactly_when_the_product_exceeds_max(
    function: Binary,
) -> None:
    function(MAX, 1)
    function(2**128 - 1, 2**128 + 1)  # == 2**256 - 1
    with pytest.raises(Uint256Overflow):
        function(MAX, 2)
    with pytest.raises(Uint256Overflow):
        function(2**128, 2**128)


def test_directed_multiplication_values_at_the_boundary() -> None:
    assert ray_mul_floor(MAX, 1) == MAX // RAY
    assert ray_mul_ceil(MAX, 1) == MAX // RAY + 1
    assert percent_mul_floor(MAX, 1) == MAX // 10_000
    assert percent_mul_ceil(MAX, 1) == MAX // 10_000 + 1


@pytest.mark.parametrize(
    ("function", "unit", "expected"),
    [(ray_div_floor, RAY, 0), (ray_div_ceil, RAY, 1), (percent_div_ceil, PERCENTAGE_FACTOR, 1)],
    ids=["ray_div_floor", "ray_div_ceil", "percent_div_ceil"],
)
def test_directed_division_overflows_exactly_when_a_times_unit_exceeds_max(
    function: Binary, unit: int, expected: int
) -> None:
    a = MAX // unit

    assert function(a, MAX) == expected  # a*unit / MAX is a fraction just below 1
    with pytest.raises(Uint256Overflow):
        function(a + 1, MAX)


def test_wad_to_ray_overflows_exactly_past_max_over_a_billion() -> None:
    a = MAX // WAD_RAY_RATIO

    assert wad_to_ray(a) == a * 10**9
    with pytest.raises(Uint256Overflow):
        wad_to_ray(a + 1)


@pytest.mark.parametrize(("function", "expected"), [(mul_div_ceil, 2), (mul_div_floor, 1)])
def test_mul_div_overflows_exactly_when_a_times_b_exceeds_max(
    function: Callable[[int, int, int], int], expected: int
) -> None:
    # (2**128 - 1) * (2**128 + 1) == 2**256 - 1, divided by 2**255: 1.99...
    assert function(2**128 - 1, 2**128 + 1, 2**255) == expected
    with pytest.raises(Uint256Overflow):
        function(2**128, 2**128, 3)


# Division by zero.


@pytest.mark.parametrize(
    "function",
    [wad_div, ray_div, ray_div_floor, ray_div_ceil, percent_div, percent_div_ceil],
)
def test_division_by_zero_raises_division_by_zero(function: Binary) -> None:
    with pytest.raises(DivisionByZero):
        function(1, 0)


@pytest.mark.parametrize("function", [mul_div_ceil, mul_div_floor])
def test_mul_div_by_zero_raises_division_by_zero(function: Callable[[int, int, int], int]) -> None:
    with pytest.raises(DivisionByZero):
        function(1, 1, 0)
    with pytest.raises(DivisionByZero):
        function(0, 0, 0)


def test_arithmetic_errors_are_both_contract_reverts_and_python_arithmetic_errors() -> None:
    with pytest.raises(ArithmeticRevert):
        ray_div(1, 0)
    with pytest.raises(ZeroDivisionError):
        ray_div(1, 0)
    with pytest.raises(OverflowError):
        ray_mul(MAX, MAX)
    with pytest.raises(ArithmeticError):
        ray_mul(MAX, MAX)


# Scaled <-> unscaled conversions (spec §1.4): half-up before 3.5, protocol-favouring after.

THREE_RAY = 3 * RAY
ONE_POINT_TWO_RAY = 12 * 10**26


def test_half_up_token_math_rounds_every_conversion_half_up() -> None:
    math = HalfUpTokenMath()

    assert math.name == "half-up"
    assert math.a_balance(1, ONE_POINT_TWO_RAY) == 1  # 1.2 -> 1
    assert math.a_balance(5, ONE_POINT_TWO_RAY) == 6  # 6.0
    assert math.v_balance(1, ONE_POINT_TWO_RAY) == 1
    assert math.v_balance(3, 15 * 10**26) == 5  # 4.5 -> 5
    assert math.a_mint_scaled(2, THREE_RAY) == 1  # 0.67 -> 1
    assert math.a_burn_scaled(1, THREE_RAY) == 0  # 0.33 -> 0
    assert math.a_transfer_scaled(2, THREE_RAY) == 1
    assert math.v_mint_scaled(1, THREE_RAY) == 0
    assert math.v_burn_scaled(2, THREE_RAY) == 1


def test_directed_token_math_rounds_in_the_protocols_favour() -> None:
    math = DirectedTokenMath()

    assert math.name == "floor/ceil"
    assert math.a_balance(1, ONE_POINT_TWO_RAY) == 1  # collateral balance: floor
    assert math.a_balance(3, 15 * 10**26) == 4  # 4.5 -> 4
    assert math.v_balance(1, ONE_POINT_TWO_RAY) == 2  # debt balance: ceil
    assert math.a_mint_scaled(2, THREE_RAY) == 0  # supply: floor
    assert math.a_burn_scaled(1, THREE_RAY) == 1  # withdraw: ceil
    assert math.a_transfer_scaled(1, THREE_RAY) == 1  # transfer: ceil
    assert math.v_mint_scaled(1, THREE_RAY) == 1  # borrow: ceil
    assert math.v_burn_scaled(2, THREE_RAY) == 0  # repay: floor


def test_versions_pick_half_up_token_math_before_3_5_and_directed_from_3_5() -> None:
    for version in ProtocolVersion:
        expected = (
            DirectedTokenMath
            if version in (ProtocolVersion.V3_5, ProtocolVersion.V3_6)
            else HalfUpTokenMath
        )
        assert isinstance(rules_for(version).token_math, expected), version
