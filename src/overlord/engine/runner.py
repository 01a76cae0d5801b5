"""The shell of ``overlord run``: sync, then for every block it is given process, plan, publish.

Which blocks, and when, is :mod:`overlord.engine.live`'s business. Both of its threads
publish through one runner (the socket is used under a lock). The
:class:`~overlord.engine.engine.Engine` stays pure of output concerns; the
:class:`Runner` turns its block reports into the outputs of the prior systems:
``UnderwaterUserEvent`` messages over ZMQ (each with the best liquidation sized exactly),
an ``hf-traces/<trace_id>.txt`` file per block with every confirmed candidate's exact
health factor, the ``init_hf_under_1_results_<date>.txt`` file after the initial scan,
one structured log line per block and a periodic stats line.
"""

from __future__ import annotations

import datetime
import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from overlord.aave import AccountData, Market
from overlord.engine.engine import BlockReport, Detection, Engine, SyncProgress
from overlord.engine.plans import CostModel, best_plan
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
    costs: CostModel = field(default_factory=CostModel)
    events: int = 0
    blocks: int = 0
    _sending: threading.Lock = field(default_factory=threading.Lock)
    _price_list: tuple[Market, dict[str, str], tuple[AssetPrice, ...]] | None = None

    def start(
        self,
        users: Sequence[str],
        block: int,
        progress: SyncProgress | None = None,
        *,
        block_hash: str | None = None,
    ) -> BlockReport:
        """Sync ``users`` at ``block``, write the initial-scan file, announce who is underwater.

        ``block_hash`` lets a reorg of the sync block itself be noticed."""
        read = self.engine.sync(users, block, progress)
        report = self.process(block, block_hash=block_hash)
        # The synced table lives as long as the process: move it out of the collector's
        # view. Otherwise every full collection walks it (60-90 ms with 10k users, measured
        # with gc.callbacks in the live benchmark) and stalls whichever path it lands on.
        gc.freeze()
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
        return report

    def process(
        self, block: int, *, block_hash: str | None = None, extra_users: Iterable[str] = ()
    ) -> BlockReport:
        """Process ``block`` and publish each detection the moment the engine confirms it
        (lowest health factor first), then write the block's trace and log line."""
        trace_id = new_trace_id()

        def publish(detection: Detection) -> None:
            state = self.engine.state
            assert state is not None  # set before the first detection is confirmed
            context = BlockContext(
                self.chain_id,
                self.engine.pool,
                state.market.version.value,
                detection.block_number,
                detection.block_timestamp,
            )
            accounts = {detection.address: detection.account}
            for event in self._build(
                accounts, context, trace_id, state.market, context.block_timestamp
            ):
                self._send(event)

        report = self.engine.process_block(
            block, block_hash=block_hash, on_detection=publish, extra_users=extra_users
        )
        self._record(report, trace_id)
        return report

    def _record(self, report: BlockReport, trace_id: str) -> None:
        for address in report.added_users:
            log.info(
                "new user seen in events", extra={"user": address, "block": report.block_number}
            )
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

    def emit_pending(
        self, detection: PendingDetection, cancelled: Callable[[], bool] | None = None
    ) -> list[UnderwaterUserEvent]:
        """Publish events for a pending feed update's newly underwater users.

        The events describe the predicted state: prices from the simulation, account data
        at the expected inclusion block's time, the plan sized on those, and the trigger
        (transaction hash, raw transaction, inclusion block). ``block_number`` is the
        processed block the prediction started from.

        ``cancelled`` is asked before each event: once it says so (the inclusion block has
        arrived, and the block path announces from the mined state), the rest are not sent,
        so the block path gets the CPU. The events already sent are returned.
        """
        state = self.engine.state
        assert state is not None  # a detection exists only for a synced engine
        context = BlockContext(
            self.chain_id,
            self.engine.pool,
            state.market.version.value,
            detection.base_block,
            detection.base_timestamp,
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
            ordered=True,
        ):
            self._send(event)  # each event leaves as soon as its plan is sized
            events.append(event)
            if cancelled is not None and cancelled():
                break
        log.info(
            "pending update evaluated",
            extra={
                "tx": detection.tx_hash,
                "events": len(events),
                "not_sent": len(detection.underwater) - len(events),
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
        *,
        ordered: bool = False,
    ) -> Iterator[UnderwaterUserEvent]:
        """One event per user (lowest health factor first, or in ``accounts``' own order
        when ``ordered``), with the market's prices and the best plan sized on them;
        lazily, so the first can be sent before the rest exist."""
        symbols, prices = self._prices_of(market)
        items = (
            iter(accounts.items())
            if ordered
            else iter(sorted(accounts.items(), key=lambda item: item[1].health_factor))
        )
        for address, account in items:
            with self.engine.lock:  # the price path reads while the block path may write
                index = self.engine.table.user_index(address)
                user = self.engine.table.account(index) if index is not None else None
            # The block path is the table's only writer, so ``account`` was confirmed from
            # exactly these positions and the plan can reuse it; on the price path the
            # block path may have written in between, so the plan computes its own.
            known = account if trigger is None else None
            plan = (
                best_plan(market, user, now, self.liquidator, known, self.costs) if user else None
            )
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
                    swap_cost_base=plan.swap_cost_base if plan else 0,
                    flash_loan_premium_base=plan.flash_loan_premium_base if plan else 0,
                    gas_cost_base=plan.gas_cost_base if plan else 0,
                    symbols=symbols,
                )
            )

    def _prices_of(self, market: Market) -> tuple[dict[str, str], tuple[AssetPrice, ...]]:
        """The symbols and the event's price list of ``market``, built once per market."""
        cached = self._price_list
        if cached is not None and cached[0] is market:
            return cached[1], cached[2]
        state = self.engine.state
        symbols = {t.asset: t.symbol for t in state.tokens.values()} if state else {}
        prices = tuple(
            AssetPrice(reserve=r.asset, symbol=symbols.get(r.asset, "")[:32], price=price)
            for r, price in ((r, market.prices[r.asset]) for r in market.reserves.values())
        )
        self._price_list = (market, symbols, prices)
        return symbols, prices

    def _send(self, event: UnderwaterUserEvent) -> None:
        # The block path and the price path both publish: one at a time through the socket.
        with self._sending:
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
