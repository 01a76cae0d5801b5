"""PriceService layers against the devnet's real feeds and AaveOracle, on both protocol versions.

The feeds are our ``MockPriceFeed`` (owner: the admin), read through the same
``latestRoundData()`` / ``decimals()`` surface a Chainlink aggregator offers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_abi.abi import encode

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.artifacts import solc_artifact
from overlord.devnet.compiler import compile_own_contracts
from overlord.devnet.launch import Devnet
from overlord.devnet.transactions import Tx, TxSender
from overlord.feeds.prices import (
    AaveOracleLayer,
    ChainlinkLayer,
    PriceService,
    PriceUnavailable,
    StubLayer,
)

D = Decimal
USD_UNIT = 10**8


def set_feed(devnet: Devnet, rpc: JsonRpcClient, feed: str, answer: int) -> None:
    """``updateAnswer(answer)`` on a devnet feed, from its owner."""
    address = devnet.manifest.feed(feed).address
    admin = devnet.manifest.accounts["admin"]
    TxSender(rpc).send([Tx(admin, address, aave_abi.UPDATE_ANSWER.encode(answer), f"set {feed}")])


def deploy_feed(devnet: Devnet, rpc: JsonRpcClient, decimals: int, answer: int) -> str:
    """A new ``MockPriceFeed`` with ``decimals``; returns its address."""
    artifact = solc_artifact(compile_own_contracts(), "MockPriceFeed")
    arguments = encode(["uint8", "int256", "string"], [decimals, answer, "TEST / USD"]).hex()
    transaction = {
        "from": devnet.manifest.accounts["admin"],
        "data": artifact.linked({}) + arguments,
        "gas": hex(3_000_000),
        "gasPrice": "0x0",
    }
    tx_hash = rpc.call("eth_sendTransaction", [transaction])
    receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
    if receipt is None:  # the devnet may not mine on its own
        rpc.call("evm_mine")
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
    assert int(receipt["status"], 16) == 1
    return str(receipt["contractAddress"])


def chainlink(devnet: Devnet, rpc: JsonRpcClient, max_age_s: int = 3600) -> ChainlinkLayer:
    feeds = {
        symbol: devnet.manifest.feed(f"{symbol} / USD").address
        for symbol in ("ETH", "BTC", "USDC", "DAI")
    }
    return ChainlinkLayer(rpc, feeds, max_age_s)


def oracle(devnet: Devnet, rpc: JsonRpcClient) -> AaveOracleLayer:
    address = devnet.manifest.addresses["oracle"]
    (unit,) = aave_abi.BASE_CURRENCY_UNIT.decode_hex(
        rpc.call(
            "eth_call", [{"to": address, "data": aave_abi.BASE_CURRENCY_UNIT.encode()}, "latest"]
        )
    )
    assert unit == USD_UNIT  # the devnet's oracle quotes USD with 8 decimals
    assets = {"ETH": devnet.manifest.reserve("WETH").asset}
    return AaveOracleLayer(rpc, address, assets, unit)


def test_chainlink_reads_the_devnets_feeds(devnet: Devnet, rpc: JsonRpcClient) -> None:
    layer = chainlink(devnet, rpc)
    head = rpc.call("eth_getBlockByNumber", ["latest", False])

    prices = {symbol: layer.price(symbol) for symbol in ("ETH", "BTC", "USDC", "DAI")}

    assert {s: p.value for s, p in prices.items()} == {
        "ETH": D("3000"),
        "BTC": D("60000"),
        "USDC": D("1"),
        "DAI": D("0.9999"),
    }
    eth = prices["ETH"]
    assert eth.layer == "chainlink"
    assert eth.updated_at is not None
    assert 0 < eth.updated_at <= int(head["timestamp"], 16)


def test_chainlink_reads_decimals_from_the_contract(devnet: Devnet, rpc: JsonRpcClient) -> None:
    feed = deploy_feed(devnet, rpc, decimals=18, answer=1_234_567_890_123_456_789_012)

    assert ChainlinkLayer(rpc, {"TEST": feed}).price("test").value == D("1234.567890123456789012")


def test_chainlink_follows_a_feed_update(devnet: Devnet, rpc: JsonRpcClient) -> None:
    set_feed(devnet, rpc, "ETH / USD", 2_512_34567891)

    assert chainlink(devnet, rpc).price("ETH").value == D("2512.34567891")


@pytest.mark.parametrize("answer", [0, -1_000 * USD_UNIT])
def test_chainlink_refuses_a_non_positive_answer(
    devnet: Devnet, rpc: JsonRpcClient, answer: int
) -> None:
    set_feed(devnet, rpc, "ETH / USD", answer)

    with pytest.raises(PriceUnavailable, match=f"non-positive answer {answer}"):
        chainlink(devnet, rpc).price("ETH")


def test_chainlink_refuses_an_answer_older_than_max_age(devnet: Devnet, rpc: JsonRpcClient) -> None:
    set_feed(devnet, rpc, "ETH / USD", 3_000 * USD_UNIT)
    layer = chainlink(devnet, rpc, max_age_s=600)
    assert layer.price("ETH").value == 3000  # fresh: accepted

    rpc.call("evm_increaseTime", [601])
    rpc.call("evm_mine")

    with pytest.raises(PriceUnavailable, match=r"s old, more than max_age_s 600"):
        layer.price("ETH")


def test_the_aave_oracle_agrees_with_the_feed_behind_it(devnet: Devnet, rpc: JsonRpcClient) -> None:
    feed, aave = chainlink(devnet, rpc), oracle(devnet, rpc)
    assert aave.price("ETH").value == feed.price("ETH").value == 3000

    set_feed(devnet, rpc, "ETH / USD", 1_987_65432101)

    assert aave.price("ETH").value == feed.price("ETH").value == D("1987.65432101")
    assert aave.price("ETH").layer == "aave-oracle"


def test_the_aave_oracle_layer_refuses_an_asset_it_cannot_price(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    address = devnet.manifest.addresses["oracle"]
    layer = AaveOracleLayer(rpc, address, {"NOPE": "0x" + "ee" * 20}, USD_UNIT)

    with pytest.raises(PriceUnavailable, match="aave-oracle has no price for NOPE"):
        layer.price("NOPE")


def test_the_service_falls_back_to_the_stub_only_when_the_feed_is_refused(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    service = PriceService([chainlink(devnet, rpc), StubLayer({"ETH": D("1234")})], ttl_s=0)

    trusted = service.price("eth")
    set_feed(devnet, rpc, "ETH / USD", 0)
    fallback = service.price("eth")

    assert (trusted.layer, trusted.value) == ("chainlink", D("3000"))
    assert (fallback.layer, fallback.value) == ("stub", D("1234"))
    assert service.fallbacks == {"stub": 1}
    assert service.fallback_total == 1
