"""Requests and errors by method, counted for ``/metrics`` over every client."""

from __future__ import annotations

import pytest

from overlord.chain.rpc import RPC_STATS, RpcError, RpcStats
from tests.unit.chain.fakes import FakeNode, client_for


def _delta(before: dict[str, tuple[int, int]], method: str) -> tuple[int, int]:
    after = RPC_STATS.snapshot().get(method, (0, 0))
    start = before.get(method, (0, 0))
    return after[0] - start[0], after[1] - start[1]


def test_single_calls_and_batches_are_counted_per_method_with_their_errors() -> None:
    before = RPC_STATS.snapshot()
    with client_for(FakeNode()) as client:
        client.call("eth_getBlockByNumber", ["0x1", False])
        with pytest.raises(RpcError):
            client.call("eth_nonsense")
        answers = client.batch_answers(
            [("eth_getBlockByNumber", ["0x1", False]), ("eth_nonsense", []), ("eth_nonsense", [])]
        )
    assert len(answers) == 3
    assert _delta(before, "eth_getBlockByNumber") == (2, 0)
    assert _delta(before, "eth_nonsense") == (3, 3)


def test_a_failed_batch_counts_every_request_as_an_error() -> None:
    before = RPC_STATS.snapshot()
    node = FakeNode(batch_reply=lambda _batch: {"jsonrpc": "2.0", "id": None, "error": {}})
    with client_for(node) as client, pytest.raises(RpcError):
        client.batch([("eth_chainId", []), ("eth_chainId", [])])
    assert _delta(before, "eth_chainId") == (2, 2)


def test_stats_are_a_consistent_snapshot() -> None:
    stats = RpcStats()
    stats.record("eth_call", requests=5, errors=2)
    stats.record("eth_call")
    assert stats.snapshot() == {"eth_call": (6, 2)}
