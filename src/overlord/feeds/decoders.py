"""Recognise transactions that update a price feed, by their calldata (a small registry).

Each decoder knows one way a feed is updated: our devnet feed's ``updateAnswer``, the
devnet ratio adapter's ``setRatio``, Chainlink OCR1 and OCR2 ``transmit`` called on the
aggregator, and the OCR2 forwarder's ``forward(target, data)`` whose target is the
aggregator. A decoder only says *which contract* the transaction updates; what the oracle
will then return is found by simulation (:mod:`overlord.feeds.predict`), never by decoding
report bytes, so adapters, caps and ratios stay the contracts' business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError

from overlord.chain.abi import Function

DecodeTarget = Callable[[str, bytes], str | None]
"""``(tx.to, calldata after the selector) -> the updated contract, or None``."""


def _to(to: str, _args: bytes) -> str | None:
    return to.lower()


def _forward_target(_to: str, args: bytes) -> str | None:
    try:
        target, _data = decode(["address", "bytes"], args)
    except DecodingError:  # malformed calldata is simply not an update
        return None
    return str(target).lower()


@dataclass(frozen=True)
class Decoder:
    """One update method: its signature and how to find the contract it updates."""

    name: str
    function: Function
    target: DecodeTarget


DECODERS: tuple[Decoder, ...] = (
    Decoder("devnet updateAnswer", Function("updateAnswer(int256)", ()), _to),
    Decoder("devnet setRatio", Function("setRatio(uint256)", ()), _to),
    Decoder("OCR1 transmit", Function("transmit(bytes,bytes32[],bytes32[],bytes32)", ()), _to),
    Decoder(
        "OCR2 transmit",
        Function("transmit(bytes32[3],bytes,bytes32[],bytes32[],bytes32)", ()),
        _to,
    ),
    Decoder("OCR2 forward", Function("forward(address,bytes)", ()), _forward_target),
)
_BY_SELECTOR: Mapping[str, Decoder] = {"0x" + d.function.selector.hex(): d for d in DECODERS}


@dataclass(frozen=True)
class FeedUpdate:
    """A transaction that updates ``feed`` (lower-case address) by ``method``."""

    feed: str
    method: str


def decode_update(to: str | None, data: str, watched: Mapping[str, object]) -> FeedUpdate | None:
    """The feed a transaction to ``to`` with calldata ``data`` updates, if it is watched."""
    if not to or len(data) < 10:
        return None
    decoder = _BY_SELECTOR.get(data[:10].lower())
    if decoder is None:
        return None
    try:
        arguments = bytes.fromhex(data[10:])
    except ValueError:
        return None
    feed = decoder.target(to, arguments)
    if feed is None or feed not in watched:
        return None
    return FeedUpdate(feed, decoder.name)
