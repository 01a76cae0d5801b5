"""hf-backfill: the most recent liquidations and each user's health factor then and now.

The prior ``hf-backfill`` computed only today's health factor of each liquidated user, which
says nothing about the liquidation. Here every result carries the user's exact health factor
at the block before the liquidation (what the liquidator saw) and at the latest block, both
from our exact math over state read at that block (an archive node, or the devnet).

:func:`recent_from_logs` walks the Pool's ``LiquidationCall`` logs backwards from the head in
windows until it has enough; :func:`backfill_document` builds the output file's document with
the prior system's keys (``timestamp``, ``recentCount``, ``totalUsers``, ``results`` of
``userId``, ``healthFactor``, ``healthFactorBefore``, ``block``, ``timestamp``, ``error``),
plus exact wad strings beside the decimal numbers.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from overlord.aave import AaveMathError
from overlord.aave.account import NO_DEBT_HEALTH_FACTOR
from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.logs import fetch_logs
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.tracker.logsource import block_timestamps, decode_liquidation_call
from overlord.tracker.ondemand import OnDemandHealth
from overlord.tracker.records import LiquidationRecord

WAD: Final = 10**18
DEFAULT_WINDOW: Final = 5_000
Progress = Callable[[int, int], None]


def recent_from_logs(
    client: JsonRpcClient,
    pool: str,
    count: int,
    head: int,
    *,
    floor: int = 0,
    window: int = DEFAULT_WINDOW,
    progress: Progress | None = None,
) -> list[LiquidationRecord]:
    """The ``count`` newest ``LiquidationCall``s of ``pool`` at or before ``head`` (and at or
    after ``floor``), newest first. ``progress(blocks scanned, blocks in all)``.

    Raises:
        RpcError: the node failed or a log is malformed.
    """
    found: list[LiquidationRecord] = []
    end = head
    while end >= floor and len(found) < count:
        start = max(floor, end - window + 1)
        logs = [
            log
            for log in fetch_logs(client, pool, [LIQUIDATION_CALL_TOPIC], start, end)
            if str(log.get("address", "")).lower() == pool.lower()
        ]
        stamps = block_timestamps(client, [int(log["blockNumber"], 16) for log in logs])
        found += [decode_liquidation_call(log, stamps[int(log["blockNumber"], 16)]) for log in logs]
        if progress is not None:
            progress(head - start + 1, head - floor + 1)
        end = start - 1
    found.sort(key=lambda record: (record.block_number or 0, record.log_index), reverse=True)
    return found[:count]


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """One liquidation's user with the health factor before it and now (wad; ``None`` when
    it could not be computed, with ``error`` saying why)."""

    record: LiquidationRecord
    block: int | None
    before: int | None
    now: int | None
    error: str | None = None


def health_then_and_now(
    health: OnDemandHealth, record: LiquidationRecord, latest: int
) -> BackfillResult:
    """``record``'s user at the block before the liquidation and at ``latest``; a failure
    is kept in the result, never raised."""
    block: int | None = record.block_number
    try:
        block = health.block_of(record)
        before = health.account_at(record.user, max(block - 1, 0)).health_factor
        now = health.account_at(record.user, latest).health_factor
    except (RpcError, AaveMathError) as exc:
        return BackfillResult(record, block, None, None, f"{type(exc).__name__}: {exc}")
    return BackfillResult(record, block, before, now)


def decimal_health_factor(wad: int | None) -> float | None:
    """A wad health factor as a JSON number (``None`` without debt or when unknown)."""
    if wad is None or wad == NO_DEBT_HEALTH_FACTOR:
        return None
    return float(Decimal(wad) / WAD)


def backfill_document(
    results: Sequence[BackfillResult], latest: int, now: datetime.datetime
) -> dict[str, Any]:
    """The ``hf-backfill-output.json`` document (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        row: dict[str, Any] = {
            "userId": result.record.user,
            "healthFactor": decimal_health_factor(result.now),
            "healthFactorBefore": decimal_health_factor(result.before),
            "healthFactorWad": None if result.now is None else str(result.now),
            "healthFactorBeforeWad": None if result.before is None else str(result.before),
            "block": result.block,
            "timestamp": result.record.timestamp,
            "liquidationId": result.record.id,
        }
        if result.error is not None:
            row["error"] = result.error
        rows.append(row)
    return {
        "timestamp": now.isoformat(),
        "recentCount": len(results),
        "totalUsers": len({result.record.user for result in results}),
        "latestBlock": latest,
        "results": rows,
    }
