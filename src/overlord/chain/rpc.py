"""A small synchronous JSON-RPC client over HTTP with batching and precise errors.

Kept off web3.py's middleware stack on purpose: the market reader sends thousands of
``eth_call``s, and a JSON-RPC batch of pre-encoded calls is an order of magnitude faster
than web3's per-call path. Every malformed answer is an :class:`RpcError` naming the method,
never a crash deeper down and never a silently wrong value. URLs may carry API keys, so
they are only ever shown through :func:`redact_url`.

Errors, by what a caller (say :mod:`overlord.chain.failover`) may do next::

    RpcError                 itself: the node's own error answer (a revert, bad params...)
    ├── RpcTransportError    unreachable, timed out, or a non-200 status (``status``,
    │                        ``retry_after_s``): another node, or later, may do
    └── RpcMalformedError    an answer that is not a JSON-RPC answer: another node may do
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

JsonValue = Any


class RpcError(Exception):
    """The node answered with an error, or with something that is not a JSON-RPC answer."""

    def __init__(self, method: str, message: str, code: int | None = None, data: object = None):
        super().__init__(f"{method}: {message}" + (f" (code {code})" if code is not None else ""))
        self.method = method
        self.message = message
        self.code = code
        self.data = data


class RpcTransportError(RpcError):
    """The node could not be reached, did not answer in time, or answered a non-200 status.

    ``status`` is the HTTP status when there was one, and ``retry_after_s`` the delay in
    seconds a ``Retry-After`` header asked for (the HTTP-date form is not read).
    """

    def __init__(
        self,
        method: str,
        message: str,
        code: int | None = None,
        data: object = None,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(method, message, code, data)
        self.status = status
        self.retry_after_s = retry_after_s


class RpcMalformedError(RpcError):
    """The node answered something that is not a JSON-RPC answer (garbage, a lost id...)."""


def _retry_after_s(response: httpx.Response) -> float | None:
    """The ``Retry-After`` delay in seconds, if the header holds a sane number of them."""
    try:
        delay = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return delay if math.isfinite(delay) and delay >= 0 else None


def redact_url(url: str) -> str:
    """The URL with anything that may be a secret (path, query, user info) hidden."""
    match = re.match(r"^([a-z]+://)(?:[^@/]*@)?([^/?#]+)(.*)$", url)
    if not match:
        return "<rpc url>"
    scheme, host, rest = match.groups()
    return f"{scheme}{host}" + ("/…" if rest.strip("/") else "")


class RpcStats:
    """Requests and failed requests by JSON-RPC method, over every client of the process.

    Thread-safe. A batch counts each of its requests under its own method; a request
    fails when the transport fails or the node answers it with an error or garbage (a
    revert the caller expects, say a getter a contract lacks, counts as an error too).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()

    def record(self, method: str, *, requests: int = 1, errors: int = 0) -> None:
        """Count ``requests`` requests of ``method``, ``errors`` of which failed."""
        with self._lock:
            self._requests[method] += requests
            if errors:
                self._errors[method] += errors

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """``{method: (requests, errors)}`` as of now."""
        with self._lock:
            return {method: (n, self._errors[method]) for method, n in self._requests.items()}


RPC_STATS = RpcStats()
"""The process's counts, which ``/metrics`` exposes."""


class JsonRpcClient:
    """JSON-RPC 2.0 over HTTP(S). Not thread-safe; one client per thread or task."""

    def __init__(self, url: str, *, timeout: float = 30.0, max_batch: int = 500) -> None:
        self.url = url
        self.max_batch = max_batch
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"JsonRpcClient({redact_url(self.url)})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> JsonRpcClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, method: str, payload: JsonValue) -> JsonValue:
        try:
            response = self._http.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise RpcTransportError(
                method, f"{type(exc).__name__} talking to {redact_url(self.url)}"
            ) from exc
        if response.status_code != 200:
            raise RpcTransportError(
                method,
                f"HTTP {response.status_code} from {redact_url(self.url)}",
                status=response.status_code,
                retry_after_s=_retry_after_s(response),
            )
        try:
            return response.json()
        except ValueError as exc:
            raise RpcMalformedError(method, "the answer is not JSON") from exc

    @staticmethod
    def _result(method: str, answer: JsonValue) -> JsonValue:
        if not isinstance(answer, dict):
            raise RpcMalformedError(method, f"malformed answer {str(answer)[:200]}")
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            raise RpcError(
                method,
                str(error.get("message", answer["error"])),
                error.get("code"),
                error.get("data"),
            )
        if "result" not in answer:
            raise RpcMalformedError(method, f"answer without result {str(answer)[:200]}")
        return answer["result"]

    def call(self, method: str, params: Sequence[JsonValue] = ()) -> JsonValue:
        """One request; returns its ``result`` or raises :class:`RpcError`."""
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        try:
            result = self._result(method, self._post(method, payload))
        except RpcError:
            RPC_STATS.record(method, errors=1)
            raise
        RPC_STATS.record(method)
        return result

    def batch_answers(
        self, requests: Sequence[tuple[str, Sequence[JsonValue]]]
    ) -> list[dict[str, JsonValue]]:
        """The raw answer objects of ``requests``, in order, error objects included.

        Unlike :meth:`batch`, an error answer is returned rather than raised, so a caller
        can tell a revert (say, a getter this contract lacks) from a failure. Sent in
        chunks of at most ``max_batch``, one HTTP round trip each.

        Raises:
            RpcMalformedError: a chunk was answered with something that is not a batch
                answer, or a request was left unanswered.
            RpcTransportError: a chunk did not get an HTTP 200 answer.
            RpcError: the node refused a whole chunk with one error object.
        """
        answers: list[dict[str, JsonValue]] = []
        for start in range(0, len(requests), self.max_batch):
            chunk = requests[start : start + self.max_batch]
            ids = [next(self._ids) for _ in chunk]
            payload = [
                {"jsonrpc": "2.0", "id": ident, "method": method, "params": list(params)}
                for ident, (method, params) in zip(ids, chunk, strict=True)
            ]
            try:
                answers += self._chunk_answers(chunk, ids, self._post(chunk[0][0], payload))
            except RpcError:
                _record_chunk(chunk, failed=True)
                raise
        return answers

    def _chunk_answers(
        self, chunk: Sequence[tuple[str, Sequence[JsonValue]]], ids: list[int], reply: JsonValue
    ) -> list[dict[str, JsonValue]]:
        if not isinstance(reply, list):
            # A node that rejects the whole batch answers with one error object.
            self._result(chunk[0][0], reply)
            raise RpcMalformedError(chunk[0][0], f"the batch was answered with {str(reply)[:200]}")
        by_id = {answer.get("id"): answer for answer in reply if isinstance(answer, dict)}
        answers = []
        for ident, (method, _params) in zip(ids, chunk, strict=True):
            if ident not in by_id:
                raise RpcMalformedError(method, f"no answer for request {ident} in the batch")
            answers.append(by_id[ident])
        _record_chunk(chunk, answers=answers)
        return answers

    def batch(self, requests: Sequence[tuple[str, Sequence[JsonValue]]]) -> list[JsonValue]:
        """Many requests in JSON-RPC batches of at most ``max_batch``; results in order.

        Raises :class:`RpcError` for the first request that failed.
        """
        answers = self.batch_answers(requests)
        return [
            self._result(method, answer)
            for (method, _params), answer in zip(requests, answers, strict=True)
        ]


def _record_chunk(
    chunk: Sequence[tuple[str, Sequence[JsonValue]]],
    *,
    answers: Sequence[dict[str, JsonValue]] = (),
    failed: bool = False,
) -> None:
    """Count one batch chunk in :data:`RPC_STATS`: every request of a failed chunk as an
    error, else the answers that carry no result."""
    requests: Counter[str] = Counter(method for method, _params in chunk)
    errors: Counter[str] = Counter()
    if failed:
        errors = requests
    else:
        for (method, _params), answer in zip(chunk, answers, strict=True):
            if "result" not in answer:
                errors[method] += 1
    for method, count in requests.items():
        RPC_STATS.record(method, requests=count, errors=errors[method])
