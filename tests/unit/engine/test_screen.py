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
from overlord.engine.positions import PositionTable
from overlord.engine.screen import SAFE, UNDERWATER, block_factors, screen, underwater_users
from tests.unit.engine.market_strategies import NOW, populations


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
    table = PositionTable()
    for user in people:
        table.upsert(user)
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
    table = PositionTable()
    for user in people:
        table.upsert(user)
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
    table = PositionTable()
    for user in people:
        table.upsert(user)
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
