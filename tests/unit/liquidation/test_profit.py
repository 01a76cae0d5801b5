"""ProfitCalculator: the bonus counted once, losses kept, fees never negative."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from overlord.liquidation.profit import ProfitBreakdown, ProfitCalculator

D = Decimal


def calculator(bonus: str = "0.05", fee_bps: int = 30, gas: str = "2") -> ProfitCalculator:
    return ProfitCalculator(D(bonus), fee_bps, D(gas))


def test_the_bonus_inside_the_received_collateral_is_not_counted_twice() -> None:
    # 1000 USD of debt repaid with a 5 % bonus: the liquidator receives 1050 USD of collateral.
    # Right: gross = 1050 - 1000 = 50; fees = 1050 x 30 / 10 000 = 3.15; net = 50 - 3.15 - 2.
    # The prior formula: gross = (1050 - 1000) + 1050 x 0.05 = 102.5;
    # fees = 102.5 x 0.003 = 0.3075; net = 102.5 - 0.3075 - 2 = 100.1925, twice the truth.
    breakdown = calculator().calculate_profit(D("1050"), D("1000"))

    assert breakdown == ProfitBreakdown(
        gross=D("50"), bonus_value=D("50"), fees=D("3.15"), gas_cost=D("2"), net=D("44.85")
    )
    assert breakdown.net != D("100.1925")


def test_bonus_value_is_the_share_of_the_collateral_that_is_bonus() -> None:
    # 2100 received at a 5 % bonus is 2000 of face value plus 100 of bonus.
    breakdown = calculator(fee_bps=0, gas="0").calculate_profit(D("2100"), D("2050"))

    assert breakdown.bonus_value == D("100")
    assert breakdown.gross == D("50")  # not 150: the bonus is informational


def test_a_loss_stays_negative_and_its_fees_stay_positive() -> None:
    # Collateral worth less than the debt (a price moved): gross -100, fees 900 x 0.003.
    # The prior formula charged fees on gross, making them -0.30 and the loss smaller.
    breakdown = calculator(gas="1").calculate_profit(D("900"), D("1000"))

    assert breakdown.gross == D("-100")
    assert breakdown.fees == D("2.7")
    assert breakdown.net == D("-103.7")


def test_fees_are_zero_when_nothing_is_received_and_never_negative() -> None:
    breakdown = calculator().calculate_profit(D("0"), D("10"))

    assert breakdown.fees == 0
    assert breakdown.bonus_value == 0
    assert breakdown.net == D("-12")


def test_gas_is_subtracted_from_the_net() -> None:
    free = calculator(gas="0").calculate_profit(D("1050"), D("1000"))
    paid = calculator(gas="7.5").calculate_profit(D("1050"), D("1000"))

    assert paid.gas_cost == D("7.5")
    assert free.net - paid.net == D("7.5")
    assert paid.gross == free.gross


def test_the_whole_collateral_is_fees_at_10_000_bps() -> None:
    breakdown = calculator(fee_bps=10_000, gas="0").calculate_profit(D("1050"), D("1000"))

    assert breakdown.fees == D("1050")
    assert breakdown.net == D("-1000")


def test_the_estimate_derives_the_received_collateral_from_the_bonus() -> None:
    estimate = calculator().estimate_profit_with_bonus(D("1000"))

    assert estimate == calculator().calculate_profit(D("1050"), D("1000"))


def test_an_explicit_bonus_overrides_the_calculators_everywhere() -> None:
    # 10 %: 1100 received, gross 100, bonus 100, fees 1100 x 0.003 = 3.3, net 100 - 3.3 - 2.
    estimate = calculator().estimate_profit_with_bonus(D("1000"), D("0.10"))

    assert estimate == ProfitBreakdown(
        gross=D("100"), bonus_value=D("100"), fees=D("3.3"), gas_cost=D("2"), net=D("94.7")
    )


def test_zero_bonus_is_allowed_and_estimates_no_gain() -> None:
    estimate = calculator(bonus="0", fee_bps=0, gas="0").estimate_profit_with_bonus(D("10"))

    assert estimate.gross == 0
    assert estimate.bonus_value == 0
    assert estimate.net == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bonus_pct": D("-0.01")}, "bonus_pct"),
        ({"bonus_pct": D("NaN")}, "bonus_pct"),
        ({"fee_bps": -1}, "fee_bps"),
        ({"fee_bps": 10_001}, "fee_bps"),
        ({"gas_cost_usd": D("-1")}, "gas_cost_usd"),
        ({"gas_cost_usd": D("Infinity")}, "gas_cost_usd"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, Any], field: str) -> None:
    settings: dict[str, Any] = {"bonus_pct": D("0.05"), "fee_bps": 30, "gas_cost_usd": D("0")}

    with pytest.raises(ValueError, match=field):
        ProfitCalculator(**{**settings, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bonus_pct": 0.05}, "bonus_pct"),
        ({"fee_bps": 30.0}, "fee_bps"),
        ({"fee_bps": True}, "fee_bps"),
        ({"gas_cost_usd": "2"}, "gas_cost_usd"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_by_name(kwargs: dict[str, Any], field: str) -> None:
    settings: dict[str, Any] = {"bonus_pct": D("0.05"), "fee_bps": 30, "gas_cost_usd": D("0")}

    with pytest.raises(TypeError, match=field):
        ProfitCalculator(**{**settings, **kwargs})


def test_integer_amounts_are_accepted_as_exact_decimals() -> None:
    # Typed as Decimal, but an int is exact too, so it is accepted at run time.
    breakdown = ProfitCalculator(D(0), 0, 1).calculate_profit(D(5), 3)  # type: ignore[arg-type]

    assert breakdown.net == D(1)


@pytest.mark.parametrize(
    ("collateral", "principal", "field"),
    [
        (D("-1"), D("1"), "collateral_value"),
        (D("1"), D("-0.01"), "principal_value"),
        (D("sNaN"), D("1"), "collateral_value"),
    ],
)
def test_negative_or_undefined_amounts_are_refused_by_name(
    collateral: Decimal, principal: Decimal, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        calculator().calculate_profit(collateral, principal)


def test_a_float_amount_is_refused() -> None:
    with pytest.raises(TypeError, match="principal_value"):
        calculator().calculate_profit(D("1"), 0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("debt", "bonus", "field"),
    [(D("-5"), None, "debt_to_cover_value"), (D("5"), D("-0.05"), "bonus_pct")],
)
def test_the_estimate_refuses_bad_inputs_by_name(
    debt: Decimal, bonus: Decimal | None, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        calculator().estimate_profit_with_bonus(debt, bonus)


def test_to_dict_gives_every_field_as_a_plain_decimal_string() -> None:
    breakdown = ProfitBreakdown(
        gross=D("1E+3"), bonus_value=D("50"), fees=D("3.150"), gas_cost=D("0E-8"), net=D("-0.5")
    )

    assert breakdown.to_dict() == {
        "gross": "1000",
        "bonus_value": "50",
        "fees": "3.150",
        "gas_cost": "0.00000000",
        "net": "-0.5",
    }


def test_the_repr_shows_the_settings() -> None:
    assert repr(calculator()) == "ProfitCalculator(bonus_pct=0.05, fee_bps=30, gas_cost_usd=2)"
