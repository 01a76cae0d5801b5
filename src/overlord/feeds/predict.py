"""What the oracle will return once a pending transaction is mined: found by simulation.

``eth_simulateV1`` runs the pending transaction on top of the latest block and then
``AaveOracle.getAssetsPrices(every reserve)`` in the same simulated block, so every price
(derived, capped, ratio-based) is the contracts' own answer: a base feed's answer is never
copied onto a derived asset. Nodes without ``eth_simulateV1`` raise
:class:`PredictionUnavailable`; the caller then waits for the mined block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient, RpcError

METHOD_NOT_FOUND = -32601


class PredictionUnavailable(Exception):
    """The node cannot simulate (no ``eth_simulateV1``), or the simulation failed."""


def predict_prices(
    client: JsonRpcClient,
    transaction: Mapping[str, object],
    oracle: str,
    assets: Sequence[str],
    *,
    timestamp: int | None = None,
) -> dict[str, int]:
    """The oracle prices of ``assets`` after ``transaction`` (a JSON-RPC tx object)."""
    call = {
        key: transaction[key]
        for key in ("from", "to", "input", "gas", "value")
        if key in transaction
    }
    read = {"to": oracle, "input": aave_abi.GET_ASSETS_PRICES.encode(list(assets))}
    block: dict[str, object] = {"calls": [call, read]}
    if timestamp is not None:
        block["blockOverrides"] = {"time": hex(timestamp)}
    try:
        result = client.call(
            "eth_simulateV1", [{"blockStateCalls": [block], "validation": False}, "latest"]
        )
    except RpcError as exc:
        raise PredictionUnavailable(str(exc)) from exc
    try:
        calls = result[0]["calls"]
        if int(calls[0]["status"], 16) != 1:
            raise PredictionUnavailable("the pending transaction reverts in simulation")
        (prices,) = aave_abi.GET_ASSETS_PRICES.decode(calls[1]["returnData"])
    except (KeyError, IndexError, TypeError, ValueError, RpcError) as exc:
        raise PredictionUnavailable(f"malformed eth_simulateV1 answer: {exc}") from exc
    return {asset.lower(): int(price) for asset, price in zip(assets, prices, strict=True)}
