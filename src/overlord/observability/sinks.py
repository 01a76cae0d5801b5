"""Outbound event sinks: webhook delivery off the caller's thread, and a fan-out.

A :class:`Sink` never raises into its caller and never blocks it. :class:`WebhookSink` POSTs
``{"type": kind, "data": payload, "sent_at": <unix seconds, float>}`` as JSON from its own
worker thread, fed by a bounded queue:

- a full queue drops its **oldest** event to make room (counted in ``sink_dropped{sink}``,
  warned about at most every 10 s);
- a non-2xx answer or a transport error is retried ``retries`` times with exponential backoff
  (``retry_base_s``, then twice that, …); after the last attempt the event is counted in
  ``sink_failures{sink}``, logged (the URL redacted: it may hold a token) and the worker moves on;
- :meth:`WebhookSink.close` delivers what is queued, for up to ``timeout`` seconds; what is
  still queued then is dropped (and counted).

Payloads are serialized by :func:`json.dumps` when :meth:`WebhookSink.send` is called, so later
changes to the caller's objects do not leak into the event. Integers are written exactly as
Python writes them, as JSON numbers of any size: amounts above 2**53 keep every digit on the
wire, and a consumer that parses numbers as doubles (JavaScript's ``JSON.parse``) will round
them. Nested mappings are written as objects, tuples as arrays, ``bytes`` as ``0x`` hex;
anything else JSON cannot encode fails the event (counted and logged), not the caller.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from overlord.chain.rpc import redact_url
from overlord.observability.metrics import Metrics

__all__ = ["Sink", "SinkStats", "Sinks", "WebhookSink"]

_log = logging.getLogger(__name__)

DROP_WARNING_INTERVAL_S = 10.0


class Sink(Protocol):
    """Somewhere events go. ``send`` must never raise and never block the caller."""

    name: str

    def send(self, kind: str, payload: Mapping[str, Any]) -> None: ...

    def close(self, timeout: float = 5.0) -> None: ...


@dataclass(frozen=True)
class SinkStats:
    """Events delivered, failed after every retry, and dropped unsent, since the sink started."""

    delivered: int
    failed: int
    dropped: int


@dataclass(frozen=True)
class _Event:
    kind: str
    data: str  # the payload, already JSON


class WebhookSink:
    """JSON POST of every event to a URL, from its own worker thread and bounded queue."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        timeout_s: float = 5.0,
        retries: int = 3,
        retry_base_s: float = 0.5,
        queue_size: int = 1000,
        metrics: Metrics | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        if retries < 0 or queue_size < 1 or timeout_s <= 0 or retry_base_s < 0:
            raise ValueError(
                "WebhookSink needs retries >= 0, queue_size >= 1, timeout_s > 0, retry_base_s >= 0"
            )
        self.name = name
        self.url = url
        self._timeout_s = timeout_s
        self._retries = retries
        self._retry_base_s = retry_base_s
        self._metrics = metrics
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_s)
        self._queue: collections.deque[_Event] = collections.deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._closing = False
        self._abort = threading.Event()
        self._delivered = self._failed = self._dropped = 0
        self._last_drop_warning: float | None = None
        if metrics is not None:  # the series exist, at zero, from the first scrape
            metrics.sink_failures.labels(sink=name)
            metrics.sink_dropped.labels(sink=name)
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r}, {redact_url(self.url)})"

    @property
    def stats(self) -> SinkStats:
        with self._cond:
            return SinkStats(self._delivered, self._failed, self._dropped)

    def send(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Queue one event; returns at once. Never raises."""
        try:
            event = _Event(kind, json.dumps(payload, default=_jsonable))
        except Exception:
            _log.exception("sink %s: event %r cannot be serialized; not sent", self.name, kind)
            self._count_failure()
            return
        with self._cond:
            if self._closing:
                self._drop_locked(1, "closed")
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._drop_locked(1, "queue full, oldest event dropped")
            self._queue.append(event)
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for up to ``timeout`` seconds), then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()  # no more retries, no more events
            with self._cond:
                self._drop_locked(len(self._queue), "closing timed out")
                self._queue.clear()
            self._thread.join(self._timeout_s + 1.0)  # an in-flight POST ends by its timeout
        if self._thread.is_alive():
            _log.warning("sink %s: worker still busy after close; abandoning it", self.name)
        elif self._owns_http:
            self._http.close()

    def _run(self) -> None:
        while (event := self._next()) is not None:
            try:
                delivered = self._deliver(event)
            except Exception:  # a bug here must not kill the worker
                _log.exception("sink %s: unexpected error delivering %r", self.name, event.kind)
                delivered = False
            if delivered:
                with self._cond:
                    self._delivered += 1
            else:
                self._count_failure()

    def _next(self) -> _Event | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._queue and not self._abort.is_set():
                return self._queue.popleft()
            return None

    def _deliver(self, event: _Event) -> bool:
        error, attempts = "", 0
        for attempt in range(self._retries + 1):
            if attempt and self._abort.wait(self._retry_base_s * 2 ** (attempt - 1)):
                break
            attempts += 1
            error = self._post(event)
            if not error:
                return True
        _log.warning(
            "sink %s: %r not delivered to %s after %d attempt(s): %s",
            self.name,
            event.kind,
            redact_url(self.url),
            attempts,
            error,
        )
        return False

    def _post(self, event: _Event) -> str:
        """POST once; an empty string on a 2xx answer, else what went wrong."""
        kind, sent_at = json.dumps(event.kind), repr(time.time())
        body = f'{{"type": {kind}, "data": {event.data}, "sent_at": {sent_at}}}'
        try:
            response = self._http.post(
                self.url,
                content=body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as exc:
            message = str(exc).replace(self.url, redact_url(self.url))
            return f"{type(exc).__name__}: {message}"
        if response.is_success:
            return ""
        return f"HTTP {response.status_code}"

    def _count_failure(self) -> None:
        with self._cond:
            self._failed += 1
        if self._metrics is not None:
            self._metrics.sink_failures.labels(sink=self.name).inc()

    def _drop_locked(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self._dropped += count
        if self._metrics is not None:
            self._metrics.sink_dropped.labels(sink=self.name).inc(count)
        now = time.monotonic()
        last = self._last_drop_warning
        if last is None or now - last >= DROP_WARNING_INTERVAL_S:
            self._last_drop_warning = now
            _log.warning(
                "sink %s: dropping events (%s); %d dropped so far", self.name, why, self._dropped
            )


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class Sinks:
    """Fan-out to several sinks.

    One sink raising (a bug) is caught, counted in ``sink_failures{sink}`` and logged, and never
    reaches the caller or the other sinks.
    """

    def __init__(self, sinks: Sequence[Sink], metrics: Metrics | None = None) -> None:
        self.sinks = tuple(sinks)
        self._metrics = metrics

    def send(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Hand the event to every sink, in order."""
        for sink in self.sinks:
            try:
                sink.send(kind, payload)
            except Exception:
                _log.exception("sink %s raised on send of %r", _name(sink), kind)
                if self._metrics is not None:
                    self._metrics.sink_failures.labels(sink=_name(sink)).inc()

    def close(self, timeout: float = 5.0) -> None:
        """Close every sink (each gets up to ``timeout`` seconds); errors are logged."""
        for sink in self.sinks:
            try:
                sink.close(timeout)
            except Exception:
                _log.exception("sink %s raised on close", _name(sink))


def _name(sink: Sink) -> str:
    return str(getattr(sink, "name", type(sink).__name__))
