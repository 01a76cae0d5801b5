"""ABI encoding of calls and decoding of results, with errors that name the function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from overlord.chain.rpc import RpcError


@dataclass(frozen=True)
class Function:
    """A contract function by its signature and output types.

    ``Function("getUserAccountData(address)", ("uint256",) * 6)``
    """

    signature: str
    outputs: tuple[str, ...]

    @cached_property
    def selector(self) -> bytes:
        """The 4-byte selector."""
        return keccak(text=self.signature)[:4]

    @cached_property
    def input_types(self) -> tuple[str, ...]:
        """Argument types parsed from the signature."""
        inner = self.signature[self.signature.index("(") + 1 : -1]
        return tuple(_split_types(inner)) if inner else ()

    def encode(self, *args: Any) -> str:
        """Calldata as ``0x`` hex."""
        return "0x" + (self.selector + encode(list(self.input_types), list(args))).hex()

    def decode(self, data: str) -> tuple[Any, ...]:
        """Decode a returned ``0x`` hex string; raises :class:`RpcError` if malformed."""
        try:
            raw = bytes.fromhex(data.removeprefix("0x"))
            return tuple(decode(list(self.outputs), raw))
        except (DecodingError, ValueError, TypeError) as exc:
            raise RpcError(
                self.signature, f"cannot decode the result {data[:80]!r}: {exc}"
            ) from exc


def _split_types(text: str) -> Sequence[str]:
    depth, start, parts = 0, 0, []
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def event_topic(signature: str) -> str:
    """topic0 of an event signature."""
    return "0x" + keccak(text=signature).hex()
