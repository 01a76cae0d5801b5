"""PriceService and its layers: refusals with reasons, fallbacks counted, never a made-up price."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from eth_abi.abi import encode

from overlord.chain import aave_abi
from overlord.chain.abi import Function
from overlord.chain.rpc import RpcError, RpcTransportError
from overlord.feeds.prices import (
    LATEST_ROUND_DATA,
    AaveOracleLayer,
    ChainlinkLayer,
    Price,
    PriceService,
    PriceUnavailable,
    StubLayer,
    UnknownPriceError,
    parse_chainlink_feeds,
)

D = Decimal
NOW = 1_700_000_000
BLOCK = 100
FEED = "0x" + "f1" * 20
ORACLE = "0x" + "0c" * 20
WETH = "0x" + "a1" * 20
ROUND_TYPES = ("uint80", "int256", "uint256", "uint256", "uint80")


def selector(function: Function) -> str:
    return "0x" + function.selector.hex()


def encoded(types: tuple[str, ...], *values: Any) -> str:
    return "0x" + encode(list(types), list(values)).hex()


def round_data(
    round_id: int = 5,
    answer: int = 3_000 * 10**8,
    updated_at: int = NOW - 60,
    answered_in: int | None = None,
) -> str:
    answered = round_id if answered_in is None else answered_in
    return encoded(ROUND_TYPES, round_id, answer, updated_at, updated_at, answered)


@dataclass
class FakeChain:
    """Answers ``eth_call`` by ``(to, selector)`` and the latest header; records requests.

    An answer that is an exception is raised, as the client raises a node's error.
    """

    header: object = field(default_factory=lambda: {"number": hex(BLOCK), "timestamp": hex(NOW)})
    answers: dict[tuple[str, str], object] = field(default_factory=dict)
    requests: list[tuple[str, list[Any]]] = field(default_factory=list)

    def on(self, to: str, function: Function, answer: object) -> None:
        self.answers[to, selector(function)] = answer

    def call(self, method: str, params: Any = ()) -> Any:
        self.requests.append((method, list(params)))
        if method == "eth_getBlockByNumber":
            answer = self.header
        else:
            assert method == "eth_call"
            answer = self.answers[params[0]["to"], params[0]["data"][:10]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def count(self, function: Function) -> int:
        return sum(
            1
            for method, params in self.requests
            if method == "eth_call" and params[0]["data"][:10] == selector(function)
        )


def feed_chain(decimals: int = 8, latest: object = None) -> FakeChain:
    chain = FakeChain()
    chain.on(FEED, aave_abi.DECIMALS, encoded(("uint8",), decimals))
    chain.on(FEED, LATEST_ROUND_DATA, round_data() if latest is None else latest)
    return chain


def refusal(layer: ChainlinkLayer | AaveOracleLayer, symbol: str = "ETH") -> str:
    with pytest.raises(PriceUnavailable) as caught:
        layer.price(symbol)
    assert caught.value.symbol == symbol.upper()
    assert caught.value.layer == layer.name
    return caught.value.reason


# ChainlinkLayer.


def test_chainlink_prices_the_answer_with_the_feeds_own_decimals() -> None:
    chain = feed_chain()

    price = ChainlinkLayer(chain, {"eth": FEED}).price("Eth")

    assert price == Price("ETH", D("3000"), "chainlink", NOW - 60)


def test_chainlink_reads_decimals_rather_than_assuming_eight() -> None:
    chain = feed_chain(decimals=18, latest=round_data(answer=1_500 * 10**18))

    assert ChainlinkLayer(chain, {"ETH": FEED}).price("ETH").value == D("1500")


def test_chainlink_divides_exactly_even_past_the_decimal_contexts_precision() -> None:
    chain = feed_chain(latest=round_data(answer=10**40 + 1))

    value = ChainlinkLayer(chain, {"ETH": FEED}).price("ETH").value

    assert value == D("100000000000000000000000000000000.00000001")


def test_chainlink_reads_decimals_once_per_feed() -> None:
    chain = feed_chain()
    layer = ChainlinkLayer(chain, {"ETH": FEED})

    layer.price("ETH")
    layer.price("ETH")

    assert chain.count(aave_abi.DECIMALS) == 1
    assert chain.count(LATEST_ROUND_DATA) == 2


def test_chainlink_reads_the_round_at_the_block_whose_time_it_measures_against() -> None:
    chain = feed_chain()

    ChainlinkLayer(chain, {"ETH": FEED}).price("ETH")

    assert chain.requests[0] == ("eth_getBlockByNumber", ["latest", False])
    tags = {params[1] for method, params in chain.requests if method == "eth_call"}
    assert tags == {hex(BLOCK)}


def test_chainlink_accepts_an_answer_exactly_max_age_old() -> None:
    chain = feed_chain(latest=round_data(updated_at=NOW - 600))

    assert ChainlinkLayer(chain, {"ETH": FEED}, max_age_s=600).price("ETH").value == 3000


@pytest.mark.parametrize(
    ("latest", "reason"),
    [
        (round_data(answer=0), "non-positive answer 0"),
        (round_data(answer=-1), "non-positive answer -1"),
        (round_data(updated_at=0), "incomplete round 5"),
        (round_data(round_id=7, answered_in=6), "stale round: round 7 was answered in round 6"),
        (round_data(updated_at=NOW + 1), f"updatedAt {NOW + 1} is after the block's timestamp"),
        (round_data(updated_at=NOW - 601), "601 s old, more than max_age_s 600"),
    ],
)
def test_chainlink_refuses_an_untrustworthy_round(latest: str, reason: str) -> None:
    layer = ChainlinkLayer(feed_chain(latest=latest), {"ETH": FEED}, max_age_s=600)

    assert reason in refusal(layer)


@pytest.mark.parametrize(
    ("latest", "reason"),
    [
        ("0x1234", "4 hex digits, expected 320"),
        ("0x" + "zz" * 160, "not hex"),
        ("0x" + "ff" * 160, "uint80 with non-zero padding"),
        ("0x", "empty result"),
        (None, "is not a hex string"),
        (RpcError("eth_call", "execution reverted", 3), "execution reverted"),
    ],
)
def test_chainlink_refuses_a_garbage_or_failed_answer(latest: object, reason: str) -> None:
    chain = feed_chain()
    chain.on(FEED, LATEST_ROUND_DATA, latest)

    assert reason in refusal(ChainlinkLayer(chain, {"ETH": FEED}))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "not a block header"),
        ({"number": "0x1", "timestamp": 5}, "block timestamp 5 is not hex"),
        ({"number": "nope", "timestamp": "0x1"}, "block number 'nope' is not hex"),
    ],
)
def test_chainlink_refuses_when_the_block_header_is_garbage(header: object, reason: str) -> None:
    chain = feed_chain()
    chain.header = header

    assert reason in refusal(ChainlinkLayer(chain, {"ETH": FEED}))


def test_chainlink_refuses_garbage_decimals_and_retries_them_next_time() -> None:
    chain = feed_chain()
    chain.on(FEED, aave_abi.DECIMALS, encoded(("uint256",), 256))
    layer = ChainlinkLayer(chain, {"ETH": FEED})

    assert "uint8 with non-zero padding" in refusal(layer)
    chain.on(FEED, aave_abi.DECIMALS, encoded(("uint8",), 8))
    assert layer.price("ETH").value == 3000


def test_chainlink_names_an_unreachable_node_without_its_url() -> None:
    chain = feed_chain()
    chain.header = RpcTransportError("eth_getBlockByNumber", "ConnectError talking to http://x")

    reason = refusal(ChainlinkLayer(chain, {"ETH": FEED}))

    assert reason == "the node could not be reached or did not answer"


def test_chainlink_refuses_a_symbol_without_a_feed() -> None:
    assert refusal(ChainlinkLayer(feed_chain(), {"ETH": FEED}), "btc") == (
        "no feed configured for this symbol"
    )


@pytest.mark.parametrize(
    ("feeds", "max_age_s", "message"),
    [
        ({"ETH": "0x1234"}, 60, "feed for ETH '0x1234' is not a 20-byte hex address"),
        ({"ETH": FEED, "eth": FEED}, 60, "feed for ETH given twice"),
        ({"ETH": FEED}, 0, "max_age_s must be a positive number"),
        ({"ETH": FEED}, True, "max_age_s must be a positive number"),
    ],
)
def test_chainlink_refuses_a_bad_configuration(
    feeds: dict[str, str], max_age_s: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ChainlinkLayer(FakeChain(), feeds, max_age_s)


# AaveOracleLayer.


def oracle_chain(answer: object) -> FakeChain:
    chain = FakeChain()
    chain.on(ORACLE, aave_abi.GET_ASSET_PRICE, answer)
    return chain


def test_the_oracle_price_is_divided_by_the_base_currency_unit() -> None:
    chain = oracle_chain(encoded(("uint256",), 2_999_12345678))

    price = AaveOracleLayer(chain, ORACLE, {"weth": WETH}, 10**8).price("WETH")

    assert price == Price("WETH", D("2999.12345678"), "aave-oracle", None)
    (_method, (call, _tag)) = chain.requests[0]
    assert call["data"] == aave_abi.GET_ASSET_PRICE.encode(WETH)


def test_a_unit_base_currency_leaves_the_price_as_is() -> None:
    chain = oracle_chain(encoded(("uint256",), 42))

    assert AaveOracleLayer(chain, ORACLE, {"WETH": WETH}, 1).price("WETH").value == 42


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (encoded(("uint256",), 0), f"the oracle prices asset {WETH} at 0"),
        ("0x12", "2 hex digits, expected 64"),
        (RpcError("eth_call", "execution reverted", 3), "execution reverted"),
    ],
)
def test_the_oracle_layer_refuses_a_zero_or_failed_price(answer: object, reason: str) -> None:
    layer = AaveOracleLayer(oracle_chain(answer), ORACLE, {"WETH": WETH}, 10**8)

    assert reason in refusal(layer, "weth")


def test_the_oracle_layer_refuses_a_symbol_without_an_asset() -> None:
    layer = AaveOracleLayer(FakeChain(), ORACLE, {"WETH": WETH}, 10**8)

    assert refusal(layer, "DAI") == "no asset configured for this symbol"


@pytest.mark.parametrize("unit", [0, -100, 3, 10**8 + 1, True])
def test_the_base_currency_unit_must_be_a_power_of_ten(unit: int) -> None:
    with pytest.raises(ValueError, match="base_currency_unit must be a positive power of ten"):
        AaveOracleLayer(FakeChain(), ORACLE, {"WETH": WETH}, unit)


def test_the_oracle_address_is_validated() -> None:
    with pytest.raises(ValueError, match="oracle 'oracle' is not a 20-byte hex address"):
        AaveOracleLayer(FakeChain(), "oracle", {"WETH": WETH}, 10**8)


# StubLayer.


def test_a_stub_serves_its_fixed_prices_case_insensitively(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="overlord.prices"):
        stub = StubLayer({"usdc": D("1")})

    assert stub.price("USDC") == Price("USDC", D("1"), "stub", None)
    assert [r.message for r in caplog.records] == ["stub prices enabled"]
    assert vars(caplog.records[0])["symbols"] == ["USDC"]


def test_a_stub_refuses_a_symbol_it_does_not_have() -> None:
    with pytest.raises(PriceUnavailable, match="stub has no price for UNKNOWN"):
        StubLayer({"USDC": D("1")}).price("unknown")


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"USDC": D("0")}, "stub price for USDC must be a positive Decimal"),
        ({"USDC": D("-1")}, "stub price for USDC must be a positive Decimal"),
        ({"USDC": D("NaN")}, "stub price for USDC must be a positive Decimal"),
        ({"USDC": 1.0}, "stub price for USDC must be a positive Decimal"),
        ({"USDC": D("1"), "usdc": D("1")}, "stub price for USDC given twice"),
    ],
)
def test_a_stub_refuses_bad_prices(prices: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StubLayer(prices)


# PriceService.


@dataclass
class ScriptedLayer:
    """A layer with the prices in ``prices``; refuses everything else."""

    name: str
    prices: dict[str, Decimal] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def price(self, symbol: str) -> Price:
        self.asked.append(symbol)
        if symbol not in self.prices:
            raise PriceUnavailable(symbol, self.name, f"{self.name} is down")
        return Price(symbol, self.prices[symbol], self.name, None)


@dataclass
class FakeClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_layer_that_answers_wins_and_is_not_a_fallback() -> None:
    first, second = ScriptedLayer("a", {"ETH": D("3000")}), ScriptedLayer("b", {"ETH": D("1")})
    service = PriceService([first, second])

    assert service.price("ETH").value == 3000
    assert second.asked == []
    assert service.fallback_total == 0


def test_a_later_layers_answer_is_counted_and_logged_as_a_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layers = [ScriptedLayer("a"), ScriptedLayer("b"), ScriptedLayer("c", {"ETH": D("2")})]
    service = PriceService(layers)

    with caplog.at_level(logging.WARNING, logger="overlord.prices"):
        price = service.price("ETH")

    assert (price.layer, price.value) == ("c", D("2"))
    assert service.fallbacks == {"c": 1}
    assert service.fallback_total == 1
    (record,) = caplog.records
    assert record.message == "price from a fallback layer"
    extra = vars(record)
    assert (extra["symbol"], extra["layer"]) == ("ETH", "c")
    assert extra["reasons"] == {"a": "a is down", "b": "b is down"}


def test_fallbacks_are_counted_per_answering_layer() -> None:
    layers = [ScriptedLayer("a"), ScriptedLayer("b", {"ETH": D("2")}), ScriptedLayer("c")]
    layers[2].prices["BTC"] = D("60000")
    service = PriceService(layers, ttl_s=0)

    for symbol in ("ETH", "ETH", "BTC"):
        service.price(symbol)

    assert service.fallbacks == {"b": 2, "c": 1}
    assert service.fallback_total == 3


def test_no_answer_is_an_error_with_every_layers_reason_and_never_a_made_up_price() -> None:
    service = PriceService([ScriptedLayer("a"), ScriptedLayer("b")])

    with pytest.raises(UnknownPriceError) as caught:
        service.price("pepe")

    assert isinstance(caught.value, LookupError)
    assert caught.value.symbol == "PEPE"
    assert caught.value.reasons == {"a": "a is down", "b": "b is down"}
    assert str(caught.value) == "no price for PEPE (a: a is down; b: b is down)"
    assert service.fallback_total == 0


def test_a_layers_bug_is_not_mistaken_for_a_missing_price() -> None:
    class Broken:
        name = "broken"

        def price(self, symbol: str) -> Price:
            raise ZeroDivisionError

    service = PriceService([Broken(), ScriptedLayer("b", {"ETH": D("1")})])

    with pytest.raises(ZeroDivisionError):
        service.price("ETH")


def test_a_price_is_served_from_the_cache_until_the_ttl_passes() -> None:
    clock = FakeClock()
    layer = ScriptedLayer("a", {"ETH": D("3000")})
    service = PriceService([layer], ttl_s=60, clock=clock)

    service.price("ETH")
    layer.prices["ETH"] = D("2000")
    clock.now += 59.9
    cached = service.price("ETH")
    clock.now += 0.1
    fresh = service.price("ETH")

    assert (cached.value, fresh.value) == (D("3000"), D("2000"))
    assert layer.asked == ["ETH", "ETH"]


def test_a_fallback_is_counted_when_fetched_not_when_served_from_the_cache() -> None:
    service = PriceService([ScriptedLayer("a"), ScriptedLayer("b", {"ETH": D("1")})])

    service.price("ETH")
    service.price("ETH")

    assert service.fallback_total == 1


def test_failures_are_not_cached() -> None:
    layer = ScriptedLayer("a")
    service = PriceService([layer], clock=FakeClock())

    with pytest.raises(UnknownPriceError):
        service.price("ETH")
    layer.prices["ETH"] = D("3000")

    assert service.price("ETH").value == 3000


def test_an_expired_price_is_not_served_when_the_layers_fail() -> None:
    clock = FakeClock()
    layer = ScriptedLayer("a", {"ETH": D("3000")})
    service = PriceService([layer], ttl_s=10, clock=clock)
    service.price("ETH")
    del layer.prices["ETH"]
    clock.now += 10

    with pytest.raises(UnknownPriceError):
        service.price("ETH")
    with pytest.raises(UnknownPriceError):
        service.price("ETH")


def test_a_zero_ttl_disables_the_cache() -> None:
    layer = ScriptedLayer("a", {"ETH": D("3000")})
    service = PriceService([layer], ttl_s=0, clock=FakeClock())

    service.price("ETH")
    service.price("ETH")

    assert layer.asked == ["ETH", "ETH"]


def test_symbols_are_case_insensitive_and_share_one_cache_entry() -> None:
    layer = ScriptedLayer("a", {"WETH": D("3000")})
    service = PriceService([layer], clock=FakeClock())

    assert service.price("weth") == service.price(" WEth ")
    assert layer.asked == ["WETH"]


def test_prices_maps_each_upper_case_symbol_to_its_price() -> None:
    service = PriceService([ScriptedLayer("a", {"ETH": D("3000"), "BTC": D("60000")})])

    prices = service.prices(["eth", "BTC"])

    assert {symbol: p.value for symbol, p in prices.items()} == {"ETH": 3000, "BTC": 60000}


def test_prices_raises_for_a_symbol_no_layer_has() -> None:
    service = PriceService([ScriptedLayer("a", {"ETH": D("3000")})])

    with pytest.raises(UnknownPriceError, match="no price for DOGE"):
        service.prices(["ETH", "doge"])


@pytest.mark.parametrize(
    ("layers", "ttl_s", "message"),
    [
        ([], 60.0, "at least one layer"),
        ([ScriptedLayer("a"), ScriptedLayer("a")], 60.0, "names must differ: a repeated"),
        ([ScriptedLayer("a")], -1.0, "ttl_s must be a non-negative number"),
        ([ScriptedLayer("a")], float("nan"), "ttl_s must be a non-negative number"),
    ],
)
def test_a_bad_service_configuration_is_refused(
    layers: list[ScriptedLayer], ttl_s: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PriceService(layers, ttl_s)


# parse_chainlink_feeds.


def test_chainlink_feeds_parse_into_upper_case_symbols_and_lower_case_addresses() -> None:
    eth, btc = "0x" + "AB" * 20, "0x" + "cd" * 20

    assert parse_chainlink_feeds(f" weth : {eth} ,WBTC:{btc}") == {
        "WETH": eth.lower(),
        "WBTC": btc,
    }


@pytest.mark.parametrize("text", ["", "  "])
def test_blank_chainlink_feeds_mean_no_feeds(text: str) -> None:
    assert parse_chainlink_feeds(text) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"WETH{FEED}", f"entry 1 'WETH{FEED}': expected SYMBOL:0xADDRESS"),
        (f"WETH:{FEED},", "entry 2 '': expected SYMBOL:0xADDRESS"),
        (f" :{FEED}", "entry 1 ':0x.*': the symbol is empty"),
        ("WETH:0x1234", "entry 1 'WETH:0x1234': '0x1234' is not a 20-byte hex address"),
        ("WETH:0x" + "g1" * 20, "is not a 20-byte hex address"),
        ("WETH:" + "f1" * 21, "is not a 20-byte hex address"),
        (f"WETH:{FEED},weth:{FEED}", "entry 2 'weth:0x.*': WETH is already given"),
    ],
)
def test_a_bad_chainlink_feeds_entry_is_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_chainlink_feeds(text)
