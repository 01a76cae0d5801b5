"""The vector screen plus exact confirmation classifies every user as the exact math does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overlord.aave import (
    Market,
    UserAccount,
    UserReserve,
    calculate_user_account_data,
    user_configuration_word,
)
from overlord.aave.configuration import flagged_reserves
from overlord.aave.errors import MissingPriceError
from overlord.engine.positions import BORROWING, COLLATERAL, PositionTable
from overlord.engine.screen import SAFE, UNDERWATER, block_factors, screen, underwater_users
from tests.unit.engine.market_strategies import NOW, populations


def table_of(people: list[UserAccount]) -> PositionTable:
    """A table holding ``people``, upserted in order (a repeated address replaces)."""
    table = PositionTable()
    for user in people:
        table.upsert(user)
    return table


def exact_underwater(market: Market, people: list[UserAccount]) -> set[str]:
    return {
        user.address
        for user in people
        if calculate_user_account_data(market, user, NOW).is_liquidatable
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations())
def test_screen_and_confirmation_find_exactly_the_underwater_users(
    population: tuple[Market, list[UserAccount]],
) -> None:
    market, people = population
    table = table_of(people)
    try:
        expected = exact_underwater(market, people)
    except (MissingPriceError, ArithmeticError):
        return  # a market the contract itself could not evaluate

    found = underwater_users(table, market, NOW)

    assert {table.addresses[u] for u in found} == expected
    for index, data in found.items():
        assert data == calculate_user_account_data(market, table.account(index), NOW)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations())
def test_every_certain_classification_is_right(
    population: tuple[Market, list[UserAccount]],
) -> None:
    market, people = population
    table = table_of(people)
    try:
        factors = block_factors(market, NOW)
        result = screen(table, factors)
        exact = [calculate_user_account_data(market, user, NOW) for user in people]
    except (MissingPriceError, ArithmeticError):
        return

    for index, data in enumerate(exact):
        if result.status[index] == SAFE:
            assert not data.is_liquidatable, (index, data)
        elif result.status[index] == UNDERWATER:
            assert data.is_liquidatable, (index, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations(), compact=st.booleans())
def test_the_table_gives_back_the_exact_account_after_replacements_and_removals(
    population: tuple[Market, list[UserAccount]], compact: bool
) -> None:
    _market, people = population
    table = table_of(people)
    # Every user takes another user's positions (growing and shrinking slots), one leaves.
    latest = {
        user.address: replace(people[-1 - i], address=user.address) for i, user in enumerate(people)
    }
    for account in latest.values():
        table.upsert(account)
    table.remove(people[0].address)
    latest[people[0].address] = UserAccount(address=people[0].address, configuration=0)
    if compact:
        table.compact()

    for address, account in latest.items():
        index = table.user_index(address)
        assert index is not None
        stored = table.account(index)
        assert (stored.configuration, stored.emode_category) == (
            account.configuration,
            account.emode_category,
        )
        for reserve_id, _borrowing, _collateral in flagged_reserves(account.configuration):
            assert stored.position(reserve_id) == account.position(reserve_id)
    assert table.live_rows == int(np.sum(table.rows().user >= 0))


@pytest.mark.parametrize("value", [0, 1, 2**64 - 1, 2**64, 2**128 - 1, 2**128, 2**200 + 12345])
def test_scaled_balances_of_any_size_round_trip_exactly(value: int) -> None:
    account = UserAccount(
        address="0x" + "11" * 20,
        configuration=user_configuration_word(borrowing=[1], collateral=[0]),
        positions={
            0: UserReserve(scaled_atoken_balance=value),
            1: UserReserve(scaled_variable_debt=value),
        },
    )
    table = PositionTable()
    user = table.upsert(account)

    stored = table.account(user)

    assert stored.position(0).scaled_atoken_balance == value
    assert stored.position(1).scaled_variable_debt == value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations(), data=st.data())
def test_a_targeted_screen_equals_the_full_screen_for_its_users(
    population: tuple[Market, list[UserAccount]], data: st.DataObject
) -> None:
    market, people = population
    table = table_of(people + people[: len(people) // 2])  # some replaced: dead rows too
    try:
        factors = block_factors(market, NOW)
        full = screen(table, factors)
    except (MissingPriceError, ArithmeticError):
        return
    subset = np.array(
        sorted(data.draw(st.sets(st.integers(0, table.users - 1), max_size=table.users))),
        dtype=np.intp,
    )

    targeted = screen(table, factors, subset)

    assert np.array_equal(targeted.users, subset)
    assert np.array_equal(targeted.status, full.status[subset])
    assert np.array_equal(targeted.weighted_collateral, full.weighted_collateral[subset])
    assert np.array_equal(targeted.debt, full.debt[subset])


def test_the_reserve_index_lists_borrowers_and_suppliers_per_reserve() -> None:
    table = PositionTable()
    a = UserAccount("0x" + "0a" * 20, user_configuration_word(borrowing=[1], collateral=[0]))
    b = UserAccount("0x" + "0b" * 20, user_configuration_word(borrowing=[0, 2], collateral=[1]))
    c = UserAccount("0x" + "0c" * 20, user_configuration_word(collateral=[0, 2]))
    for account in (a, b, c):
        table.upsert(account)
    table.upsert(UserAccount(c.address, user_configuration_word(collateral=[2])))  # c left 0

    assert table.users_with(0, COLLATERAL).tolist() == [0]
    assert table.users_with(0, BORROWING).tolist() == [1]
    assert table.users_with(2, COLLATERAL).tolist() == [2]
    assert table.users_of_reserves([1]).tolist() == [0, 1]
    assert table.users_per_reserve(COLLATERAL) == {0: 1, 1: 1, 2: 1}
    assert table.users_per_reserve(BORROWING) == {0: 1, 1: 1, 2: 1}
