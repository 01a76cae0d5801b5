"""The live intake's pieces that need no node: the log buffer and the head queue."""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import pytest

from overlord.chain.abi import event_topic
from overlord.chain.ws import Connected, Notification
from overlord.engine.follower import Head
from overlord.engine.live import CHECK, LiveIngest, LiveSettings, LogBuffer
from overlord.engine.runner import Runner

SUPPLY = event_topic("Supply(address,address,address,uint256,uint16)")
USER = "0x" + "ab" * 20
BLOCK_HASH = "0x" + "11" * 32


def word(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


def supply_log(index: int = 0, block: int = 7, **changes: Any) -> dict[str, Any]:
    log = {
        "blockHash": BLOCK_HASH,
        "blockNumber": hex(block),
        "logIndex": hex(index),
        "topics": [SUPPLY, word("0x" + "cc" * 20), word(USER), "0x" + "00" * 31 + "01"],
        "data": "0x" + "00" * 64,
        "removed": False,
    }
    log.update(changes)
    return log


def head(number: int) -> Head:
    return Head(number, "0x" + f"{number:064x}", "0x" + f"{number - 1:064x}")


def live(**settings: Any) -> LiveIngest:
    # The intake's queues and handlers never touch the runner.
    return LiveIngest(cast(Runner, object()), lambda: None, settings=LiveSettings(**settings))  # type: ignore[arg-type, return-value]


def test_a_log_is_kept_once_and_taken_by_block() -> None:
    buffer = LogBuffer()
    assert buffer.add(supply_log(0, block=7))
    assert not buffer.add(supply_log(0, block=7))  # the same (block hash, log index)
    assert buffer.add(supply_log(1, block=9, blockHash="0x" + "22" * 32))

    assert buffer.users_through(8) == {USER}
    assert buffer.users_through(8) == set()  # taken
    assert buffer.users_through(9) == {USER}


def test_a_removed_log_is_dropped() -> None:
    buffer = LogBuffer()
    buffer.add(supply_log(3))
    assert not buffer.add(supply_log(3, removed=True))
    assert buffer.users_through(100) == set()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"blockHash": None}, "blockHash|logIndex|blockNumber|valid"),
        ({"logIndex": "zz"}, "valid"),
        ({"topics": ["0x" + "99" * 32]}, "unexpected log"),
    ],
)
def test_a_malformed_log_is_a_value_error(changes: dict[str, Any], problem: str) -> None:
    log = supply_log()
    log.update(changes)
    if changes.get("blockHash", "") is None:
        del log["blockHash"]
    with pytest.raises(ValueError, match=problem):
        LogBuffer().add(log)


def test_a_full_head_queue_drops_the_oldest_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ingest = live(head_queue=2)
    with caplog.at_level(logging.WARNING, logger="overlord.live"):
        for number in (5, 6, 7, 8, 9):
            ingest._put_head(head(number))

    assert ingest.stats.dropped_heads == 3
    assert [ingest.heads.get_nowait(), ingest.heads.get_nowait()] == [head(8), head(9)]
    assert [r.message for r in caplog.records] == ["block path behind: oldest queued heads dropped"]


def test_queued_heads_coalesce_to_the_newest_and_a_check_wins() -> None:
    stop = threading.Event()
    ingest = live()
    for number in (5, 6):
        ingest._put_head(head(number))
    assert ingest._next_head(stop) == head(6)

    ingest._put_head(head(7))
    ingest._put_head(CHECK)
    ingest._put_head(head(8))
    assert ingest._next_head(stop) == CHECK


def test_no_head_for_the_idle_time_asks_the_node() -> None:
    assert live(idle_check=0.01)._next_head(threading.Event()) == CHECK


def test_messages_are_sorted_and_garbage_is_counted() -> None:
    ingest = live()
    ingest._on_message(Connected(1, ("newHeads", "logs"), True))
    ingest._on_message(Notification("newHeads", {"number": "0x1"}, 0.0))
    ingest._on_message(Notification("logs", "not a log", 0.0))
    ingest._on_message(Notification("logs", supply_log(), 0.0))
    ingest._on_message(Notification("logs", supply_log(), 0.0))
    ingest._on_message(Notification("logs", supply_log(removed=True), 0.0))
    ingest._on_message(Connected(2, ("newHeads",), True))

    assert ingest.stats.malformed == 2
    assert (ingest.stats.subscription_logs, ingest.stats.duplicate_logs) == (1, 1)
    assert ingest.stats.reconnects == 1
    assert ingest.subscribed_kinds() == ("newHeads",)
    # Two connections and a removed log: three requests to check the node's head.
    queued = [ingest.heads.get_nowait() for _ in range(ingest.heads.qsize())]
    assert queued == [CHECK, CHECK, CHECK]
