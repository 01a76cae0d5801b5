"""The liquidation tracker: new liquidations, exactly once in the seen-set, at least once out.

One :meth:`LiquidationTracker.poll`:

1. asks the source for the records after its persisted cursor;
2. keeps those not in the persisted seen-set (delta detection);
3. on the first batch after a cold start (no cursor yet) with ``ignore_bootstrap_batch``,
   only fills the seen-set and logs ``bootstrap batch ignored (N events suppressed)``; no
   health factor is computed for them (the prior system queried first, then discarded);
4. otherwise, for each new record: the user's exact account data at the block before and
   at the block of the liquidation (:class:`~overlord.tracker.ondemand.OnDemandHealth`),
   the :class:`~overlord.tracker.attribution.Verdict` (did the engine flag the user first,
   and if not, why), then delivery to ``deliver`` (the ZMQ socket and notification sinks);
5. commits the new records and the cursor in one transaction, after delivery, so a crash
   re-delivers rather than loses.

A failure to read one user's health factor is attached to that liquidation as ``error``
and never stops the others. :meth:`LiquidationTracker.run` polls until stopped; a failed
poll (node or subgraph down) is logged and counted, the cursor stays, and the next poll
retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from overlord.aave import AaveMathError, AccountData
from overlord.aave.account import ACCOUNT_DATA_KEYS
from overlord.chain.rpc import RpcError
from overlord.observability.metrics import Metrics
from overlord.tracker.attribution import Verdict, Watchlist, attribute
from overlord.tracker.ondemand import OnDemandHealth
from overlord.tracker.records import LiquidationRecord, SourceBatch
from overlord.tracker.store import TrackerStore

log = logging.getLogger("overlord.tracker")


class LiquidationSource(Protocol):
    """Where liquidations come from: the Pool's logs or the subgraph."""

    @property
    def name(self) -> str:
        """The cursor's key in the store."""
        ...

    def poll(self, cursor: str | None) -> SourceBatch:
        """The records after ``cursor`` and the next cursor."""
        ...


@dataclass(frozen=True, slots=True)
class TrackedLiquidation:
    """A new liquidation with the user's account data around it and the verdict."""

    record: LiquidationRecord
    block: int | None
    before: AccountData | None
    after: AccountData | None
    verdict: Verdict
    error: str | None = None

    def to_document(self) -> dict[str, Any]:
        """The JSON document published and sent to sinks (amounts as decimal strings)."""

        def account(data: AccountData | None) -> dict[str, str] | None:
            if data is None:
                return None
            return dict(zip(ACCOUNT_DATA_KEYS, map(str, data.as_tuple()), strict=True))

        return {
            "type": "liquidation",
            "liquidation": self.record.to_document(),
            "block": self.block,
            "account_before": account(self.before),
            "account_after": account(self.after),
            "health_factor_before": None if self.before is None else str(self.before.health_factor),
            "health_factor_after": None if self.after is None else str(self.after.health_factor),
            "verdict": self.verdict.value,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one poll did."""

    new: tuple[TrackedLiquidation, ...]
    suppressed: int
    snapshot_size: int
    seen_total: int
    bootstrap: bool


@dataclass
class TrackerSettings:
    """``min_collateral_base`` is the engine's threshold, for the verdicts."""

    ignore_bootstrap_batch: bool = True
    poll_interval_s: float = 2.0
    min_collateral_base: int = 0


@dataclass
class LiquidationTracker:
    """Polls one source into the store (see the module docstring)."""

    source: LiquidationSource
    store: TrackerStore
    settings: TrackerSettings = field(default_factory=TrackerSettings)
    health: OnDemandHealth | None = None
    watchlist: Watchlist | None = None
    deliver: Callable[[TrackedLiquidation], None] | None = None
    metrics: Metrics | None = None
    polls: int = 0
    failures: int = 0
    delivered: int = 0
    missed: dict[str, int] = field(default_factory=dict)

    def poll(self) -> PollReport:
        """One poll (see the module docstring).

        Raises:
            RpcError, SubgraphError, TrackerStoreError: the source or the store failed;
                nothing was committed.
        """
        cursor = self.store.cursor(self.source.name)
        batch = self.source.poll(cursor)
        fresh = self.store.unseen(batch.records)
        bootstrap = batch.cold and self.settings.ignore_bootstrap_batch
        tracked: tuple[TrackedLiquidation, ...] = ()
        if bootstrap:
            if fresh:
                log.info(f"bootstrap batch ignored ({len(fresh)} events suppressed)")
        else:
            tracked = tuple(self._track(record) for record in fresh)
            for item in tracked:
                self._deliver(item)
        self.store.commit(self.source.name, batch.cursor, fresh, suppressed=bootstrap)
        self.polls += 1
        report = PollReport(
            new=tracked,
            suppressed=len(fresh) if bootstrap else 0,
            snapshot_size=len(batch.records),
            seen_total=self.store.seen_total(),
            bootstrap=bootstrap,
        )
        self._count(report)
        return report

    def _track(self, record: LiquidationRecord) -> TrackedLiquidation:
        block = record.block_number
        before = after = None
        error = None
        if self.health is not None:
            try:
                around = self.health.around(record)
                block, before, after = around.block, around.before, around.after
            except (RpcError, AaveMathError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "health factor around a liquidation unavailable",
                    extra={"liquidation": record.id, "user": record.user, "error": error},
                )
        verdict = (
            attribute(self.watchlist, record.user, block, before, self.settings.min_collateral_base)
            if self.watchlist is not None and block is not None
            else Verdict.UNKNOWN
        )
        return TrackedLiquidation(record, block, before, after, verdict, error)

    def _deliver(self, item: TrackedLiquidation) -> None:
        record = item.record
        fields = {
            "liquidation": record.id,
            "user": record.user,
            "block": item.block,
            "health_factor_before": None if item.before is None else item.before.health_factor,
            "verdict": item.verdict.value,
        }
        if item.verdict is Verdict.FLAGGED:
            log.info("liquidation of a user we flagged", extra=fields)
        else:
            self.missed[item.verdict.value] = self.missed.get(item.verdict.value, 0) + 1
            log.warning(
                f"liquidation of a user we did not flag: {item.verdict.value}", extra=fields
            )
        if self.deliver is not None:
            self.deliver(item)
        self.delivered += 1

    def _count(self, report: PollReport) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.liquidation_new_events.inc(len(report.new))
        metrics.liquidation_snapshot_size.set(report.snapshot_size)
        metrics.liquidation_seen_total.set(report.seen_total)
        for item in report.new:
            if item.verdict is not Verdict.FLAGGED:
                metrics.liquidation_missed.labels(reason=item.verdict.value).inc()

    def run(self, stop: threading.Event) -> None:
        """Poll every ``poll_interval_s`` until ``stop`` is set; failures are logged, counted
        and retried at the next poll, never raised."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # one failed poll (node, subgraph, store) never ends tracking
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.tracker_poll_errors.labels(source=self.source.name).inc()
                log.warning(
                    "liquidation poll failed",
                    extra={"source": self.source.name, "error": f"{type(exc).__name__}: {exc}"},
                )
            stop.wait(self.settings.poll_interval_s)
