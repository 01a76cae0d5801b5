"""The seeder's planning: deterministic, realistic shares, and only valid borrows."""

from __future__ import annotations

import pytest

from overlord.devnet.seed import (
    PPM,
    STABLE_RATE,
    USD,
    PlannedDebt,
    UserPlan,
    borrow_amounts,
    liquidity_amounts,
    plan_users,
    token_unit,
    user_address,
)
from tests.unit.devnet.builders import address, market

POPULATION = 4_000


@pytest.fixture(scope="module", params=["3.0.2", "3.6.0"])
def plans(request: pytest.FixtureRequest) -> tuple[UserPlan, ...]:
    return plan_users(market(request.param), users=POPULATION, seed=3)


def _share(count: int, total: int) -> float:
    return count / total


def test_the_same_seed_plans_the_same_users_and_another_seed_others() -> None:
    view = market()

    first = plan_users(view, users=50, seed=8)

    assert plan_users(view, users=50, seed=8) == first
    assert plan_users(view, users=50, seed=9) != first
    assert [plan.address for plan in first] == [user_address(8, i) for i in range(50)]


def test_addresses_are_distinct_lower_case_hex(plans: tuple[UserPlan, ...]) -> None:
    addresses = [plan.address for plan in plans]

    assert len(set(addresses)) == len(addresses)
    assert all(len(a) == 42 and a == a.lower() and a.startswith("0x") for a in addresses)


def test_the_population_has_the_promised_shares(plans: tuple[UserPlan, ...]) -> None:
    borrowers = [plan for plan in plans if plan.debts]

    assert 0.12 < _share(sum(plan.emode != 0 for plan in plans), POPULATION) < 0.18
    assert 0.03 < _share(sum(plan.disabled is not None for plan in plans), POPULATION) < 0.07
    assert 0.17 < _share(POPULATION - len(borrowers), POPULATION) < 0.26
    near_max = sum(plan.borrow_ppm >= 970_000 for plan in borrowers)
    assert 0.16 < _share(near_max, len(borrowers)) < 0.24
    assert all(0 < plan.borrow_ppm <= 995_000 for plan in borrowers)
    assert all(1 <= len(plan.supplies) <= 3 and len(plan.debts) <= 3 for plan in plans)


def test_sizes_run_from_dust_to_whales(plans: tuple[UserPlan, ...]) -> None:
    view = market()  # the same prices for both protocols
    values = [
        sum(s.amount * view.price(s.reserve) // token_unit(s.reserve) for s in plan.supplies)
        for plan in plans
    ]

    assert any(0 < s.amount < 10 for plan in plans for s in plan.supplies)
    assert any(d.fixed_amount is not None and d.fixed_amount < 10 for p in plans for d in p.debts)
    assert min(values) < 10 * USD
    assert max(values) > 1_000_000 * USD


def test_emode_users_borrow_only_their_category(plans: tuple[UserPlan, ...]) -> None:
    view = market()
    emode_users = [plan for plan in plans if plan.emode]

    for plan in emode_users:
        members = view.members(plan.emode)
        assert {debt.reserve.symbol for debt in plan.debts} <= {r.symbol for r in members}
        assert any(s.reserve.symbol in {r.symbol for r in members} for s in plan.supplies)


def test_stable_debt_is_planned_on_3_0_2_only_in_unsupplied_stablecoins(
    plans: tuple[UserPlan, ...],
) -> None:
    stable = [
        (plan, debt) for plan in plans for debt in plan.debts if debt.rate_mode == STABLE_RATE
    ]
    legacy = plans[0].supplies[0].reserve.stable_debt_token is not None

    if not legacy:
        assert stable == []
        return
    stablecoin_debts = [d for p in plans for d in p.debts if d.reserve.symbol in ("USDC", "DAI")]
    assert 0.1 < len(stable) / len(stablecoin_debts) < 0.3
    for plan, debt in stable:
        assert debt.reserve.symbol in ("USDC", "DAI")
        assert debt.reserve not in {s.reserve for s in plan.supplies}


def test_borrow_amounts_stay_within_the_share_of_available_borrows() -> None:
    view = market("3.0.2")
    users = [plan for plan in plan_users(view, users=300, seed=5) if plan.debts]
    available = 12_345_678 * USD

    for plan in users:
        amounts = borrow_amounts(view, plan, available)
        value = sum(
            amount * view.borrow_price(debt.reserve, plan.emode) // token_unit(debt.reserve)
            for debt, amount in zip(plan.debts, amounts, strict=True)
            if debt.fixed_amount is None
        )
        assert value <= available * plan.borrow_ppm // PPM


def test_a_borrow_in_the_stablecoin_emode_is_priced_by_its_source_on_3_0_2_only() -> None:
    legacy, current = market("3.0.2"), market("3.6.0")
    dai = legacy.manifest.reserve("DAI")

    assert legacy.borrow_price(dai, 2) == legacy.prices[address("USDC")]
    assert legacy.borrow_price(dai, 0) == legacy.price(dai)
    assert current.borrow_price(current.manifest.reserve("DAI"), 2) == 99_990_000


def test_no_headroom_means_no_borrow_and_dust_debts_keep_their_wei() -> None:
    view = market()
    usdc = view.manifest.reserve("USDC")
    plan = UserPlan(
        address("u"),
        0,
        (),
        None,
        500_000,
        (PlannedDebt(usdc, 1, 2, fixed_amount=4), PlannedDebt(usdc, 1, 2)),
    )

    assert borrow_amounts(view, plan, 0) == [0, 0]
    assert borrow_amounts(view, plan, 100 * USD) == [4, 50 * 10**6 - 1]


def test_the_liquidity_provider_supplies_at_least_twice_what_borrowers_can_take() -> None:
    view = market("3.0.2")
    plans = plan_users(view, users=500, seed=4)

    amounts = liquidity_amounts(view, plans)

    ceiling = {r.symbol: 0 for r in view.manifest.reserves}
    for plan in plans:
        collateral = sum(
            s.amount * view.price(s.reserve) // token_unit(s.reserve) for s in plan.supplies
        )
        for debt in plan.debts:
            ceiling[debt.reserve.symbol] += collateral * 97 // 100 * plan.borrow_ppm // PPM
    for r in view.manifest.reserves:
        value = amounts[r.symbol] * view.price(r) // token_unit(r)
        assert value >= 1_000_000 * USD
        assert value >= ceiling[r.symbol] * 2 // 3  # a debt's weight is at least a third
