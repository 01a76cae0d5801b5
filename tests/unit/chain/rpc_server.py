"""A real JSON-RPC node over HTTP on ``127.0.0.1`` whose behaviour tests switch.

:class:`FakeRpcServer` listens on a free port (``http.server``, a thread per request) under
a secret-looking path, ``/v2/SECRETKEY-<n>``, so tests can check that the key never leaks.
It answers ``eth_blockNumber`` with :attr:`FakeRpcServer.head`, ``eth_chainId`` with
``0x1`` and anything else with ``0x<method name in hex>``, unless :attr:`FakeRpcServer.mode`
(a :class:`Mode`) says otherwise. Every JSON-RPC request it received is counted in
:attr:`FakeRpcServer.requests` (a batch counts as one).
"""

from __future__ import annotations

import enum
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from tests.loopback import LoopbackServer

SECRET = "SECRETKEY"
_numbers = itertools.count(1)


class Mode(enum.StrEnum):
    """How the server answers every request."""

    OK = "ok"
    SLOW = "slow"  # waits :attr:`FakeRpcServer.slow_s` before answering
    HTTP_500 = "http 500"
    HTTP_429 = "http 429"  # with Retry-After: :attr:`FakeRpcServer.retry_after`
    GARBAGE = "garbage"  # HTML with a 200
    TRUNCATED = "truncated"  # JSON cut in the middle, with a 200
    MISSING_ID = "missing id"  # a batch answer without its last request's answer
    NOT_A_BATCH = "not a batch"  # a batch answered with one answer object
    NOT_AN_OBJECT = "not an object"  # a JSON string where an answer object belongs
    NO_RESULT = "no result"  # answer objects with neither result nor error
    REVERTED = "reverted"  # a node error answer: execution reverted
    HEADER_NOT_FOUND = "header not found"  # a node error answer: the node lacks the block
    BAD_HEAD = "bad head"  # eth_blockNumber answered with a decimal string


class FakeRpcServer:
    """The server; use as a context manager (``with FakeRpcServer() as node``)."""

    def __init__(self, *, head: int = 1000, slow_s: float = 1.0) -> None:
        self.mode = Mode.OK
        self.head = head
        self.slow_s = slow_s
        self.retry_after = "7"
        self.requests = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = LoopbackServer(_Handler, self, wait_for_handlers=True)
        self.url = f"{self._http.url}/v2/{SECRET}-{next(_numbers)}"

    def __enter__(self) -> FakeRpcServer:
        self._http.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()  # releases slow handlers at once
        self._http.stop()

    def handle(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The status, extra headers and body answering one POST."""
        with self._lock:
            self.requests += 1
        mode = self.mode
        if mode is Mode.SLOW:
            self._stopping.wait(self.slow_s)
        if mode is Mode.HTTP_500:
            return 500, {}, b"internal error"
        if mode is Mode.HTTP_429:
            return 429, {"Retry-After": self.retry_after}, b"slow down"
        if mode is Mode.GARBAGE:
            return 200, {}, b"<html><body>502 Bad Gateway</body></html>"
        payload = json.loads(body)
        if isinstance(payload, list):
            answers = [self._answer(request) for request in payload]
            if mode is Mode.MISSING_ID:
                answers = answers[:-1]
            reply: Any = answers[0] if mode is Mode.NOT_A_BATCH else answers
            text = json.dumps(reply).encode()
        else:
            text = json.dumps(self._answer(payload)).encode()
        if mode is Mode.TRUNCATED:
            text = text[: len(text) // 2]
        return 200, {}, text

    def _answer(self, request: dict[str, Any]) -> Any:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        method = request["method"]
        if self.mode is Mode.NOT_AN_OBJECT:
            return "ok"
        if self.mode is Mode.NO_RESULT:
            return answer
        if self.mode is Mode.REVERTED:
            answer["error"] = {"code": 3, "message": "execution reverted", "data": "0x"}
        elif self.mode is Mode.HEADER_NOT_FOUND:
            answer["error"] = {"code": -32000, "message": "header not found"}
        elif method == "eth_blockNumber":
            answer["result"] = str(self.head) if self.mode is Mode.BAD_HEAD else hex(self.head)
        elif method == "eth_chainId":
            answer["result"] = "0x1"
        else:
            answer["result"] = "0x" + method.encode().hex()
        return answer


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        fake: FakeRpcServer = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        status, headers, body = fake.handle(self.rfile.read(length))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read :attr:`FakeRpcServer.requests` instead."""
