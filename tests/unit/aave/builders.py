"""Builders for small markets and users in the math tests: reserves by id, prices by id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from overlord.aave import (
    EModeCategory,
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    UserAccount,
    UserReserve,
    user_configuration_word,
)

RAY = 10**27
WAD = 10**18
NOW = 1_700_000_000
BORROWER = "0x00000000000000000000000000000000000000b0"
PRICE_SOURCE = "0x0000000000000000000000000000000000005e00"


def asset(reserve_id: int) -> str:
    """The test asset address of a reserve id."""
    return f"0x{reserve_id + 0xA0:040x}"


def make_reserve(
    reserve_id: int,
    *,
    ltv: int = 0,
    lt: int = 0,
    lb: int = 0,
    decimals: int = 18,
    protocol_fee: int = 0,
    emode_category: int = 0,
    active: bool = True,
    paused: bool = False,
    virtual_accounting: bool = True,
    liquidity_index: int = RAY,
    variable_borrow_index: int = RAY,
    liquidity_rate: int = 0,
    variable_rate: int = 0,
    last_update: int = NOW,
    grace_until: int = 0,
) -> Reserve:
    """A reserve whose stored state is current at ``NOW`` unless told otherwise."""
    return Reserve(
        id=reserve_id,
        asset=asset(reserve_id),
        configuration=ReserveConfiguration(
            ltv=ltv,
            liquidation_threshold=lt,
            liquidation_bonus=lb,
            decimals=decimals,
            liquidation_protocol_fee=protocol_fee,
            emode_category=emode_category,
            active=active,
            paused=paused,
            virtual_accounting_active=virtual_accounting,
        ),
        liquidity_index=liquidity_index,
        variable_borrow_index=variable_borrow_index,
        current_liquidity_rate=liquidity_rate,
        current_variable_borrow_rate=variable_rate,
        last_update_timestamp=last_update,
        liquidation_grace_period_until=grace_until,
    )


def make_market(
    version: ProtocolVersion,
    reserves: Sequence[Reserve],
    prices: Mapping[int, int],
    *,
    emode: Sequence[EModeCategory] = (),
    reserves_count: int | None = None,
    extra_prices: Mapping[str, int] | None = None,
) -> Market:
    """A market with prices given by reserve id (``extra_prices`` by address)."""
    all_prices = {asset(reserve_id): price for reserve_id, price in prices.items()}
    all_prices.update(extra_prices or {})
    return Market(
        version=version,
        reserves={reserve.id: reserve for reserve in reserves},
        prices=all_prices,
        emode_categories={category.id: category for category in emode},
        reserves_count=reserves_count,
    )


def make_user(
    *,
    collateral: Mapping[int, int] | None = None,
    debt: Mapping[int, int] | None = None,
    emode: int = 0,
    unflagged_collateral: Mapping[int, int] | None = None,
) -> UserAccount:
    """A user flagged on the reserves given (``unflagged_collateral``: aTokens, no flag)."""
    collateral = collateral or {}
    debt = debt or {}
    supplied = {**(unflagged_collateral or {}), **collateral}
    positions = {
        reserve_id: UserReserve(
            scaled_atoken_balance=supplied.get(reserve_id, 0),
            scaled_variable_debt=debt.get(reserve_id, 0),
        )
        for reserve_id in set(supplied) | set(debt)
    }
    return UserAccount(
        address=BORROWER,
        configuration=user_configuration_word(borrowing=debt, collateral=collateral),
        emode_category=emode,
        positions=positions,
    )
