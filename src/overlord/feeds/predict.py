"""What the oracle will return once a pending transaction is mined: found by simulation.

The pending transaction is executed on top of the latest block, and then
``AaveOracle.getAssetsPrices(every reserve)`` is read against the resulting state, so every
price (derived, capped, ratio-based) is the contracts' own answer: a base feed's answer is
never copied onto a derived asset, and no report bytes or storage layouts are decoded here.
Two methods, tried in this order:

``eth_simulateV1``
    One request: the pending transaction and then the read, in one simulated block.

``debug_traceCall+eth_call override``
    For nodes without ``eth_simulateV1``. ``debug_traceCall`` with the built-in
    ``callTracer`` says whether the transaction succeeds (the ``prestateTracer`` does not:
    a reverting transaction simply writes nothing), the ``prestateTracer`` in ``diffMode``
    gives the storage it writes, and ``eth_call`` reads the oracle with that storage as a
    ``stateDiff`` override. All three run on one pinned block. In geth's diffMode, ``post``
    lists only modified fields, and a storage slot in ``pre`` but not in ``post`` was
    cleared, so it is overridden with zero. Only storage is overridden (balances, nonces
    and code of the touched accounts are left alone).

A :class:`PricePredictor` remembers which method the node lacks (method not found or not
supported) and uses the other from then on. Everything else that goes wrong (a reverting
transaction, a transport failure, a malformed answer) raises :class:`PredictionUnavailable`
for that prediction only: a prediction is either the contracts' answer or no answer, never
a guessed price.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError

from overlord.chain import aave_abi
from overlord.chain.rpc import RpcError, RpcTransportError

log = logging.getLogger("overlord.predict")

METHOD_NOT_FOUND = -32601
"""JSON-RPC 2.0 "Method not found"."""
METHOD_NOT_SUPPORTED = -32004
"""EIP-1474 "Method not supported"."""
EXECUTION_REVERTED = 3
"""geth's (and anvil's) code for an ``eth_call`` that reverts."""

_UNSUPPORTED_CODES = frozenset({METHOD_NOT_FOUND, METHOD_NOT_SUPPORTED})
# Nodes and providers that do not use those codes still say so in words: geth/Erigon/Infura
# "the method X does not exist/is not available", Nethermind "The method 'X' is not
# supported", Alchemy "Unsupported method: X", and for a tracer the node lacks, geth's
# "tracer not found". Anything else (invalid params, an EVM error, a timeout) is a failure
# of this one request, not a missing capability.
_UNSUPPORTED_MESSAGE = re.compile(
    r"method not found|method not supported|unsupported method"
    r"|the method \S+ (?:does not exist|is not available|is not supported)"
    r"|tracer not found|unknown tracer",
    re.IGNORECASE,
)
_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_TX_FIELDS = ("from", "to", "input", "gas", "value")
_WORD_DIGITS = 64


class PredictionUnavailable(Exception):
    """No prediction: the node cannot simulate, the transaction reverts, or an answer is bad."""


class Method(StrEnum):
    """How the prices are predicted."""

    SIMULATE = "eth_simulateV1"
    TRACE_AND_OVERRIDE = "debug_traceCall+eth_call override"


ALL_METHODS: tuple[Method, ...] = (Method.SIMULATE, Method.TRACE_AND_OVERRIDE)


class RpcCaller(Protocol):
    """What the predictor needs of a JSON-RPC client (:class:`JsonRpcClient` has it)."""

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request; its ``result``, or :class:`RpcError`."""


@dataclass(frozen=True)
class Prediction:
    """The oracle prices (by lower-case asset address) and the method that found them."""

    prices: dict[str, int]
    method: str


class _Unsupported(Exception):
    """The node lacks a method this way of predicting needs."""


class PricePredictor:
    """Predicts oracle prices after pending transactions, remembering what the node lacks.

    Args:
        client: The node.
        oracle: The AaveOracle address.
        methods: The methods to try, in order (for tests: force one).
    """

    def __init__(
        self, client: RpcCaller, oracle: str, *, methods: Sequence[Method] = ALL_METHODS
    ) -> None:
        if not methods:
            raise ValueError("PricePredictor needs at least one method")
        self.client = client
        self.oracle = oracle
        self.methods = tuple(Method(method) for method in methods)
        self.unsupported: dict[Method, str] = {}  # method -> the node's answer

    def predict(
        self,
        transaction: Mapping[str, object],
        assets: Sequence[str],
        *,
        timestamp: int | None = None,
    ) -> Prediction:
        """Predict the oracle prices of ``assets`` once ``transaction`` is mined.

        Args:
            transaction: A JSON-RPC transaction object (``from``, ``to``, ``input`` and
                optionally ``gas`` and ``value`` are used).
            assets: The reserves to price.
            timestamp: The expected block time of inclusion, if known.

        Raises:
            PredictionUnavailable: The node supports none of the methods, the transaction
                reverts, the oracle read reverts, or the node's answer is malformed.
        """
        call = {key: transaction[key] for key in _TX_FIELDS if key in transaction}
        assets = list(assets)
        for method in self.methods:
            if method in self.unsupported:
                continue
            try:
                if method is Method.SIMULATE:
                    prices = self._simulate(call, assets, timestamp)
                else:
                    prices = self._trace_and_override(call, assets, timestamp)
            except _Unsupported as exc:
                self.unsupported[method] = str(exc)
                log.warning(
                    "the node lacks a prediction method; not trying it again",
                    extra={"method": method.value, "error": str(exc)},
                )
                continue
            return Prediction(_by_asset(assets, prices, method), method.value)
        raise PredictionUnavailable(self._none_supported())

    def _none_supported(self) -> str:
        tried = "; ".join(f"{method.value} ({self.unsupported[method]})" for method in self.methods)
        if len(self.methods) == 1:
            return f"the node does not support {tried}"
        return f"the node supports none of the prediction methods: {tried}"

    def _request(self, method: str, params: Sequence[Any], *, reverts: str = "") -> Any:
        # ``reverts`` is the message for an "execution reverted" answer.
        try:
            return self.client.call(method, params)
        except RpcError as exc:
            if _unsupported(exc):
                raise _Unsupported(str(exc)) from exc
            if reverts and _reverted(exc):
                raise PredictionUnavailable(f"{reverts}: {exc}") from exc
            raise PredictionUnavailable(str(exc)) from exc

    def _read(self, assets: list[str]) -> dict[str, str]:
        return {"to": self.oracle, "input": aave_abi.GET_ASSETS_PRICES.encode(assets)}

    def _simulate(
        self, call: dict[str, object], assets: list[str], timestamp: int | None
    ) -> list[int]:
        block: dict[str, object] = {"calls": [call, self._read(assets)]}
        if timestamp is not None:
            block["blockOverrides"] = {"time": hex(timestamp)}
        result = self._request(
            "eth_simulateV1", [{"blockStateCalls": [block], "validation": False}, "latest"]
        )
        try:
            (simulated,) = result
            pending, read = simulated["calls"]
            pending_ok, read_ok = _status(pending["status"]), _status(read["status"])
            if pending_ok and read_ok:
                (prices,) = aave_abi.GET_ASSETS_PRICES.decode(read["returnData"])
                return list(prices)
            reason = _reason(pending.get("returnData"))
        except (KeyError, TypeError, ValueError, AttributeError, RpcError) as exc:
            raise PredictionUnavailable(f"malformed eth_simulateV1 answer: {exc!r}") from exc
        if not pending_ok:
            raise PredictionUnavailable(f"the pending transaction reverts{reason} (eth_simulateV1)")
        raise PredictionUnavailable(
            "AaveOracle.getAssetsPrices reverts after the pending transaction (eth_simulateV1)"
        )

    def _trace_and_override(
        self, call: dict[str, object], assets: list[str], timestamp: int | None
    ) -> list[int]:
        # Pinned, so that the traces and the read see the same state even if a block lands.
        block = self._request("eth_blockNumber", [])
        if not isinstance(block, str) or not _is_hex(block):
            raise PredictionUnavailable(f"malformed eth_blockNumber answer: {block!r}")
        times = {"blockOverrides": {"time": hex(timestamp)}} if timestamp is not None else {}
        self._check_succeeds(call, block, times)
        diff = self._request(
            "debug_traceCall",
            [
                call,
                block,
                {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}, **times},
            ],
        )
        try:
            state = storage_override(diff)
        except ValueError as exc:
            raise PredictionUnavailable(
                f"malformed debug_traceCall (prestateTracer diffMode) answer: {exc}"
            ) from exc
        params: list[object] = [self._read(assets), block, state]
        if timestamp is not None:
            params.append({"time": hex(timestamp)})
        data = self._request(
            "eth_call",
            params,
            reverts="AaveOracle.getAssetsPrices reverts after the pending transaction (eth_call)",
        )
        try:
            (prices,) = aave_abi.GET_ASSETS_PRICES.decode(data)
        except (RpcError, AttributeError) as exc:
            raise PredictionUnavailable(f"malformed eth_call answer: {exc}") from exc
        return list(prices)

    def _check_succeeds(self, call: dict[str, object], block: str, times: dict[str, Any]) -> None:
        # The prestateTracer reports a reverting transaction as one that writes nothing.
        top = self._request(
            "debug_traceCall",
            [call, block, {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": True}, **times}],
        )
        if not isinstance(top, dict):
            raise PredictionUnavailable(f"malformed debug_traceCall (callTracer) answer: {top!r}")
        if top.get("error"):
            reason = top.get("revertReason") or top["error"]
            raise PredictionUnavailable(
                f"the pending transaction reverts: {reason} (debug_traceCall)"
            )


def predict_prices(
    client: RpcCaller,
    transaction: Mapping[str, object],
    oracle: str,
    assets: Sequence[str],
    *,
    timestamp: int | None = None,
) -> dict[str, int]:
    """The oracle prices of ``assets`` after ``transaction`` (a JSON-RPC tx object).

    A one-shot :class:`PricePredictor`: ``eth_simulateV1``, else the ``debug_traceCall``
    state-override fallback. Keep a :class:`PricePredictor` to remember what the node lacks.
    """
    return PricePredictor(client, oracle).predict(transaction, assets, timestamp=timestamp).prices


def storage_override(diff: object) -> dict[str, dict[str, dict[str, str]]]:
    """The ``eth_call`` state override that writes the storage a diffMode trace reports.

    ``diff`` is a ``prestateTracer`` result with ``{"diffMode": true}``: slots in ``post``
    take their new value, slots in ``pre`` but not in ``post`` (cleared, or the account was
    deleted) become zero. Keys and values are written as 32-byte words, addresses in lower
    case; accounts whose storage did not change are left out.

    Raises:
        ValueError: ``diff`` is not a diffMode result (no ``pre``/``post`` objects, say
            from a node whose prestateTracer ignores ``diffMode``) or holds a bad value.
    """
    if not isinstance(diff, dict) or not isinstance(diff.get("pre"), dict):
        raise ValueError(f"no 'pre' object in {str(diff)[:200]} (is diffMode supported?)")
    if not isinstance(diff.get("post"), dict):
        raise ValueError(f"no 'post' object in {str(diff)[:200]} (is diffMode supported?)")
    changes: dict[str, dict[str, str]] = {}
    zero = _word(0)
    for address, account in diff["pre"].items():
        for slot in _storage(address, account):
            changes.setdefault(_address(address), {})[_slot(slot)] = zero
    for address, account in diff["post"].items():
        for slot, value in _storage(address, account).items():
            changes.setdefault(_address(address), {})[_slot(slot)] = _slot(value)
    return {address: {"stateDiff": slots} for address, slots in changes.items() if slots}


def _by_asset(assets: list[str], prices: list[int], method: Method) -> dict[str, int]:
    if len(prices) != len(assets):
        raise PredictionUnavailable(
            f"malformed {method.value} answer: {len(prices)} prices for {len(assets)} assets"
        )
    return {asset.lower(): int(price) for asset, price in zip(assets, prices, strict=True)}


def _unsupported(error: RpcError) -> bool:
    if isinstance(error, RpcTransportError):
        return False
    return error.code in _UNSUPPORTED_CODES or bool(_UNSUPPORTED_MESSAGE.search(str(error)))


def _reverted(error: RpcError) -> bool:
    return error.code == EXECUTION_REVERTED or "execution reverted" in str(error).lower()


def _status(value: object) -> bool:
    if not isinstance(value, str) or int(value, 16) not in (0, 1):
        raise ValueError(f"status {value!r}")
    return int(value, 16) == 1


def _reason(data: object) -> str:
    # ": <message>" for a Solidity Error(string) revert, else nothing.
    if not isinstance(data, str):
        return ""
    try:
        raw = bytes.fromhex(data.removeprefix("0x"))
        if raw[:4] != _ERROR_STRING:
            return ""
        (message,) = decode(["string"], raw[4:])
    except (ValueError, DecodingError):
        return ""
    return f": {message}"


def _storage(address: object, account: object) -> dict[str, object]:
    if not isinstance(account, dict):
        raise ValueError(f"account {address!r} is {account!r}, not an object")
    storage = account.get("storage", {})
    if not isinstance(storage, dict):
        raise ValueError(f"storage of {address!r} is {storage!r}, not an object")
    return storage


def _address(value: object) -> str:
    if not isinstance(value, str) or len(value) != 42 or not _is_hex(value):
        raise ValueError(f"bad address {value!r}")
    return value.lower()


def _slot(value: object) -> str:
    if not isinstance(value, str) or not _is_hex(value) or len(value) > 2 + _WORD_DIGITS:
        raise ValueError(f"bad storage word {value!r}")
    return _word(int(value, 16))


def _word(value: int) -> str:
    # anvil rejects short forms such as "0x0" in overrides; geth accepts full words too.
    return f"0x{value:0{_WORD_DIGITS}x}"


def _is_hex(value: str) -> bool:
    return bool(re.fullmatch(r"0x[0-9a-fA-F]+", value))
