"""A real GraphQL HTTP server answering ``liquidationCalls`` the way The Graph does.

:class:`FakeSubgraph` serves a subset of the Aave v3 subgraph schema with ``graphql-core``
over ``http.server`` on ``127.0.0.1`` (a free port, a daemon thread). Its resolver orders,
filters, skips and limits like graph-node: ``orderBy``/``orderDirection`` first, ties in
``id`` order, then ``skip`` and ``first``, with The Graph's caps (``first`` ≤ 1000,
``skip`` ≤ 5000) answered as GraphQL errors.

The entity fields are nullable here (the real schema has them non-null) so that tests can
serve malformed entities a buggy indexer or proxy might. Faults: :meth:`fail_next`
(an HTTP status), :meth:`garbage_next` (a body that is not JSON), :meth:`error_next`
(a GraphQL ``errors`` answer) and :attr:`require_key` (401 without the right bearer
key). Every request is logged in :attr:`requests`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

import graphql

from tests.loopback import LoopbackServer

SDL = """
scalar BigInt
scalar Bytes

enum OrderDirection {
  asc
  desc
}

enum LiquidationCall_orderBy {
  id
  timestamp
  collateralAmount
  principalAmount
}

input LiquidationCall_filter {
  timestamp: Int
  timestamp_gt: Int
  timestamp_gte: Int
  timestamp_lt: Int
  timestamp_lte: Int
}

type User {
  id: ID!
}

type Reserve {
  id: ID
  underlyingAsset: Bytes
  symbol: String
  decimals: Int
}

type LiquidationCall {
  id: ID!
  txHash: Bytes
  timestamp: Int
  liquidator: Bytes
  user: User
  collateralReserve: Reserve
  principalReserve: Reserve
  collateralAmount: BigInt
  principalAmount: BigInt
}

type Query {
  liquidationCalls(
    first: Int = 100
    skip: Int = 0
    orderBy: LiquidationCall_orderBy
    orderDirection: OrderDirection
    where: LiquidationCall_filter
  ): [LiquidationCall!]!
}
"""

MAX_FIRST = 1000
MAX_SKIP = 5000

_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "timestamp": lambda value, bound: value == bound,
    "timestamp_gt": lambda value, bound: value > bound,
    "timestamp_gte": lambda value, bound: value >= bound,
    "timestamp_lt": lambda value, bound: value < bound,
    "timestamp_lte": lambda value, bound: value <= bound,
}

WETH = "0x" + "c0" * 20
USDC = "0x" + "a0" * 20


def tx_hash(n: int) -> str:
    """A transaction hash unique to ``n``."""
    return "0x" + f"{n:064x}"


def make_entity(
    n: int,
    timestamp: int,
    *,
    log_index: int = 3,
    collateral_amount: str = "1000000000000000000",
    principal_amount: str = "2500000000",
) -> dict[str, Any]:
    """A well-formed ``LiquidationCall`` entity (transaction ``n``, at ``timestamp``)."""
    tx = tx_hash(n)
    return {
        "id": f"{tx}:{log_index}",
        "txHash": tx,
        "timestamp": timestamp,
        "liquidator": "0x" + f"{n + 7:040x}",
        "user": {"id": "0x" + f"{n + 1:040x}"},
        "collateralReserve": {"underlyingAsset": WETH, "symbol": "WETH", "decimals": 18},
        "principalReserve": {"underlyingAsset": USDC, "symbol": "USDC", "decimals": 6},
        "collateralAmount": collateral_amount,
        "principalAmount": principal_amount,
    }


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server received."""

    path: str
    authorization: str | None
    query: str | None
    variables: dict[str, Any] | None
    status: int


def _big_int_text(value: Any) -> str:
    """``BigInt`` goes over the wire as decimal text, as on The Graph."""
    return str(value)


def _sort_value(value: object) -> tuple[int, int | str]:
    """Numbers (``Int``, ``BigInt`` text) in numeric order, anything else as text."""
    if isinstance(value, int):
        return (0, value)
    if isinstance(value, str) and value.isdigit():
        return (0, int(value))
    return (1, str(value))


class FakeSubgraph:
    """The server; use as a context manager (``with FakeSubgraph() as server``)."""

    def __init__(self, *, require_key: str | None = None) -> None:
        self.entities: list[dict[str, Any]] = []
        self.requests: list[LoggedRequest] = []
        self.require_key = require_key
        self._faults: deque[tuple[str, int, str]] = deque()
        self._lock = threading.Lock()
        self._schema = graphql.build_schema(SDL)
        calls = (
            self._schema.query_type.fields["liquidationCalls"] if self._schema.query_type else None
        )
        assert calls is not None
        calls.resolve = self._resolve_liquidation_calls
        big_int = self._schema.type_map["BigInt"]
        assert isinstance(big_int, graphql.GraphQLScalarType)
        big_int.serialize = _big_int_text  # type: ignore[method-assign]
        self._http = LoopbackServer(_Handler, self)
        self.url = self._http.url

    def __enter__(self) -> FakeSubgraph:
        self._http.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._http.stop()

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with HTTP ``status``."""
        with self._lock:
            self._faults.extend([("status", status, "")] * n)

    def garbage_next(self, n: int = 1) -> None:
        """Answer the next ``n`` requests with a 200 whose body is not JSON."""
        with self._lock:
            self._faults.extend([("garbage", 200, "")] * n)

    def error_next(self, n: int = 1, message: str = "indexing error") -> None:
        """Answer the next ``n`` requests with a GraphQL ``errors`` array (HTTP 200)."""
        with self._lock:
            self._faults.extend([("errors", 200, message)] * n)

    def handle(self, path: str, authorization: str | None, body: bytes) -> tuple[int, bytes]:
        """The status and body answering one POST."""
        try:
            request = json.loads(body)
            query, variables = request.get("query"), request.get("variables")
        except (ValueError, AttributeError):
            query, variables = None, None
        status, answer = self._answer(authorization, query, variables)
        with self._lock:
            self.requests.append(LoggedRequest(path, authorization, query, variables, status))
        return status, answer

    def _answer(
        self, authorization: str | None, query: object, variables: object
    ) -> tuple[int, bytes]:
        if self.require_key is not None and authorization != f"Bearer {self.require_key}":
            return 401, b'{"error": "auth error: invalid or missing API key"}'
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            kind, status, message = fault
            if kind == "garbage":
                return 200, b"<html><body>502 Bad Gateway</body></html>"
            if kind == "errors":
                return 200, json.dumps({"errors": [{"message": message}]}).encode()
            return status, b'{"error": "injected failure"}'
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            return 400, b'{"error": "expected {query, variables}"}'
        result = graphql.graphql_sync(self._schema, query, variable_values=variables)
        document: dict[str, Any] = {"data": result.data}
        if result.errors:
            document["errors"] = [error.formatted for error in result.errors]
        return 200, json.dumps(document).encode()

    def _resolve_liquidation_calls(
        self,
        _root: object,
        _info: graphql.GraphQLResolveInfo[Any],
        first: int = 100,
        skip: int = 0,
        orderBy: str | None = None,  # noqa: N803 - GraphQL argument names
        orderDirection: str | None = None,  # noqa: N803
        where: dict[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        if not 0 <= first <= MAX_FIRST:
            raise graphql.GraphQLError(f"The `first` argument must be between 0 and {MAX_FIRST}")
        if not 0 <= skip <= MAX_SKIP:
            raise graphql.GraphQLError(f"The `skip` argument must be between 0 and {MAX_SKIP}")
        with self._lock:
            rows = list(self.entities)
        for name, bound in (where or {}).items():
            compare = _COMPARISONS[name]
            rows = [
                row
                for row in rows
                if isinstance(row.get("timestamp"), int) and compare(row["timestamp"], bound)
            ]
        field = orderBy or "id"
        rows.sort(
            key=lambda row: (_sort_value(row.get(field)), row["id"]),
            reverse=orderDirection == "desc",
        )
        return rows[skip : skip + first]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        fake: FakeSubgraph = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        status, body = fake.handle(
            self.path, self.headers.get("Authorization"), self.rfile.read(length)
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read :attr:`FakeSubgraph.requests` instead."""
