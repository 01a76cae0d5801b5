"""Errors raised by the pure Aave math.

The math mirrors the contracts, and the contracts revert on arithmetic they cannot do.
Those reverts surface here as exceptions, so a caller can never mistake an impossible
computation for a number::

    AaveMathError
     ├── ArithmeticRevert         a primitive the contract would revert in
     │    ├── Uint256Overflow      an intermediate exceeds 2**256 - 1
     │    └── DivisionByZero       a division by zero (the contracts check it explicitly)
     ├── MissingPriceError        the oracle price of an asset the computation needs is unknown
     └── ReserveNotListedError    the Pool has no reserve for an asset (the call reverts)

Expected protocol outcomes (a liquidation the Pool would reject) are *not* exceptions:
they are values (``overlord.aave.liquidation.LiquidationRejected``).
"""

from __future__ import annotations


class AaveMathError(Exception):
    """Base of every error raised by ``overlord.aave``."""


class ArithmeticRevert(AaveMathError, ArithmeticError):
    """The contract would revert in this arithmetic primitive."""


class Uint256Overflow(ArithmeticRevert, OverflowError):
    """An intermediate value does not fit in a uint256."""


class DivisionByZero(ArithmeticRevert, ZeroDivisionError):
    """A divisor is zero."""


class MissingPriceError(AaveMathError, LookupError):
    """No oracle price is known for an asset the computation needs."""

    def __init__(self, asset: str) -> None:
        super().__init__(f"no oracle price for asset {asset}")
        self.asset = asset


class ReserveNotListedError(AaveMathError, LookupError):
    """The Pool has no reserve for an asset, and the call would revert without a reason."""

    def __init__(self, asset: str) -> None:
        super().__init__(f"no reserve is listed for asset {asset}")
        self.asset = asset
