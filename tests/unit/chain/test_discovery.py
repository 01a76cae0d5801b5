"""User discovery from Pool events: topic positions, chunking, halving on size limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from overlord.chain.abi import event_topic
from overlord.chain.logs import POOL_USER_FIELDS, fetch_logs
from overlord.chain.rpc import RpcError, RpcTransportError
from overlord.verify import discover_users

POOL = "0x" + "11" * 20
SUPPLY = event_topic("Supply(address,address,address,uint256,uint16)")
BORROW = event_topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)")
REPAY = event_topic("Repay(address,address,address,uint256,bool)")
WITHDRAW = event_topic("Withdraw(address,address,address,uint256)")
LIQUIDATION = event_topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
ENABLED = event_topic("ReserveUsedAsCollateralEnabled(address,address)")
DISABLED = event_topic("ReserveUsedAsCollateralDisabled(address,address)")
EMODE = event_topic("UserEModeSet(address,uint8)")


def _word(address: str) -> str:
    return "0x" + "00" * 12 + address[2:]


def _user(index: int) -> str:
    return f"0x{index:040x}"


def _log(block: int, topic0: str, user: str, other: str | None = None) -> dict[str, Any]:
    """A Pool log naming ``user`` where its event names users (``other`` in the second place
    for events that name two: a repayer, a liquidator)."""
    topics = [topic0, *(_word(f"0x{n:040x}") for n in (0xAA, 0xBB, 0xCC))]
    data = ["00" * 32] * 4
    fields = POOL_USER_FIELDS[topic0]
    for number, (kind, index) in enumerate(fields):
        named = user if number == 0 or other is None else other
        if kind == "topic":
            topics[index] = _word(named)
        else:
            data[index] = _word(named)[2:]
    last = max(index for kind, index in fields if kind == "topic")
    return {
        "address": POOL,
        "blockNumber": hex(block),
        "topics": topics[: max(last + 1, 2)],
        "data": "0x" + "".join(data),
    }


@dataclass
class FakeLogNode:
    """Answers eth_getLogs from ``logs``; refuses ranges wider than ``limit`` blocks."""

    logs: list[dict[str, Any]]
    limit: int = 10**9
    refusal: RpcError = field(
        default_factory=lambda: RpcError(
            "eth_getLogs", "query returned more than 10000 results", -32005
        )
    )
    ranges: list[tuple[int, int]] = field(default_factory=list)
    refused: list[tuple[int, int]] = field(default_factory=list)

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        assert method == "eth_getLogs"
        (query,) = params
        assert query["address"] == POOL
        assert query["topics"] == [list(POOL_USER_FIELDS)]
        first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        if last - first + 1 > self.limit:
            self.refused.append((first, last))
            raise self.refusal
        self.ranges.append((first, last))
        return [log for log in self.logs if first <= int(log["blockNumber"], 16) <= last]


def test_each_event_names_its_user_in_its_own_topic() -> None:
    events = (SUPPLY, BORROW, REPAY, WITHDRAW, LIQUIDATION, ENABLED, DISABLED, EMODE)
    node = FakeLogNode([_log(10 + i, topic0, _user(i + 1)) for i, topic0 in enumerate(events)])

    users = discover_users(node, POOL, 0, 100)

    assert users == [_user(i + 1) for i in range(len(events))]


def test_a_repayer_and_a_liquidator_are_users_too() -> None:
    node = FakeLogNode(
        [_log(3, REPAY, _user(1), _user(2)), _log(4, LIQUIDATION, _user(3), _user(4))]
    )

    assert discover_users(node, POOL, 0, 10) == [_user(1), _user(2), _user(3), _user(4)]


def test_the_zero_address_is_never_a_user() -> None:
    node = FakeLogNode([_log(3, SUPPLY, "0x" + "00" * 20), _log(4, SUPPLY, _user(5))])

    assert discover_users(node, POOL, 0, 10) == [_user(5)]


def test_users_are_merged_in_first_seen_order() -> None:
    node = FakeLogNode(
        [_log(5, SUPPLY, _user(2)), _log(6, BORROW, _user(1)), _log(7, REPAY, _user(2))]
    )

    assert discover_users(node, POOL, 0, 10) == [_user(2), _user(1)]


def test_the_range_is_scanned_in_contiguous_chunks() -> None:
    node = FakeLogNode([])

    discover_users(node, POOL, 10, 34, chunk_size=10)

    assert node.ranges == [(10, 19), (20, 29), (30, 34)]


def test_a_refused_range_is_halved_until_the_node_accepts_it() -> None:
    logs = [_log(block, SUPPLY, _user(block + 1)) for block in range(0, 1000, 7)]
    node = FakeLogNode(logs, limit=100)

    users = discover_users(node, POOL, 0, 999, chunk_size=1000)

    assert node.refused[:4] == [(0, 999), (0, 499), (0, 249), (0, 124)]
    assert node.ranges[0] == (0, 61)
    assert all(last - first + 1 <= 62 for first, last in node.ranges)
    covered = [block for first, last in node.ranges for block in range(first, last + 1)]
    assert covered == list(range(1000))  # every block exactly once, in order
    assert users == [_user(block + 1) for block in range(0, 1000, 7)]


@pytest.mark.parametrize(
    "message",
    [
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
        "eth_getLogs is limited to a 10,000 range",
        "block range too large",
        "query timeout exceeded",
    ],
)
def test_provider_size_limit_messages_cause_halving(message: str) -> None:
    node = FakeLogNode([], limit=4, refusal=RpcError("eth_getLogs", message, -32602))

    discover_users(node, POOL, 0, 15, chunk_size=16)

    assert node.ranges == [(0, 3), (4, 7), (8, 11), (12, 15)]


def test_other_errors_are_raised_without_halving() -> None:
    node = FakeLogNode([], limit=1, refusal=RpcError("eth_getLogs", "invalid params", -32602))

    with pytest.raises(RpcError, match="invalid params"):
        discover_users(node, POOL, 0, 15, chunk_size=16)

    assert node.refused == [(0, 15)]


def test_an_unreachable_node_is_not_a_size_limit() -> None:
    node = FakeLogNode([], limit=1, refusal=RpcTransportError("eth_getLogs", "ReadTimeout"))

    with pytest.raises(RpcTransportError):
        discover_users(node, POOL, 0, 15, chunk_size=16)

    assert len(node.refused) == 1


def test_a_single_refused_block_raises() -> None:
    node = FakeLogNode([], limit=0)

    with pytest.raises(RpcError, match="more than 10000 results"):
        discover_users(node, POOL, 0, 3, chunk_size=4)

    assert node.refused == [(0, 3), (0, 1), (0, 0)]


@pytest.mark.parametrize(
    "log",
    [
        {"topics": []},
        {"topics": ["0x" + "99" * 32, _word(_user(1)), _word(_user(2))]},
        {"topics": [SUPPLY, _word(_user(1))]},  # onBehalfOf topic missing
        {"topics": [EMODE, "0x" + "ff" * 32]},  # not an address
        "not a log",
    ],
)
def test_a_malformed_log_is_garbage(log: Any) -> None:
    if isinstance(log, dict):
        log["blockNumber"] = "0x1"
    node = FakeLogNode([log] if isinstance(log, dict) else [])
    if not isinstance(log, dict):
        node.call = lambda method, params=(): [log]  # type: ignore[method-assign]

    with pytest.raises(RpcError, match="eth_getLogs"):
        discover_users(node, POOL, 0, 10)


def test_a_result_that_is_not_a_list_is_garbage() -> None:
    node = FakeLogNode([])
    node.call = lambda method, params=(): {"logs": []}  # type: ignore[method-assign]

    with pytest.raises(RpcError, match="not a list"):
        discover_users(node, POOL, 0, 10)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="bad scan"):
        discover_users(FakeLogNode([]), POOL, 10, 9)
    with pytest.raises(ValueError, match="bad scan"):
        discover_users(FakeLogNode([]), POOL, 0, 9, chunk_size=0)


def test_without_topics_every_event_of_the_address_is_asked_for() -> None:
    queries: list[dict[str, Any]] = []

    class Node:
        def call(self, method: str, params: Sequence[Any] = ()) -> Any:
            queries.append(params[0])
            return [{"address": POOL}]

    assert fetch_logs(Node(), POOL, None, 5, 6) == [{"address": POOL}]
    assert queries == [{"address": POOL, "fromBlock": "0x5", "toBlock": "0x6"}]
