"""The scenario driver's pure parts: users files, step tables and withdrawal headroom."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overlord.devnet.scenario import (
    STEP_WEIGHTS,
    USER_ACTIONS,
    Position,
    StepKind,
    UserState,
    parse_users,
    read_users_file,
    safe_removal,
)
from overlord.devnet.seed import USD
from tests.unit.devnet.builders import address, market

ALICE, BOB = address("alice"), address("bob")
WAD = 10**18


def test_a_json_list_of_users_is_read_in_order_lower_case_without_duplicates() -> None:
    text = json.dumps([BOB.upper().replace("0X", "0x"), ALICE, BOB])

    assert parse_users(text) == (BOB, ALICE)


def test_a_plain_list_skips_blank_lines_and_comments() -> None:
    text = f"# seeded users\n{ALICE}\n\n{BOB}  # the second one\n"

    assert parse_users(text) == (ALICE, BOB)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ALICE}\n0x1234\n", "entry 2 is not an address: '0x1234'"),
        ('{"users": []}', "not an address"),
        ("[1]", "entry 1 is not an address: '1'"),
        ("[", "Expecting value"),
    ],
)
def test_a_bad_users_list_names_the_bad_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_users(text)


def test_a_missing_users_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "users.json"

    with pytest.raises(ValueError, match=r"cannot read .*users\.json"):
        read_users_file(missing)


def test_every_kind_but_recovery_is_chosen_at_random_and_every_user_action_has_a_handler() -> None:
    assert set(STEP_WEIGHTS) == set(StepKind) - {StepKind.PRICE_RECOVERY}
    assert all(weight > 0 for weight in STEP_WEIGHTS.values())
    assert set(USER_ACTIONS) == {
        StepKind.SUPPLY,
        StepKind.WITHDRAW,
        StepKind.BORROW,
        StepKind.REPAY,
        StepKind.COLLATERAL,
        StepKind.EMODE,
        StepKind.TRANSFER,
    }


def _weth_user(supplied: int, *, collateral: bool, debt_base: int, emode: int = 0) -> UserState:
    view = market()
    weth = view.manifest.reserve("WETH")
    value = supplied * view.price(weth) // 10**18
    threshold = 9500 if emode == 1 else weth.liquidation_threshold
    account = (value, debt_base, 0, threshold, weth.ltv, WAD)
    position = Position(weth, supplied, collateral, 0, 0, 0)
    return UserState(ALICE, account, emode, (position,))


def test_without_debt_or_as_non_collateral_everything_can_be_removed() -> None:
    view = market()
    for state in (
        _weth_user(10**18, collateral=True, debt_base=0),
        _weth_user(10**18, collateral=False, debt_base=1_000 * USD),
    ):
        assert safe_removal(state, view, state.positions[0]) == 10**18


def test_with_debt_removal_keeps_the_health_factor_near_1_02() -> None:
    view = market()
    # 10 WETH = $30,000 at an 82.5 % threshold carries $24,750 at HF 1; $12,000 of debt.
    state = _weth_user(10 * 10**18, collateral=True, debt_base=12_000 * USD)

    removable = safe_removal(state, view, state.positions[0])

    left = (10 * 10**18 - removable) * 3_000 * 8250 // 10_000 // 10**18
    assert left / 12_000 == pytest.approx(1.02, abs=1e-4)


def test_in_emode_removal_uses_the_category_threshold() -> None:
    view = market()
    state = _weth_user(10 * 10**18, collateral=True, debt_base=12_000 * USD, emode=1)

    removable = safe_removal(state, view, state.positions[0])

    left = (10 * 10**18 - removable) * 3_000 * 9500 // 10_000 // 10**18
    assert left / 12_000 == pytest.approx(1.02, abs=1e-4)


def test_a_position_at_its_limit_can_remove_nothing() -> None:
    state = _weth_user(10**18, collateral=True, debt_base=2_475 * USD)

    assert safe_removal(state, market(), state.positions[0]) == 0
