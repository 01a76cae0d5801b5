"""Interest accrual and normalized indices (spec: docs/aave-v3-math.md §2).

Mirrors ``MathUtils.calculateLinearInterest`` / ``calculateCompoundedInterest`` and
``ReserveLogic.getNormalizedIncome`` / ``getNormalizedDebt``. Rates and indices are rays,
timestamps are seconds. ``now`` is always the ``block.timestamp`` of the block the
computation stands for: there is no clock here.

The debt side has two formulas that give different integers: the 3-term binomial
expansion (3.0 to 3.3) and the Taylor form of ``e^x`` (3.4+). The version rules pick one;
stable debt (3.0/3.1) always compounds with the binomial form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from overlord.aave.errors import ArithmeticRevert
from overlord.aave.wadray import RAY, UINT256_MAX, checked, ray_mul

SECONDS_PER_YEAR = 365 * 24 * 3600

CompoundedInterest: TypeAlias = Callable[[int, int, int], int]
"""``(rate, last_update_timestamp, now) -> factor`` in ray."""


def _elapsed(last_update_timestamp: int, now: int) -> int:
    if now < last_update_timestamp:
        # The contract subtracts with checked arithmetic and reverts.
        raise ArithmeticRevert(f"timestamp {now} is before the last update {last_update_timestamp}")
    return now - last_update_timestamp


def linear_interest(rate: int, last_update_timestamp: int, now: int) -> int:
    """``RAY + rate*dt // SECONDS_PER_YEAR`` (all versions)."""
    return checked(RAY + checked(rate * _elapsed(last_update_timestamp, now)) // SECONDS_PER_YEAR)


def compounded_interest_binomial(rate: int, last_update_timestamp: int, now: int) -> int:
    """Three-term binomial approximation of ``(1 + rate/SPY)**dt`` (3.0 to 3.3).

    ``rate**2`` is divided by ``SPY**2`` before it is multiplied by ``dt``: this truncation
    is what makes the result differ from the 3.4+ formula.
    """
    dt = _elapsed(last_update_timestamp, now)
    if dt == 0:
        return RAY
    dt_minus_one = dt - 1
    dt_minus_two = dt - 2 if dt > 2 else 0
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR
    second_term = checked(dt * dt_minus_one * base_power_two) // 2
    third_term = checked(dt * dt_minus_one * dt_minus_two * base_power_three) // 6
    return checked(RAY + checked(rate * dt) // SECONDS_PER_YEAR + second_term + third_term)


def compounded_interest_taylor(rate: int, last_update_timestamp: int, now: int) -> int:
    """Three-term Taylor series of ``e**(rate*dt/SPY)`` (3.4+).

    The contract computes this in an ``unchecked`` block (it argues the terms cannot
    overflow for uint128 rates and uint40 timestamps), so the outer sum wraps modulo
    ``2**256`` here too; the inner ``rayMul`` calls still revert on overflow.
    """
    dt = _elapsed(last_update_timestamp, now)
    if dt == 0:
        return RAY
    x = ((rate * dt) & UINT256_MAX) // SECONDS_PER_YEAR
    return (RAY + x + ray_mul(x, x // 2 + ray_mul(x, x // 6))) & UINT256_MAX


def normalized_income(
    liquidity_index: int, liquidity_rate: int, last_update_timestamp: int, now: int
) -> int:
    """``ReserveLogic.getNormalizedIncome``: the liquidity index at ``now``."""
    if last_update_timestamp == now:
        return liquidity_index
    return ray_mul(linear_interest(liquidity_rate, last_update_timestamp, now), liquidity_index)


def normalized_debt(
    variable_borrow_index: int,
    variable_borrow_rate: int,
    last_update_timestamp: int,
    now: int,
    compounded: CompoundedInterest,
) -> int:
    """``ReserveLogic.getNormalizedDebt``: the variable borrow index at ``now``."""
    if last_update_timestamp == now:
        return variable_borrow_index
    factor = compounded(variable_borrow_rate, last_update_timestamp, now)
    return ray_mul(factor, variable_borrow_index)
