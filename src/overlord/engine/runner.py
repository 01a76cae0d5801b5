"""The shell of ``overlord run``: sync, then for every new block process, plan, publish.

The :class:`~overlord.engine.engine.Engine` stays pure of output concerns; the
:class:`Runner` turns its block reports into the outputs of the prior systems:
``UnderwaterUserEvent`` messages over ZMQ (each with the best liquidation sized exactly),
an ``hf-traces/<trace_id>.txt`` file per block with every confirmed candidate's exact
health factor, the ``init_hf_under_1_results_<date>.txt`` file after the initial scan,
one structured log line per block and a periodic stats line.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from overlord.aave import AccountData, Market
from overlord.chain.rpc import RpcError
from overlord.engine.engine import BlockReport, Engine, SyncProgress
from overlord.engine.plans import best_plan
from overlord.engine.positions import BORROWING, COLLATERAL
from overlord.engine.scout import PendingDetection
from overlord.outputs.events import (
    AssetPrice,
    BlockContext,
    PendingTrigger,
    UnderwaterUserEvent,
    event_from,
)
from overlord.outputs.publisher import EventPublisher
from overlord.outputs.traces import new_trace_id, write_init_results, write_trace

log = logging.getLogger("overlord.run")
STATS_EVERY_BLOCKS = 20


@dataclass
class Runner:
    """Runs one engine against its node and emits what it finds."""

    engine: Engine
    chain_id: int
    publisher: EventPublisher | None = None
    output_dir: Path | None = None
    liquidator: str | None = None
    on_event: Callable[[UnderwaterUserEvent], None] | None = None
    events: int = 0
    blocks: int = 0
    _symbols: dict[str, str] = field(default_factory=dict)

    def start(
        self, users: Sequence[str], block: int, progress: SyncProgress | None = None
    ) -> BlockReport:
        """Sync ``users`` at ``block``, write the initial-scan file, announce who is underwater."""
        read = self.engine.sync(users, block, progress)
        report = self.engine.process_block(block)
        log.info(
            "initial sync done",
            extra={"users": read, "block": block, "underwater_users": len(report.underwater)},
        )
        if self.output_dir is not None:
            lines = [
                (address, account.health_factor) for address, account in report.underwater.items()
            ]
            moment = datetime.datetime.fromtimestamp(report.block_timestamp, tz=datetime.UTC).date()
            write_init_results(self.output_dir, moment, sorted(lines))
        self._emit(report)
        return report

    def poll(self) -> BlockReport | None:
        """Process the node's head if it moved; ``None`` when there is no new block."""
        head = int(self.engine.client.call("eth_blockNumber"), 16)
        if self.engine.last_block is not None and head <= self.engine.last_block:
            return None
        report = self.engine.process_block(head)
        self._emit(report)
        return report

    def _emit(self, report: BlockReport) -> None:
        trace_id = new_trace_id()
        for address in report.added_users:
            log.info(
                "new user seen in events", extra={"user": address, "block": report.block_number}
            )
        for event in self._events(report, trace_id):
            self._send(event)
        if self.output_dir is not None and report.candidates:
            write_trace(self.output_dir, trace_id, sorted(report.candidates.items()))
        self.blocks += 1
        log.info(
            "block processed",
            extra={
                "block": report.block_number,
                "elapsed_ms": round(report.elapsed_ms, 2),
                "affected_users": report.touched,
                "added_users": report.added,
                "confirmed": report.confirmed,
                "underwater_users": len(report.underwater),
                "detections": len(report.detections),
                "trace_id": trace_id,
            },
        )
        if self.blocks % STATS_EVERY_BLOCKS == 1:
            self.log_stats()

    def _events(self, report: BlockReport, trace_id: str) -> Iterator[UnderwaterUserEvent]:
        state = self.engine.state
        if state is None or not report.detections:
            return iter(())
        context = BlockContext(
            self.chain_id,
            self.engine.pool,
            state.market.version.value,
            report.block_number,
            report.block_timestamp,
        )
        accounts = {d.address: d.account for d in report.detections}
        return self._build(accounts, context, trace_id, state.market, report.block_timestamp)

    def emit_pending(self, detection: PendingDetection) -> list[UnderwaterUserEvent]:
        """Publish events for a pending feed update's newly underwater users.

        The events describe the predicted state: prices from the simulation, account data
        at the expected inclusion block's time, the plan sized on those, and the trigger
        (transaction hash, raw transaction, inclusion block). ``block_number`` is the last
        processed block the prediction starts from.
        """
        state = self.engine.state
        if state is None or not detection.underwater:
            return []
        context = BlockContext(
            self.chain_id,
            self.engine.pool,
            state.market.version.value,
            state.block_number,
            state.block_timestamp,
        )
        trigger = PendingTrigger(detection.tx_hash, detection.raw_tx, detection.inclusion_block)
        events = []
        for event in self._build(
            detection.underwater,
            context,
            new_trace_id(),
            detection.market,
            detection.timestamp,
            trigger,
        ):
            self._send(event)  # each event leaves as soon as its plan is sized
            events.append(event)
        log.info(
            "pending update evaluated",
            extra={
                "tx": detection.tx_hash,
                "events": len(events),
                "inclusion_block": detection.inclusion_block,
            },
        )
        return events

    def _build(
        self,
        accounts: Mapping[str, AccountData],
        context: BlockContext,
        trace_id: str,
        market: Market,
        now: int,
        trigger: PendingTrigger | None = None,
    ) -> Iterator[UnderwaterUserEvent]:
        """One event per user (lowest health factor first), with the market's prices and
        the best plan sized on them; lazily, so the first can be sent before the rest exist."""
        state = self.engine.state
        symbols = {t.asset: t.symbol for t in state.tokens.values()} if state else {}
        prices = tuple(
            AssetPrice(reserve=asset, symbol=symbols.get(asset, "")[:32], price=price)
            for asset, price in (
                (r.asset, market.prices[r.asset]) for r in market.reserves.values()
            )
        )
        for address, account in sorted(accounts.items(), key=lambda item: item[1].health_factor):
            index = self.engine.table.user_index(address)
            user = self.engine.table.account(index) if index is not None else None
            plan = best_plan(market, user, now, self.liquidator) if user else None
            yield (
                event_from(
                    address,
                    account,
                    context,
                    trace_id,
                    prices=prices,
                    pending=trigger,
                    liquidation=plan.liquidation if plan else None,
                    estimated_gross_profit_base=plan.gross_gain_base if plan else None,
                    symbols=symbols,
                )
            )

    def _send(self, event: UnderwaterUserEvent) -> None:
        if self.publisher is not None:
            self.publisher.publish(event)
        if self.on_event is not None:
            self.on_event(event)
        self.events += 1

    def log_stats(self) -> None:
        """The periodic stats line: users, positions, the most used reserves by user count."""
        table, state = self.engine.table, self.engine.state
        symbols = {rid: t.symbol for rid, t in state.tokens.items()} if state else {}

        def top(flag: int) -> str:
            counts = table.users_per_reserve(BORROWING if flag == 1 else COLLATERAL)
            ranked = sorted(counts.items(), key=lambda item: -item[1])[:3]
            return ", ".join(f"{symbols.get(r, r)}:{n}" for r, n in ranked)

        log.info(
            "stats",
            extra={
                "users": table.users,
                "positions": table.live_rows,
                "most_borrowed": top(1),
                "most_collateral": top(2),
                "events_published": self.events,
            },
        )


def poll_safely(runner: Runner) -> BlockReport | None:
    """:meth:`Runner.poll`, logging (not raising) a node error so the loop goes on."""
    try:
        return runner.poll()
    except RpcError as exc:
        log.warning("node error, retrying next poll", extra={"error": str(exc)})
        return None
