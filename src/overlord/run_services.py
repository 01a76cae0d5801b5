"""The services beside the engine in ``overlord run``: tracker, verifier, metrics, sinks.

:class:`RunServices` is built before the initial sync and closed after the run:

- ``/metrics``, ``/health`` and ``/ready`` (:class:`~overlord.observability.server.
  ObservabilityServer`, loopback by default) start first, so ``/ready`` answers 503 for
  the whole sync;
- :meth:`RunServices.on_event` (every published ``UnderwaterUserEvent``) marks the user as
  flagged for the tracker's verdicts, counts it, and sends opportunities worth at least
  ``PROFIT_MIN_USD`` to the notification sinks;
- :meth:`RunServices.on_block` (every processed block) updates the engine metrics, tells
  the watchlist which users joined, and wakes the verifier sampler;
- :meth:`RunServices.synced` (after the sync) starts the liquidation tracker and the
  sampler, each on its own thread with its own node client, and flips readiness.

Each service is isolated: a failing tracker poll, sampler check or sink is logged and
counted and never stops the engine.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from overlord import __version__
from overlord.chain.failover import EndpointPool
from overlord.chain.rpc import RPC_STATS, JsonRpcClient
from overlord.config import Config
from overlord.engine.addresses_watch import AddressesWatcher
from overlord.engine.engine import BlockReport, Engine
from overlord.engine.reconcile import Reconciler
from overlord.engine.verifier import HealthFactorVerifier, VerifierSampler
from overlord.observability.metrics import Metrics
from overlord.observability.server import ObservabilityServer
from overlord.observability.sinks import Sink, Sinks, WebhookSink
from overlord.outputs.events import UnderwaterUserEvent, encode_event
from overlord.outputs.publisher import EventPublisher, SocketKind
from overlord.tracker.attribution import Watchlist
from overlord.tracker.logsource import LogSource
from overlord.tracker.ondemand import OnDemandHealth
from overlord.tracker.store import TrackerStore
from overlord.tracker.subgraph import SubgraphSettings, SubgraphSource
from overlord.tracker.tracker import (
    LiquidationSource,
    LiquidationTracker,
    TrackedLiquidation,
    TrackerSettings,
)
from overlord.verify import load_addresses_file

log = logging.getLogger("overlord.run")
LIQUIDATION_TOPIC = "liquidation"
ClientFactory = Callable[[], JsonRpcClient]


def liquidations_endpoint(config: Config) -> str:
    """The tracker's PUB endpoint: configured, else an ipc socket in the data directory."""
    configured = config.output.liquidations_endpoint
    if configured is not None:
        return configured
    return f"ipc://{(config.output.data_dir / 'overlord-liquidations.ipc').resolve()}"


class RunServices:
    """See the module docstring."""

    def __init__(
        self,
        config: Config,
        pool: str,
        new_client: ClientFactory,
        *,
        base_currency_unit: int = 10**8,
        endpoints: EndpointPool | None = None,
    ) -> None:
        self.config = config
        self.endpoints = endpoints
        self.pool = pool
        self.new_client = new_client
        self.started_at = time.time()
        self.min_profit_base = int(config.profit.min_usd * base_currency_unit)
        self.metrics = Metrics(config.http.metrics_prefix)
        self.metrics.add_rpc_source(RPC_STATS.snapshot)
        self.watchlist = Watchlist()
        self.ready = threading.Event()
        self.stop_event = threading.Event()
        self.engine: Engine | None = None
        self.tracker: LiquidationTracker | None = None
        self.sampler: VerifierSampler | None = None
        self.reconciler: Reconciler | None = None
        self.watcher: AddressesWatcher | None = None
        self._store_errors_seen = 0
        self._reconciled_seen = 0
        self._reloads_seen = 0
        self.last_block: BlockReport | None = None
        self._threads: list[threading.Thread] = []
        self._clients: list[JsonRpcClient] = []
        self._store: TrackerStore | None = None
        self.server: ObservabilityServer | None = None
        self.liquidations = EventPublisher(
            liquidations_endpoint(config), kind=SocketKind.PUB, topic=LIQUIDATION_TOPIC
        )
        self.sinks = Sinks(self._sinks(), self.metrics)
        if config.http.enabled:
            server = ObservabilityServer(
                self.metrics,
                self.health,
                self.ready.is_set,
                host=config.http.host,
                port=config.http.port,
            )
            try:
                server.start()
            except OSError:
                self.close()
                raise
            self.server = server
            log.info("http endpoints up", extra={"url": server.url})

    def _sinks(self) -> Sequence[Sink]:
        url = self.config.notify.webhook_url
        if url is None:
            return ()
        return (WebhookSink(url.reveal(), metrics=self.metrics),)

    # Hooks from the engine's threads.

    def on_event(self, event: UnderwaterUserEvent) -> None:
        """Every published event: flag the user, count it, notify an opportunity."""
        self.watchlist.flagged(event.address.lower(), event.block_number)
        kind = "pending" if event.tx_hash is not None else "mined"
        self.metrics.events_published.labels(kind=kind).inc()
        plan = event.liquidation_plan
        if plan is not None and plan.estimated_net_profit_base >= self.min_profit_base:
            self.sinks.send("opportunity.new", json.loads(encode_event(event)))

    def on_block(self, report: BlockReport) -> None:
        """Every processed block: engine metrics, new users, a verifier sample."""
        self.last_block = report
        self.watchlist.known(report.added_users, report.block_number)
        metrics = self.metrics
        metrics.head_block.set(report.block_number)
        metrics.head_lag_seconds.set(time.time() - report.block_timestamp)
        metrics.rescreen_duration_seconds.observe(report.elapsed_ms / 1000)
        metrics.underwater_users.set(len(report.underwater))
        if self.engine is not None:
            metrics.users.set(self.engine.table.users)
            self._state_metrics(self.engine, report.block_number)
        self._guard_metrics()
        if self.sampler is not None:
            self.sampler.offer()

    def _guard_metrics(self) -> None:
        """Counters of the background guards (reconciler, watcher) and the nodes' health."""
        metrics = self.metrics
        if self.reconciler is not None:
            checked = self.reconciler.users_checked
            metrics.reconcile_users_checked.inc(checked - self._reconciled_seen)
            self._reconciled_seen = checked
        if self.watcher is not None:
            metrics.addresses_reloads.inc(self.watcher.reloads - self._reloads_seen)
            self._reloads_seen = self.watcher.reloads
        if self.endpoints is not None:
            metrics.rpc_failovers.set(self.endpoints.failovers)
            for endpoint in self.endpoints.health():
                healthy = 0 if endpoint.cooling else 1
                metrics.rpc_endpoint_healthy.labels(endpoint=endpoint.url).set(healthy)

    def _state_metrics(self, engine: Engine, block: int) -> None:
        """The checkpoint's block while writes succeed; failed writes counted once each."""
        failed = engine.store_errors - self._store_errors_seen
        if failed:
            self.metrics.state_save_errors.inc(failed)
            self._store_errors_seen = engine.store_errors
        if engine.store is not None and engine.store.pending == 0:
            self.metrics.state_checkpoint_block.set(block)

    def synced(self, engine: Engine, users: Sequence[str], block: int, data_dir: Path) -> None:
        """The initial sync is done: start the tracker and the sampler, then be ready."""
        self.engine = engine
        self.watchlist.started(users, block)
        self.metrics.users.set(engine.table.users)
        self.metrics.head_block.set(block)
        if self.config.tracker.enabled:
            self._start_tracker(block, data_dir)
        if self.config.verifier.sample_users_per_block > 0:
            verifier = HealthFactorVerifier(
                self._client(),
                self.pool,
                tolerance=self.config.verifier.tolerance_wad,
                debug_errors=self.config.tracker.subgraph_debug_errors,
                dump_dir=data_dir,
                metrics=self.metrics,
            )
            self.sampler = VerifierSampler(
                engine, verifier, self.config.verifier.sample_users_per_block
            )
            self.sampler.start()
        self._start_guards(engine)
        self.ready.set()

    def add_thread(self, thread: threading.Thread) -> None:
        """A thread of the run's that :meth:`close` joins (it watches ``stop_event``)."""
        self._threads.append(thread)

    def _start_guards(self, engine: Engine) -> None:
        """The background reconciliation and the addresses file watch, as configured."""
        state = self.config.state
        addresses = self.config.users.addresses_file
        if addresses is not None and state.watch_addresses_s > 0:
            listed, _problems = load_addresses_file(addresses)  # shown at the start already
            self.watcher = AddressesWatcher(
                addresses, engine, interval_s=state.watch_addresses_s, initial=listed
            )
            self._threads.append(self.watcher.start(self.stop_event))
        if state.reconcile_interval_s > 0:
            watcher = self.watcher
            self.reconciler = Reconciler(
                engine,
                self._client,
                interval_s=state.reconcile_interval_s,
                chunk=self.config.chain.batch_size,
                on_mismatch=lambda _mismatch: self.metrics.reconcile_mismatches.inc(),
                dropped=watcher.dropped_users if watcher is not None else None,
            )
            self._threads.append(self.reconciler.start(self.stop_event))

    def verify_now(self, count: int) -> tuple[int, list[str]]:
        """Check ``count`` random users of the synced engine against the Pool now (after a
        warm restart, before going live), with the sampler's verifier or a new one;
        the number checked and the users that disagree."""
        if self.engine is None or count <= 0:
            return 0, []
        sampler = self.sampler or VerifierSampler(
            self.engine,
            HealthFactorVerifier(
                self._client(),
                self.pool,
                tolerance=self.config.verifier.tolerance_wad,
                metrics=self.metrics,
            ),
            count,
        )
        checks = sampler.sample(count)
        return len(checks), [c.user for c in checks if not sampler.verifier.agrees(c)]

    def _client(self) -> JsonRpcClient:
        client = self.new_client()
        self._clients.append(client)
        return client

    def _source(self, block: int) -> LiquidationSource:
        tracker = self.config.tracker
        if tracker.source == "subgraph":
            if tracker.subgraph_url is None:
                raise ValueError("tracker.source = subgraph needs SUBGRAPH_URL")
            return SubgraphSource(
                SubgraphSettings(
                    url=tracker.subgraph_url.reveal(),
                    api_key=(
                        tracker.subgraph_api_key.reveal()
                        if tracker.subgraph_api_key is not None
                        else None
                    ),
                    poll_limit=tracker.poll_limit,
                    debug_errors=tracker.subgraph_debug_errors,
                )
            )
        start = tracker.from_block if tracker.from_block is not None else block
        return LogSource(
            self._client(),
            self.pool,
            start_block=start,
            confirmations=tracker.confirmations,
            cold_until=block,
        )

    def _start_tracker(self, block: int, data_dir: Path) -> None:
        settings = self.config.tracker
        self._store = TrackerStore.in_dir(data_dir)
        health = (
            OnDemandHealth(self._client(), self.pool) if settings.on_demand_health_factor else None
        )
        self.tracker = LiquidationTracker(
            self._source(block),
            self._store,
            TrackerSettings(
                ignore_bootstrap_batch=settings.ignore_bootstrap_batch,
                poll_interval_s=settings.poll_interval_s,
                min_collateral_base=self.config.detection.min_collateral_base,
            ),
            health=health,
            watchlist=self.watchlist,
            deliver=self._deliver_liquidation,
            metrics=self.metrics,
        )
        self.metrics.liquidation_seen_total.set(self._store.seen_total())
        thread = threading.Thread(
            target=self.tracker.run, args=(self.stop_event,), name="tracker", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _deliver_liquidation(self, item: TrackedLiquidation) -> None:
        document = item.to_document()
        self.liquidations.send_bytes(json.dumps(document).encode())
        self.sinks.send("liquidation.new", document)

    # Health.

    def health(self) -> dict[str, Any]:
        """The ``/health`` document (see docs/observability.md)."""
        report = self.last_block
        engine = self.engine
        tracker = self.tracker
        synced = self.ready.is_set()
        return {
            "status": "ok" if synced else "syncing",
            "version": __version__,
            "uptimeSeconds": round(time.time() - self.started_at, 3),
            "head": {
                "block": None if report is None else report.block_number,
                "lagSeconds": None
                if report is None
                else round(time.time() - report.block_timestamp, 3),
            },
            "liquidationTracker": {
                "enabled": tracker is not None,
                "source": self.config.tracker.source,
                "seenTotal": self._store.seen_total() if self._store is not None else 0,
                "pollLimit": self.config.tracker.poll_limit,
                "polls": 0 if tracker is None else tracker.polls,
                "failedPolls": 0 if tracker is None else tracker.failures,
                "delivered": 0 if tracker is None else tracker.delivered,
                "notFlagged": {} if tracker is None else dict(tracker.missed),
            },
            "onDemandHealthFactor": tracker is not None and tracker.health is not None,
            "engine": {
                "synced": synced,
                "users": 0 if engine is None else engine.table.users,
                "underwaterUsers": 0 if engine is None else len(engine.underwater),
                "lastBlock": None if engine is None else engine.last_block,
            },
            "verifier": {
                "checks": 0 if self.sampler is None else self.sampler.verifier.checks,
                "mismatches": 0 if self.sampler is None else self.sampler.verifier.mismatches,
            },
            "state": {
                "enabled": engine is not None and engine.store is not None,
                "saveErrors": 0 if engine is None else engine.store_errors,
                "pending": 0 if engine is None or engine.store is None else engine.store.pending,
            },
            "reconcile": None
            if self.reconciler is None
            else {
                "rounds": self.reconciler.rounds,
                "usersChecked": self.reconciler.users_checked,
                "mismatches": self.reconciler.mismatches,
                "errors": self.reconciler.errors,
            },
            "rpcEndpoints": None
            if self.endpoints is None
            else [
                {
                    "url": e.url,
                    "healthy": not e.cooling,
                    "failures": e.failures,
                    "lagBlocks": e.lag_blocks,
                }
                for e in self.endpoints.health()
            ],
        }

    def close(self) -> None:
        """Stop every service (threads joined, sockets and clients closed)."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.sampler is not None:
            self.sampler.stop()
        self.sinks.close()
        self.liquidations.close()
        if self.server is not None:
            self.server.stop()
        if self._store is not None:
            self._store.close()
        for client in self._clients:
            client.close()

    def __enter__(self) -> RunServices:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
