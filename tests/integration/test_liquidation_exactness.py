"""Proof: the exact math predicts real liquidations on Aave 3.0.2 and 3.6.0 wei for wei.

Every case opens a position, moves a price, ratio or time, then compares the prediction of
``simulate_liquidation`` / ``max_liquidation`` with what the Pool did: the LiquidationCall
event's debt repaid and collateral, the protocol fee transferred to the treasury, the
collateral flag, and the liquidator's balances. Prices are chosen so each case lands
where the rule it exercises applies (the health factor is noted next to each).
"""

from __future__ import annotations

import pytest

from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from tests.integration.liquidation_harness import Harness, assert_matches, assert_rejected

ETH, BTC = "ETH / USD", "BTC / USD"


@pytest.fixture
def harness(devnet: Devnet, rpc: JsonRpcClient) -> Harness:
    return Harness(rpc, devnet.manifest)


def protocol(devnet: Devnet) -> str:
    return devnet.manifest.protocol_version


def weth_against_usdc(h: Harness, eth_price: str, debt: str = "22000") -> str:
    user = h.new_user()
    h.open_position(user, {"WETH": "10"}, {"USDC": debt})
    h.set_price(ETH, eth_price)
    return user


def test_a_partial_liquidation_takes_half_the_debt(harness: Harness) -> None:
    user = weth_against_usdc(harness, "2586")  # HF 0.9698: 50 % close factor

    liquidation = assert_matches(harness.liquidate(user, "WETH", "USDC"))

    assert liquidation.debt_repaid < liquidation.debt_balance
    assert liquidation.protocol_fee > 0


def test_below_hf_0_95_the_whole_debt_can_be_repaid(harness: Harness) -> None:
    user = weth_against_usdc(harness, "2400")  # HF 0.9: 100 %

    liquidation = assert_matches(harness.liquidate(user, "WETH", "USDC"))

    assert liquidation.debt_repaid == liquidation.debt_balance


@pytest.mark.parametrize(("price", "full"), [("2534", False), ("2533", True)])
def test_the_close_factor_switches_at_hf_0_95(harness: Harness, price: str, full: bool) -> None:
    user = weth_against_usdc(harness, price)  # HF 0.95029 / 0.94976

    liquidation = assert_matches(harness.liquidate(user, "WETH", "USDC"))

    assert (liquidation.debt_repaid == liquidation.debt_balance) is full


def test_when_the_collateral_is_short_all_of_it_goes(harness: Harness, devnet: Devnet) -> None:
    user = weth_against_usdc(harness, "2000")  # HF 0.75, collateral worth less than debt + bonus

    liquidation = assert_matches(harness.liquidate(user, "WETH", "USDC"))

    # All of it is seized; the fee may then be capped by a wei at what is left (3.0.1+).
    taken = liquidation.collateral_to_liquidator + liquidation.protocol_fee
    assert 0 <= liquidation.collateral_balance - taken <= 1
    assert liquidation.collateral_flag_cleared
    assert liquidation.has_no_collateral_left is (protocol(devnet) == "3.6.0")


def test_an_explicit_debt_to_cover_is_honoured(harness: Harness) -> None:
    user = weth_against_usdc(harness, "2586")

    liquidation = assert_matches(
        harness.liquidate(user, "WETH", "USDC", harness.units("USDC", "1000.5"))
    )

    assert liquidation.debt_repaid == harness.units("USDC", "1000.5")


def test_receiving_atokens_moves_the_same_amounts(harness: Harness) -> None:
    user = weth_against_usdc(harness, "2586")

    assert_matches(harness.liquidate(user, "WETH", "USDC", receive_a_token=True))


def test_eight_decimal_collateral_with_a_20_percent_fee(harness: Harness) -> None:
    user = harness.new_user()
    harness.open_position(user, {"WBTC": "1"}, {"DAI": "43000"})
    harness.set_price(BTC, "55000")  # HF 0.9977: 50 %, bonus 6.5 %, fee 20 % of the bonus

    liquidation = assert_matches(harness.liquidate(user, "WBTC", "DAI"))

    assert liquidation.liquidation_bonus == 10650


def test_emode_liquidation_uses_the_category_bonus(harness: Harness) -> None:
    user = harness.new_user()
    harness.open_position(user, {"wstETH": "10"}, {"WETH": "10.9"}, emode=1)
    harness.set_ratio("wstETH / USD", "1.10")  # depeg: HF 0.9587 in eMode 1

    liquidation = assert_matches(harness.liquidate(user, "wstETH", "WETH"))

    assert liquidation.liquidation_bonus == 10100


def test_the_second_collateral_can_be_taken(harness: Harness) -> None:
    user = harness.new_user()
    harness.open_position(user, {"WETH": "5", "WBTC": "0.2"}, {"USDC": "20000"})
    harness.set_price(ETH, "2500")  # HF 0.9836

    assert_matches(harness.liquidate(user, "WBTC", "USDC"))


def dust_position(h: Harness) -> str:
    """HF 0.97 with ~$5,300 of WBTC: seizing half of the $9,000 debt leaves under $1,000."""
    user = h.new_user()
    h.open_position(user, {"WETH": "2", "WBTC": "0.1"}, {"DAI": "9000"})
    h.set_price(ETH, "2788.5")
    h.set_price(BTC, "52920")
    return user


def test_the_dust_rule_rejects_the_maximum_on_3_6(harness: Harness, devnet: Devnet) -> None:
    user = dust_position(harness)

    outcome = harness.liquidate(user, "WBTC", "DAI", 2**256 - 1)

    if protocol(devnet) == "3.6.0":
        assert_rejected(outcome, "MustNotLeaveDust")
    else:
        assert_matches(outcome)  # no dust rule before 3.3


def test_the_largest_accepted_liquidation_respects_the_dust_rule(
    harness: Harness, devnet: Devnet
) -> None:
    user = dust_position(harness)

    liquidation = assert_matches(harness.liquidate(user, "WBTC", "DAI"))

    if protocol(devnet) == "3.6.0":
        assert liquidation.debt_to_cover != 2**256 - 1  # shrunk below the maximum
        assert (
            liquidation.collateral_to_liquidator + liquidation.protocol_fee
            < liquidation.collateral_balance
        )


def test_stable_debt_is_liquidated_on_3_0_2(harness: Harness, devnet: Devnet) -> None:
    if protocol(devnet) != "3.0.2":
        pytest.skip("stable debt exists up to 3.1")
    user = harness.new_user()
    harness.open_position(
        user, {"WETH": "10"}, {"USDC": "15000", "DAI": "5000"}, stable=frozenset({"USDC"})
    )
    harness.advance(30 * 24 * 3600)
    harness.set_price(ETH, "2300")  # HF ~0.948

    liquidation = assert_matches(harness.liquidate(user, "WETH", "USDC"))

    assert liquidation.debt_repaid == liquidation.debt_balance


def test_the_emode_price_source_prices_the_debt_on_3_0_2(harness: Harness, devnet: Devnet) -> None:
    user = harness.new_user()
    # eMode 2 (stablecoins; on 3.0.2 priced by the USDC source) with WETH outside the category.
    harness.open_position(user, {"WETH": "10"}, {"DAI": "22000"}, emode=2)
    harness.set_price(ETH, "2586")

    liquidation = assert_matches(harness.liquidate(user, "WETH", "DAI"))

    expected_debt_price = 10**8 if protocol(devnet) == "3.0.2" else 99_990_000
    assert liquidation.debt_price == expected_debt_price


def test_interest_accrued_over_a_year_is_included(harness: Harness) -> None:
    user = weth_against_usdc(harness, "3000", debt="23900")
    harness.advance(365 * 24 * 3600)
    harness.set_price(ETH, "2800")

    assert_matches(harness.liquidate(user, "WETH", "USDC"))


def test_a_healthy_user_cannot_be_liquidated(harness: Harness) -> None:
    user = weth_against_usdc(harness, "3000")

    assert_rejected(harness.liquidate(user, "WETH", "USDC", 1000), "HealthFactorNotBelowThreshold")


def test_a_disabled_collateral_cannot_be_taken(harness: Harness) -> None:
    user = harness.new_user()
    harness.open_position(
        user,
        {"WETH": "10", "WBTC": "0.1"},
        {"USDC": "22000"},
        disabled_collateral=frozenset({"WBTC"}),
    )
    harness.set_price(ETH, "2586")

    assert_rejected(harness.liquidate(user, "WBTC", "USDC", 1000), "CollateralCannotBeLiquidated")


def test_a_debt_the_user_does_not_have_cannot_be_repaid(harness: Harness) -> None:
    user = weth_against_usdc(harness, "2586")

    assert_rejected(
        harness.liquidate(user, "WETH", "DAI", 1000), "SpecifiedCurrencyNotBorrowedByUser"
    )


def test_self_liquidation_is_rejected_from_3_4(harness: Harness, devnet: Devnet) -> None:
    if protocol(devnet) != "3.6.0":
        pytest.skip("self-liquidation is allowed before 3.4")
    user = weth_against_usdc(harness, "2586")

    assert_rejected(
        harness.liquidate(user, "WETH", "USDC", 1000, liquidator=user), "SelfLiquidation"
    )


def test_liquidations_keep_predicting_after_earlier_ones(harness: Harness) -> None:
    user = weth_against_usdc(harness, "2586")
    first = assert_matches(harness.liquidate(user, "WETH", "USDC"))
    harness.set_price(ETH, "2150")  # HF ~0.90 after the first liquidation

    second = assert_matches(harness.liquidate(user, "WETH", "USDC"))

    # Interest accrues between the two blocks, so the second debt is slightly above the rest.
    assert second.debt_balance >= first.debt_balance - first.debt_repaid
