"""JSON-RPC over several endpoints: failover, cooldown and health scoring.

:class:`EndpointPool` holds the endpoints of one chain and their health, shared by every
thread of the process (one lock guards all of it). Each thread takes its own
:class:`FailoverClient` from :meth:`EndpointPool.client`: a drop-in
:class:`~overlord.chain.rpc.JsonRpcClient` (same methods, not thread-safe, one
``httpx`` connection pool per endpoint) that sends each request, a call or one batch
chunk of at most ``max_batch``, to the best endpoint, and on a retryable failure to the
next one, up to :attr:`FailoverSettings.attempts` tries with a jittered exponential
backoff between them.

What is retried (on another endpoint when one is healthy):

- :class:`~overlord.chain.rpc.RpcTransportError`: connect error, timeout, any non-200
  status; a 429's ``Retry-After`` (seconds) sets that endpoint's cooldown;
- :class:`~overlord.chain.rpc.RpcMalformedError`: an answer that is not JSON-RPC, a batch
  missing an id, an ``eth_blockNumber`` that is not a hex quantity;
- a node error answer saying the node lacks the block or state, or throttles us
  (:data:`RETRYABLE_MESSAGES`, code -32005), including one refusing a whole batch.

What is not: any other node error answer (execution reverted, invalid params...), raised
at once; the node answered, so its endpoint counts as healthy. In a batch, an error
answer to one request is part of a valid answer: :meth:`FailoverClient.batch_answers`
returns it, and a chunk is retried only when the chunk as a whole failed. When every
try fails, the last error is raised again (same class, code and data) with a message
saying how many tries were made on how many endpoints.

Choosing an endpoint: those not cooling down, the ones not yet tried for this request
first; among them, an endpoint whose last ``eth_blockNumber`` (in the last
:data:`HEAD_MEMORY_S`) lags the best head seen by more than ``max_lag_blocks`` comes
after the others, then the lowest cost (recent failures, decaying with a half-life of
:data:`FAILURE_HALF_LIFE_S`, at :data:`FAILURE_PENALTY_S` each, plus the latency EWMA),
then configuration order. An endpoint that fails sits out ``cooldown_s``, doubled for
each consecutive failure up to ``max_cooldown_s``. When all cool down, the one whose
cooldown ends first is tried: the pool never refuses a request.

Requests, by method, are counted in :data:`~overlord.chain.rpc.RPC_STATS` per try, as
the per-endpoint clients always have. URLs are only ever shown through
:func:`~overlord.chain.rpc.redact_url`, in messages, logs and :meth:`EndpointPool.health`.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self, TypeVar

from overlord.chain.rpc import (
    RPC_STATS,
    JsonRpcClient,
    JsonValue,
    RpcError,
    RpcMalformedError,
    RpcTransportError,
    redact_url,
)

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

RETRYABLE_MESSAGES = (
    "header not found",
    "unknown block",
    "missing trie node",
    "block not found",
    "rate limit",
)
"""Node error messages (lower case, matched as substrings) that mean try another node."""
LIMIT_EXCEEDED = -32005
"""EIP-1474's "limit exceeded": the node throttles us; another node may answer."""
FAILURE_PENALTY_S = 1.0
"""What one recent failure costs in the ranking, as seconds of latency."""
FAILURE_HALF_LIFE_S = 60.0
"""How fast failures are forgiven in the ranking."""
HEAD_MEMORY_S = 60.0
"""How long an endpoint's ``eth_blockNumber`` answer counts for lag, so that an endpoint
that lagged once is not ranked last for ever without being asked again."""
LATENCY_WEIGHT = 0.3
"""The weight of the newest sample in the latency EWMA."""
_HEX_QUANTITY = re.compile(r"0x[0-9a-fA-F]+")


@dataclass(frozen=True)
class FailoverSettings:
    """How an :class:`EndpointPool` tries, waits and ranks (times in seconds).

    Attributes:
        timeout_s: The HTTP timeout of one try.
        attempts: Tries per request (a call or one batch chunk), over all endpoints.
        backoff_s: The backoff before the second try; it doubles for each further try,
            up to ``max_backoff_s``, and the sleep is drawn uniformly below it.
        max_backoff_s: The longest backoff.
        cooldown_s: How long an endpoint sits out after a failure; doubled for each
            consecutive failure, up to ``max_cooldown_s``.
        max_cooldown_s: The longest cooldown, a ``Retry-After`` included.
        rate_limit_per_s: Requests per second per endpoint (a token bucket holding
            ``max(1, rate)``); None for no limit.
        max_lag_blocks: How far behind the best head an endpoint may be and still rank
            with the others.
        max_batch: The largest batch chunk, one HTTP round trip.
    """

    timeout_s: float = 10.0
    attempts: int = 3
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    cooldown_s: float = 5.0
    max_cooldown_s: float = 60.0
    rate_limit_per_s: float | None = None
    max_lag_blocks: int = 5
    max_batch: int = 500

    def __post_init__(self) -> None:
        rate = self.rate_limit_per_s
        checks = (
            ("timeout_s", _number(self.timeout_s) and self.timeout_s > 0, "a positive number"),
            ("attempts", _integer(self.attempts) and self.attempts >= 1, "an integer ≥ 1"),
            ("backoff_s", _number(self.backoff_s) and self.backoff_s >= 0, "a number ≥ 0"),
            (
                "max_backoff_s",
                _number(self.max_backoff_s) and self.max_backoff_s >= self.backoff_s,
                "a number ≥ backoff_s",
            ),
            ("cooldown_s", _number(self.cooldown_s) and self.cooldown_s >= 0, "a number ≥ 0"),
            (
                "max_cooldown_s",
                _number(self.max_cooldown_s) and self.max_cooldown_s >= self.cooldown_s,
                "a number ≥ cooldown_s",
            ),
            (
                "rate_limit_per_s",
                rate is None or (_number(rate) and rate > 0),
                "None or a positive number",
            ),
            (
                "max_lag_blocks",
                _integer(self.max_lag_blocks) and self.max_lag_blocks >= 0,
                "an integer ≥ 0",
            ),
            ("max_batch", _integer(self.max_batch) and self.max_batch >= 1, "an integer ≥ 1"),
        )
        for name, ok, requirement in checks:
            if not ok:
                value = getattr(self, name)
                raise ValueError(f"FailoverSettings.{name} must be {requirement}, not {value!r}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class EndpointHealth:
    """One endpoint's health as of :meth:`EndpointPool.health`.

    Attributes:
        url: The redacted URL (see :func:`~overlord.chain.rpc.redact_url`).
        score: In (0, 1], higher is better: ``1 / (1 + cost)``, the cost being recent
            failures and latency as the ranking sees them (lag aside).
        successes: Tries answered, node error answers that are not retried included.
        failures: Tries that failed in a way that is retried.
        consecutive_failures: Failures since the last success.
        latency_s: The latency EWMA of answered tries; None before the first.
        cooling: Whether the endpoint sits out now.
        cooling_for_s: How much longer it sits out (0 when not cooling).
        last_error: The last failure's message, URL redacted; None if it never failed.
        head_block: The last ``eth_blockNumber`` it answered; None if never asked.
        lag_blocks: How far that head is behind the best head seen; None if never asked.
        lagging: Whether it ranks after the others for its lag now.
        throttled: Requests that waited for the rate limit.
    """

    url: str
    score: float
    successes: int
    failures: int
    consecutive_failures: int
    latency_s: float | None
    cooling: bool
    cooling_for_s: float
    last_error: str | None
    head_block: int | None
    lag_blocks: int | None
    lagging: bool
    throttled: int


@dataclass
class _Endpoint:
    url: str
    tokens: float
    refilled_at: float
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    recent_failures: float = 0.0  # decayed; as of ``failed_at``
    failed_at: float = 0.0
    latency_s: float | None = None
    cooling_until: float = -math.inf
    last_error: str | None = None
    head: int | None = None
    head_at: float = -math.inf
    throttled: int = 0


def is_retryable(error: RpcError) -> bool:
    """Whether another try, on another endpoint, may get an answer where ``error`` came."""
    if isinstance(error, RpcTransportError | RpcMalformedError):
        return True
    if error.code == LIMIT_EXCEEDED:
        return True
    message = error.message.lower()
    return any(text in message for text in RETRYABLE_MESSAGES)


class EndpointPool:
    """The endpoints of one chain and their health; thread-safe, one per process.

    Args:
        urls: The endpoints, best first (ties in the ranking go to the earlier one).
        settings: Tries, backoff, cooldown, rate limit, lag tolerance, batch size.
        clock: Monotonic seconds, for cooldowns, latency and the rate limit.
        sleep: Sleeps between tries and for the rate limit.
        rng: Draws the backoff jitter.

    Raises:
        ValueError: no URL, or the same URL twice.
    """

    def __init__(
        self,
        urls: Sequence[str],
        settings: FailoverSettings = FailoverSettings(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(urls, str) or not urls:
            raise ValueError("an endpoint pool needs at least one RPC URL")
        if len(set(urls)) != len(urls):
            raise ValueError("the RPC URLs of an endpoint pool must differ")
        self.urls: tuple[str, ...] = tuple(urls)
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._lock = threading.Lock()
        now = clock()
        capacity = self._capacity()
        self._endpoints = [_Endpoint(url, capacity, now) for url in self.urls]
        self._best_head: int | None = None
        self._failovers = 0
        self._retries = 0

    def __repr__(self) -> str:
        return f"EndpointPool({', '.join(redact_url(url) for url in self.urls)})"

    @property
    def failovers(self) -> int:
        """Requests answered by another endpoint than the first one tried."""
        with self._lock:
            return self._failovers

    @property
    def retries(self) -> int:
        """Tries after the first, over all requests."""
        with self._lock:
            return self._retries

    def client(self) -> FailoverClient:
        """A client for the calling thread (close it when done)."""
        return FailoverClient(self)

    def health(self) -> list[EndpointHealth]:
        """Every endpoint's health, in configuration order."""
        with self._lock:
            now = self._clock()
            return [self._health(endpoint, now) for endpoint in self._endpoints]

    def _health(self, endpoint: _Endpoint, now: float) -> EndpointHealth:
        lag = None
        if endpoint.head is not None and self._best_head is not None:
            lag = self._best_head - endpoint.head
        return EndpointHealth(
            url=redact_url(endpoint.url),
            score=1.0 / (1.0 + self._cost(endpoint, now)),
            successes=endpoint.successes,
            failures=endpoint.failures,
            consecutive_failures=endpoint.consecutive_failures,
            latency_s=endpoint.latency_s,
            cooling=endpoint.cooling_until > now,
            cooling_for_s=max(0.0, endpoint.cooling_until - now),
            last_error=endpoint.last_error,
            head_block=endpoint.head,
            lag_blocks=lag,
            lagging=self._lagging(endpoint, now),
            throttled=endpoint.throttled,
        )

    # Ranking; callers hold the lock.

    def _capacity(self) -> float:
        rate = self.settings.rate_limit_per_s
        return max(1.0, rate) if rate is not None else math.inf

    def _cost(self, endpoint: _Endpoint, now: float) -> float:
        # An endpoint never measured is as slow as the slowest one measured, so the order
        # of configuration holds until there is something to go by.
        latency = endpoint.latency_s
        if latency is None:
            known = [e.latency_s for e in self._endpoints if e.latency_s is not None]
            latency = max(known, default=0.0)
        failures = _decayed(endpoint.recent_failures, endpoint.failed_at, now)
        return failures * FAILURE_PENALTY_S + latency

    def _lagging(self, endpoint: _Endpoint, now: float) -> bool:
        return (
            endpoint.head is not None
            and self._best_head is not None
            and now - endpoint.head_at <= HEAD_MEMORY_S
            and self._best_head - endpoint.head > self.settings.max_lag_blocks
        )

    # What a client calls.

    def _choose(self, tried: set[int]) -> int:
        with self._lock:
            now = self._clock()
            ready = [i for i, e in enumerate(self._endpoints) if e.cooling_until <= now]
            candidates = [i for i in ready if i not in tried] or ready
            if not candidates:
                return min(
                    range(len(self._endpoints)),
                    key=lambda i: (self._endpoints[i].cooling_until, i),
                )
            return min(
                candidates,
                key=lambda i: (
                    self._lagging(self._endpoints[i], now),
                    self._cost(self._endpoints[i], now),
                    i,
                ),
            )

    def _throttle(self, index: int) -> None:
        rate = self.settings.rate_limit_per_s
        if rate is None:
            return
        counted = False
        while True:
            with self._lock:
                endpoint = self._endpoints[index]
                now = self._clock()
                elapsed = max(0.0, now - endpoint.refilled_at)
                endpoint.tokens = min(self._capacity(), endpoint.tokens + elapsed * rate)
                endpoint.refilled_at = now
                if endpoint.tokens >= 1.0:
                    endpoint.tokens -= 1.0
                    return
                if not counted:
                    endpoint.throttled += 1
                    counted = True
                wait = (1.0 - endpoint.tokens) / rate
            self._sleep(wait)

    def _backoff(self, retry: int) -> None:
        """Sleep before try ``retry + 1`` (full jitter) and count the retry."""
        ceiling = min(self.settings.max_backoff_s, self.settings.backoff_s * 2 ** (retry - 1))
        with self._lock:
            self._retries += 1
            delay = self._rng.uniform(0.0, ceiling)
        if delay > 0:
            self._sleep(delay)

    def _succeeded(self, index: int, latency_s: float, head: int | None, *, failover: bool) -> None:
        with self._lock:
            endpoint = self._endpoints[index]
            endpoint.successes += 1
            endpoint.consecutive_failures = 0
            endpoint.cooling_until = -math.inf
            latency_s = max(0.0, latency_s)
            if endpoint.latency_s is None:
                endpoint.latency_s = latency_s
            else:
                endpoint.latency_s += LATENCY_WEIGHT * (latency_s - endpoint.latency_s)
            if head is not None:
                endpoint.head = head
                endpoint.head_at = self._clock()
                self._best_head = max(head, self._best_head or 0)
            if failover:
                self._failovers += 1

    def _failed(self, index: int, error: RpcError) -> None:
        with self._lock:
            endpoint = self._endpoints[index]
            now = self._clock()
            endpoint.recent_failures = (
                _decayed(endpoint.recent_failures, endpoint.failed_at, now) + 1.0
            )
            endpoint.failed_at = now
            endpoint.failures += 1
            endpoint.consecutive_failures += 1
            endpoint.last_error = str(error).replace(endpoint.url, redact_url(endpoint.url))
            cooldown = self.settings.cooldown_s * 2 ** (endpoint.consecutive_failures - 1)
            retry_after = error.retry_after_s if isinstance(error, RpcTransportError) else None
            if retry_after is not None:
                cooldown = retry_after
            cooldown = min(cooldown, self.settings.max_cooldown_s)
            endpoint.cooling_until = now + cooldown
            message = endpoint.last_error
        _log.warning(
            "RPC endpoint %d (%s) sits out %.1f s: %s",
            index + 1,
            redact_url(endpoint.url),
            cooldown,
            message,
        )


class FailoverClient(JsonRpcClient):
    """A :class:`~overlord.chain.rpc.JsonRpcClient` over an :class:`EndpointPool`.

    Not thread-safe: one per thread, from :meth:`EndpointPool.client`. ``url`` is the
    pool's first URL, for code that shows it (redacted).
    """

    # Deliberately not calling JsonRpcClient.__init__: this client has no HTTP pool of
    # its own, only one JsonRpcClient per endpoint, made on first use.
    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.url = pool.urls[0]
        self.max_batch = pool.settings.max_batch
        self._clients: dict[int, JsonRpcClient] = {}

    def __repr__(self) -> str:
        return f"FailoverClient({self.pool!r})"

    def __enter__(self) -> Self:
        return self

    def close(self) -> None:
        """Close every endpoint's HTTP connection pool."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    def call(self, method: str, params: Sequence[JsonValue] = ()) -> JsonValue:
        """One request, failing over; returns its ``result`` or raises :class:`RpcError`."""

        def send(client: JsonRpcClient) -> tuple[JsonValue, int | None]:
            result = client.call(method, params)
            head = _head(method, result) if method == "eth_blockNumber" else None
            return result, head

        return self._failover(send)

    def batch_answers(
        self, requests: Sequence[tuple[str, Sequence[JsonValue]]]
    ) -> list[dict[str, JsonValue]]:
        """The raw answer objects of ``requests``, in order, error objects included.

        Each chunk of at most ``max_batch`` fails over on its own, and only when the
        chunk as a whole failed (see the module docstring).

        Raises:
            RpcError: a chunk failed on every try, or the node refused it with an error
                that is not retried.
        """
        answers: list[dict[str, JsonValue]] = []
        for start in range(0, len(requests), self.max_batch):
            chunk = requests[start : start + self.max_batch]

            def send(
                client: JsonRpcClient, chunk: Sequence[tuple[str, Sequence[JsonValue]]] = chunk
            ) -> tuple[list[dict[str, JsonValue]], int | None]:
                got = client.batch_answers(chunk)
                heads = [
                    _head(method, answer["result"])
                    for (method, _params), answer in zip(chunk, got, strict=True)
                    if method == "eth_blockNumber" and "result" in answer
                ]
                return got, max(heads, default=None)

            answers += self._failover(send)
        return answers

    def _client(self, index: int) -> JsonRpcClient:
        client = self._clients.get(index)
        if client is None:
            client = JsonRpcClient(
                self.pool.urls[index],
                timeout=self.pool.settings.timeout_s,
                max_batch=self.pool.settings.max_batch,
            )
            self._clients[index] = client
        return client

    def _failover(self, send: Callable[[JsonRpcClient], tuple[_T, int | None]]) -> _T:
        pool = self.pool
        tried: list[int] = []
        last: RpcError | None = None
        for attempt in range(pool.settings.attempts):
            if attempt:
                pool._backoff(attempt)
            index = pool._choose(set(tried))
            tried.append(index)
            pool._throttle(index)
            started = pool._clock()
            try:
                value, head = send(self._client(index))
            except RpcError as exc:
                if not is_retryable(exc):
                    # The node answered, and would answer the same anywhere: healthy.
                    pool._succeeded(
                        index, pool._clock() - started, None, failover=index != tried[0]
                    )
                    raise
                pool._failed(index, exc)
                last = exc
                continue
            pool._succeeded(index, pool._clock() - started, head, failover=index != tried[0])
            return value
        assert last is not None  # attempts >= 1, and every try that did not return failed
        raise _exhausted(last, len(tried), len(set(tried))) from last


def _decayed(count: float, since: float, now: float) -> float:
    """``count`` failures as of ``since``, forgiven by half every FAILURE_HALF_LIFE_S."""
    return count * math.exp(-math.log(2) * max(0.0, now - since) / FAILURE_HALF_LIFE_S)


def _head(method: str, result: JsonValue) -> int:
    """The block number an ``eth_blockNumber`` answered, or :class:`RpcMalformedError`."""
    if not isinstance(result, str) or not _HEX_QUANTITY.fullmatch(result):
        # The client counted this answer as a success; it was not.
        RPC_STATS.record(method, requests=0, errors=1)
        raise RpcMalformedError(method, f"not a block number: {str(result)[:80]!r}")
    return int(result, 16)


def _exhausted(last: RpcError, tries: int, endpoints: int) -> RpcError:
    """``last`` again, its message saying how hard we tried."""
    plural = "s" if endpoints != 1 else ""
    message = f"{last.message} (last of {tries} tries on {endpoints} endpoint{plural})"
    if isinstance(last, RpcTransportError):
        return RpcTransportError(
            last.method,
            message,
            last.code,
            last.data,
            status=last.status,
            retry_after_s=last.retry_after_s,
        )
    return type(last)(last.method, message, last.code, last.data)
