"""What a liquidation earns the liquidator, in USD, with the liquidation bonus counted once.

The prior system computed ``gross = (collateral − principal) + collateral × bonus`` from the
collateral a ``LiquidationCall`` *seized*. That amount already contains the bonus (Aave pays
the liquidator ``debt × (1 + bonus)`` worth of collateral, minus the protocol's share of the
bonus), so the bonus was counted twice; and fees were charged on ``gross``, so a loss made
the fees negative. Here:

* :meth:`ProfitCalculator.calculate_profit` takes the collateral *received* and the debt
  repaid, both in USD, and never adds the bonus again: ``gross = collateral − principal``.
* :meth:`ProfitCalculator.estimate_profit_with_bonus` is the pre-execution estimate, when
  only the debt to cover is known: it derives the collateral received from the bonus first.
* Fees are the cost of selling the received collateral, a share of the collateral's value,
  so they are never negative; a loss stays a loss.

All amounts are :class:`decimal.Decimal` USD, computed in the current decimal context
(28 significant digits by default, ample for USD amounts). Floats are refused: a binary
fraction is not a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BPS = 10_000  # basis points in one


@dataclass(frozen=True, slots=True)
class ProfitBreakdown:
    """One liquidation's economics, in USD.

    ``net == gross - fees - gas_cost``. ``bonus_value`` is the part of the received
    collateral that is liquidation bonus: informational, already inside ``gross``.
    """

    gross: Decimal
    bonus_value: Decimal
    fees: Decimal
    gas_cost: Decimal
    net: Decimal

    def to_dict(self) -> dict[str, str]:
        """The fields as plain-notation decimal strings (``"12.50"``, never ``"1.25E+1"``)."""
        return {
            "gross": _plain(self.gross),
            "bonus_value": _plain(self.bonus_value),
            "fees": _plain(self.fees),
            "gas_cost": _plain(self.gas_cost),
            "net": _plain(self.net),
        }


class ProfitCalculator:
    """Liquidation profit in USD for one fee and gas setting.

    Args:
        bonus_pct: The liquidation bonus as a fraction (``Decimal("0.05")`` for a reserve
            whose configured bonus is 10500 bps). Used by :meth:`estimate_profit_with_bonus`
            and to split ``bonus_value`` out of the received collateral.
        fee_bps: Cost of selling the received collateral (swap fee and slippage), in basis
            points of its value, 0 to 10 000 (``PROFIT_FEE_BPS``).
        gas_cost_usd: Cost of the liquidation transaction in USD (``GAS_COST_USD``).

    Raises:
        ValueError: A value is out of range or not finite; the message names the field.
        TypeError: An amount is a float (or not a number), or ``fee_bps`` is not an
            integer; the message names the field.
    """

    def __init__(self, bonus_pct: Decimal, fee_bps: int, gas_cost_usd: Decimal) -> None:
        if isinstance(fee_bps, bool) or not isinstance(fee_bps, int):
            raise TypeError(f"fee_bps must be an integer number of basis points, not {fee_bps!r}")
        if not 0 <= fee_bps <= BPS:
            raise ValueError(f"fee_bps must be between 0 and {BPS}, not {fee_bps}")
        self.bonus_pct = _amount("bonus_pct", bonus_pct)
        self.fee_bps = fee_bps
        self.gas_cost_usd = _amount("gas_cost_usd", gas_cost_usd)

    def __repr__(self) -> str:
        return (
            f"ProfitCalculator(bonus_pct={self.bonus_pct}, fee_bps={self.fee_bps}, "
            f"gas_cost_usd={self.gas_cost_usd})"
        )

    def calculate_profit(
        self, collateral_value: Decimal, principal_value: Decimal
    ) -> ProfitBreakdown:
        """The profit of a liquidation whose amounts are known (after the fact, or simulated).

        Args:
            collateral_value: USD value of the collateral the liquidator *receives*:
                ``LiquidationCall.liquidatedCollateralAmount`` times the collateral's price.
                It already includes the liquidation bonus (and excludes the protocol's fee
                share of it), so the bonus is not added again.
            principal_value: USD value of the debt repaid (``debtToCover`` times the debt
                asset's price).

        Returns:
            ``gross = collateral_value − principal_value`` (negative for a loss);
            ``bonus_value = collateral_value − collateral_value / (1 + bonus_pct)``, the
            bonus inside the collateral, informational only; ``fees = collateral_value ×
            fee_bps / 10 000``, never negative; ``gas_cost = gas_cost_usd``; and
            ``net = gross − fees − gas_cost``.

        Raises:
            ValueError: An amount is negative or not finite.
            TypeError: An amount is a float.
        """
        collateral = _amount("collateral_value", collateral_value)
        principal = _amount("principal_value", principal_value)
        return self._breakdown(collateral, principal, self.bonus_pct)

    def estimate_profit_with_bonus(
        self, debt_to_cover_value: Decimal, bonus_pct: Decimal | None = None
    ) -> ProfitBreakdown:
        """The expected profit of covering ``debt_to_cover_value`` USD of debt, before execution.

        The collateral received is taken as ``debt × (1 + bonus)``, then priced as in
        :meth:`calculate_profit`. Pass the bonus net of the protocol's fee share
        (``bonus × (1 − liquidationProtocolFee)``) for an exact estimate; the collateral
        actually available may also cap what is received, which is the planner's concern.

        Args:
            debt_to_cover_value: USD value of the debt to repay.
            bonus_pct: The bonus as a fraction; ``None`` uses the calculator's ``bonus_pct``.

        Raises:
            ValueError: An amount is negative or not finite.
            TypeError: An amount is a float.
        """
        debt = _amount("debt_to_cover_value", debt_to_cover_value)
        bonus = self.bonus_pct if bonus_pct is None else _amount("bonus_pct", bonus_pct)
        return self._breakdown(debt * (1 + bonus), debt, bonus)

    def _breakdown(
        self, collateral: Decimal, principal: Decimal, bonus: Decimal
    ) -> ProfitBreakdown:
        gross = collateral - principal
        fees = collateral * self.fee_bps / BPS
        net = gross - fees - self.gas_cost_usd
        return ProfitBreakdown(
            gross=gross,
            bonus_value=collateral - collateral / (1 + bonus),
            fees=fees,
            gas_cost=self.gas_cost_usd,
            net=net,
        )


def _amount(field: str, value: object) -> Decimal:
    """``value`` as a finite, non-negative Decimal, or an error naming ``field``."""
    # bool is an int, and a float carries binary rounding error into money: refuse both.
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int):
        raise TypeError(f"{field} must be a Decimal, not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{field} must be finite, not {amount}")
    if amount < 0:
        raise ValueError(f"{field} must not be negative, not {amount}")
    return amount


def _plain(value: Decimal) -> str:
    return format(value, "f")
