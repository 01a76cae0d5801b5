"""Interest accrual and normalized indices (spec docs/aave-v3-math.md §2, vectors §9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from overlord.aave.errors import ArithmeticRevert, Uint256Overflow
from overlord.aave.interest import (
    SECONDS_PER_YEAR,
    compounded_interest_binomial,
    compounded_interest_taylor,
    linear_interest,
    normalized_debt,
    normalized_income,
)
from overlord.aave.wadray import RAY, ray_mul

FIVE_PERCENT = 5 * 10**25
T0 = 1_700_000_000


def test_seconds_per_year_ignores_leap_years() -> None:
    assert SECONDS_PER_YEAR == 31_536_000


# Spec §9.2: compounded factor at 5 %/year, binomial (3.0-3.3) vs Taylor (3.4+).


@pytest.mark.parametrize(
    ("dt", "binomial", "taylor"),
    [
        (1, 1000000001585489599188229325, 1000000001585489600445117960),
        (3600, 1000005707778841852838170176, 1000005707778846385321333984),
        (86400, 1000136995684207123907444230, 1000136995684421674802557900),
        (31_536_000, 1051265681539063650421944000, 1051270833333333333333333333),
    ],
)
def test_both_compounding_formulas_match_the_five_percent_table(
    dt: int, binomial: int, taylor: int
) -> None:
    assert compounded_interest_binomial(FIVE_PERCENT, T0, T0 + dt) == binomial
    assert compounded_interest_taylor(FIVE_PERCENT, T0, T0 + dt) == taylor


def test_both_compounding_formulas_match_eight_percent_over_seven_years() -> None:
    rate, dt = 8 * 10**25, 7 * SECONDS_PER_YEAR

    assert compounded_interest_binomial(rate, 0, dt) == 1745486836363624056433536000
    assert compounded_interest_taylor(rate, 0, dt) == 1746069333333333333333333333


def test_binomial_formula_on_the_upstream_overflow_test_inputs() -> None:
    factor = compounded_interest_binomial(1000 * RAY, 0, 10_000 * SECONDS_PER_YEAR)

    assert factor == 166666716665087835607027331371376979527840000000


def test_compounding_over_zero_seconds_is_exactly_one_ray() -> None:
    assert compounded_interest_binomial(10**27, T0, T0) == RAY
    assert compounded_interest_taylor(10**27, T0, T0) == RAY


def test_binomial_formula_by_hand_for_two_seconds() -> None:
    # rate/SPY = 1e19 ray per second, so rayMul(rate, rate)/SPY**2 = 1e11 exactly; with dt = 2
    # the second term is 2*1*1e11/2 and the third term vanishes (dt - 2 = 0).
    rate = 31_536 * 10**22

    assert compounded_interest_binomial(rate, T0, T0 + 2) == RAY + 2 * 10**19 + 10**11


def test_taylor_formula_by_hand_for_one_second() -> None:
    # x = 1e19. rayMul(x, x//6) = round(1e19 * 1666666666666666666 / 1e27) = 16666666667;
    # rayMul(x, x//2 + 16666666667) = round((5e37 + 16666666667e19) / 1e27) = 5e10 + 167.
    rate = 31_536 * 10**22

    assert compounded_interest_taylor(rate, T0, T0 + 1) == RAY + 10**19 + 5 * 10**10 + 167


def test_taylor_outer_sum_wraps_modulo_2_pow_256_like_the_unchecked_block() -> None:
    # rate * dt overflows: the contract computes it unchecked, so the product wraps.
    rate = 2**255
    wrapped_x = (rate * 2) % 2**256 // SECONDS_PER_YEAR

    assert wrapped_x == 0
    assert compounded_interest_taylor(rate, 0, 2) == RAY


def test_binomial_formula_reverts_when_its_checked_product_overflows() -> None:
    with pytest.raises(Uint256Overflow):
        compounded_interest_binomial(2**200, 0, 2**40)


# aave-utilities vectors (spec §9.1).


def test_aave_v2_yfi_balance_is_reproduced_by_the_contract_formula() -> None:
    scaled = 161316503206059870
    index = 1001723339432542553527150680
    rate = 22461916953455574582370088
    last, now = 1609673617, 1609675535

    balance = ray_mul(scaled, normalized_income(index, rate, last, now))

    assert balance == 161594727054623229


def test_utilities_linear_interest_vector() -> None:
    assert linear_interest(5 * 10**17, 0, 100000100) == 1000000001585491184677828513


def test_utilities_compounded_vector_differs_from_both_contract_formulas() -> None:
    utilities = 1000000001585491184589599100

    binomial = compounded_interest_binomial(5 * 10**17, 0, 100000100)
    taylor = compounded_interest_taylor(5 * 10**17, 0, 100000100)

    assert binomial == 1000000001585491184677828513
    assert taylor == 1000000001585491185934719662
    assert utilities not in (binomial, taylor)


def test_utilities_normalized_income_vector() -> None:
    index = 1048540642417873765200833079

    assert normalized_income(index, 5 * 10**17, 0, 100000100) == 1048540644080325710530799122


def test_utilities_balance_of_principal_10000_with_that_index() -> None:
    index = 1048540642417873765200833079
    debt_index = normalized_debt(index, 5 * 10**17, 0, 100000100, compounded_interest_binomial)

    assert ray_mul(10_000, debt_index) == 10485


# Normalized indices.


def test_normalized_income_returns_the_stored_index_when_updated_this_block() -> None:
    assert normalized_income(1_234 * 10**24, 10**27, T0, T0) == 1_234 * 10**24


def test_normalized_debt_returns_the_stored_index_when_updated_this_block() -> None:
    stored = 1_234 * 10**24

    assert normalized_debt(stored, 10**27, T0, T0, compounded_interest_taylor) == stored
    assert normalized_debt(stored, 10**27, T0, T0, compounded_interest_binomial) == stored


def test_normalized_income_with_zero_rate_is_the_stored_index() -> None:
    assert normalized_income(1_111 * 10**24, 0, T0, T0 + 86_400) == 1_111 * 10**24


def test_normalized_income_by_hand() -> None:
    # rate 31.536 % over 1000 s: linear factor RAY + 1e19*1000 = 1.00000001e27; times 2 ray.
    rate = 31_536 * 10**22

    assert normalized_income(2 * RAY, rate, T0, T0 + 1000) == 2 * (RAY + 10**22)


def test_normalized_debt_by_hand_uses_the_given_formula() -> None:
    rate = 31_536 * 10**22

    taylor = normalized_debt(2 * RAY, rate, T0, T0 + 1, compounded_interest_taylor)
    binomial = normalized_debt(2 * RAY, rate, T0, T0 + 1, compounded_interest_binomial)

    assert taylor == 2 * (RAY + 10**19 + 5 * 10**10 + 167)
    assert binomial == 2 * (RAY + 10**19)


@pytest.mark.parametrize(
    "call",
    [
        lambda: linear_interest(FIVE_PERCENT, T0, T0 - 1),
        lambda: compounded_interest_binomial(FIVE_PERCENT, T0, T0 - 1),
        lambda: compounded_interest_taylor(FIVE_PERCENT, T0, T0 - 1),
        lambda: normalized_income(RAY, FIVE_PERCENT, T0, T0 - 1),
        lambda: normalized_debt(RAY, FIVE_PERCENT, T0, T0 - 1, compounded_interest_taylor),
    ],
    ids=["linear", "binomial", "taylor", "income", "debt"],
)
def test_a_timestamp_before_the_last_update_raises_arithmetic_revert(
    call: Callable[[], int],
) -> None:
    with pytest.raises(ArithmeticRevert):
        call()
