"""ABI encoding of calls and decoding of results, with errors that name the function.

:meth:`Function.decode` goes through eth_abi, which spends ~190 µs on a ``getReserveData``
tuple and ~30 µs on a three-``uint16`` one: most of a market read's time before. So
:meth:`Function.decode_hex`, what the reader's batches use, decodes by hand the layouts
that are plain 32-byte words: static outputs made of ``uint<N>``, ``int<N>``, ``address``,
``bool``, ``bytes<N>`` and tuples of them, and a lone dynamic array of such words
(``address[]``, ``uint256[]``) in the canonical encoding Solidity answers with. It refuses
what eth_abi refuses (a digit that is not hex, non-zero padding, a wrong sign extension,
a boolean other than 0 or 1) and a static result of any other length than its own
(eth_abi ignores trailing bytes); anything else it hands to eth_abi. Likewise
:meth:`Function.encode` splices word arguments (and one array of words) by hand, byte for
byte what eth_abi encodes, and leaves any other argument to eth_abi to encode or refuse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeAlias

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from overlord.chain.rpc import RpcError

_HEX = re.compile(r"0x[0-9a-fA-F]*")
_LOWER_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_UPPER_ADDRESS = re.compile(r"0x[0-9A-F]{40}")
_WORD = 64  # hex digits per 32-byte word
_ARRAY_OFFSET = f"{32:064x}"  # the head of a lone dynamic result: its tail starts at 32


@dataclass(frozen=True, slots=True)
class _Word:
    """One ABI word type: ``kind`` is uint/int/address/bool/bytes; ``size`` bits or bytes."""

    kind: str
    size: int

    def decode(self, word: str) -> Any:
        """The value of 64 (checked) hex digits, or ``ValueError`` if the padding is wrong."""
        if self.kind == "address":
            if word[:24].strip("0"):
                raise ValueError("address with non-zero padding")
            return "0x" + word[24:].lower()
        value = int(word, 16)
        if self.kind == "uint":
            if value >> self.size:
                raise ValueError(f"uint{self.size} with non-zero padding")
            return value
        if self.kind == "int":
            value -= (value >> 255) << 256
            if not -(1 << (self.size - 1)) <= value < 1 << (self.size - 1):
                raise ValueError(f"int{self.size} with wrong sign extension")
            return value
        if self.kind == "bool":
            if value > 1:
                raise ValueError("boolean neither 0 nor 1")
            return value == 1
        if word[2 * self.size :].strip("0"):
            raise ValueError(f"bytes{self.size} with non-zero padding")
        return bytes.fromhex(word[: 2 * self.size])

    def encode(self, value: object) -> str | None:
        """64 hex digits of ``value``, or ``None`` to let eth_abi encode (or refuse) it."""
        if self.kind == "address":
            if isinstance(value, str) and (
                _LOWER_ADDRESS.fullmatch(value) or _UPPER_ADDRESS.fullmatch(value)
            ):
                return "0" * 24 + value[2:].lower()
            return None  # mixed case (a checksum?): eth_abi's rules decide
        if self.kind == "bool":
            return f"{int(value):064x}" if isinstance(value, bool) else None
        if type(value) is not int or self.kind not in ("uint", "int"):
            return None
        low = 0 if self.kind == "uint" else -(1 << (self.size - 1))
        if not low <= value < low + (1 << self.size):
            return None
        return f"{value % (1 << 256):064x}"


# A static output's layout: one word or a tuple of words.
_Output: TypeAlias = _Word | tuple[_Word, ...]


def _word(text: str) -> _Word | None:
    match = re.fullmatch(r"(uint|int)(\d*)|(address|bool)|bytes(\d+)", text)
    if match is None:
        return None
    if match[3]:
        return _Word(match[3], 160 if match[3] == "address" else 1)
    if match[1]:
        bits = int(match[2] or 256)
        return _Word(match[1], bits) if bits % 8 == 0 and 8 <= bits <= 256 else None
    size = int(match[4])
    return _Word("bytes", size) if 1 <= size <= 32 else None


def _output(text: str) -> _Output | None:
    if text.startswith("(") and text.endswith(")"):
        words = [_word(part) for part in _split_types(text[1:-1])]
        return None if any(w is None for w in words) else tuple(w for w in words if w)
    return _word(text)


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

    @cached_property
    def _input_words(self) -> tuple[_Word | None, ...]:
        return tuple(_word(kind) for kind in self.input_types)

    @cached_property
    def _static_layout(self) -> tuple[_Output, ...] | None:
        """The outputs as words when every one of them is a word or a tuple of words."""
        layout = [_output(kind) for kind in self.outputs]
        return None if any(o is None for o in layout) else tuple(o for o in layout if o)

    @cached_property
    def _array_element(self) -> _Word | None:
        """The element of a lone dynamic array output (``address[]``), else ``None``."""
        if len(self.outputs) != 1 or not self.outputs[0].endswith("[]"):
            return None
        return _word(self.outputs[0][:-2])

    def encode(self, *args: Any) -> str:
        """Calldata as ``0x`` hex."""
        spliced = self._encode_words(args)
        if spliced is None:
            spliced = encode(list(self.input_types), list(args)).hex()
        return "0x" + self.selector.hex() + spliced

    def _encode_words(self, args: tuple[Any, ...]) -> str | None:
        """The arguments spliced by hand when all are words, or one array of words."""
        words = self._input_words
        if len(args) != len(words):
            return None
        if len(words) == 1 and words[0] is None and self.input_types[0].endswith("[]"):
            element = _word(self.input_types[0][:-2])
            if element is None or not isinstance(args[0], list | tuple):
                return None
            items = [element.encode(item) for item in args[0]]
            if any(item is None for item in items):
                return None
            return _ARRAY_OFFSET + f"{len(items):064x}" + "".join(i for i in items if i)
        parts = [w.encode(a) if w is not None else None for w, a in zip(words, args, strict=True)]
        return None if any(p is None for p in parts) else "".join(p for p in parts if p)

    def decode(self, data: str) -> tuple[Any, ...]:
        """Decode a returned ``0x`` hex string; raises :class:`RpcError` if malformed."""
        try:
            raw = bytes.fromhex(data.removeprefix("0x"))
            return tuple(decode(list(self.outputs), raw))
        except (DecodingError, ValueError, TypeError) as exc:
            raise RpcError(
                self.signature, f"cannot decode the result {data[:80]!r}: {exc}"
            ) from exc

    def decode_hex(self, data: str) -> tuple[Any, ...]:
        """:meth:`decode`, by hand for word layouts (see the module docstring).

        Addresses decoded by hand are lower-case; those eth_abi decodes are checksummed.

        Raises:
            RpcError: the result is malformed; the message names the function.
        """
        layout = self._static_layout
        if layout is None and self._array_element is None:
            return self.decode(data)
        if not _HEX.fullmatch(data):
            raise RpcError(self.signature, f"cannot decode the result {data[:80]!r}: not hex")
        try:
            if layout is not None:
                return _decode_static(layout, data)
            decoded = _decode_array(self._array_element, data)
        except ValueError as exc:
            raise RpcError(
                self.signature, f"cannot decode the result {data[:80]!r}: {exc}"
            ) from None
        return self.decode(data) if decoded is None else decoded


def _decode_static(layout: tuple[_Output, ...], data: str) -> tuple[Any, ...]:
    words = sum(len(o) if isinstance(o, tuple) else 1 for o in layout)
    if len(data) != 2 + _WORD * words:
        raise ValueError(f"{len(data) - 2} hex digits, expected {_WORD * words}")
    position = 2
    values: list[Any] = []
    for output in layout:
        if isinstance(output, _Word):
            values.append(output.decode(data[position : position + _WORD]))
            position += _WORD
            continue
        items = []
        for word in output:
            items.append(word.decode(data[position : position + _WORD]))
            position += _WORD
        values.append(tuple(items))
    return tuple(values)


def _decode_array(element: _Word | None, data: str) -> tuple[Any, ...] | None:
    """A lone ``T[]`` in its canonical encoding; ``None`` if it is laid out otherwise."""
    if element is None or len(data) < 2 + 2 * _WORD or data[2 : 2 + _WORD] != _ARRAY_OFFSET:
        return None
    count = int(data[2 + _WORD : 2 + 2 * _WORD], 16)
    if len(data) != 2 + _WORD * (2 + count):
        return None  # eth_abi tells a short answer from one with trailing bytes
    start = 2 + 2 * _WORD
    items = tuple(
        element.decode(data[start + _WORD * i : start + _WORD * (i + 1)]) for i in range(count)
    )
    return (items,)


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
