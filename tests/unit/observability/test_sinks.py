"""Webhook delivery against a real local receiver, and the fan-out's isolation."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from overlord.observability.metrics import Metrics
from overlord.observability.sinks import Sink, Sinks, SinkStats, WebhookSink


def webhook(
    url: str, *, metrics: Metrics | None = None, retries: int = 3, queue_size: int = 1000
) -> WebhookSink:
    """A sink with test-sized backoff (10 ms, 20 ms, …)."""
    return WebhookSink(
        url,
        metrics=metrics,
        retries=retries,
        queue_size=queue_size,
        retry_base_s=0.01,
        timeout_s=2.0,
    )


class Receiver(ThreadingHTTPServer):
    """Records every POST body; answers from ``script`` (then 200), optionally after a gate."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.bodies: list[dict[str, Any]] = []
        self.script: list[int] = []
        self.always: int | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook?token=secret"

    def answer(self, body: dict[str, Any]) -> int:
        with self.lock:
            self.bodies.append(body)
            if self.script:
                return self.script.pop(0)
            return self.always or 200


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.answer(json.loads(raw))
        self.server.arrived.set()
        self.server.gate.wait(10)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def failures(metrics: Metrics, sink: str = "webhook") -> float | None:
    return metrics.registry.get_sample_value("sink_failures_total", {"sink": sink})


def dropped(metrics: Metrics, sink: str = "webhook") -> float | None:
    return metrics.registry.get_sample_value("sink_dropped_total", {"sink": sink})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_delivers_the_envelope_with_large_ints_exact(receiver: Receiver, metrics: Metrics) -> None:
    amount = 2**200 + 1
    sink = webhook(receiver.url, metrics=metrics)
    before = time.time()
    sink.send("underwater", {"user": "0xabc", "debt": amount, "nested": {"hf": 2**63}})
    sink.close()
    assert sink.stats == SinkStats(delivered=1, failed=0, dropped=0)
    [body] = receiver.bodies
    assert body["type"] == "underwater"
    assert body["data"] == {"user": "0xabc", "debt": amount, "nested": {"hf": 2**63}}
    assert before <= body["sent_at"] <= time.time()
    assert failures(metrics) == 0
    assert dropped(metrics) == 0


def test_the_payload_is_captured_at_send(receiver: Receiver) -> None:
    sink = webhook(receiver.url)
    payload: dict[str, Any] = {"n": 1, "raw": b"\x01\xff"}
    sink.send("e", payload)
    payload["n"] = 2
    sink.close()
    assert receiver.bodies[0]["data"] == {"n": 1, "raw": "0x01ff"}


def test_retries_until_the_receiver_accepts(receiver: Receiver, metrics: Metrics) -> None:
    receiver.script = [500, 500]
    sink = webhook(receiver.url, metrics=metrics, retries=3)
    sink.send("e", {"i": 1})
    sink.close()
    assert len(receiver.bodies) == 3
    assert all(body["data"] == {"i": 1} for body in receiver.bodies)
    assert sink.stats == SinkStats(delivered=1, failed=0, dropped=0)
    assert failures(metrics) == 0


def test_a_receiver_that_always_fails_is_counted_and_never_blocks_the_caller(
    receiver: Receiver, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.always = 500
    receiver.gate.clear()  # the receiver holds the first request
    sink = webhook(receiver.url, metrics=metrics, retries=2)
    sink.send("e", {"i": 1})
    assert receiver.arrived.wait(5)
    started = time.monotonic()
    sink.send("e", {"i": 2})  # the worker is stuck on the first event
    assert time.monotonic() - started < 0.5
    assert sink.stats.delivered == sink.stats.failed == 0
    receiver.gate.set()
    with caplog.at_level("WARNING", logger="overlord.observability.sinks"):
        sink.close()
    assert len(receiver.bodies) == 6  # 2 events x (1 attempt + 2 retries)
    assert sink.stats == SinkStats(delivered=0, failed=2, dropped=0)
    assert failures(metrics) == 2
    assert "HTTP 500" in caplog.text
    assert "secret" not in caplog.text  # the URL is redacted


def test_connection_refused_is_a_failure_not_an_exception(metrics: Metrics) -> None:
    sink = webhook(f"http://127.0.0.1:{closed_port()}/hook", metrics=metrics, retries=1)
    sink.send("e", {"i": 1})
    sink.close()
    assert sink.stats == SinkStats(delivered=0, failed=1, dropped=0)
    assert failures(metrics) == 1


def test_a_full_queue_drops_the_oldest(
    receiver: Receiver, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.gate.clear()
    sink = webhook(receiver.url, metrics=metrics, queue_size=3)
    sink.send("e", {"i": 0})
    assert receiver.arrived.wait(5)  # event 0 is in flight, out of the queue
    with caplog.at_level("WARNING", logger="overlord.observability.sinks"):
        for i in range(1, 8):
            sink.send("e", {"i": i})
    receiver.gate.set()
    sink.close()
    assert [body["data"]["i"] for body in receiver.bodies] == [0, 5, 6, 7]
    assert sink.stats == SinkStats(delivered=4, failed=0, dropped=4)
    assert dropped(metrics) == 4
    assert caplog.text.count("dropping events") == 1  # rate-limited


def test_close_gives_up_on_what_it_cannot_deliver_in_time(receiver: Receiver) -> None:
    receiver.always = 500
    sink = WebhookSink(receiver.url, retries=50, retry_base_s=0.05, timeout_s=2.0)
    for i in range(3):
        sink.send("e", {"i": i})
    started = time.monotonic()
    sink.close(timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert sink.stats == SinkStats(delivered=0, failed=1, dropped=2)
    sink.send("late", {})
    assert sink.stats.dropped == 3


def test_an_unserializable_payload_fails_the_event_not_the_caller(
    receiver: Receiver, metrics: Metrics
) -> None:
    sink = webhook(receiver.url, metrics=metrics)
    sink.send("e", {"when": object()})
    sink.send("e", {"ok": True})
    sink.close()
    assert sink.stats == SinkStats(delivered=1, failed=1, dropped=0)
    assert failures(metrics) == 1


class RecordingSink:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, Mapping[str, Any]]] = []
        self.closed = False

    def send(self, kind: str, payload: Mapping[str, Any]) -> None:
        self.sent.append((kind, payload))

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


class BrokenSink(RecordingSink):
    def send(self, kind: str, payload: Mapping[str, Any]) -> None:
        raise RuntimeError("bug in a sink")

    def close(self, timeout: float = 5.0) -> None:
        raise RuntimeError("bug on close")


def test_sinks_isolates_a_raising_sink(metrics: Metrics, caplog: pytest.LogCaptureFixture) -> None:
    first, broken, last = RecordingSink("a"), BrokenSink("broken"), RecordingSink("b")
    sinks: list[Sink] = [first, broken, last]
    fanout = Sinks(sinks, metrics=metrics)
    with caplog.at_level("ERROR", logger="overlord.observability.sinks"):
        fanout.send("e", {"i": 1})
        fanout.send("e", {"i": 2})
        fanout.close()
    assert first.sent == last.sent == [("e", {"i": 1}), ("e", {"i": 2})]
    assert failures(metrics, "broken") == 2
    assert failures(metrics, "a") is None
    assert first.closed
    assert last.closed
    assert "bug in a sink" in caplog.text


def test_sinks_fans_out_to_a_webhook(receiver: Receiver) -> None:
    delivery = webhook(receiver.url)
    recorder = RecordingSink("memory")
    fanout = Sinks([delivery, recorder])
    fanout.send("mined", {"block": 1})
    fanout.close()
    assert receiver.bodies[0]["data"] == {"block": 1}
    assert recorder.sent == [("mined", {"block": 1})]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        WebhookSink("http://127.0.0.1:9/", queue_size=0)
