"""Batched, block-pinned ``eth_call`` requests whose answers are checked, not trusted.

Each :class:`BatchRequest` knows its payload at a block, how to parse and check its
answer, and how to describe itself in an error. :func:`run_batch` sends a mapping of them
in one JSON-RPC batch and returns their parsed results under the same keys; only optional
requests may revert (to ``None``), anything else malformed raises
:class:`~overlord.chain.rpc.RpcError` naming the call.

Results are decoded by :meth:`~overlord.chain.abi.Function.decode_hex`: word layouts (the
``getReserveData`` tuple, ``uint256[]`` prices, ``address[]`` lists) by hand, so addresses
in them come back lower-case rather than checksummed; callers normalize addresses anyway.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi.grammar import ABIType, TupleType, parse

from overlord.chain import aave_abi as abi
from overlord.chain.abi import Function
from overlord.chain.rpc import JsonRpcClient, JsonValue, RpcError

SYMBOL_BYTES32 = Function("symbol()", ("bytes32",))  # old tokens (MKR-style)

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"0x[0-9a-fA-F]+")


def normalize_address(text: str) -> str:
    """``text`` as a lower-case ``0x`` address; raises ``ValueError`` if it is not one."""
    if not isinstance(text, str) or not _ADDRESS.match(text):
        raise ValueError(f"not an address: {text!r}")
    return text.lower()


def block_tag(block: int) -> str:
    """The JSON-RPC tag of block number ``block``; raises ``ValueError`` if negative."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise ValueError(f"not a block number: {block!r}")
    return hex(block)


# One request and how its answer is checked.


class BatchRequest(Protocol):
    """One request of a batch: its JSON-RPC payload and how its result is checked."""

    @property
    def optional(self) -> bool:
        """Whether a revert means "absent" (``None``) rather than an error."""

    def payload(self, tag: str) -> tuple[str, list[JsonValue]]:
        """The JSON-RPC ``(method, params)`` at block tag ``tag``."""

    def parse(self, result: JsonValue) -> Any:
        """The checked value of a result; raises :class:`RpcError` if malformed."""

    def describe(self) -> str:
        """The request in words, for error messages."""


def _static_words(kind: ABIType) -> int | None:
    """How many 32-byte words a static ABI type takes; ``None`` for a dynamic one."""
    if kind.is_dynamic:
        return None
    element = 1
    if isinstance(kind, TupleType):
        element = sum(_static_words(component) or 0 for component in kind.components)
    for dimension in kind.arrlist or ():  # fixed-size arrays: T[2][3]
        element *= dimension[0]
    return element


@functools.cache
def _result_length(function: Function) -> int | None:
    """The exact length in hex characters (with ``0x``) of a static result, else ``None``."""
    words = [_static_words(parse(output)) for output in function.outputs]
    if any(w is None for w in words):
        return None
    return 2 + 64 * sum(w for w in words if w is not None)


def _calldata(function: Function, args: tuple[Any, ...]) -> str:
    """ABI-encoded calldata; ``f(address)`` is spliced by hand (half of read_users' time)."""
    if (
        len(args) == 1
        and function.input_types == ("address",)
        and isinstance(args[0], str)
        and _ADDRESS.match(args[0])
    ):
        return "0x" + function.selector.hex() + "0" * 24 + args[0][2:].lower()
    return function.encode(*args)


@dataclass(frozen=True, slots=True)
class EthCall:
    """``eth_call`` of ``function(*args)`` on ``to``; ``optional``: a revert means absent."""

    to: str
    function: Function
    args: tuple[Any, ...] = ()
    optional: bool = False

    def payload(self, tag: str) -> tuple[str, list[JsonValue]]:
        return ("eth_call", [{"to": self.to, "data": _calldata(self.function, self.args)}, tag])

    def describe(self) -> str:
        return f"eth_call {self.function.signature} on {self.to}"

    def parse(self, result: JsonValue) -> Any:
        if not isinstance(result, str) or not result.startswith("0x"):
            raise RpcError(self.describe(), f"result is not hex: {str(result)[:80]!r}")
        if result == "0x" and self.function.outputs:
            # What a call to an address without code answers, e.g. before the deployment.
            raise RpcError(self.describe(), "empty result: no contract there at this block?")
        expected = _result_length(self.function)
        if expected is not None and len(result) != expected:
            # eth_abi ignores trailing bytes; a static result of any other length is garbage.
            raise RpcError(
                self.describe(), f"result has {len(result) - 2} hex digits, expected {expected - 2}"
            )
        if self.function.outputs == abi.U256:  # the hot path of read_users
            if not _HEX.fullmatch(result):  # int() would take "_" and spaces
                raise RpcError(self.describe(), f"result is not hex: {result[:80]!r}")
            return int(result, 16)
        try:
            decoded = self.function.decode_hex(result)
        except RpcError as exc:
            raise RpcError(self.describe(), str(exc)) from exc
        return decoded[0] if len(decoded) == 1 else decoded


@dataclass(frozen=True, slots=True)
class SymbolCall:
    """``symbol()``: a string, or the ``bytes32`` some old tokens (MKR) return; "" if absent."""

    to: str
    optional: bool = True

    def payload(self, tag: str) -> tuple[str, list[JsonValue]]:
        return EthCall(self.to, abi.SYMBOL).payload(tag)

    def describe(self) -> str:
        return f"eth_call symbol() on {self.to}"

    def parse(self, result: JsonValue) -> Any:
        if isinstance(result, str) and len(result) == 66:
            raw: bytes = EthCall(self.to, SYMBOL_BYTES32).parse(result)
            return raw.rstrip(b"\0").decode("utf-8", errors="replace")
        return EthCall(self.to, abi.SYMBOL).parse(result)


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """``eth_getBlockByNumber`` → ``(number, timestamp)``."""

    optional: bool = False

    def payload(self, tag: str) -> tuple[str, list[JsonValue]]:
        return ("eth_getBlockByNumber", [tag, False])

    def describe(self) -> str:
        return "eth_getBlockByNumber"

    def parse(self, result: JsonValue) -> Any:
        if not isinstance(result, dict):
            raise RpcError(self.describe(), f"no such block (answer {str(result)[:80]!r})")
        return _hex_quantity(self.describe(), result, "number"), _hex_quantity(
            self.describe(), result, "timestamp"
        )


def _hex_quantity(method: str, block: Mapping[str, Any], key: str) -> int:
    value = block.get(key)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(method, f"block field {key} is not a hex quantity: {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcError(method, f"block field {key} is not a hex quantity: {value!r}") from None


# The batch runner.

_REVERT_CODE = 3  # geth/anvil: "execution reverted"


def _is_revert(error: object) -> bool:
    if not isinstance(error, dict):
        return False
    message = str(error.get("message", "")).lower()
    return error.get("code") == _REVERT_CODE or "revert" in message


def run_batch(
    client: JsonRpcClient, requests: Mapping[Any, BatchRequest], block: int
) -> dict[Any, Any]:
    """Send ``requests`` at ``block`` in one batch; their parsed results under the same keys.

    An optional request that reverts maps to ``None``.

    Raises:
        RpcError: an error answer (other than the revert of an optional request) or a
            malformed result, naming the request.
    """
    tag = block_tag(block)
    keys = list(requests)
    answers = client.batch_answers([requests[key].payload(tag) for key in keys])
    results: dict[Any, Any] = {}
    for key, answer in zip(keys, answers, strict=True):
        request = requests[key]
        if "error" in answer:
            error = answer["error"]
            if request.optional and _is_revert(error):
                results[key] = None
                continue
            detail = error if not isinstance(error, dict) else error.get("message", error)
            code = error.get("code") if isinstance(error, dict) else None
            raise RpcError(f"{request.describe()} at block {block}", str(detail), code)
        if "result" not in answer:
            raise RpcError(request.describe(), f"answer without result {str(answer)[:200]}")
        results[key] = request.parse(answer["result"])
    return results
