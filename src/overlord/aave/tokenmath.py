"""Scaled ↔ unscaled token amounts (spec: docs/aave-v3-math.md §1.4).

Two strategies with one surface. Before 3.5 every conversion is the half-up
``rayMul``/``rayDiv``. From 3.5 (``TokenMath.sol``) each conversion rounds in the protocol's
favour: balances of collateral down, balances of debt up, scaled amounts the user receives
down and those the user gives up rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass

from overlord.aave.wadray import (
    ray_div,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
)


@dataclass(frozen=True, slots=True)
class HalfUpTokenMath:
    """3.0 to 3.4: every conversion rounds half up."""

    name: str = "half-up"

    def a_balance(self, scaled: int, liquidity_index: int) -> int:
        """aToken balance of a scaled amount."""
        return ray_mul(scaled, liquidity_index)

    def v_balance(self, scaled: int, variable_borrow_index: int) -> int:
        """Variable debt balance of a scaled amount."""
        return ray_mul(scaled, variable_borrow_index)

    def a_mint_scaled(self, amount: int, liquidity_index: int) -> int:
        """Scaled aTokens minted for a supply of ``amount``."""
        return ray_div(amount, liquidity_index)

    def a_burn_scaled(self, amount: int, liquidity_index: int) -> int:
        """Scaled aTokens burned for a withdrawal (or liquidation) of ``amount``."""
        return ray_div(amount, liquidity_index)

    def a_transfer_scaled(self, amount: int, liquidity_index: int) -> int:
        """Scaled aTokens moved by a transfer of ``amount``."""
        return ray_div(amount, liquidity_index)

    def v_mint_scaled(self, amount: int, variable_borrow_index: int) -> int:
        """Scaled debt minted for a borrow of ``amount``."""
        return ray_div(amount, variable_borrow_index)

    def v_burn_scaled(self, amount: int, variable_borrow_index: int) -> int:
        """Scaled debt burned for a repayment of ``amount``."""
        return ray_div(amount, variable_borrow_index)


@dataclass(frozen=True, slots=True)
class DirectedTokenMath:
    """3.5+: ``TokenMath.sol``, every conversion rounds in the protocol's favour."""

    name: str = "floor/ceil"

    def a_balance(self, scaled: int, liquidity_index: int) -> int:
        """aToken balance of a scaled amount (floor)."""
        return ray_mul_floor(scaled, liquidity_index)

    def v_balance(self, scaled: int, variable_borrow_index: int) -> int:
        """Variable debt balance of a scaled amount (ceil)."""
        return ray_mul_ceil(scaled, variable_borrow_index)

    def a_mint_scaled(self, amount: int, liquidity_index: int) -> int:
        """Scaled aTokens minted for a supply of ``amount`` (floor)."""
        return ray_div_floor(amount, liquidity_index)

    def a_burn_scaled(self, amount: int, liquidity_index: int) -> int:
        """Scaled aTokens burned for a withdrawal (or liquidation) of ``amount`` (ceil)."""
        return ray_div_ceil(amount, liquidity_index)

    def a_transfer_scaled(self, amount: int, liquidity_index: int) -> int:
        """Scaled aTokens moved by a transfer of ``amount`` (ceil)."""
        return ray_div_ceil(amount, liquidity_index)

    def v_mint_scaled(self, amount: int, variable_borrow_index: int) -> int:
        """Scaled debt minted for a borrow of ``amount`` (ceil)."""
        return ray_div_ceil(amount, variable_borrow_index)

    def v_burn_scaled(self, amount: int, variable_borrow_index: int) -> int:
        """Scaled debt burned for a repayment of ``amount`` (floor)."""
        return ray_div_floor(amount, variable_borrow_index)


TokenMath = HalfUpTokenMath | DirectedTokenMath
