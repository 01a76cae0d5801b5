"""Following the canonical chain: what a new head means for the blocks already processed.

The block path processes heads as they come (pushed by a subscription or polled). Each
head is checked against the hashes of the blocks processed so far:

* the next block on top of the last processed one (its parent hash matches): advance;
* a head further ahead (the feed skipped blocks, or it was down): advance over the gap, if
  the last processed block is still canonical: its logs range covers the skipped blocks;
* a parent-hash mismatch, or a head at or below the last processed block with another hash:
  a reorg. The common ancestor is the newest processed block whose hash the node still
  has at that height; the engine rolls back to it and processes the new head;
* a head already processed (a duplicate, or an older notification while the last
  processed block is still canonical): nothing to do. An older head while the last
  processed block is gone (the chain got shorter) is a reorg back to it.

:func:`plan_head` is pure over a :class:`CanonicalChain` lookup, so every case is tested
without a node; :class:`NodeChain` is that lookup over JSON-RPC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from overlord.chain.rpc import JsonRpcClient, RpcError

_HASH = re.compile(r"^0x[0-9a-fA-F]{64}\Z")


@dataclass(frozen=True)
class Head:
    """A block header, as much of it as following the chain needs."""

    number: int
    block_hash: str
    parent_hash: str


def parse_head(header: object) -> Head:
    """A :class:`Head` from a ``newHeads`` notification or an ``eth_getBlockByNumber`` block.

    Raises:
        ValueError: the header is not an object or a field is missing or malformed (named).
    """
    if not isinstance(header, dict):
        raise ValueError(f"a block header must be an object, got {type(header).__name__}")
    number = _quantity(header, "number")
    return Head(number, _hash(header, "hash"), _hash(header, "parentHash"))


def _quantity(header: Mapping[str, Any], name: str) -> int:
    value = header.get(name)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"block header field {name} = {value!r} is not a hex quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"block header field {name} = {value!r} is not a hex quantity") from None


def _hash(header: Mapping[str, Any], name: str) -> str:
    value = header.get(name)
    if not isinstance(value, str) or not _HASH.match(value):
        raise ValueError(f"block header field {name} = {value!r} is not a 32-byte hash")
    return value.lower()


class CanonicalChain(Protocol):
    """The node's view: the hash of the canonical block at a height (``None``: none yet)."""

    def hash_at(self, number: int) -> str | None: ...


@dataclass(frozen=True)
class Advance:
    """Process ``head``: it extends the processed chain (possibly over a gap)."""

    head: Head


@dataclass(frozen=True)
class Reorg:
    """Roll back to ``ancestor``, then process ``head``; ``depth`` processed blocks orphaned.

    ``beyond_history``: no remembered block is canonical any more, so the true ancestor is
    older than the history; ``ancestor`` is then just below it and the engine must read
    every user again.
    """

    ancestor: int
    head: Head
    depth: int
    beyond_history: bool = False


@dataclass(frozen=True)
class Stale:
    """Nothing to do: ``head`` is already processed, or older than the processed chain."""

    head: Head


HeadPlan = Advance | Reorg | Stale


def plan_head(
    processed: Mapping[int, str], last: int, head: Head, chain: CanonicalChain
) -> HeadPlan:
    """What to do with ``head``, given the processed blocks' hashes and the last one."""
    if head.number == last + 1 and processed.get(last) == head.parent_hash:
        return Advance(head)
    if last not in processed:
        # The last block was processed without its hash: nothing to check it against.
        return Advance(head) if head.number > last else Stale(head)
    if head.number > last + 1 and _still_canonical(processed, last, chain):
        return Advance(head)
    if head.number <= last:
        if head.number == last and processed.get(last) == head.block_hash:
            return Stale(head)  # a duplicate notification
        if head.number < last and _still_canonical(processed, last, chain):
            return Stale(head)  # an older notification; the processed chain is canonical
    ancestor = _common_ancestor(processed, min(last, head.number - 1), chain)
    if ancestor is None:
        oldest = min(processed, default=min(last, head.number - 1) + 1)
        return Reorg(oldest - 1, head, len(processed), beyond_history=True)
    return Reorg(ancestor, head, sum(1 for number in processed if number > ancestor))


def _still_canonical(processed: Mapping[int, str], number: int, chain: CanonicalChain) -> bool:
    known = processed.get(number)
    return known is None or chain.hash_at(number) == known


def _common_ancestor(processed: Mapping[int, str], below: int, chain: CanonicalChain) -> int | None:
    """The newest processed block at or below ``below`` that is still canonical."""
    for number in sorted((n for n in processed if n <= below), reverse=True):
        if chain.hash_at(number) == processed[number]:
            return number
    return None


@dataclass
class NodeChain:
    """:class:`CanonicalChain` over JSON-RPC (``eth_getBlockByNumber``)."""

    client: JsonRpcClient

    def hash_at(self, number: int) -> str | None:
        block = self.client.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            return None
        try:
            return parse_head(block).block_hash
        except ValueError as exc:
            raise RpcError("eth_getBlockByNumber", str(exc)) from None

    def latest(self) -> Head:
        """The node's current head.

        Raises:
            RpcError: the node failed or answered something that is not a block.
        """
        block = self.client.call("eth_getBlockByNumber", ["latest", False])
        try:
            return parse_head(block)
        except ValueError as exc:
            raise RpcError("eth_getBlockByNumber", str(exc)) from None
