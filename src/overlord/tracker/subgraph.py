"""The Aave v3 subgraph source of the liquidation tracker: ``liquidationCalls``, none lost.

A :class:`SubgraphSource` polls the subgraph's ``liquidationCalls`` entity over GraphQL
(POST JSON ``{"query", "variables"}``) and turns each entity into a
:class:`~overlord.tracker.records.LiquidationRecord`.

Why the pagination matters
--------------------------
LiquidBot asked for the newest ``POLL_LIMIT`` (5) liquidations every interval and kept
no cursor, so a sixth liquidation in one interval was lost for good. This source keeps a
cursor, the largest ``timestamp`` it has seen, and reads *everything* from there:

* **Cold start** (no cursor): one request, newest first
  (``orderBy: timestamp, orderDirection: desc, first: poll_limit``). The batch is marked
  ``cold`` and its cursor is the newest timestamp (``"0"`` when there is none), so the
  next poll continues from now instead of replaying history.
* **Every later poll** from cursor ``T``: keyset pagination in ascending order,
  ``where: {timestamp_gte: since}, orderBy: timestamp, orderDirection: asc, first, skip``,
  starting at ``since = T, skip = 0``. After a full page whose last timestamp is ``L``:
  if ``L == since`` the whole page shared one timestamp, so ``skip += first``; otherwise
  ``since = L`` and ``skip`` = the number of records of the page at ``L`` (they were read
  already). A short page ends the poll. The new cursor is the largest timestamp read
  (``T`` when nothing was read).

  The Graph's ``orderBy`` takes one field, and block timestamps are not unique (several
  liquidations per block, several blocks per second on L2s), so a cursor of "strictly
  after ``T``" would lose a liquidation indexed at ``T`` after the previous poll read
  ``T``. Every poll therefore re-reads the records at ``T`` (``timestamp_gte``); those
  repeats are expected, and the tracker's seen-set removes them. Ties inside a poll are
  walked with ``skip``, which counts only records at one timestamp, so it stays small.

Limits, stated rather than hidden:

* The Graph caps ``skip`` at 5000. More than 5000 liquidations at *one* timestamp cannot
  be paged this way; the poll then fails with :class:`SubgraphError` (it never skips).
* A poll reads at most ``max_pages`` pages; reaching that logs a warning and returns what
  was read, with a cursor from which the next poll resumes (nothing is lost).
* The pages of one poll are separate queries, not one snapshot. Since the subgraph
  indexes blocks in order, a liquidation indexed while a poll pages can only carry a
  timestamp at or after the newest one indexed so far; it is read by this poll or the
  next one, *unless* it lands at the timestamp a later page of this poll resumes at with
  ``skip > 0`` and the subgraph orders it before the records already read there. That
  needs a full page ending exactly at the chain head during the poll; pinning every page
  to one block (``block: {number: …}``) would close it and is not done here.

Failures
--------
A transport error, HTTP 429 or 5xx, a GraphQL ``errors`` array, or an answer that is not
JSON or lacks a ``data.liquidationCalls`` list is retried with exponential backoff (via
the injected ``sleep``); any other HTTP 4xx (a bad key or URL) fails at once. Every
failure ends as :class:`SubgraphError`, whose message names the operation and the cause
and never the URL's secret parts or the API key.

A malformed entity (a bad id, a non-integer amount, a missing field, a malformed
address) is neither dropped nor a crash: the whole poll raises :class:`SubgraphError`
naming the entity id and the field. The poll returns no batch, so the tracker does not
advance its cursor and the next poll reads the same records again; the error repeats
until the subgraph answers something valid, which an operator sees in the logs.

Entity ids: the Aave subgraph names a ``LiquidationCall`` ``<txHash>:<logIndex>``, and
later versions of its mappings
``<block>:<txIndex>:<txHash>:<logIndex>:<txLogIndex>``; both are accepted, and the
record's id is always :func:`~overlord.tracker.records.record_id` of the hash and the
log index, so the log source and this one agree on it.

Requests go through a token bucket (at most ``rate_capacity`` per ``rate_interval_s``,
using the injected ``clock`` and ``sleep``). A source is not thread-safe; one poll loop
owns it.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import httpx

from overlord.chain.rpc import redact_url
from overlord.tracker.records import LiquidationRecord, Source, SourceBatch, record_id

__all__ = [
    "LATEST_QUERY",
    "MAX_FIRST",
    "MAX_SKIP",
    "SINCE_QUERY",
    "SubgraphError",
    "SubgraphSettings",
    "SubgraphSource",
    "SubgraphStats",
]

log = logging.getLogger("overlord.tracker.subgraph")

MAX_FIRST: Final = 1000
"""The Graph's largest ``first``."""
MAX_SKIP: Final = 5000
"""The Graph's largest ``skip``."""

_JITTER: Final = 0.1
_DEBUG_ANSWER_CHARS: Final = 2000
_ERROR_CHARS: Final = 300
_INTEGER: Final = re.compile(r"[0-9]{1,78}")
_LOG_INDEX: Final = re.compile(r"[0-9]{1,9}")
_CURSOR: Final = re.compile(r"[0-9]{1,12}")

_FIELDS: Final = """
    id
    txHash
    timestamp
    liquidator
    user { id }
    collateralReserve { underlyingAsset symbol decimals }
    principalReserve { underlyingAsset symbol decimals }
    collateralAmount
    principalAmount"""

LATEST_QUERY: Final = (
    "query LatestLiquidations($first: Int!) {\n"
    "  liquidationCalls(first: $first, orderBy: timestamp, orderDirection: desc) {"
    f"{_FIELDS}\n  }}\n}}\n"
)
"""The cold-start query: the newest ``$first`` liquidations."""

SINCE_QUERY: Final = (
    "query LiquidationsSince($first: Int!, $skip: Int!, $since: Int!) {\n"
    "  liquidationCalls(\n"
    "    first: $first, skip: $skip, orderBy: timestamp, orderDirection: asc,\n"
    "    where: {timestamp_gte: $since}\n"
    "  ) {"
    f"{_FIELDS}\n  }}\n}}\n"
)
"""One page of liquidations at or after ``$since``, oldest first."""


class SubgraphError(Exception):
    """The subgraph could not be read (after retries) or answered something malformed.

    The message names the operation and the cause; it never holds the URL's path or
    query (which may carry an API key) nor the API key.
    """

    def __init__(self, operation: str, cause: str) -> None:
        super().__init__(f"subgraph {operation}: {cause}")
        self.operation = operation
        self.cause = cause


@dataclass(frozen=True, slots=True)
class SubgraphSettings:
    """Where the subgraph is and how hard to ask it.

    ``url`` may carry an API key in its path (The Graph gateway's
    ``/api/<key>/subgraphs/id/<id>``): it is shown, in ``repr`` and in logs, only through
    :func:`~overlord.chain.rpc.redact_url`. ``api_key``, when set, is sent as
    ``Authorization: Bearer <key>`` and is never shown.

    ``retries`` is the *total* number of attempts per request (3: one try and two
    retries), with delays ``retry_base_s × 2**k`` (0.15, 0.3, …) plus up to 10 % jitter
    between them. ``poll_limit`` is the page size (at most 1000, The Graph's cap).
    ``debug_errors`` (LiquidBot's ``SUBGRAPH_DEBUG_ERRORS``) logs the query, variables
    and the raw answer of every failed request at WARNING.

    Raises ``ValueError`` when a value is out of range.
    """

    url: str
    api_key: str | None = field(default=None, repr=False)
    poll_limit: int = 5
    retries: int = 3
    retry_base_s: float = 0.15
    rate_capacity: int = 30
    rate_interval_s: float = 10.0
    timeout_s: float = 10.0
    max_pages: int = 10_000
    debug_errors: bool = False

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/?#]+", self.url):
            raise ValueError(f"subgraph url {redact_url(self.url)} is not an http(s) URL")
        problems = [
            ("poll_limit", 1 <= self.poll_limit <= MAX_FIRST, f"between 1 and {MAX_FIRST}"),
            ("retries", self.retries >= 1, "at least 1"),
            ("retry_base_s", self.retry_base_s >= 0, "non-negative"),
            ("rate_capacity", self.rate_capacity >= 1, "at least 1"),
            ("rate_interval_s", self.rate_interval_s > 0, "positive"),
            ("timeout_s", self.timeout_s > 0, "positive"),
            ("max_pages", self.max_pages >= 1, "at least 1"),
        ]
        for name, ok, expected in problems:
            if not ok:
                raise ValueError(f"subgraph {name} must be {expected}, not {getattr(self, name)}")

    def __repr__(self) -> str:
        shown = []
        for item in fields(self):
            if not item.repr:
                continue
            value = getattr(self, item.name)
            shown.append(f"{item.name}={redact_url(value) if item.name == 'url' else value!r}")
        return f"SubgraphSettings({', '.join(shown)})"


@dataclass(slots=True)
class SubgraphStats:
    """Counters of one source, for metrics and the health endpoint.

    ``requests_ok``/``requests_failed`` count HTTP attempts (a retried request counts
    each attempt); ``retries`` counts the backoff sleeps; ``consecutive_failures`` counts
    failed attempts since the last successful one; ``last_success`` is the ``clock``
    value of the last successful attempt; ``pages`` counts answered pages (queries).
    """

    requests_ok: int = 0
    requests_failed: int = 0
    retries: int = 0
    rate_limited_waits: int = 0
    consecutive_failures: int = 0
    last_success: float | None = None
    pages: int = 0


class _AttemptFailed(Exception):
    """One attempt failed; ``retryable`` says whether another may succeed."""

    def __init__(self, cause: str, *, retryable: bool, answer: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retryable = retryable
        self.answer = answer


class _TokenBucket:
    """``capacity`` tokens; a token taken returns to the bucket ``interval`` later.

    So no window of ``interval`` seconds ever holds more than ``capacity`` requests.
    """

    def __init__(
        self,
        capacity: int,
        interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._capacity = capacity
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._taken: deque[float] = deque()

    def take(self) -> bool:
        """Take a token, sleeping until one is back if none is; ``True`` if it slept."""
        now = self._clock()
        while self._taken and self._taken[0] <= now - self._interval:
            self._taken.popleft()
        if len(self._taken) < self._capacity:
            self._taken.append(now)
            return False
        available = self._taken.popleft() + self._interval
        self._sleep(available - now)
        # Trust the sleep: the token is ours from ``available`` on, even if the clock
        # (a test's, say) did not move.
        self._taken.append(max(available, self._clock()))
        return True


class SubgraphSource:
    """Polls ``liquidationCalls`` of an Aave v3 subgraph; see the module docstring.

    ``http`` is an optional ``httpx.Client`` (the caller keeps ownership; by default the
    source makes and closes its own). ``sleep`` and ``clock`` drive the backoff and the
    rate limit, so tests need not wait.
    """

    name: str = "subgraph"

    def __init__(
        self,
        settings: SubgraphSettings,
        *,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = SubgraphStats()
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=settings.timeout_s)
        self._sleep = sleep
        self._clock = clock
        self._bucket = _TokenBucket(settings.rate_capacity, settings.rate_interval_s, clock, sleep)
        self._headers = {"Accept": "application/json"}
        if settings.api_key:
            self._headers["Authorization"] = f"Bearer {settings.api_key}"
        self._where = redact_url(settings.url)
        self._secrets = _secrets_of(settings)

    def __enter__(self) -> SubgraphSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if the source made it."""
        if self._owns_http:
            self._http.close()

    def poll(self, cursor: str | None) -> SourceBatch:
        """Read the liquidations after ``cursor`` (a timestamp, as text) or, cold, the newest.

        Raises :class:`SubgraphError` when the subgraph cannot be read, an entity is
        malformed, or the cursor is not a timestamp; no batch means the caller's cursor
        stays where it was.
        """
        if cursor is None:
            return self._poll_latest()
        if not _CURSOR.fullmatch(cursor):
            raise SubgraphError("poll", f"cursor {cursor[:40]!r} is not a timestamp")
        return self._poll_since(int(cursor))

    def _poll_latest(self) -> SourceBatch:
        rows = self._request("latest liquidations", LATEST_QUERY, {"first": self._first})
        records = _records(rows)
        newest = max((record.timestamp for record in records), default=0)
        log.info("subgraph cold poll: %d liquidations, cursor %d", len(records), newest)
        return SourceBatch(tuple(reversed(records)), cursor=str(newest), cold=True)

    def _poll_since(self, start: int) -> SourceBatch:
        since, skip = start, 0
        records: list[LiquidationRecord] = []
        for _ in range(self.settings.max_pages):
            page = self._page(since, skip)
            records.extend(page)
            if len(page) < self._first:
                return self._batch(records, start)
            since, skip = self._next_position(page, since, skip)
        log.warning(
            "subgraph poll stopped after max_pages=%d pages (%d liquidations); "
            "the next poll resumes at timestamp %d",
            self.settings.max_pages,
            len(records),
            since,
        )
        return self._batch(records, start)

    def _batch(self, records: list[LiquidationRecord], start: int) -> SourceBatch:
        cursor = max((record.timestamp for record in records), default=start)
        log.debug("subgraph poll from %d: %d liquidations, cursor %d", start, len(records), cursor)
        return SourceBatch(tuple(records), cursor=str(cursor), cold=False)

    def _page(self, since: int, skip: int) -> list[LiquidationRecord]:
        operation = f"liquidations since {since} (skip {skip})"
        variables = {"first": self._first, "skip": skip, "since": since}
        records = _records(self._request(operation, SINCE_QUERY, variables))
        if len(records) > self._first:
            raise SubgraphError(operation, f"{len(records)} entities for first={self._first}")
        previous = since
        for record in records:
            if record.timestamp < previous:
                raise SubgraphError(
                    operation, f"entity {record.id!r} breaks the ascending timestamp order"
                )
            previous = record.timestamp
        return records

    def _next_position(
        self, page: list[LiquidationRecord], since: int, skip: int
    ) -> tuple[int, int]:
        """Where the page after the full ``page`` read at ``(since, skip)`` starts."""
        last = page[-1].timestamp
        if last == since:
            skip += self._first
        else:
            since, skip = last, sum(1 for record in page if record.timestamp == last)
        if skip > MAX_SKIP:
            raise SubgraphError(
                f"liquidations since {since}",
                f"more than {MAX_SKIP} liquidations share timestamp {since}, "
                f"beyond The Graph's skip limit",
            )
        return since, skip

    @property
    def _first(self) -> int:
        return self.settings.poll_limit

    def _request(self, operation: str, query: str, variables: dict[str, int]) -> list[object]:
        """The ``liquidationCalls`` list of one query, retried as the settings say."""
        attempt = 0
        while True:
            attempt += 1
            if self._bucket.take():
                self.stats.rate_limited_waits += 1
            try:
                rows = self._attempt(query, variables)
            except _AttemptFailed as failure:
                self._failed(operation, query, variables, failure, attempt)
                if not failure.retryable:
                    raise SubgraphError(operation, failure.cause) from None
                if attempt >= self.settings.retries:
                    raise SubgraphError(
                        operation, f"{failure.cause} (after {attempt} attempts)"
                    ) from None
                self.stats.retries += 1
                self._sleep(self._backoff(attempt))
                continue
            self.stats.requests_ok += 1
            self.stats.consecutive_failures = 0
            self.stats.last_success = self._clock()
            self.stats.pages += 1
            return rows

    def _backoff(self, attempt: int) -> float:
        jitter = 1 + random.uniform(0, _JITTER)  # noqa: S311 - jitter, not cryptography
        return self.settings.retry_base_s * 2.0 ** (attempt - 1) * jitter

    def _attempt(self, query: str, variables: dict[str, int]) -> list[object]:
        try:
            response = self._http.post(
                self.settings.url,
                json={"query": query, "variables": variables},
                headers=self._headers,
                timeout=self.settings.timeout_s,
            )
        except httpx.InvalidURL:
            raise _AttemptFailed("invalid URL", retryable=False) from None
        except httpx.HTTPError as exc:
            cause = f"transport error {type(exc).__name__}: {self._scrub(str(exc))}"
            raise _AttemptFailed(cause, retryable=True) from None
        return self._rows(response)

    def _rows(self, response: httpx.Response) -> list[object]:
        text = response.text
        status = response.status_code
        if status == 429 or status >= 500:
            raise _AttemptFailed(f"HTTP {status}", retryable=True, answer=text)
        if not 200 <= status < 300:
            cause = f"HTTP {status}, not retried (check the URL and the API key)"
            raise _AttemptFailed(cause, retryable=False, answer=text)
        try:
            answer: object = json.loads(text)
        except ValueError:
            raise _AttemptFailed("answer is not JSON", retryable=True, answer=text) from None
        try:
            return _liquidation_calls(answer)
        except _AttemptFailed as failure:
            failure.cause = self._scrub(failure.cause)
            failure.answer = text
            raise

    def _failed(
        self,
        operation: str,
        query: str,
        variables: Mapping[str, int],
        failure: _AttemptFailed,
        attempt: int,
    ) -> None:
        self.stats.requests_failed += 1
        self.stats.consecutive_failures += 1
        where = f"subgraph {operation} at {self._where}, attempt {attempt}/{self.settings.retries}"
        if not self.settings.debug_errors:
            log.warning("%s failed: %s", where, failure.cause)
            return
        answer = self._scrub(failure.answer or "")[:_DEBUG_ANSWER_CHARS]
        log.warning(
            "%s failed: %s\nquery: %s\nvariables: %s\nanswer: %s",
            where,
            failure.cause,
            query,
            json.dumps(dict(variables)),
            answer,
        )

    def _scrub(self, text: str) -> str:
        """``text`` with the URL's secret parts and the API key replaced by ``…``."""
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text


def _secrets_of(settings: SubgraphSettings) -> tuple[str, ...]:
    """Everything of ``settings`` that must never appear in a message, longest first."""
    parts = urlsplit(settings.url)
    candidates = [settings.url, settings.api_key or "", parts.password or ""]
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if path.strip("/"):
        candidates.append(path)
    return tuple(sorted({c for c in candidates if len(c) >= 4}, key=len, reverse=True))


def _liquidation_calls(answer: object) -> list[object]:
    """``data.liquidationCalls`` of a GraphQL answer; retryable failure otherwise."""
    if not isinstance(answer, dict):
        raise _AttemptFailed("answer is not a JSON object", retryable=True)
    errors = answer.get("errors")
    if errors:
        raise _AttemptFailed(f"GraphQL errors: {_first_error(errors)}", retryable=True)
    data = answer.get("data")
    calls = data.get("liquidationCalls") if isinstance(data, dict) else None
    if not isinstance(calls, list):
        raise _AttemptFailed("answer lacks a data.liquidationCalls list", retryable=True)
    return calls


def _first_error(errors: object) -> str:
    first = errors[0] if isinstance(errors, list) else errors
    message = first.get("message") if isinstance(first, dict) else first
    return str(message)[:_ERROR_CHARS]


def _records(rows: list[object]) -> list[LiquidationRecord]:
    return [_to_record(row) for row in rows]


def _to_record(row: object) -> LiquidationRecord:
    """The record of one ``LiquidationCall`` entity; :class:`SubgraphError` if malformed."""
    if not isinstance(row, dict):
        raise SubgraphError("liquidationCalls", f"entity is not an object: {str(row)[:60]!r}")
    entity_id = row.get("id")
    if not isinstance(entity_id, str) or not entity_id:
        raise SubgraphError("liquidationCalls", f"entity without an id: {str(row)[:120]!r}")
    tx_hash = _text(row, entity_id, "txHash").lower()
    log_index = _log_index(entity_id, tx_hash)
    try:
        return LiquidationRecord(
            id=record_id(tx_hash, log_index),
            tx_hash=tx_hash,
            log_index=log_index,
            timestamp=_integer(row, entity_id, "timestamp"),
            user=_text(row, entity_id, "user.id").lower(),
            liquidator=_text(row, entity_id, "liquidator").lower(),
            collateral_asset=_text(row, entity_id, "collateralReserve.underlyingAsset").lower(),
            debt_asset=_text(row, entity_id, "principalReserve.underlyingAsset").lower(),
            debt_to_cover=_integer(row, entity_id, "principalAmount"),
            liquidated_collateral_amount=_integer(row, entity_id, "collateralAmount"),
            source=Source.SUBGRAPH,
            block_number=None,
            receive_a_token=None,
            collateral_symbol=_text(row, entity_id, "collateralReserve.symbol"),
            debt_symbol=_text(row, entity_id, "principalReserve.symbol"),
        )
    except ValueError as exc:
        raise SubgraphError("liquidationCalls", f"entity {entity_id!r}: {exc}") from None


def _malformed(entity_id: str, path: str, problem: str) -> SubgraphError:
    return SubgraphError("liquidationCalls", f"entity {entity_id!r}: field {path} {problem}")


def _value(row: Mapping[str, object], entity_id: str, path: str) -> object:
    """The value at dotted ``path`` of the entity; missing or null is malformed."""
    value: object = row
    for key in path.split("."):
        if not isinstance(value, dict) or value.get(key) is None:
            raise _malformed(entity_id, path, "is missing")
        value = value[key]
    return value


def _text(row: Mapping[str, object], entity_id: str, path: str) -> str:
    value = _value(row, entity_id, path)
    if not isinstance(value, str):
        raise _malformed(entity_id, path, f"is not a string: {str(value)[:60]!r}")
    return value


def _integer(row: Mapping[str, object], entity_id: str, path: str) -> int:
    """A non-negative integer given as a JSON number (``Int``) or decimal text (``BigInt``)."""
    value = _value(row, entity_id, path)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise _malformed(entity_id, path, f"is not a non-negative integer: {str(value)[:60]!r}")


def _log_index(entity_id: str, tx_hash: str) -> int:
    """The log index the entity id names, checking the id's hash against ``txHash``."""
    parts = entity_id.split(":")
    if len(parts) == 2:
        id_hash, index = parts
    elif len(parts) == 5:
        id_hash, index = parts[2], parts[3]
    else:
        raise _malformed(
            entity_id,
            "id",
            "is neither <txHash>:<logIndex> nor <block>:<txIndex>:<txHash>:<logIndex>:<txLogIndex>",
        )
    if id_hash.lower() != tx_hash:
        raise _malformed(entity_id, "id", f"names a transaction other than txHash {tx_hash}")
    if not _LOG_INDEX.fullmatch(index):
        raise _malformed(entity_id, "id", f"has a log index that is not an integer: {index!r}")
    return int(index)
