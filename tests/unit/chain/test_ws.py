"""WsSubscriber against a real WebSocket server on 127.0.0.1 scripted to act like a node.

The node answers ``eth_subscribe``, pushes notifications, refuses what a test tells it to,
sends garbage and drops connections. Every wait is bounded by ``WAIT_S`` and driven by
queues and events; the only real waits are the subscriber's own (short) backoff delays.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from http import HTTPStatus
from queue import Empty, Queue
from typing import Any, TypeVar

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from overlord.chain.ws import (
    Connected,
    Disconnected,
    Notification,
    SubscriptionKind,
    WsMessage,
    WsSubscriber,
    backoff_delays,
    scrub,
    ws_url_for,
)

WAIT_S = 5.0
ALL_KINDS: tuple[SubscriptionKind, ...] = ("newHeads", "logs", "newPendingTransactions")
LOGS_FILTER = {"address": ["0x" + "aa" * 20]}
SECRET = "SECRETKEY123"

M = TypeVar("M", Connected, Notification, Disconnected)


class FakeNode:
    """A JSON-RPC node over WebSocket that a test scripts.

    Attributes a test may set at any time: ``refuse`` (kinds whose ``eth_subscribe`` is
    answered with an error), ``refuse_full_pending`` (refuse ``["newPendingTransactions",
    true]`` only), ``answer_subscribe`` (False: never answer), ``reject_handshakes`` (how
    many next handshakes get HTTP 503) and ``on_subscribe`` (called after each confirmed
    subscription, on the server thread).
    """

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.refuse_full_pending = False
        self.answer_subscribe = True
        self.reject_handshakes = 0
        self.on_subscribe: Callable[[FakeNode, str], None] | None = None
        self.handshakes: list[tuple[float, str]] = []  # (time.monotonic(), path) of each
        self.requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._current: ServerConnection | None = None
        self._subscriptions: dict[str, str] = {}  # kind → id, current connection
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._process_request)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(WAIT_S)

    def push(self, kind: str, result: object) -> None:
        """Send a notification of the current connection's ``kind`` subscription."""
        self.send_raw(self.notification(self.subscription_id(kind), result))

    @staticmethod
    def notification(subscription: object, result: object) -> str:
        params = {"subscription": subscription, "result": result}
        return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": params})

    def send_raw(self, frame: str | bytes) -> None:
        self._connection().send(frame)

    def drop(self, *, abrupt: bool = False) -> None:
        """Close the current connection: a close frame, or a TCP shutdown without one."""
        connection = self._connection()
        if abrupt:
            connection.socket.shutdown(socket.SHUT_RDWR)
        else:
            connection.close(code=1011, reason="node restarting")

    def subscription_id(self, kind: str) -> str:
        with self._lock:
            return self._subscriptions[kind]

    def subscribe_params(self) -> list[list[Any]]:
        return [r["params"] for r in self.requests if r["method"] == "eth_subscribe"]

    def _connection(self) -> ServerConnection:
        with self._lock:
            assert self._current is not None, "no client connected"
            return self._current

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append((time.monotonic(), request.path))
        if self.reject_handshakes > 0:
            self.reject_handshakes -= 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._current, self._subscriptions = connection, {}
        try:
            for frame in connection:
                request = json.loads(frame)
                self.requests.append(request)
                self._answer(connection, request)
        except ConnectionClosed:
            pass

    def _answer(self, connection: ServerConnection, request: dict[str, Any]) -> None:
        if request["method"] != "eth_subscribe" or not self.answer_subscribe:
            return
        params = request["params"]
        kind = params[0]
        full = kind == "newPendingTransactions" and params[1:] == [True]
        if kind in self.refuse or (full and self.refuse_full_pending):
            error = {"code": -32602, "message": f"unsupported subscription {kind}"}
            connection.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}))
            return
        subscription = f"0x{next(self._ids):032x}"
        with self._lock:
            self._subscriptions[kind] = subscription
        connection.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": subscription}))
        if self.on_subscribe is not None:
            self.on_subscribe(self, kind)


class Recorder:
    """The ``on_message`` callback: queues every message; raises on chosen notifications."""

    def __init__(self, *, fail_on_notifications: Collection[int] = ()) -> None:
        self.messages: Queue[WsMessage] = Queue()
        self._fail_on = set(fail_on_notifications)
        self._notifications = 0

    def __call__(self, message: WsMessage) -> None:
        self.messages.put(message)
        if isinstance(message, Notification):
            self._notifications += 1
            if self._notifications in self._fail_on:
                raise RuntimeError("a bug in the consumer")

    def expect(self, kind: type[M]) -> M:
        """The next message, which must be a ``kind``."""
        try:
            message = self.messages.get(timeout=WAIT_S)
        except Empty:
            pytest.fail(f"no message within {WAIT_S} s (expected {kind.__name__})")
        assert isinstance(message, kind), f"expected {kind.__name__}, got {message}"
        return message

    def assert_quiet(self) -> None:
        assert self.messages.empty(), f"unexpected message {self.messages.queue[0]}"


class LogRecords(logging.Handler):
    """Records of the ``overlord.ws`` loggers, whatever the ``overlord`` logger's setup."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


Make = Callable[..., WsSubscriber]


@pytest.fixture
def node() -> Iterator[FakeNode]:
    node = FakeNode()
    yield node
    node.close()


@pytest.fixture
def ws_logs() -> Iterator[LogRecords]:
    logger = logging.getLogger("overlord.ws")
    handler, level = LogRecords(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def make(node: FakeNode) -> Iterator[Make]:
    """Started subscribers on ``node`` (stopped before the node closes)."""
    made: list[WsSubscriber] = []

    def make(recorder: Callable[[WsMessage], None], path: str = "", **options: Any) -> WsSubscriber:
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("backoff_max", 0.05)
        subscriber = WsSubscriber(node.url(path), on_message=recorder, **options)
        made.append(subscriber)
        subscriber.start()
        return subscriber

    yield make
    for subscriber in made:
        subscriber.stop(WAIT_S)


def delays_logged(logs: LogRecords) -> list[str]:
    return re.findall(r"retrying in ([0-9.]+) s", "\n".join(logs.messages(logging.WARNING)))


# ws_url_for, backoff_delays, scrub.


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8545", "ws://127.0.0.1:8545"),
        ("https://eth.example.org/v3/key?x=1", "wss://eth.example.org/v3/key?x=1"),
        ("HTTPS://eth.example.org", "wss://eth.example.org"),
        ("ws://node:8546", "ws://node:8546"),
        ("wss://node/path", "wss://node/path"),
    ],
)
def test_ws_url_for_maps_http_to_websocket_schemes(url: str, expected: str) -> None:
    assert ws_url_for(url) == expected


@pytest.mark.parametrize(
    "url", [f"ftp://host/{SECRET}", f"host:8545/{SECRET}", "http://", f"http:///{SECRET}", ""]
)
def test_ws_url_for_refuses_other_urls_without_showing_them(url: str) -> None:
    with pytest.raises(ValueError, match="node URL") as error:
        ws_url_for(url)
    assert SECRET not in str(error.value)


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    assert list(itertools.islice(backoff_delays(0.1, 0.5), 6)) == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


def test_scrub_hides_the_path_query_and_user_info_of_the_url() -> None:
    url = f"wss://user:{SECRET}@node.example/v3/{SECRET}?key={SECRET}"
    text = scrub(f"failed to reach {url}; path /v3/{SECRET}?key={SECRET}", url)
    assert SECRET not in text
    assert "wss://node.example/…" in text


def test_the_constructor_refuses_bad_parameters() -> None:
    def ignore(message: WsMessage) -> None:
        pass

    with pytest.raises(ValueError, match="nothing to subscribe"):
        WsSubscriber("ws://x", on_message=ignore, new_heads=False)
    with pytest.raises(ValueError, match="backoff"):
        WsSubscriber("ws://x", on_message=ignore, backoff_initial=2.0, backoff_max=1.0)
    with pytest.raises(ValueError, match="node URL"):
        WsSubscriber(f"ftp://x/{SECRET}", on_message=ignore)


# Subscribing.


def test_connected_lists_every_kind_once_the_node_confirmed_it(node: FakeNode, make: Make) -> None:
    recorder = Recorder()
    subscriber = make(recorder, logs_filter=LOGS_FILTER, pending=True)

    connected = recorder.expect(Connected)

    assert connected == Connected(1, ALL_KINDS, full_pending_transactions=True)
    assert node.subscribe_params() == [
        ["newHeads"],
        ["logs", LOGS_FILTER],
        ["newPendingTransactions", True],
    ]
    assert subscriber.wait_connected(WAIT_S)
    assert subscriber.connected
    assert subscriber.generation == 1


def test_notifications_carry_their_kind_result_and_receipt_time(node: FakeNode, make: Make) -> None:
    recorder = Recorder()
    make(recorder, logs_filter=LOGS_FILTER, pending=True)
    recorder.expect(Connected)
    before = time.perf_counter()

    node.push("newHeads", {"number": "0x10"})
    node.push("logs", {"logIndex": "0x0"})
    node.push("newPendingTransactions", {"hash": "0x01"})

    heads, logs, pending = (recorder.expect(Notification) for _ in range(3))
    assert (heads.kind, heads.result) == ("newHeads", {"number": "0x10"})
    assert (logs.kind, logs.result) == ("logs", {"logIndex": "0x0"})
    assert (pending.kind, pending.result) == ("newPendingTransactions", {"hash": "0x01"})
    assert before <= heads.received_at <= logs.received_at <= pending.received_at
    assert pending.received_at <= time.perf_counter()


def test_pending_falls_back_to_hashes_when_full_transactions_are_refused(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    node.refuse_full_pending = True
    recorder = Recorder()
    make(recorder, new_heads=False, pending=True)

    connected = recorder.expect(Connected)
    node.push("newPendingTransactions", "0x" + "ab" * 32)

    assert connected == Connected(1, ("newPendingTransactions",), full_pending_transactions=False)
    assert node.subscribe_params() == [
        ["newPendingTransactions", True],
        ["newPendingTransactions"],
    ]
    assert recorder.expect(Notification).result == "0x" + "ab" * 32
    assert not ws_logs.messages(logging.WARNING)


def test_a_refused_kind_is_left_out_with_one_warning_naming_it(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    node.refuse = {"logs"}
    recorder = Recorder()
    make(recorder, logs_filter=LOGS_FILTER)
    assert recorder.expect(Connected).kinds == ("newHeads",)

    node.drop()
    recorder.expect(Disconnected)

    assert recorder.expect(Connected) == Connected(2, ("newHeads",), False)
    refusals = [m for m in ws_logs.messages(logging.WARNING) if "refuses" in m]
    assert len(refusals) == 1
    assert "eth_subscribe logs" in refusals[0]
    assert "unsupported subscription logs" in refusals[0]


def test_notifications_sent_while_subscribing_come_right_after_connected(
    node: FakeNode, make: Make
) -> None:
    def head_right_away(fake: FakeNode, kind: str) -> None:
        if kind == "newHeads":  # before the logs subscription is even answered
            fake.push("newHeads", {"number": "0x1"})

    node.on_subscribe = head_right_away
    recorder = Recorder()
    make(recorder, logs_filter=LOGS_FILTER)

    assert recorder.expect(Connected).kinds == ("newHeads", "logs")
    assert recorder.expect(Notification).result == {"number": "0x1"}


def test_an_unanswered_subscription_is_retried_without_a_connected(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    node.answer_subscribe = False
    recorder = Recorder()
    subscriber = make(recorder, subscribe_timeout=0.05)
    deadline = time.monotonic() + WAIT_S
    while subscriber.connect_failures < 2:
        assert time.monotonic() < deadline, "the subscriber did not retry"
        time.sleep(0.005)
    recorder.assert_quiet()

    node.answer_subscribe = True

    assert recorder.expect(Connected).generation == 1
    assert any("no answer to eth_subscribe newHeads" in m for m in ws_logs.messages())


# Garbage and consumer bugs.


def test_malformed_frames_are_counted_and_skipped(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    recorder = Recorder()
    subscriber = make(recorder)
    recorder.expect(Connected)
    garbage: list[str | bytes] = [
        "not json {",
        b"\xff\xfe\x00",
        "[1, 2]",
        "42",
        "[" * 50_000 + "]" * 50_000,
        '{"jsonrpc": "2.0", "method": "eth_subscription"}',
        '{"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": "0x1"}}',
        FakeNode.notification(7, {}),  # a number as the subscription id
        '{"jsonrpc": "2.0", "id": 99, "result": "0x1"}',
        '{"jsonrpc": "2.0", "method": "eth_somethingElse", "params": {}}',
    ]

    for frame in garbage:
        node.send_raw(frame)
    node.send_raw(FakeNode.notification("0xdead", {"number": "0x2"}))
    node.push("newHeads", {"number": "0x3"})

    assert recorder.expect(Notification).result == {"number": "0x3"}
    recorder.assert_quiet()
    assert subscriber.malformed == len(garbage)
    assert subscriber.unknown_subscription == 1
    assert subscriber.generation == 1
    warnings = "\n".join(ws_logs.messages(logging.WARNING))
    for problem in (
        "a frame that is not JSON",
        "a JSON frame that is not an object",
        "without params.result",
        "without a subscription id",
        "an answer to no request",
        "not a notification",
        "unknown subscription 0xdead",
    ):
        assert problem in warnings


def test_a_failing_callback_is_logged_and_the_subscriber_keeps_going(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    recorder = Recorder(fail_on_notifications={1})
    subscriber = make(recorder)
    recorder.expect(Connected)

    node.push("newHeads", {"number": "0x1"})
    node.push("newHeads", {"number": "0x2"})

    assert recorder.expect(Notification).result == {"number": "0x1"}
    assert recorder.expect(Notification).result == {"number": "0x2"}
    assert subscriber.callback_errors == 1
    failures = [r for r in ws_logs.records if r.getMessage() == "on_message failed on Notification"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def test_a_slow_callback_does_not_cost_the_connection(node: FakeNode, make: Make) -> None:
    recorder = Recorder()
    count, padding = 200, "x" * 1_000  # far beyond the library's default flow-control window

    def backfill_slowly(message: WsMessage) -> None:
        recorder(message)
        if isinstance(message, Connected):
            for number in range(count):
                node.push("newHeads", {"number": hex(number), "padding": padding})
            time.sleep(0.5)  # ten keepalive periods without reading

    subscriber = make(backfill_slowly, ping_interval=0.05)
    recorder.expect(Connected)

    numbers = [recorder.expect(Notification).result["number"] for _ in range(count)]

    assert numbers == [hex(number) for number in range(count)]
    recorder.assert_quiet()
    assert subscriber.generation == 1


# Reconnection.


@pytest.mark.parametrize("abrupt", [False, True], ids=["close frame", "tcp shutdown"])
def test_a_drop_is_followed_by_disconnected_and_a_new_generation(
    node: FakeNode, make: Make, abrupt: bool
) -> None:
    recorder = Recorder()
    subscriber = make(recorder, logs_filter=LOGS_FILTER)
    first = recorder.expect(Connected)
    old_heads = node.subscription_id("newHeads")

    node.drop(abrupt=abrupt)

    disconnected = recorder.expect(Disconnected)
    assert disconnected.generation == 1
    assert ("1011" in disconnected.reason) is not abrupt
    second = recorder.expect(Connected)
    assert second == Connected(2, first.kinds, first.full_pending_transactions)
    assert subscriber.reconnects == 1
    assert len(node.subscribe_params()) == 4  # everything subscribed again
    node.send_raw(FakeNode.notification(old_heads, {"number": "0x1"}))  # a stale id
    node.push("newHeads", {"number": "0x2"})
    assert recorder.expect(Notification).result == {"number": "0x2"}
    assert subscriber.unknown_subscription == 1


def test_backoff_doubles_up_to_the_cap_and_restarts_after_a_connect(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    recorder = Recorder()
    subscriber = make(recorder, backoff_initial=0.02, backoff_max=0.08)
    recorder.expect(Connected)
    node.reject_handshakes = 4
    dropped_at = time.monotonic()

    node.drop()
    recorder.expect(Disconnected)
    recorder.expect(Connected)

    assert delays_logged(ws_logs) == ["0.02", "0.04", "0.08", "0.08", "0.08"]
    assert subscriber.connect_failures == 4
    attempts = [at for at, _path in node.handshakes[1:]]
    gaps = [b - a for a, b in itertools.pairwise([dropped_at, *attempts])]
    assert all(
        gap >= delay for gap, delay in zip(gaps, [0.02, 0.04, 0.08, 0.08, 0.08], strict=True)
    )

    node.drop()
    recorder.expect(Disconnected)
    assert recorder.expect(Connected).generation == 3

    assert delays_logged(ws_logs)[5:] == ["0.02"]


def test_stop_interrupts_a_backoff_wait(node: FakeNode, make: Make) -> None:
    recorder = Recorder()
    subscriber = make(recorder, backoff_initial=60.0, backoff_max=60.0)
    recorder.expect(Connected)
    node.drop()
    recorder.expect(Disconnected)
    started = time.monotonic()

    subscriber.stop(WAIT_S)

    assert time.monotonic() - started < WAIT_S
    assert not subscriber.connected
    assert len(node.handshakes) == 1
    subscriber.stop()  # idempotent
    recorder.assert_quiet()  # no Disconnected for a stop


def test_the_context_manager_starts_and_stops_the_thread(node: FakeNode) -> None:
    recorder = Recorder()
    with WsSubscriber(node.url(), on_message=recorder) as subscriber:
        assert subscriber.wait_connected(WAIT_S)
        with pytest.raises(RuntimeError, match="already started"):
            subscriber.start()
    assert not subscriber.connected
    assert not any(t.name == "ws-subscriber" and t.is_alive() for t in threading.enumerate())


def test_stop_from_the_callback_ends_the_thread(node: FakeNode, make: Make) -> None:
    stopped = threading.Event()
    subscriber: WsSubscriber | None = None

    def stop_on_connected(message: WsMessage) -> None:
        if isinstance(message, Connected) and subscriber is not None:
            subscriber.stop()
            stopped.set()

    subscriber = WsSubscriber(node.url(), on_message=stop_on_connected, backoff_initial=0.01)
    subscriber.start()
    try:
        assert stopped.wait(WAIT_S)
        assert subscriber._thread is not None
        subscriber._thread.join(WAIT_S)
        assert not subscriber._thread.is_alive()
    finally:
        subscriber.stop(WAIT_S)


def test_the_key_in_the_url_reaches_no_log_reason_or_repr(
    node: FakeNode, make: Make, ws_logs: LogRecords
) -> None:
    wire = logging.getLogger("overlord.ws.wire")
    wire.setLevel(logging.DEBUG)  # the library would log the request path at DEBUG
    try:
        recorder = Recorder()
        subscriber = make(recorder, path=f"/v3/{SECRET}")
        recorder.expect(Connected)
        node.reject_handshakes = 2

        node.drop(abrupt=True)
        disconnected = recorder.expect(Disconnected)
        recorder.expect(Connected)
    finally:
        wire.setLevel(logging.NOTSET)

    assert node.handshakes[0][1] == f"/v3/{SECRET}"
    assert subscriber.connect_failures == 2
    assert SECRET not in disconnected.reason
    assert SECRET not in repr(subscriber)
    assert ws_logs.messages(logging.WARNING)
    for message in ws_logs.messages():
        assert SECRET not in message
