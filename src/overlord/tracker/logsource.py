"""The tracker's on-chain source: the Pool's ``LiquidationCall`` logs, block range by range.

The cursor is the last block scanned. A poll scans from the block after it to the node's
head minus ``confirmations`` (at most ``max_range`` blocks per poll, so a long downtime is
caught up in bounded steps), reads the timestamps of the blocks that hold liquidations
and returns the records with the new cursor. Without a cursor (a cold start) the scan
starts at ``start_block`` (default: the head) and ends at ``cold_until`` (default: the
head), and that first batch is the bootstrap batch. ``overlord run`` sets ``cold_until`` to
the block it synced at, so liquidations after the start are never in the bootstrap batch,
however late the first poll comes.

A log that is not a well-formed ``LiquidationCall`` of the Pool (wrong topic count,
non-zero address padding, short data, a ``receiveAToken`` word that is not 0 or 1) is an
:class:`~overlord.chain.rpc.RpcError`, never a made-up record: the poll fails, the cursor
stays, and the next poll reads the range again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.logs import fetch_logs
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.tracker.records import LiquidationRecord, Source, SourceBatch, record_id

_WORD: Final = re.compile(r"[0-9a-f]{64}")
_HASH: Final = re.compile(r"0x[0-9a-fA-F]{64}")


def _address_word(word: object, what: str) -> str:
    text = str(word).lower().removeprefix("0x")
    if not _WORD.fullmatch(text) or text[:24].strip("0"):
        raise RpcError("eth_getLogs", f"LiquidationCall {what} is not an address word: {word!r}")
    return "0x" + text[24:]


def _quantity(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError("eth_getLogs", f"LiquidationCall {what} is not a hex quantity: {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcError("eth_getLogs", f"LiquidationCall {what} is not hex: {value!r}") from None


def decode_liquidation_call(log: Mapping[str, Any], timestamp: int) -> LiquidationRecord:
    """The record of one ``LiquidationCall`` log (see the module docstring for the checks).

    Raises:
        RpcError: the log is not a well-formed ``LiquidationCall``.
    """
    topics = log.get("topics")
    if not isinstance(topics, list) or len(topics) != 4 or topics[0] != LIQUIDATION_CALL_TOPIC:
        raise RpcError("eth_getLogs", f"not a LiquidationCall log: topics {topics!r}")
    data = str(log.get("data", "")).lower().removeprefix("0x")
    words = [data[i : i + 64] for i in range(0, len(data), 64)]
    if len(words) != 4 or not all(_WORD.fullmatch(word) for word in words):
        raise RpcError("eth_getLogs", f"LiquidationCall data is not 4 words: {data[:300]!r}")
    receive = int(words[3], 16)
    if receive > 1:
        raise RpcError("eth_getLogs", f"LiquidationCall receiveAToken word is {receive}")
    tx_hash = log.get("transactionHash")
    if not isinstance(tx_hash, str) or not _HASH.fullmatch(tx_hash):
        raise RpcError("eth_getLogs", f"LiquidationCall without a transaction hash: {tx_hash!r}")
    log_index = _quantity(log.get("logIndex"), "logIndex")
    return LiquidationRecord(
        id=record_id(tx_hash, log_index),
        tx_hash=tx_hash.lower(),
        log_index=log_index,
        timestamp=timestamp,
        user=_address_word(topics[3], "user"),
        liquidator=_address_word(words[2], "liquidator"),
        collateral_asset=_address_word(topics[1], "collateral asset"),
        debt_asset=_address_word(topics[2], "debt asset"),
        debt_to_cover=int(words[0], 16),
        liquidated_collateral_amount=int(words[1], 16),
        source=Source.LOGS,
        block_number=_quantity(log.get("blockNumber"), "blockNumber"),
        receive_a_token=bool(receive),
    )


def block_timestamps(client: JsonRpcClient, blocks: Sequence[int]) -> dict[int, int]:
    """``{block: timestamp}`` for ``blocks``, in one batch.

    Raises:
        RpcError: a block is unknown to the node or its answer has no timestamp.
    """
    wanted = sorted(set(blocks))
    answers = client.batch([("eth_getBlockByNumber", [hex(block), False]) for block in wanted])
    stamps: dict[int, int] = {}
    for block, answer in zip(wanted, answers, strict=True):
        if not isinstance(answer, dict):
            raise RpcError("eth_getBlockByNumber", f"block {block} is unknown to the node")
        stamps[block] = _quantity(answer.get("timestamp"), f"block {block} timestamp")
    return stamps


RESCAN_BLOCKS = 64
"""Blocks before the cursor scanned again at every poll, for reorgs up to that deep."""


@dataclass
class LogSource:
    """``LiquidationCall`` logs of ``pool`` (see the module docstring)."""

    client: JsonRpcClient
    pool: str
    start_block: int | None = None
    confirmations: int = 0
    rescan_blocks: int = RESCAN_BLOCKS
    max_range: int = 10_000
    cold_until: int | None = None
    name: str = "logs"

    def head(self) -> int:
        """The newest block a poll may scan."""
        return max(_quantity(self.client.call("eth_blockNumber"), "head") - self.confirmations, 0)

    def poll(self, cursor: str | None) -> SourceBatch:
        """The liquidations after ``cursor`` (the last block scanned) up to the head.

        Raises:
            RpcError: the node failed or answered garbage; ``ValueError``: a bad cursor.
        """
        head = self.head()
        end = head
        if cursor is None:
            first = head if self.start_block is None else min(self.start_block, head)
            if self.cold_until is not None:
                end = min(self.cold_until, head)
                if end < first:
                    return SourceBatch((), str(end), True)
        else:
            # The last blocks are scanned again, even when the head has not moved: a reorg
            # may have replaced them with blocks holding other liquidations. The seen-set
            # drops the ones already delivered.
            first = max(int(cursor, 10) + 1 - self.rescan_blocks, 0)
            if first > head:
                return SourceBatch((), cursor, False)
        new_from = first if cursor is None else int(cursor, 10) + 1
        last = min(end, new_from + self.max_range - 1)
        logs = fetch_logs(self.client, self.pool, [LIQUIDATION_CALL_TOPIC], first, last)
        mine = [log for log in logs if str(log.get("address", "")).lower() == self.pool.lower()]
        stamps = block_timestamps(
            self.client, [_quantity(log.get("blockNumber"), "blockNumber") for log in mine]
        )
        records = tuple(
            decode_liquidation_call(log, stamps[int(log["blockNumber"], 16)]) for log in mine
        )
        return SourceBatch(records, str(last), cursor is None)

    def caught_up(self, cursor: str | None) -> bool:
        """Whether a poll from ``cursor`` would reach the head (no more steps to catch up)."""
        return cursor is not None and int(cursor, 10) >= self.head()
