"""Hypothesis strategies: random markets and many users, some within 1e-12 of HF 1."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from overlord.aave import (
    EModeCategory,
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    StableDebt,
    UserAccount,
    UserReserve,
    calculate_user_account_data,
    reserve_bitmap,
    user_configuration_word,
)

RAY = 10**27
NOW = 1_731_000_000
VERSIONS = [
    ProtocolVersion.V3_0_2,
    ProtocolVersion.V3_3,
    ProtocolVersion.V3_4,
    ProtocolVersion.V3_6,
]


def asset(reserve_id: int) -> str:
    return f"0x{0xA000 + reserve_id:040x}"


SOURCE = "0x" + "5e" * 20


@st.composite
def reserves(draw: st.DrawFn, reserve_id: int) -> Reserve:
    decimals = draw(st.sampled_from([18, 6, 8]))
    lt = draw(st.sampled_from([0, 5000, 7800, 8250, 9000, 9500]))
    ltv = 0 if lt == 0 else draw(st.sampled_from([0, lt - 250, lt - 1000]))
    return Reserve(
        id=reserve_id,
        asset=asset(reserve_id),
        configuration=ReserveConfiguration(
            ltv=max(ltv, 0),
            liquidation_threshold=lt,
            liquidation_bonus=10500 if lt else 0,
            decimals=decimals,
            emode_category=draw(st.sampled_from([0, 0, 1, 2])),
        ),
        liquidity_index=RAY + draw(st.integers(0, RAY // 2)),
        variable_borrow_index=RAY + draw(st.integers(0, RAY // 2)),
        current_liquidity_rate=draw(st.integers(0, RAY // 10)),
        current_variable_borrow_rate=draw(st.integers(0, RAY // 5)),
        last_update_timestamp=NOW - draw(st.sampled_from([0, 1, 12, 3600, 86400 * 30])),
    )


@st.composite
def markets(draw: st.DrawFn) -> Market:
    version = draw(st.sampled_from(VERSIONS))
    count = draw(st.integers(2, 6))
    listed = {i: draw(reserves(i)) for i in range(count)}
    prices = {
        asset(i): draw(
            st.sampled_from([1, 99_990_000, 10**8, 15 * 10**8, 3000 * 10**8, 60_000 * 10**8])
        )
        for i in listed
    }
    categories = {}
    for category_id in (1, 2):
        members = [i for i in listed if draw(st.booleans())]
        source = SOURCE if category_id == 1 and draw(st.booleans()) else None
        categories[category_id] = EModeCategory(
            id=category_id,
            ltv=9300,
            liquidation_threshold=9500,
            liquidation_bonus=10100,
            price_source=source,
            collateral_bitmap=reserve_bitmap(members),
            ltvzero_bitmap=reserve_bitmap(members[:1]),
        )
    prices[SOURCE] = draw(st.sampled_from([0, 10**8, 3000 * 10**8]))
    return Market(version=version, reserves=listed, prices=prices, emode_categories=categories)


@st.composite
def users(draw: st.DrawFn, market: Market, index: int) -> UserAccount:
    ids = list(market.reserves)
    collateral = draw(st.lists(st.sampled_from(ids), min_size=0, max_size=3, unique=True))
    debt = draw(st.lists(st.sampled_from(ids), min_size=0, max_size=3, unique=True))
    positions = {}
    for reserve_id in set(collateral) | set(debt):
        scale = 10 ** market.reserves[reserve_id].configuration.decimals
        size = draw(st.sampled_from([0, 1, 7, scale // 1000, scale, 100 * scale, 10**6 * scale]))
        stable = None
        if reserve_id in debt and market.rules.stable_debt and draw(st.integers(0, 4)) == 0:
            stable = StableDebt(
                principal=size + 1, rate=RAY // 20, last_update_timestamp=NOW - 86400
            )
        positions[reserve_id] = UserReserve(
            scaled_atoken_balance=size
            if reserve_id in collateral
            else draw(st.sampled_from([0, size])),
            scaled_variable_debt=draw(st.sampled_from([size, size // 3, 1]))
            if reserve_id in debt
            else 0,
            stable_debt=stable,
        )
    return UserAccount(
        address=f"0x{index + 1:040x}",
        configuration=user_configuration_word(borrowing=debt, collateral=collateral),
        emode_category=draw(st.sampled_from([0, 0, 0, 1, 2])),
        positions=positions,
    )


def near_one(market: Market, user: UserAccount, offset: int) -> UserAccount:
    """The user with its first debt position rescaled so the exact HF lands next to 1."""
    data = calculate_user_account_data(market, user, NOW)
    borrowed = [
        i
        for i in user.positions
        if user.configuration >> (2 * i) & 1 and user.positions[i].scaled_variable_debt
    ]
    if data.total_debt_base == 0 or not borrowed or data.health_factor == 0:
        return user
    target = borrowed[0]
    position = user.positions[target]
    scaled = position.scaled_variable_debt * data.health_factor // 10**18 + offset
    positions = {**user.positions, target: replace(position, scaled_variable_debt=max(scaled, 1))}
    return replace(user, positions=positions)


@st.composite
def populations(draw: st.DrawFn) -> tuple[Market, list[UserAccount]]:
    market = draw(markets())
    count = draw(st.integers(1, 25))
    people = [draw(users(market, i)) for i in range(count)]
    offsets = st.sampled_from([-2, -1, 0, 1, 2, 10**6])
    people = [near_one(market, u, draw(offsets)) if draw(st.booleans()) else u for u in people]
    return market, people
