"""Following the canonical chain: every kind of head against a scripted chain."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from overlord.chain.rpc import RpcError
from overlord.engine.follower import (
    Advance,
    Head,
    NodeChain,
    Reorg,
    Stale,
    parse_head,
    plan_head,
)


def h(label: str) -> str:
    """A 32-byte hash derived from a label, e.g. h("5a") for block 5 on fork a."""
    return "0x" + label.encode().hex().rjust(64, "0")


@dataclass
class Chain:
    """The node's canonical hashes by height; counts lookups."""

    hashes: dict[int, str]
    lookups: list[int] = field(default_factory=list)

    def hash_at(self, number: int) -> str | None:
        self.lookups.append(number)
        return self.hashes.get(number)


def fork(first: int, last: int, name: str) -> dict[int, str]:
    return {n: h(f"{n}{name}") for n in range(first, last + 1)}


def head(number: int, name: str, parent: str | None = None) -> Head:
    return Head(number, h(f"{number}{name}"), parent or h(f"{number - 1}{name}"))


PROCESSED = fork(1, 10, "a")


def test_the_next_block_advances_without_asking_the_node() -> None:
    chain = Chain(fork(1, 11, "a"))
    assert plan_head(PROCESSED, 10, head(11, "a"), chain) == Advance(head(11, "a"))
    assert chain.lookups == []


def test_a_gap_advances_when_the_last_processed_block_is_still_canonical() -> None:
    chain = Chain(fork(1, 15, "a"))
    assert plan_head(PROCESSED, 10, head(15, "a"), chain) == Advance(head(15, "a"))
    assert chain.lookups == [10]


def test_a_processed_head_again_is_stale() -> None:
    chain = Chain(fork(1, 10, "a"))
    assert isinstance(plan_head(PROCESSED, 10, head(10, "a"), chain), Stale)
    assert isinstance(plan_head(PROCESSED, 10, head(8, "a"), chain), Stale)


def test_an_older_unprocessed_head_on_the_canonical_chain_is_stale() -> None:
    processed = {1: h("1a"), 5: h("5a")}  # blocks 2-4 were covered by block 5's range
    chain = Chain(fork(1, 5, "a"))
    assert isinstance(plan_head(processed, 5, head(3, "a"), chain), Stale)


@pytest.mark.parametrize("depth", [1, 3])
def test_a_parent_mismatch_rolls_back_to_the_common_ancestor(depth: int) -> None:
    ancestor = 10 - depth
    canonical = {**fork(1, ancestor, "a"), **fork(ancestor + 1, 11, "b")}
    new_head = Head(11, h("11b"), h("10b"))
    plan = plan_head(PROCESSED, 10, new_head, Chain(canonical))
    assert plan == Reorg(ancestor, new_head, depth)


def test_a_shorter_replacement_chain_is_a_reorg() -> None:
    # anvil_rollback(3) then one block: the new head is below the last processed block.
    canonical = {**fork(1, 7, "a"), 8: h("8b")}
    new_head = Head(8, h("8b"), h("7a"))
    assert plan_head(PROCESSED, 10, new_head, Chain(canonical)) == Reorg(7, new_head, 3)


def test_a_reorg_deeper_than_the_history_reports_an_ancestor_below_it() -> None:
    processed = fork(6, 10, "a")
    canonical = {**fork(1, 3, "a"), **fork(4, 11, "b")}
    new_head = head(11, "b")
    plan = plan_head(processed, 10, new_head, Chain(canonical))
    assert plan == Reorg(5, new_head, 5, beyond_history=True)


def test_without_the_last_hash_a_higher_head_advances() -> None:
    processed = fork(1, 9, "a")  # block 10 was processed without its hash
    chain = Chain(fork(1, 11, "a"))
    assert plan_head(processed, 10, head(11, "a"), chain) == Advance(head(11, "a"))
    assert plan_head(processed, 10, head(10, "a"), chain) == Stale(head(10, "a"))


def test_parse_head_reads_a_header_and_names_a_bad_field() -> None:
    upper = h("16a").upper().replace("0X", "0x")
    header = {"number": "0x10", "hash": upper, "parentHash": h("15a")}
    assert parse_head(header) == Head(16, h("16a"), h("15a"))
    with pytest.raises(ValueError, match="number"):
        parse_head({**header, "number": 16})
    with pytest.raises(ValueError, match="parentHash"):
        parse_head({**header, "parentHash": "0x12"})
    with pytest.raises(ValueError, match="object"):
        parse_head(["0x10"])


class Client:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def call(self, method: str, params: object = ()) -> object:
        return self.answer


def test_node_chain_turns_garbage_into_an_rpc_error() -> None:
    chain = NodeChain(Client({"number": "0x1"}))  # type: ignore[arg-type]
    with pytest.raises(RpcError, match="hash"):
        chain.hash_at(1)
    with pytest.raises(RpcError, match="hash"):
        chain.latest()
    assert NodeChain(Client(None)).hash_at(5) is None  # type: ignore[arg-type]


def test_a_shorter_chain_without_a_new_block_rolls_back_to_its_head() -> None:
    # anvil_rollback(3) and nothing mined since: the node's head is processed block 7.
    new_head = head(7, "a")
    plan = plan_head(PROCESSED, 10, new_head, Chain(fork(1, 7, "a")))
    assert plan == Reorg(6, new_head, 4)
