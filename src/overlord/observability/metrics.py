"""Every metric Overlord exposes, on a registry owned by one :class:`Metrics` object.

Nothing is registered on ``prometheus_client``'s global default registry: tests, and two
engines in one process, each get their own names without colliding. An optional prefix (for
example ``"overlord_"``) is prepended to every name. Counters are exposed with the ``_total``
suffix (and ``prometheus_client``'s ``_created`` companion series).

Labelled series whose label values are known up front (``events_published{kind}``) start at
zero so they appear in the first scrape. RPC request and error counts are not kept here: the
RPC layer already counts them, and :meth:`Metrics.add_rpc_source` reads its counts at scrape
time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric

__all__ = ["EVENT_KINDS", "RESCREEN_BUCKETS", "Metrics", "RpcStats"]

_log = logging.getLogger(__name__)

_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

# Seconds: a rescreen takes from about 0.1 ms (a few touched users) to seconds (a full market).
RESCREEN_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

EVENT_KINDS = ("mined", "pending")

RpcStats = Callable[[], Mapping[str, tuple[int, int]]]
"""Returns ``{method: (requests, errors)}``, both cumulative since the process started."""


class Metrics:
    """Every metric Overlord exposes, on a registry of its own.

    Never the global default registry, so tests and two engines in one process do not collide.
    """

    def __init__(self, prefix: str = "") -> None:
        if prefix and not _PREFIX.fullmatch(prefix):
            raise ValueError(
                f"metric prefix {prefix!r} is not a valid Prometheus name prefix "
                "(it must match [a-zA-Z_:][a-zA-Z0-9_:]*)"
            )
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)

        # Liquidation tracker.
        self.liquidation_new_events = self._counter(
            "liquidation_new_events", "LiquidationCall events seen for the first time"
        )
        self.liquidation_snapshot_size = self._gauge(
            "liquidation_snapshot_size", "Liquidations in the tracker's latest snapshot"
        )
        self.liquidation_seen_total = self._gauge(
            "liquidation_seen_total", "Liquidations in the tracker's seen set (its size)"
        )
        self.liquidation_missed = self._counter(
            "liquidation_missed", "Liquidations of users we had not flagged, by reason", ("reason",)
        )
        self.tracker_poll_errors = self._counter(
            "tracker_poll_errors", "Failed polls of a liquidation source", ("source",)
        )

        # Engine.
        self.head_block = self._gauge("head_block", "Number of the latest block processed")
        self.head_lag_seconds = self._gauge(
            "head_lag_seconds", "Wall clock minus the head block's timestamp, in seconds"
        )
        self.rescreen_duration_seconds = Histogram(
            self._name("rescreen_duration_seconds"),
            "Time to rescreen the affected users after a change, in seconds",
            buckets=RESCREEN_BUCKETS,
            registry=self.registry,
        )
        self.users = self._gauge("users", "Borrowers tracked")
        self.underwater_users = self._gauge("underwater_users", "Borrowers with HF below 1")
        self.events_published = self._counter(
            "events_published", "Underwater events published, by kind", ("kind",)
        )
        for kind in EVENT_KINDS:
            self.events_published.labels(kind=kind)
        self.verifier_checks = self._counter(
            "verifier_checks", "Health factors checked against the Pool"
        )
        self.verifier_mismatches = self._counter(
            "verifier_mismatches", "Health factors that differed from the Pool's"
        )
        self.price_fallbacks = self._counter(
            "price_fallbacks", "Prices taken from a fallback layer, by layer", ("layer",)
        )
        self.sink_failures = self._counter(
            "sink_failures", "Events a sink failed to deliver, by sink", ("sink",)
        )
        self.sink_dropped = self._counter(
            "sink_dropped", "Events a sink dropped unsent (queue full or closing)", ("sink",)
        )
        self.state_save_errors = self._counter(
            "state_save_errors", "Blocks whose checkpoint write failed (kept for the next)"
        )
        self.state_checkpoint_block = self._gauge(
            "state_checkpoint_block", "Block of the engine's last saved checkpoint"
        )
        self.restart_seconds = self._gauge(
            "restart_seconds", "Seconds from start to live of the last warm restart"
        )
        self.reconcile_users_checked = self._counter(
            "reconcile_users_checked", "Users re-read from the node and compared with the cache"
        )
        self.reconcile_mismatches = self._counter(
            "reconcile_mismatches", "Users whose cached positions differed from the node's"
        )
        self.addresses_reloads = self._counter(
            "addresses_reloads", "Times the watched addresses file was read again"
        )
        self.config_reloads = self._counter(
            "config_reloads",
            "Configuration reloads (SIGHUP or a changed file), by outcome",
            ("outcome",),
        )
        self.rpc_failovers = self._gauge(
            "rpc_failovers", "Requests answered by another node than the first one tried"
        )
        self.rpc_endpoint_healthy = Gauge(
            self._name("rpc_endpoint_healthy"),
            "1 when the node is in service, 0 while it cools down after failures",
            ("endpoint",),
            registry=self.registry,
        )

    def add_rpc_source(self, stats: RpcStats) -> None:
        """Expose ``rpc_requests_total{method}`` and ``rpc_errors_total{method}`` from ``stats``.

        ``stats()`` is called at every scrape, from the scraping thread; it must be cheap and
        thread-safe. If it raises, the scrape goes on without RPC series (the error is logged).
        One source per :class:`Metrics`: a second call raises ``ValueError`` (duplicate names).
        """
        self.registry.register(_RpcCollector(self.prefix, stats))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def _name(self, name: str) -> str:
        return self.prefix + name

    def _counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self._name(name), documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(self._name(name), documentation, registry=self.registry)


class _RpcCollector:
    """Reads the RPC layer's cumulative counts at scrape time."""

    def __init__(self, prefix: str, stats: RpcStats) -> None:
        self._prefix = prefix
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        requests, errors = self._families()
        try:
            snapshot = dict(self._stats())
        except Exception:
            _log.exception("the RPC stats source raised; scraping without RPC series")
            return [requests, errors]
        for method, (sent, failed) in sorted(snapshot.items()):
            requests.add_metric([method], sent)
            errors.add_metric([method], failed)
        return [requests, errors]

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily]:
        labels = ["method"]
        return (
            CounterMetricFamily(
                f"{self._prefix}rpc_requests", "JSON-RPC requests sent, by method", labels=labels
            ),
            CounterMetricFamily(
                f"{self._prefix}rpc_errors",
                "JSON-RPC requests that failed, by method",
                labels=labels,
            ),
        )
