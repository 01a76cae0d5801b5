"""The market reader against a scripted node: decoding, version detection, garbage answers."""

from __future__ import annotations

from typing import Any

import pytest

from overlord.aave import (
    ProtocolVersion,
    ReserveConfiguration,
    VersionDetectionError,
    user_configuration_word,
)
from overlord.chain import aave_abi as abi
from overlord.chain.reader import (
    GET_DISCOUNT_PERCENT,
    GET_PREVIOUS_INDEX,
    RESERVE_INTEREST_RATE_STRATEGY,
    MarketReader,
    MarketState,
    block_tag,
    normalize_address,
)
from overlord.chain.rpc import RpcError
from tests.unit.chain.fakes import (
    ORACLE,
    POOL,
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


def test_a_uint256_that_is_not_hex_is_garbage() -> None:
    node = _user_node(0)
    node.on(POOL, abi.GET_USER_CONFIGURATION, raw("0x" + "zz" * 32))
    with client_for(node) as client:
        reader = MarketReader(client, POOL)

        with pytest.raises(RpcError, match=r"getUserConfiguration\(address\).*not hex"):
            reader.read_users([USER], BLOCK, reader.read_market(BLOCK))
