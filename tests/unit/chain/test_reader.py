"""The market reader against a scripted node: decoding, version detection, garbage answers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_abi.abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from overlord.aave import (
    ProtocolVersion,
    ReserveConfiguration,
    VersionDetectionError,
    user_configuration_word,
)
from overlord.chain import aave_abi as abi
from overlord.chain.abi import Function
from overlord.chain.reader import (
    GET_DISCOUNT_PERCENT,
    GET_PREVIOUS_INDEX,
    RESERVE_INTEREST_RATE_STRATEGY,
    MarketReader,
    MarketState,
    block_tag,
    normalize_address,
)
from overlord.chain.rpc import RpcError, RpcMalformedError
from tests.unit.chain.fakes import (
    CONFIGURATOR,
    ORACLE,
    POOL,
    PROVIDER,
    REVERT,
    Answer,
    FakeNode,
    FakeReserve,
    client_for,
    raw,
    result,
    script_market,
)

BLOCK = 100
ZERO = "0x" + "00" * 20
USER = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
PROBES_3_6 = (
    abi.GET_LIQUIDATION_GRACE_PERIOD,
    abi.GET_EMODE_COLLATERAL_BITMAP,
    abi.GET_RESERVE_DEFICIT,
    RESERVE_INTEREST_RATE_STRATEGY,
    abi.GET_EMODE_LTVZERO_BITMAP,
)
PROBES_3_3 = PROBES_3_6[:3]
WETH = FakeReserve(
    "0x" + "e1" * 20,
    id=0,
    configuration=ReserveConfiguration(
        ltv=8000, liquidation_threshold=8250, liquidation_bonus=10500, decimals=18
    ).encode(),
    price=3_000 * 10**8,
    symbol=result(("string",), "WETH"),
)
USDC = FakeReserve(
    "0x" + "e2" * 20,
    id=1,
    configuration=ReserveConfiguration(
        ltv=7700, liquidation_threshold=8000, liquidation_bonus=10450, decimals=6, emode_category=1
    ).encode(),
    price=10**8,
    symbol=result(("string",), "USDC"),
)


def _market_node(
    reserves: tuple[FakeReserve, ...] = (WETH, USDC),
    *,
    revision: int = 1,
    probes: tuple[Any, ...] = (),
) -> FakeNode:
    node = FakeNode(block_number=BLOCK)
    script_market(node, reserves, revision=revision, probes=probes)
    # USDC names category 1 in its configuration (read up to 3.1).
    category = (9700, 9750, 10100, "0x" + "00" * 20, "Stable")
    node.on(
        POOL, abi.GET_EMODE_CATEGORY_DATA, result(abi.GET_EMODE_CATEGORY_DATA.outputs, category)
    )
    return node


def _read(node: FakeNode, version: ProtocolVersion | None = None) -> MarketState:
    with client_for(node) as client:
        return MarketReader(client, POOL, version=version).read_market(BLOCK)


# Pure helpers.


def test_block_tag_is_hex_and_refuses_what_is_not_a_block_number() -> None:
    assert block_tag(255) == "0xff"
    for bad in (-1, True, "latest"):
        with pytest.raises(ValueError, match="not a block number"):
            block_tag(bad)  # type: ignore[arg-type]


def test_normalize_address_lower_cases_and_refuses_non_addresses() -> None:
    assert normalize_address("0xABcd" + "00" * 18) == "0xabcd" + "00" * 18
    for bad in ("0x1234", "ab" * 20, "0x" + "zz" * 20):
        with pytest.raises(ValueError, match="not an address"):
            normalize_address(bad)


# Version detection.


def test_a_3_0_pool_is_detected_from_its_revision_and_missing_getters() -> None:
    state = _read(_market_node(revision=1))

    assert state.version is ProtocolVersion.V3_0_2
    assert state.pool_revision == 1
    assert state.market.reserves_count is None  # 3.0.x has no getReservesCount


def test_a_3_3_pool_is_detected_from_its_revision_and_probes() -> None:
    node = _market_node(revision=7, probes=(*PROBES_3_3, abi.GET_RESERVES_COUNT))
    node.on(POOL, abi.GET_EMODE_COLLATERAL_CONFIG, result(("(uint16,uint16,uint16)",), (0, 0, 0)))

    state = _read(node)

    assert state.version is ProtocolVersion.V3_3
    assert state.market.reserves_count == 0  # what the scripted getter answers


def test_probes_that_contradict_the_revision_are_refused() -> None:
    node = _market_node(revision=10, probes=PROBES_3_3)

    with pytest.raises(VersionDetectionError, match="POOL_REVISION 10"):
        _read(node)


def test_a_probe_failing_with_anything_but_a_revert_is_an_error() -> None:
    node = _market_node(revision=1)
    node.on(
        POOL, abi.GET_RESERVE_DEFICIT, {"error": {"code": -32000, "message": "header not found"}}
    )

    with pytest.raises(
        RpcError, match=r"getReserveDeficit\(address\) on 0x1111.* header not found"
    ):
        _read(node)


def test_a_forced_version_sends_no_probes() -> None:
    node = _market_node(revision=1)

    state = _read(node, ProtocolVersion.V3_0_0)

    assert state.version is ProtocolVersion.V3_0_0
    selectors = {
        item["params"][0]["data"][:10] for item in node.requests[0] if item["method"] == "eth_call"
    }
    assert "0x" + RESERVE_INTEREST_RATE_STRATEGY.selector.hex() not in selectors


# The market.


def test_reserves_are_keyed_by_their_id_not_their_list_position() -> None:
    moved = FakeReserve(WETH.asset, 5, WETH.configuration, WETH.price, WETH.symbol)

    state = _read(_market_node((USDC, moved)))

    assert sorted(state.market.reserves) == [1, 5]
    assert state.market.reserves[5].asset == WETH.asset
    assert state.tokens[5].a_token == moved.token("a")
    assert state.tokens[5].stable_debt_token == moved.token("s")
    assert state.market.prices == {USDC.asset: USDC.price, WETH.asset: WETH.price}


def test_two_reserves_with_one_id_are_garbage() -> None:
    twin = FakeReserve(USDC.asset, 0, USDC.configuration, USDC.price, USDC.symbol)

    with pytest.raises(RpcError, match="has reserve id 0, like"):
        _read(_market_node((WETH, twin)))


def test_a_reserve_updated_after_the_block_is_refused_as_inconsistent() -> None:
    node = _market_node((USDC, WETH))
    node.timestamp = 1_599_999_999  # the fake reserves were last updated at 1_600_000_000

    with pytest.raises(RpcMalformedError, match="updated at 1600000000, after the block's"):
        _read(node)
    node.timestamp = 1_600_000_000
    assert _read(node).block_timestamp == 1_600_000_000


def test_symbols_may_be_bytes32_or_missing() -> None:
    old_style = FakeReserve(
        WETH.asset, 0, WETH.configuration, WETH.price, result(("bytes32",), b"MKR".ljust(32, b"\0"))
    )
    anonymous = FakeReserve(USDC.asset, 1, USDC.configuration, USDC.price, symbol=None)

    state = _read(_market_node((old_style, anonymous)))

    assert (state.tokens[0].symbol, state.tokens[1].symbol) == ("MKR", "")


def test_a_price_list_of_the_wrong_length_is_garbage() -> None:
    node = _market_node()
    node.on(ORACLE, abi.GET_ASSETS_PRICES, result(("uint256[]",), [1]))

    with pytest.raises(RpcError, match="1 prices for 2 assets"):
        _read(node)


def test_legacy_emode_categories_come_from_the_reserves_with_their_price_source() -> None:
    node = _market_node()
    source = "0x" + "5e" * 20
    node.on(
        POOL,
        abi.GET_EMODE_CATEGORY_DATA,
        result(abi.GET_EMODE_CATEGORY_DATA.outputs, (9700, 9750, 10100, source, "Stable")),
    )
    node.on(ORACLE, abi.GET_ASSET_PRICE, result(("uint256",), 99_000_000))

    market = _read(node).market

    assert list(market.emode_categories) == [1]  # only USDC names a category
    category = market.emode_categories[1]
    assert (category.ltv, category.label, category.price_source) == (9700, "Stable", source)
    assert market.prices[source] == 99_000_000


def test_bitmap_emode_categories_are_found_across_any_gap() -> None:
    node = _market_node(revision=10, probes=PROBES_3_6)
    configs = {1: (9300, 9500, 10100), 200: (9000, 9100, 10200)}
    node.on(
        POOL,
        abi.GET_EMODE_COLLATERAL_CONFIG,
        lambda data: result(
            ("(uint16,uint16,uint16)",), configs.get(int(data[-2:], 16), (0, 0, 0))
        ),
    )
    node.on(POOL, abi.GET_EMODE_COLLATERAL_BITMAP, result(("uint128",), 0b10))
    node.on(POOL, abi.GET_EMODE_BORROWABLE_BITMAP, result(("uint128",), 0b11))
    node.on(POOL, abi.GET_EMODE_LTVZERO_BITMAP, result(("uint128",), 0b01))
    node.on(POOL, abi.GET_EMODE_LABEL, result(("string",), "cat"))

    market = _read(node).market

    assert sorted(market.emode_categories) == [1, 200]
    category = market.emode_categories[200]
    assert (category.ltv, category.liquidation_threshold, category.liquidation_bonus) == (
        9000,
        9100,
        10200,
    )
    assert (category.collateral_bitmap, category.borrowable_bitmap, category.ltvzero_bitmap) == (
        2,
        3,
        1,
    )


def test_every_call_names_the_block_and_a_market_takes_at_most_four_round_trips() -> None:
    node = _market_node()
    node.on(
        POOL,
        abi.GET_EMODE_CATEGORY_DATA,
        result(abi.GET_EMODE_CATEGORY_DATA.outputs, (9700, 9750, 10100, "0x" + "5e" * 20, "")),
    )
    node.on(ORACLE, abi.GET_ASSET_PRICE, result(("uint256",), 1))

    _read(node)

    assert len(node.requests) == 4
    calls = [item for batch in node.requests for item in batch]
    assert {
        item["params"][-2 if item["method"] == "eth_getBlockByNumber" else 1] for item in calls
    } == {hex(BLOCK)}


# Users.


def _user_node(configuration: int, emode: int = 0) -> FakeNode:
    node = _market_node()
    node.on(POOL, abi.GET_USER_CONFIGURATION, result(("uint256",), configuration))
    node.on(POOL, abi.GET_USER_EMODE, result(("uint256",), emode))
    return node


def test_users_are_read_in_two_round_trips_with_stable_debt_on_3_0() -> None:
    node = _user_node(user_configuration_word(borrowing=[1], collateral=[0]), emode=1)
    node.on(WETH.token("a"), abi.SCALED_BALANCE_OF, result(("uint256",), 7))
    node.on(WETH.token("v"), abi.SCALED_BALANCE_OF, result(("uint256",), 0))
    node.on(USDC.token("a"), abi.SCALED_BALANCE_OF, result(("uint256",), 0))
    node.on(USDC.token("v"), abi.SCALED_BALANCE_OF, result(("uint256",), 11))
    node.on(USDC.token("s"), abi.PRINCIPAL_BALANCE_OF, result(("uint256",), 5))
    node.on(USDC.token("s"), abi.GET_USER_STABLE_RATE, result(("uint256",), 3 * 10**25))
    node.on(USDC.token("s"), abi.GET_USER_LAST_UPDATED, result(("uint40",), 1_650_000_000))
    node.on(
        POOL,
        abi.GET_EMODE_CATEGORY_DATA,
        result(abi.GET_EMODE_CATEGORY_DATA.outputs, (1, 2, 3, "0x" + "00" * 20, "")),
    )
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        state = reader.read_market(BLOCK)
        before = len(node.requests)

        (account, again) = reader.read_users([USER.upper().replace("0X", "0x"), USER], BLOCK, state)

    assert len(node.requests) - before == 2
    assert account == again
    assert (account.address, account.emode_category) == (USER, 1)
    assert account.position(0).scaled_atoken_balance == 7
    usdc = account.position(1)
    assert usdc.scaled_variable_debt == 11
    assert usdc.stable_debt is not None
    assert (usdc.stable_debt.principal, usdc.stable_debt.last_update_timestamp) == (
        5,
        1_650_000_000,
    )


def test_gho_discount_is_read_on_3_3_for_a_reserve_without_virtual_accounting() -> None:
    node = _market_node(revision=7, probes=PROBES_3_3)
    node.on(POOL, abi.GET_EMODE_COLLATERAL_CONFIG, result(("(uint16,uint16,uint16)",), (0, 0, 0)))
    node.on(POOL, abi.GET_USER_CONFIGURATION, result(("uint256",), 0b0100))  # borrowing id 1
    node.on(POOL, abi.GET_USER_EMODE, result(("uint256",), 0))
    for token in (USDC.token("a"), USDC.token("v")):
        node.on(token, abi.SCALED_BALANCE_OF, result(("uint256",), 9))
    node.on(USDC.token("v"), GET_DISCOUNT_PERCENT, result(("uint256",), 3000))
    node.on(USDC.token("v"), GET_PREVIOUS_INDEX, result(("uint256",), 10**27))
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        (account,) = reader.read_users([USER], BLOCK, reader.read_market(BLOCK))

    discount = account.position(1).gho_discount
    assert discount is not None
    assert (discount.percent, discount.last_index) == (3000, 10**27)
    assert account.position(1).stable_debt is None  # 3.3 has no stable debt


def test_bits_of_a_reserve_id_the_market_lacks_are_skipped() -> None:
    node = _user_node(user_configuration_word(collateral=[7]))
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        (account,) = reader.read_users([USER], BLOCK, reader.read_market(BLOCK))

    assert account.positions == {}


def test_users_must_be_read_at_the_market_block() -> None:
    node = _user_node(0)
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        state = reader.read_market(BLOCK)

        with pytest.raises(ValueError, match="market state of block 100, users at 99"):
            reader.read_users([USER], BLOCK - 1, state)


def test_an_emode_id_above_255_is_garbage() -> None:
    node = _user_node(0, emode=256)
    with client_for(node) as client:
        reader = MarketReader(client, POOL)

        with pytest.raises(RpcError, match="category 256"):
            reader.read_users([USER], BLOCK, reader.read_market(BLOCK))


# Garbage answers of getUserAccountData.


def _account_data(answer: Answer | Any) -> list[tuple[int, ...]]:
    node = FakeNode(block_number=BLOCK)
    node.on(POOL, abi.GET_USER_ACCOUNT_DATA, answer)
    with client_for(node) as client:
        return list(MarketReader(client, POOL).read_account_data([USER, OTHER], BLOCK))


def test_account_data_is_six_integers_per_user() -> None:
    values = (1, 2, 3, 4, 5, 2**256 - 1)

    assert _account_data(result(("uint256",) * 6, *values)) == [values, values]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (result(("uint256",) * 5, 1, 2, 3, 4, 5), "320 hex digits, expected 384"),
        (result(("uint256",) * 7, 1, 2, 3, 4, 5, 6, 7), "448 hex digits, expected 384"),
        (raw("0x"), "empty result: no contract there"),
        (raw("0x" + "00" * 31), "62 hex digits, expected 384"),
        (raw(None), "result is not hex"),
        (raw(12), "result is not hex"),
        (raw("0x" + "zz" * 192), "cannot decode"),
        (REVERT, "execution reverted"),
        ({"error": {"code": -32000, "message": "missing trie node"}}, "missing trie node"),
        ({"error": "boom"}, "boom"),
        ({"jsonrpc": "2.0"}, "answer without result"),
    ],
)
def test_a_garbage_answer_raises_naming_the_call(answer: Any, message: str) -> None:
    with pytest.raises(RpcError, match=message) as caught:
        _account_data(answer)

    assert "getUserAccountData(address) on 0x1111" in str(caught.value)


def test_a_batch_rejected_with_one_error_object_raises_that_error() -> None:
    node = FakeNode(
        batch_reply=lambda _batch: {"jsonrpc": "2.0", "id": None, "error": {"code": -32600}}
    )
    with client_for(node) as client, pytest.raises(RpcError, match="code -32600"):
        MarketReader(client, POOL).read_account_data([USER], BLOCK)


def test_a_batch_answered_with_one_result_object_is_garbage() -> None:
    node = FakeNode(batch_reply=lambda _batch: {"jsonrpc": "2.0", "id": 1, "result": "0x"})
    with client_for(node) as client, pytest.raises(RpcError, match="batch was answered with"):
        MarketReader(client, POOL).read_account_data([USER], BLOCK)


def test_a_batch_that_leaves_a_request_unanswered_is_garbage() -> None:
    node = FakeNode(batch_reply=lambda batch: [])
    with client_for(node) as client, pytest.raises(RpcError, match="no answer for request 1"):
        MarketReader(client, POOL).read_account_data([USER], BLOCK)


# Garbage block headers.


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no such block"),
        ({"number": hex(BLOCK)}, "timestamp is not a hex quantity"),
        ({"number": hex(BLOCK), "timestamp": "0xnope"}, "timestamp is not a hex quantity"),
        ({"number": hex(BLOCK + 1), "timestamp": "0x1"}, "asked for block 100, got 101"),
    ],
)
def test_a_garbage_block_header_raises(header: Any, message: str) -> None:
    node = _market_node()
    node.header = header

    with pytest.raises(RpcError, match=message):
        _read(node)


def test_reserve_data_that_does_not_decode_is_garbage() -> None:
    node = _market_node()
    node.on(POOL, abi.GET_RESERVE_DATA, raw("0x" + "ff" * 32 * 15))

    with pytest.raises(RpcError, match=r"getReserveData\(address\) on 0x1111.*cannot decode"):
        _read(node)


@pytest.mark.parametrize("digits", ["zz" * 32, "0" * 62 + "_1", " " + "0" * 63])
def test_a_uint256_that_is_not_hex_is_garbage(digits: str) -> None:
    node = _user_node(0)
    node.on(POOL, abi.GET_USER_CONFIGURATION, raw("0x" + digits))
    with client_for(node) as client:
        reader = MarketReader(client, POOL)

        with pytest.raises(RpcError, match=r"getUserConfiguration\(address\).*not hex"):
            reader.read_users([USER], BLOCK, reader.read_market(BLOCK))


# Incremental reads.

NEW_ORACLE = "0x" + "66" * 20
SOURCE = "0x" + "5e" * 20
DAI = FakeReserve(
    "0x" + "e3" * 20,
    id=2,
    configuration=ReserveConfiguration(
        ltv=7500, liquidation_threshold=7800, liquidation_bonus=10500, decimals=18
    ).encode(),
    price=99_990_000,
    symbol=result(("string",), "DAI"),
)


def _bitmap_node(reserves: tuple[FakeReserve, ...] = (WETH, USDC)) -> FakeNode:
    """A 3.6 market with categories 1 and 200."""
    node = _market_node(reserves, revision=10, probes=PROBES_3_6)
    configs = {1: (9300, 9500, 10100), 200: (9000, 9100, 10200)}
    node.on(
        POOL,
        abi.GET_EMODE_COLLATERAL_CONFIG,
        lambda data: result(
            ("(uint16,uint16,uint16)",), configs.get(int(data[-2:], 16), (0, 0, 0))
        ),
    )
    node.on(POOL, abi.GET_EMODE_COLLATERAL_BITMAP, result(("uint128",), 0b10))
    node.on(POOL, abi.GET_EMODE_BORROWABLE_BITMAP, result(("uint128",), 0b11))
    node.on(POOL, abi.GET_EMODE_LTVZERO_BITMAP, result(("uint128",), 0b01))
    node.on(POOL, abi.GET_EMODE_LABEL, result(("string",), "cat"))
    node.on(POOL, abi.GET_LIQUIDATION_GRACE_PERIOD, result(("uint40",), 1_700_000_100))
    return node


def _legacy_node(source_price: int = 99_000_000) -> FakeNode:
    """A 3.0 market whose category 1 (named by USDC) has a price source."""
    node = _market_node()
    category = (9700, 9750, 10100, SOURCE, "Stable")
    node.on(
        POOL, abi.GET_EMODE_CATEGORY_DATA, result(abi.GET_EMODE_CATEGORY_DATA.outputs, category)
    )
    node.on(ORACLE, abi.GET_ASSET_PRICE, result(("uint256",), source_price))
    return node


def _calls_since(node: FakeNode, start: int) -> list[tuple[str, str]]:
    """``(to, selector)`` of every eth_call sent from request ``start`` on."""
    return [
        (item["params"][0]["to"], item["params"][0]["data"][:10])
        for batch in node.requests[start:]
        for item in batch
        if item["method"] == "eth_call"
    ]


def _selector(function: Function) -> str:
    return "0x" + function.selector.hex()


def _incremental(
    node: FakeNode, change: Any = None
) -> tuple[MarketState, MarketState, int, list[tuple[str, str]]]:
    """Read in full, apply ``change(node)``, read incrementally and in full again.

    Returns the incremental state, the full one, and the round trips and calls of the
    incremental read, whose every call must name the block.
    """
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        previous = reader.read_market(BLOCK)
        if change is not None:
            change(node)
        start = len(node.requests)
        incremental = reader.read_market(BLOCK, previous=previous)
        trips, calls = len(node.requests) - start, _calls_since(node, start)
        tags = {
            item["params"][1 if item["method"] == "eth_call" else 0]
            for batch in node.requests[start:]
            for item in batch
        }
        full = reader.read_market(BLOCK)
    assert tags == {hex(BLOCK)}
    return incremental, full, trips, calls


def test_a_state_names_its_provider_and_configurator() -> None:
    state = _read(_market_node())

    assert (state.provider, state.configurator, state.oracle) == (PROVIDER, CONFIGURATOR, ORACLE)


def test_an_incremental_read_on_3_6_takes_one_round_trip_without_probes_symbols_or_emode() -> None:
    incremental, full, trips, calls = _incremental(_bitmap_node())

    assert incremental == full
    assert sorted(incremental.market.emode_categories) == [1, 200]
    assert trips == 1
    selectors = {selector for _to, selector in calls}
    read_each_block = (
        abi.POOL_REVISION,
        abi.GET_RESERVES_LIST,
        abi.GET_RESERVES_COUNT,
        abi.ADDRESSES_PROVIDER,
        abi.GET_PRICE_ORACLE,
        abi.GET_POOL_CONFIGURATOR,
        abi.GET_RESERVE_DATA,
        abi.GET_LIQUIDATION_GRACE_PERIOD,
        abi.GET_ASSETS_PRICES,
    )
    assert selectors == {_selector(f) for f in read_each_block}  # no probe, symbol or eMode
    # The grace period is read per reserve, not probed with the zero address.
    grace = _selector(abi.GET_LIQUIDATION_GRACE_PERIOD)
    assert len([s for _to, s in calls if s == grace]) == 2


def test_an_incremental_read_sees_what_moves_without_configurator_events() -> None:
    moved = FakeReserve(WETH.asset, 0, WETH.configuration | 1 << 57, 2_500 * 10**8, WETH.symbol)

    def change(node: FakeNode) -> None:  # a new price, a frozen WETH, a grace period
        script_market(node, (moved, USDC), revision=10)  # the probes' answers stay
        node.on(POOL, abi.GET_LIQUIDATION_GRACE_PERIOD, result(("uint40",), 1_800_000_000))

    incremental, full, _trips, _calls = _incremental(_bitmap_node(), change)

    assert incremental == full
    assert incremental.market.prices[WETH.asset] == 2_500 * 10**8
    assert incremental.market.reserves[0].configuration.frozen
    assert incremental.market.reserves[1].liquidation_grace_period_until == 1_800_000_000


def test_an_incremental_read_on_3_0_reuses_category_data_but_reads_source_prices() -> None:
    def change(node: FakeNode) -> None:
        node.on(ORACLE, abi.GET_ASSET_PRICE, result(("uint256",), 97_000_000))

    incremental, full, trips, calls = _incremental(_legacy_node(), change)

    assert incremental == full
    assert incremental.market.prices[SOURCE] == 97_000_000
    assert trips == 1
    selectors = {selector for _to, selector in calls}
    assert _selector(abi.GET_EMODE_CATEGORY_DATA) not in selectors
    assert _selector(abi.SYMBOL) not in selectors
    assert _selector(RESERVE_INTEREST_RATE_STRATEGY) not in selectors
    assert (ORACLE, _selector(abi.GET_ASSET_PRICE)) in calls


def test_an_incremental_read_on_3_0_reads_a_category_newly_named_and_drops_one_unnamed() -> None:
    weth_in_2 = FakeReserve(
        WETH.asset,
        0,
        replace(ReserveConfiguration.decode(WETH.configuration), emode_category=2).encode(),
        WETH.price,
        WETH.symbol,
    )
    usdc_out = FakeReserve(
        USDC.asset,
        1,
        replace(ReserveConfiguration.decode(USDC.configuration), emode_category=0).encode(),
        USDC.price,
        USDC.symbol,
    )

    def change(node: FakeNode) -> None:
        script_market(node, (weth_in_2, usdc_out), revision=1)
        node.on(
            POOL,
            abi.GET_EMODE_CATEGORY_DATA,
            result(abi.GET_EMODE_CATEGORY_DATA.outputs, (9000, 9300, 10200, ZERO, "ETH")),
        )

    incremental, full, _trips, calls = _incremental(_legacy_node(), change)

    assert incremental == full
    assert list(incremental.market.emode_categories) == [2]
    assert SOURCE not in incremental.market.prices  # only named categories' sources
    data = [to for to, s in calls if s == _selector(abi.GET_EMODE_CATEGORY_DATA)]
    assert data == [POOL]  # category 2 only


def test_an_incremental_read_reads_the_symbol_of_a_new_asset_only() -> None:
    def change(node: FakeNode) -> None:
        script_market(node, (WETH, USDC, DAI), revision=1)

    incremental, full, trips, calls = _incremental(_legacy_node(), change)

    assert incremental == full
    assert incremental.tokens[2].symbol == "DAI"
    assert incremental.market.prices[DAI.asset] == DAI.price
    symbols = [to for to, s in calls if s == _selector(abi.SYMBOL)]
    assert symbols == [DAI.asset]
    assert trips == 2  # the list changed: the new reserve and the prices of all


def test_an_incremental_read_after_an_oracle_change_asks_the_new_oracle() -> None:
    def change(node: FakeNode) -> None:
        node.on(PROVIDER, abi.GET_PRICE_ORACLE, result(("address",), NEW_ORACLE))
        node.on(NEW_ORACLE, abi.GET_ASSETS_PRICES, result(("uint256[]",), [7, 8]))
        node.on(NEW_ORACLE, abi.GET_ASSET_PRICE, result(("uint256",), 9))

    incremental, full, trips, _calls = _incremental(_legacy_node(), change)

    assert incremental == full
    assert incremental.oracle == NEW_ORACLE
    assert dict(incremental.market.prices) == {WETH.asset: 7, USDC.asset: 8, SOURCE: 9}
    assert trips == 3  # the guesses, the asset prices, the source price


def test_a_changed_revision_makes_the_incremental_read_a_full_one() -> None:
    def upgrade(node: FakeNode) -> None:
        upgraded = _bitmap_node()
        node.calls.update(upgraded.calls)

    incremental, full, _trips, calls = _incremental(_market_node(), upgrade)

    assert incremental == full
    assert incremental.version is ProtocolVersion.V3_6
    selectors = {s for _to, s in calls}
    assert _selector(RESERVE_INTEREST_RATE_STRATEGY) in selectors  # probed again
    assert _selector(abi.SYMBOL) in selectors


def test_a_guessed_price_that_reverts_is_asked_again_and_the_error_names_it() -> None:
    def change(node: FakeNode) -> None:
        node.on(ORACLE, abi.GET_ASSETS_PRICES, REVERT)

    node = _legacy_node()
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        previous = reader.read_market(BLOCK)
        change(node)

        with pytest.raises(
            RpcError, match=r"getAssetsPrices\(address\[\]\) on 0x3333.*execution reverted"
        ):
            reader.read_market(BLOCK, previous=previous)


def test_garbage_in_an_incremental_read_raises_naming_the_call() -> None:
    node = _bitmap_node()
    with client_for(node) as client:
        reader = MarketReader(client, POOL)
        previous = reader.read_market(BLOCK)
        node.on(POOL, abi.GET_RESERVE_DATA, raw("0x" + "00" * 32 * 14))

        with pytest.raises(RpcError, match=r"getReserveData\(address\) on 0x1111.*896 hex"):
            reader.read_market(BLOCK, previous=previous)


def test_a_previous_state_of_another_pool_or_version_is_refused() -> None:
    node = _market_node()
    with client_for(node) as client:
        state = MarketReader(client, POOL).read_market(BLOCK)
        other = MarketReader(client, "0x" + "99" * 20)
        forced = MarketReader(client, POOL, version=ProtocolVersion.V3_0_0)

        with pytest.raises(ValueError, match="of Pool 0x1111"):
            other.read_market(BLOCK, previous=state)
        with pytest.raises(ValueError, match=r"forces 3\.0\.0"):
            forced.read_market(BLOCK, previous=state)
        with pytest.raises(ValueError, match="no addresses provider"):
            MarketReader(client, POOL).read_market(BLOCK, previous=replace(state, provider=None))


# Hand-decoded answers: as strict as eth_abi.

ADDRESS = "0x" + "ab" * 20


def _reserve_words(**overrides: str) -> str:
    """getReserveData's 15 words as hex, with some words replaced (by index)."""
    words = [f"{1:064x}"] * 15
    for index, word in overrides.items():
        words[int(index.removeprefix("w"))] = word
    return "0x" + "".join(words)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_reserve_words()[:-2], "958 hex digits, expected 960"),
        (_reserve_words() + "00", "962 hex digits, expected 960"),
        (_reserve_words(w1="f" * 64), "uint128 with non-zero padding"),  # liquidity index
        (_reserve_words(w6="01" + "0" * 62), "uint40 with non-zero padding"),  # timestamp
        (_reserve_words(w8="1" + "0" * 63), "address with non-zero padding"),  # aToken
        (_reserve_words(w3="0x" + "0" * 62), "not hex"),
        (_reserve_words(w3="_" + "0" * 63), "not hex"),
        (_reserve_words(w3=" " + "0" * 63), "not hex"),
    ],
)
def test_garbage_reserve_data_raises_naming_the_call(answer: str, message: str) -> None:
    node = _market_node()
    node.on(POOL, abi.GET_RESERVE_DATA, raw(answer))

    with pytest.raises(RpcError, match=message) as caught:
        _read(node)

    assert "getReserveData(address) on 0x1111" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("0x" + f"{32:064x}" + f"{3:064x}" + f"{1:064x}" * 2, "cannot decode"),  # short
        ("0x" + f"{32:064x}", "cannot decode"),
        ("0x" + f"{64:064x}" + f"{2:064x}", "cannot decode"),  # the tail is out of bounds
        ("0x" + f"{32:064x}" + f"{2:064x}" + "g" * 128, "not hex"),
    ],
)
def test_a_garbage_price_array_raises_naming_the_call(answer: str, message: str) -> None:
    node = _market_node()
    node.on(ORACLE, abi.GET_ASSETS_PRICES, raw(answer))

    with pytest.raises(RpcError, match=message) as caught:
        _read(node)

    assert "getAssetsPrices(address[]) on 0x3333" in str(caught.value)


def test_a_price_array_with_trailing_bytes_or_another_offset_decodes_as_eth_abi_does() -> None:
    # Not what Solidity answers, but valid ABI: eth_abi decides, as before the hand decoder.
    trailing = "0x" + f"{32:064x}" + f"{2:064x}" + f"{5:064x}" + f"{6:064x}" + "00" * 32
    offset = "0x" + f"{64:064x}" + "00" * 32 + f"{2:064x}" + f"{5:064x}" + f"{6:064x}"

    for answer in (trailing, offset):
        node = _market_node()
        node.on(ORACLE, abi.GET_ASSETS_PRICES, raw(answer))

        assert dict(_read(node).market.prices) == {WETH.asset: 5, USDC.asset: 6}


_WORD_TYPES = ("uint8", "uint16", "uint40", "uint128", "uint256", "int256", "address", "bool")


@st.composite
def _word_values(draw: st.DrawFn, kind: str) -> Any:
    if kind == "address":
        return "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    if kind == "bool":
        return draw(st.booleans())
    if kind.startswith("int"):
        return draw(st.integers(-(2**255), 2**255 - 1))
    return draw(st.integers(0, 2 ** int(kind[4:]) - 1))


def _lower(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_lower(v) for v in value)
    return value.lower() if isinstance(value, str) else value


@st.composite
def _word_answers(draw: st.DrawFn) -> tuple[Function, str]:
    """A function of word outputs (a tuple, separate words or a ``T[]``) and an answer."""
    kinds = draw(st.lists(st.sampled_from(_WORD_TYPES), min_size=1, max_size=6))
    layout = draw(st.sampled_from(["tuple", "words", "array"]))
    if layout == "array":
        function = Function("f()", (kinds[0] + "[]",))
        values: list[Any] = [[draw(_word_values(kinds[0])) for _ in kinds[1:]]]
    elif layout == "tuple":
        function = Function("f()", ("(" + ",".join(kinds) + ")",))
        values = [tuple(draw(_word_values(kind)) for kind in kinds)]
    else:
        function = Function("f()", tuple(kinds))
        values = [draw(_word_values(kind)) for kind in kinds]
    return function, "0x" + encode(list(function.outputs), values).hex()


@settings(max_examples=300, deadline=None)
@given(_word_answers(), st.data())
def test_hand_decoding_equals_eth_abi_and_refuses_what_it_refuses(
    answer: tuple[Function, str], data: st.DataObject
) -> None:
    function, text = answer
    digit = data.draw(st.integers(2, len(text) - 1))
    corrupt = text[:digit] + data.draw(st.sampled_from("0f8g")) + text[digit + 1 :]

    assert _lower(function.decode_hex(text)) == _lower(function.decode(text))
    outcomes = []
    for decoder in (function.decode, function.decode_hex):
        try:
            outcomes.append(_lower(decoder(corrupt)))
        except RpcError:
            outcomes.append("refused")
    assert outcomes[0] == outcomes[1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**256 - 1), max_size=5), st.integers(0, 255))
def test_hand_encoding_equals_eth_abi(prices: list[int], category: int) -> None:
    assets = ["0x" + f"{p % 2**160:040x}" for p in prices]

    for function, args in (
        (abi.GET_ASSETS_PRICES, (assets,)),
        (abi.GET_EMODE_COLLATERAL_CONFIG, (category,)),
        (abi.SUPPLY, (assets[0] if assets else ADDRESS, prices[0] if prices else 0, ADDRESS, 0)),
        (abi.UPDATE_ANSWER, (-category,)),
    ):
        expected = function.selector + encode(list(function.input_types), list(args))
        assert function.encode(*args) == "0x" + expected.hex()
