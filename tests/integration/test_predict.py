"""Predicted oracle prices on the real contracts: both methods agree with the mined block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from overlord.chain import aave_abi
from overlord.chain.abi import Function
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.devnet.launch import Devnet
from overlord.feeds.predict import Method, PredictionUnavailable, PricePredictor, predict_prices

WAD = 10**18
RATIO = Function("ratio()", ("uint256",))
BLOCK_INTERVAL = 12


def _read(rpc: JsonRpcClient, function: Function, to: str, *args: object) -> Any:
    (value,) = function.decode(rpc.call("eth_call", [{"to": to, "input": function.encode(*args)}]))
    return value


def _oracle_prices(devnet: Devnet, rpc: JsonRpcClient) -> dict[str, int]:
    assets = [r.asset for r in devnet.manifest.reserves]
    prices = _read(rpc, aave_abi.GET_ASSETS_PRICES, devnet.manifest.addresses["oracle"], assets)
    return {asset.lower(): int(price) for asset, price in zip(assets, prices, strict=True)}


def _eth_crash(devnet: Devnet, rpc: JsonRpcClient) -> dict[str, object]:
    feed = devnet.manifest.feed("ETH / USD").address
    answer = _read(rpc, aave_abi.LATEST_ANSWER, feed)
    return _transaction(devnet, feed, aave_abi.UPDATE_ANSWER.encode(answer * 6 // 10))


def _ratio_drop(devnet: Devnet, rpc: JsonRpcClient) -> dict[str, object]:
    adapter = devnet.manifest.feed("wstETH / USD").address
    ratio = _read(rpc, RATIO, adapter)
    return _transaction(devnet, adapter, aave_abi.SET_RATIO.encode(ratio * 95 // 100))


def _transaction(devnet: Devnet, to: str, data: str) -> dict[str, object]:
    admin = devnet.manifest.accounts["admin"]
    return {"from": admin, "to": to, "input": data, "gas": hex(300_000), "gasPrice": "0x0"}


def _next_timestamp(rpc: JsonRpcClient) -> int:
    head = rpc.call("eth_getBlockByNumber", ["latest", False])
    return int(head["timestamp"], 16) + BLOCK_INTERVAL


def _mine(rpc: JsonRpcClient, transaction: dict[str, object], timestamp: int) -> None:
    # Mined explicitly: with automine on, anvil may answer eth_sendTransaction before the
    # block exists, so an immediate receipt lookup would sometimes find nothing.
    sent = {("data" if key == "input" else key): value for key, value in transaction.items()}
    rpc.call("evm_setAutomine", [False])
    try:
        tx_hash = rpc.call("eth_sendTransaction", [sent])
        rpc.call("evm_mine", [timestamp])
    finally:
        rpc.call("evm_setAutomine", [True])
    receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
    assert int(receipt["status"], 16) == 1
    block = rpc.call("eth_getBlockByHash", [receipt["blockHash"], False])
    assert int(block["timestamp"], 16) == timestamp


def _predictor(devnet: Devnet, client: Any, method: Method) -> PricePredictor:
    return PricePredictor(client, devnet.manifest.addresses["oracle"], methods=[method])


def _symbols(devnet: Devnet, assets: set[str]) -> set[str]:
    return {r.symbol for r in devnet.manifest.reserves if r.asset.lower() in assets}


class WithoutSimulation:
    """The devnet as a node without ``eth_simulateV1`` (anvil has it)."""

    def __init__(self, rpc: JsonRpcClient) -> None:
        self.rpc = rpc
        self.methods: list[str] = []

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self.methods.append(method)
        if method == "eth_simulateV1":
            raise RpcError(method, "the method eth_simulateV1 does not exist/is not available")
        return self.rpc.call(method, params)


@pytest.mark.parametrize(
    ("update", "moved"),
    [(_eth_crash, {"WETH", "wstETH"}), (_ratio_drop, {"wstETH"})],
    ids=["eth-crash", "wsteth-ratio"],
)
def test_both_methods_predict_the_prices_the_mined_block_has(
    devnet: Devnet, rpc: JsonRpcClient, update: Any, moved: set[str]
) -> None:
    assets = [r.asset for r in devnet.manifest.reserves]
    transaction = update(devnet, rpc)
    timestamp = _next_timestamp(rpc)
    before = _oracle_prices(devnet, rpc)

    simulated = _predictor(devnet, rpc, Method.SIMULATE).predict(
        transaction, assets, timestamp=timestamp
    )
    traced = _predictor(devnet, rpc, Method.TRACE_AND_OVERRIDE).predict(
        transaction, assets, timestamp=timestamp
    )
    _mine(rpc, transaction, timestamp)
    mined = _oracle_prices(devnet, rpc)

    assert simulated.method == "eth_simulateV1"
    assert traced.method == "debug_traceCall+eth_call override"
    assert traced.prices == simulated.prices == mined
    changed = {asset for asset, price in mined.items() if price != before[asset]}
    assert _symbols(devnet, changed) == moved


def test_a_base_feed_update_moves_the_derived_asset_by_its_ratio(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    weth, wsteth = (manifest.reserve(s).asset.lower() for s in ("WETH", "wstETH"))
    ratio = _read(rpc, RATIO, manifest.feed("wstETH / USD").address)
    transaction = _eth_crash(devnet, rpc)
    before = _oracle_prices(devnet, rpc)

    for method in Method:
        prices = (
            _predictor(devnet, rpc, method)
            .predict(transaction, [r.asset for r in manifest.reserves])
            .prices
        )

        assert prices[weth] == before[weth] * 6 // 10
        assert prices[wsteth] == prices[weth] * ratio // WAD  # computed, not copied
        assert prices[wsteth] not in (before[wsteth], prices[weth])


def test_without_simulation_the_fallback_is_used_and_remembered(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    node = WithoutSimulation(rpc)
    predictor = PricePredictor(node, devnet.manifest.addresses["oracle"])
    assets = [r.asset for r in devnet.manifest.reserves]
    crash, ratio = _eth_crash(devnet, rpc), _ratio_drop(devnet, rpc)

    first = predictor.predict(crash, assets)
    second = predictor.predict(ratio, assets)

    assert first.method == second.method == Method.TRACE_AND_OVERRIDE
    assert node.methods.count("eth_simulateV1") == 1
    assert first.prices == predict_prices(rpc, crash, devnet.manifest.addresses["oracle"], assets)


def test_a_reverting_update_is_no_prediction_on_either_path(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    transaction = _eth_crash(devnet, rpc) | {"from": devnet.manifest.accounts["liquidator"]}
    assets = [r.asset for r in devnet.manifest.reserves]

    for method in Method:
        with pytest.raises(PredictionUnavailable, match="reverts: not owner"):
            _predictor(devnet, rpc, method).predict(transaction, assets)


def test_a_cleared_answer_slot_is_predicted_as_cleared(devnet: Devnet, rpc: JsonRpcClient) -> None:
    # updateAnswer(0) clears the feed's answer slot, which diffMode reports by omission
    # from ``post``; AaveOracle then asks its (absent) fallback oracle and reverts.
    feed = devnet.manifest.feed("ETH / USD").address
    transaction = _transaction(devnet, feed, aave_abi.UPDATE_ANSWER.encode(0))
    weth = [devnet.manifest.reserve("WETH").asset]
    timestamp = _next_timestamp(rpc)

    for method in Method:
        with pytest.raises(PredictionUnavailable, match="getAssetsPrices reverts"):
            _predictor(devnet, rpc, method).predict(transaction, weth, timestamp=timestamp)
    _mine(rpc, transaction, timestamp)
    with pytest.raises(RpcError, match="execution reverted"):
        _read(rpc, aave_abi.GET_ASSETS_PRICES, devnet.manifest.addresses["oracle"], weth)
