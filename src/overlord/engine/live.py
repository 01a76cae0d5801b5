"""Live ingestion: the block path and the price path, each on its own thread.

Intake (one of):

* **WebSocket** (:class:`~overlord.chain.ws.WsSubscriber`): ``newHeads`` wakes the block
  path, ``logs`` (Pool, tokens, configurator) fill a :class:`LogBuffer`, and
  ``newPendingTransactions`` feeds the price path. After every (re)connection the
  subscriptions are live *before* the block path catches up from the last processed
  block, so nothing falls between.
* **HTTP polling**: a thread polls the head; the price path polls ``txpool_content``.

The block path (the calling thread of :meth:`LiveIngest.run`) takes the newest queued
head, checks it against the processed chain (:mod:`overlord.engine.follower`), rolls the
engine back on a reorg, and processes the head through the
:class:`~overlord.engine.runner.Runner`, which publishes every detection the moment it is
confirmed. A head covers every block since the last processed one (the engine reads the
logs of the whole range), so heads are coalesced and a gap is never a missed block.

Logs are read for each processed range with ``eth_getLogs`` (one request; the nodes'
pub-sub gives no order between a block's ``logs`` and its ``newHeads`` notifications, so
only a range query says a block's logs are complete). The subscription's logs are merged
in, deduplicated by (block hash, log index): a load-balanced provider whose ``eth_getLogs``
lands on a node a block behind then still names the users it missed. A log delivered with
``removed: true`` means a reorg: the block path checks the chain at once.

The price path (its own thread, its own JSON-RPC client) decodes pending transactions,
predicts and evaluates them and publishes, and never waits behind block processing: it
shares only the engine's lock, held for table writes and hypothetical evaluations.
Queues are bounded; what overflows is dropped with a warning naming the count (heads are
coalesced anyway; pending transactions are filtered to feed updates before queueing).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from overlord.chain.logs import USER_FIELDS, users_of
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.chain.ws import Connected, Disconnected, Notification, WsSubscriber
from overlord.engine.engine import BlockReport, position_log_sources
from overlord.engine.follower import Advance, Head, NodeChain, Reorg, parse_head, plan_head
from overlord.engine.runner import Runner
from overlord.engine.scout import PendingDetection, PriceScout

log = logging.getLogger("overlord.live")

CHECK: Final = "check"  # a block-path request: look at the node's head now
BACK_PRESSURE_LOG_EVERY: Final = 10.0  # seconds between two warnings of one kind
ClientFactory = Callable[[], JsonRpcClient]


@dataclass
class LiveSettings:
    """Queue bounds and timings (seconds)."""

    poll_interval: float = 1.0
    idle_check: float = 30.0  # no head for this long: ask the node (a silent subscription)
    head_queue: int = 64
    pending_queue: int = 1024
    retry_delay: float = 0.5  # after a node error on the block path


@dataclass
class LiveStats:
    """What the intake saw; read by tests, the stats line and the bench."""

    heads: int = 0
    processed: int = 0
    reorgs: int = 0
    orphaned_blocks: int = 0
    reconnects: int = 0
    malformed: int = 0
    dropped_heads: int = 0
    dropped_pending: int = 0
    pending_evaluated: int = 0
    subscription_logs: int = 0
    duplicate_logs: int = 0
    last_processed: int | None = None  # the last head whose processing has finished


class LogBuffer:
    """Logs pushed by the subscription, deduplicated by (block hash, log index).

    Thread-safe: the subscriber thread adds, the block path takes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, int], tuple[int, tuple[str, ...]]] = {}

    def add(self, entry: Mapping[str, Any]) -> bool:
        """Keep a log's users; ``False`` for a duplicate or a removed log (dropped).

        Raises:
            ValueError: the log lacks its block hash, number or index, or names no user
                where an event of the table must.
        """
        try:
            key = (str(entry["blockHash"]).lower(), int(str(entry["logIndex"]), 16))
            number = int(str(entry["blockNumber"]), 16)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"a subscription log without a valid {exc}") from None
        with self._lock:
            if entry.get("removed"):
                self._logs.pop(key, None)
                return False
            if key in self._logs:
                return False
            try:
                users = tuple(users_of(entry))
            except RpcError as exc:
                raise ValueError(str(exc)) from None
            self._logs[key] = (number, users)
            return True

    def users_through(self, number: int) -> set[str]:
        """Take the users of every log up to block ``number``."""
        with self._lock:
            due = [key for key, (block, _users) in self._logs.items() if block <= number]
            users = {user for key in due for user in self._logs.pop(key)[1]}
        return users


@dataclass
class LiveIngest:
    """Runs a synced :class:`Runner` live (see the module docstring).

    Args:
        runner: synced (``Runner.start`` done); its engine's client belongs to the block path.
        client_factory: a new JSON-RPC client (each thread gets its own).
        ws_url: subscribe over this WebSocket; ``None``: poll over HTTP.
        scout: the price path's scout, built on a client of its own; ``None``: none.
    """

    runner: Runner
    client_factory: ClientFactory
    ws_url: str | None = None
    scout: PriceScout | None = None
    settings: LiveSettings = field(default_factory=LiveSettings)
    on_block: Callable[[BlockReport], None] | None = None
    stats: LiveStats = field(default_factory=LiveStats)

    def __post_init__(self) -> None:
        self.heads: queue.Queue[Head | str] = queue.Queue(self.settings.head_queue)
        self.pending: queue.Queue[Mapping[str, Any] | str] = queue.Queue(
            self.settings.pending_queue
        )
        self.logs = LogBuffer()
        self._active_kinds: tuple[str, ...] = ()
        self._newest_head = -1  # the highest head number the intake has seen
        self._warned: dict[str, float] = {}  # back-pressure message -> when last logged
        self._threads: list[threading.Thread] = []
        self._subscriber: WsSubscriber | None = None

    # The whole thing.

    def run(self, stop: threading.Event, max_blocks: int | None = None) -> None:
        """Follow the chain until ``stop`` is set or ``max_blocks`` heads are processed."""
        halt = threading.Event()
        try:
            self._start_intake(halt)
            if self.scout is not None:
                self._spawn("price-path", self._price_path, halt)
            self._block_path(stop, halt, max_blocks)
        finally:
            halt.set()
            if self._subscriber is not None:
                self._subscriber.stop()
            for thread in self._threads:
                thread.join(timeout=5)

    def _spawn(
        self, name: str, target: Callable[[threading.Event], None], halt: threading.Event
    ) -> None:
        thread = threading.Thread(target=target, args=(halt,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def subscribed_kinds(self) -> tuple[str, ...]:
        """The WebSocket subscriptions active now (empty before the first connection)."""
        return self._active_kinds

    # Intake.

    def _start_intake(self, halt: threading.Event) -> None:
        if self.ws_url is None:
            self._spawn("head-poller", self._poll_heads, halt)
            return
        state = self.runner.engine.state
        assert state is not None, "the runner must be synced first"
        self._subscriber = WsSubscriber(
            self.ws_url,
            logs_filter={"address": position_log_sources(state), "topics": [sorted(USER_FIELDS)]},
            new_heads=True,
            pending=self.scout is not None,
            on_message=self._on_message,
        )
        self._subscriber.start()

    def _on_message(self, message: Connected | Disconnected | Notification) -> None:
        """On the subscriber thread: sort into the queues, nothing slow."""
        if isinstance(message, Connected):
            self._active_kinds = message.kinds
            if message.generation > 1:
                self.stats.reconnects += 1
            self._put_head(CHECK)  # subscribed: now catch up from the last processed block
        elif isinstance(message, Disconnected):
            log.warning("subscription lost, reconnecting", extra={"reason": message.reason})
        elif message.kind == "newHeads":
            try:
                self._put_head(parse_head(message.result))
                self.stats.heads += 1
            except ValueError as exc:
                self._malformed("newHeads", exc)
        elif message.kind == "logs":
            self._on_log(message.result)
        elif message.kind == "newPendingTransactions":
            self._on_pending(message.result)

    def _on_log(self, entry: object) -> None:
        if not isinstance(entry, dict):
            self._malformed("logs", ValueError(f"not an object: {str(entry)[:80]}"))
            return
        if entry.get("removed"):
            log.warning(
                "a log was removed: the chain reorganised",
                extra={"block": entry.get("blockNumber")},
            )
            self._put_head(CHECK)
        try:
            if self.logs.add(entry):
                self.stats.subscription_logs += 1
            elif not entry.get("removed"):
                self.stats.duplicate_logs += 1
        except ValueError as exc:
            self._malformed("logs", exc)

    def _on_pending(self, item: object) -> None:
        if isinstance(item, dict):
            if self.scout is not None and self.scout.is_update(item):
                self._put_pending(item)
        elif isinstance(item, str):
            self._put_pending(item)  # hashes only: the price path fetches the transaction
        else:
            self._malformed("newPendingTransactions", ValueError(f"{str(item)[:80]}"))

    def _malformed(self, kind: str, error: Exception) -> None:
        self.stats.malformed += 1
        log.warning("malformed notification ignored", extra={"kind": kind, "error": str(error)})

    def _put_head(self, item: Head | str) -> None:
        if isinstance(item, Head):
            self._newest_head = max(self._newest_head, item.number)
        while True:
            try:
                self.heads.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.heads.get_nowait()  # the oldest: a newer head covers its range
                except queue.Empty:
                    continue
                self.stats.dropped_heads += 1
                self._back_pressure("block path behind: oldest queued heads dropped")

    def _put_pending(self, item: Mapping[str, Any] | str) -> None:
        try:
            self.pending.put_nowait(item)
        except queue.Full:
            self.stats.dropped_pending += 1
            self._back_pressure("price path behind: pending transactions dropped")

    def _back_pressure(self, message: str) -> None:
        """One warning per ``BACK_PRESSURE_LOG_EVERY`` seconds per kind, with the totals."""
        now = time.monotonic()
        if now - self._warned.get(message, -BACK_PRESSURE_LOG_EVERY) < BACK_PRESSURE_LOG_EVERY:
            return
        self._warned[message] = now
        log.warning(
            message,
            extra={
                "dropped_heads": self.stats.dropped_heads,
                "dropped_pending": self.stats.dropped_pending,
            },
        )

    def _poll_heads(self, halt: threading.Event) -> None:
        """HTTP fallback: the node's head every ``poll_interval``."""
        with self.client_factory() as client:
            chain = NodeChain(client)
            seen: str | None = None
            while not halt.is_set():
                try:
                    head = chain.latest()
                except RpcError as exc:
                    log.warning("cannot read the head", extra={"error": str(exc)})
                else:
                    if head.block_hash != seen:
                        seen = head.block_hash
                        self.stats.heads += 1
                        self._put_head(head)
                halt.wait(self.settings.poll_interval)

    # The block path.

    def _block_path(
        self, stop: threading.Event, halt: threading.Event, max_blocks: int | None
    ) -> None:
        engine = self.runner.engine
        chain = NodeChain(engine.client)
        processed = 0
        while not stop.is_set() and (max_blocks is None or processed < max_blocks):
            head = self._next_head(stop)
            if head is None:
                continue
            try:
                if head == CHECK:
                    head = chain.latest()
                assert isinstance(head, Head)
                if self._process(head, chain):
                    processed += 1
            except RpcError as exc:
                log.warning("node error on the block path, retrying", extra={"error": str(exc)})
                stop.wait(self.settings.retry_delay)
                self._put_head(CHECK)

    def _next_head(self, stop: threading.Event) -> Head | str | None:
        """The newest queued head (the others are covered by its range), or CHECK."""
        deadline = time.monotonic() + self.settings.idle_check
        item: Head | str | None = None
        while item is None:
            if stop.is_set():
                return None
            try:
                item = self.heads.get(timeout=min(0.2, max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return CHECK
        check = item == CHECK
        while True:
            try:
                newer = self.heads.get_nowait()
            except queue.Empty:
                break
            check = check or newer == CHECK
            item = newer if newer != CHECK else item
        return CHECK if check else item

    def _process(self, head: Head, chain: NodeChain) -> bool:
        engine = self.runner.engine
        last = engine.last_block
        assert last is not None, "the runner must be synced first"
        plan = plan_head(engine.processed_hashes(), last, head, chain)
        if isinstance(plan, Reorg):
            forgotten = engine.rollback(plan.ancestor, everyone=plan.beyond_history)
            self.stats.reorgs += 1
            self.stats.orphaned_blocks += forgotten
            log.warning(
                "reorg: rolled back",
                extra={
                    "ancestor": plan.ancestor,
                    "depth": plan.depth,
                    "new_head": head.number,
                    "beyond_history": plan.beyond_history,
                },
            )
        elif not isinstance(plan, Advance):
            return False
        report = self.runner.process(
            head.number,
            block_hash=head.block_hash,
            extra_users=self.logs.users_through(head.number),
        )
        self.stats.processed += 1
        self.stats.last_processed = head.number
        if self.on_block is not None:
            self.on_block(report)
        return True

    # The price path.

    def _price_path(self, halt: threading.Event) -> None:
        scout = self.scout
        assert scout is not None
        checked_at = self.runner.engine.last_block
        while not halt.is_set():
            try:
                if "newPendingTransactions" not in self._active_kinds:
                    for detection in scout.poll():
                        self._emit(detection)
                    halt.wait(self.settings.poll_interval / 10)
                else:
                    self._next_pending(scout)
                if self.runner.engine.last_block != checked_at:
                    checked_at = self.runner.engine.last_block
                    scout.check_included()
            except RpcError as exc:
                log.warning("node error on the price path", extra={"error": str(exc)})
                halt.wait(self.settings.retry_delay)
            except Exception:
                # A bug must not silence the price path for the rest of the run.
                log.exception("unexpected error on the price path; it goes on")
                halt.wait(self.settings.retry_delay)

    def _next_pending(self, scout: PriceScout) -> None:
        try:
            item = self.pending.get(timeout=0.1)
        except queue.Empty:
            return
        try:
            transaction = (
                item
                if not isinstance(item, str)
                else scout.client.call("eth_getTransactionByHash", [item])
            )
        except RpcError as exc:
            log.warning("cannot fetch a pending transaction", extra={"tx": item, "error": str(exc)})
            return
        if not isinstance(transaction, dict):
            return  # mined or dropped meanwhile
        detection = scout.consider(transaction)
        if detection is not None:
            self._emit(detection)

    def _emit(self, detection: PendingDetection) -> None:
        """Publish, until the inclusion block's head arrives: from then on the block path
        announces from the mined state, and needs the CPU."""
        self.stats.pending_evaluated += 1
        self.runner.emit_pending(
            detection, cancelled=lambda: self._newest_head >= detection.inclusion_block
        )
