"""A fake JSON-RPC node for the reader's unit tests: real client, scripted answers.

:class:`FakeNode` answers ``eth_call`` by ``(to, selector)`` and ``eth_getBlockByNumber``
from a fixed header; :func:`client_for` wires it under a real
:class:`~overlord.chain.rpc.JsonRpcClient` through an ``httpx.MockTransport``, so the
client's batching and error mapping are the ones under test too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_abi.abi import encode

from overlord.chain import aave_abi as abi
from overlord.chain.abi import Function
from overlord.chain.rpc import JsonRpcClient

Answer = dict[str, Any]
Handler = Callable[[str], Answer]  # calldata -> {"result": ...} or {"error": ...}

DEFAULT_HEADER = object()
REVERT: Answer = {"error": {"code": 3, "message": "execution reverted", "data": "0x"}}


def result(types: tuple[str, ...], *values: Any) -> Answer:
    """A successful answer with ``values`` ABI-encoded as ``types``."""
    return {"result": "0x" + encode(list(types), list(values)).hex()}


def raw(text: Any) -> Answer:
    """A successful answer with exactly ``text`` as result."""
    return {"result": text}


@dataclass
class FakeNode:
    """Scripted answers; unknown calls revert, as a contract without the function does."""

    block_number: int = 100
    timestamp: int = 1_700_000_000
    calls: dict[tuple[str, str], Handler] = field(default_factory=dict)
    header: Any = field(default_factory=lambda: DEFAULT_HEADER)  # None answers null
    batch_reply: Callable[[list[Any]], Any] | None = None
    requests: list[Any] = field(default_factory=list)

    def on(self, to: str, function: Function, handler: Handler | Answer) -> None:
        """Answer ``function`` on ``to`` (any arguments) with ``handler``."""
        selector = "0x" + function.selector.hex()
        if callable(handler):
            self.calls[to.lower(), selector] = handler
        else:
            fixed: Answer = handler
            self.calls[to.lower(), selector] = lambda _data: fixed

    def answer(self, method: str, params: list[Any]) -> Answer:
        if method == "eth_getBlockByNumber":
            if self.header is not DEFAULT_HEADER:
                return raw(self.header)
            return raw({"number": hex(self.block_number), "timestamp": hex(self.timestamp)})
        if method == "eth_call":
            call, _tag = params
            handler = self.calls.get((call["to"].lower(), call["data"][:10]))
            return REVERT if handler is None else handler(call["data"])
        return {"error": {"code": -32601, "message": f"method {method} not found"}}

    def reply(self, payload: Any) -> Any:
        self.requests.append(payload)
        if isinstance(payload, dict):
            return {
                "jsonrpc": "2.0",
                "id": payload["id"],
                **self.answer(payload["method"], payload["params"]),
            }
        if self.batch_reply is not None:
            return self.batch_reply(payload)
        return [
            {"jsonrpc": "2.0", "id": item["id"], **self.answer(item["method"], item["params"])}
            for item in payload
        ]


def client_for(node: FakeNode, *, max_batch: int = 500) -> JsonRpcClient:
    """A real client whose HTTP transport is ``node``."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=node.reply(json.loads(request.content)))

    client = JsonRpcClient("http://fake.node", max_batch=max_batch)
    client._http.close()
    client._http = httpx.Client(transport=httpx.MockTransport(handle))
    return client


# A small scripted market.

POOL = "0x" + "11" * 20
PROVIDER = "0x" + "22" * 20
ORACLE = "0x" + "33" * 20
CONFIGURATOR = "0x" + "44" * 20
RESERVE_STRUCT = (
    "(uint256,uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,"
    "address,address,uint128,uint128,uint128)",
)
RAY = 10**27


@dataclass(frozen=True)
class FakeReserve:
    """A reserve of the scripted market; token addresses derive from ``asset``."""

    asset: str
    id: int
    configuration: int
    price: int
    symbol: Answer | None = None  # None: symbol() reverts

    def token(self, kind: str) -> str:
        """The a / v / s token address of this reserve."""
        return "0x" + {"a": "a1", "v": "b1", "s": "c1"}[kind] + self.asset[4:]


def reserve_data(reserve: FakeReserve, stable_token: str | None = None) -> Answer:
    """``getReserveData`` of ``reserve`` (indices 1 ray, no interest)."""
    stable = stable_token if stable_token is not None else reserve.token("s")
    zero = "0x" + "00" * 20
    values = (
        reserve.configuration,
        RAY,
        0,
        RAY,
        0,
        0,
        1_600_000_000,
        reserve.id,
        reserve.token("a"),
        stable,
        reserve.token("v"),
        zero,
        0,
        0,
        0,
    )
    return result(RESERVE_STRUCT, values)


def script_market(
    node: FakeNode,
    reserves: tuple[FakeReserve, ...],
    *,
    revision: int,
    probes: tuple[Function, ...] = (),
) -> None:
    """Answer the Pool, provider and oracle getters of a market with ``reserves``."""
    node.on(POOL, abi.POOL_REVISION, result(("uint256",), revision))
    node.on(POOL, abi.GET_RESERVES_LIST, result(("address[]",), [r.asset for r in reserves]))
    node.on(POOL, abi.ADDRESSES_PROVIDER, result(("address",), PROVIDER))
    node.on(PROVIDER, abi.GET_PRICE_ORACLE, result(("address",), ORACLE))
    node.on(PROVIDER, abi.GET_POOL_CONFIGURATOR, result(("address",), CONFIGURATOR))
    node.on(ORACLE, abi.GET_ASSETS_PRICES, result(("uint256[]",), [r.price for r in reserves]))
    for function in probes:
        node.on(POOL, function, result(function.outputs, *(_zero(t) for t in function.outputs)))
    by_asset = {r.asset[2:].lower(): r for r in reserves}
    node.on(POOL, abi.GET_RESERVE_DATA, lambda data: reserve_data(by_asset[data[-40:]]))
    for reserve in reserves:
        if reserve.symbol is not None:
            node.on(reserve.asset, abi.SYMBOL, reserve.symbol)


def _zero(kind: str) -> Any:
    return "0x" + "00" * 20 if kind == "address" else (False if kind == "bool" else 0)
