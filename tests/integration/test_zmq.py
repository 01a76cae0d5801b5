"""EventPublisher and ``overlord listen`` over real ZMQ sockets (ipc:// and loopback tcp://).

Every wait is bounded (``WAIT_S``) and nothing asserts on elapsed time. Connection setup is
asynchronous in ZMQ, so tests publish until a consumer has accepted (PUSH) or received
(PUB, the slow-joiner problem) a message instead of sleeping a guessed amount.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from overlord.outputs.events import UnderwaterUserEvent, decode_event, encode_event
from overlord.outputs.listen import open_consumer
from overlord.outputs.publisher import EventPublisher, SocketKind, default_endpoint
from tests.unit.outputs.samples import sample_event

WAIT_S = 30.0
WAIT_MS = int(WAIT_S * 1000)
Context = zmq.Context[zmq.Socket[bytes]]


@pytest.fixture
def context() -> Iterator[Context]:
    context: Context = zmq.Context()
    yield context
    context.term()  # hangs if a test leaked a socket: LINGER 0 everywhere keeps it instant


@pytest.fixture
def ipc_endpoint(tmp_path: Path) -> str:
    return default_endpoint(tmp_path)


def publish_until_accepted(publisher: EventPublisher, event: UnderwaterUserEvent) -> None:
    """Publish until ZMQ accepts the event (PUSH: once a consumer's connection is up)."""
    before = publisher.published
    deadline = time.monotonic() + WAIT_S
    while True:
        publisher.publish(event)
        if publisher.published > before:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no consumer accepted an event within {WAIT_S} s")
        time.sleep(0.01)


def receive(socket: zmq.Socket[bytes]) -> list[bytes]:
    if not socket.poll(WAIT_MS):
        pytest.fail(f"no message within {WAIT_S} s")
    return socket.recv_multipart()


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_push_to_pull_delivers_events_in_order(
    context: Context, ipc_endpoint: str, transport: str
) -> None:
    endpoint = ipc_endpoint if transport == "ipc" else "tcp://127.0.0.1:*"
    events = [sample_event(trace_id=f"t{i}", block_number=100 + i) for i in range(3)]
    with EventPublisher(endpoint) as publisher:
        consumer = open_consumer(context, publisher.endpoint)
        try:
            publish_until_accepted(publisher, events[0])
            for event in events[1:]:
                publisher.publish(event)
            received = [decode_event(receive(consumer)[0]) for _ in events]
        finally:
            consumer.close()
    assert received == events
    assert publisher.published == 3


def test_tcp_bind_to_a_free_loopback_port_reports_the_port() -> None:
    with EventPublisher("tcp://127.0.0.1:*") as publisher:
        host, _, port = publisher.endpoint.rpartition(":")
    assert host == "tcp://127.0.0.1"
    assert int(port) > 0


def test_pub_to_sub_filters_by_topic_prefix(context: Context) -> None:
    with EventPublisher(
        "tcp://127.0.0.1:*", kind=SocketKind.PUB, topic="overlord.underwater.1"
    ) as publisher:
        subscriber = open_consumer(context, publisher.endpoint, subscribe="overlord.underwater")
        try:
            # Slow joiner: PUB discards messages until the subscription has reached it.
            probe = sample_event(trace_id="probe")
            deadline = time.monotonic() + WAIT_S
            while not subscriber.poll(50):
                if time.monotonic() > deadline:
                    pytest.fail(f"the subscriber did not join within {WAIT_S} s")
                publisher.publish(probe)
            publisher.publish(sample_event(trace_id="filtered"), topic="overlord.other")
            publisher.publish(sample_event(trace_id="wanted"))
            # One pipe keeps order: after the probes in flight, the next message is "wanted".
            while True:
                topic, payload = receive(subscriber)
                event = decode_event(payload)
                if event.trace_id != "probe":
                    break
        finally:
            subscriber.close()
    assert (topic, event.trace_id) == (b"overlord.underwater.1", "wanted")


def test_push_without_a_consumer_drops_instead_of_blocking(ipc_endpoint: str) -> None:
    with EventPublisher(ipc_endpoint) as publisher:
        publisher.publish(sample_event())
        assert (publisher.published, publisher.dropped) == (0, 1)
    with EventPublisher(ipc_endpoint, send_timeout_ms=20) as waiting:
        waiting.publish(sample_event())
        assert (waiting.published, waiting.dropped) == (0, 1)


def test_a_consumer_that_stops_reading_causes_drops_not_a_hang(
    context: Context, ipc_endpoint: str
) -> None:
    total = 20_000  # far beyond both high-water marks plus the kernel's socket buffers
    with EventPublisher(ipc_endpoint, send_hwm=10) as publisher:
        consumer = open_consumer(context, publisher.endpoint)
        consumer.setsockopt(zmq.RCVHWM, 10)
        try:
            publish_until_accepted(publisher, sample_event())
            for _ in range(total - 1):
                publisher.publish(sample_event())
        finally:
            consumer.close()
    assert publisher.dropped > 0
    assert publisher.published + publisher.dropped >= total


def _listen(*options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "overlord", "listen", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"overlord listen did not finish within {WAIT_S} s")


def test_listen_prints_two_events_as_json(ipc_endpoint: str) -> None:
    first, second = sample_event(trace_id="first"), sample_event(trace_id="second", plan=False)
    with EventPublisher(ipc_endpoint) as publisher:
        process = _listen("--endpoint", ipc_endpoint, "--count", "2", "--json")
        publish_until_accepted(publisher, first)
        publish_until_accepted(publisher, second)
        stdout, stderr = _finish(process)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert [decode_event(line.encode()) for line in lines] == [first, second]
    assert lines[0].encode() == encode_event(first)  # integers as strings, as on the wire
    assert "listen: 2 events, 0 malformed" in stderr


def test_listen_reports_malformed_messages_and_carries_on(
    context: Context, ipc_endpoint: str
) -> None:
    pusher = context.socket(zmq.PUSH)
    pusher.setsockopt(zmq.LINGER, 0)
    pusher.bind(ipc_endpoint)
    try:
        process = _listen("--endpoint", ipc_endpoint, "--count", "1")
        # The first send blocks (bounded) until the listener's connection is up.
        pusher.setsockopt(zmq.SNDTIMEO, WAIT_MS)
        pusher.send(b"{not json")
        pusher.send(b'{"schema_version": 2}')
        # A version-1 producer's event: no plan costs, no net profit.
        old = json.loads(encode_event(sample_event()))
        old["schema_version"] = 1
        for name in ("swap_cost_base", "flash_loan_premium_base", "gas_cost_base"):
            del old["liquidation_plan"][name]
        del old["liquidation_plan"]["estimated_net_profit_base"]
        pusher.send(json.dumps(old).encode())
        pusher.send(encode_event(sample_event()))
        stdout, stderr = _finish(process)
    finally:
        pusher.close()
    assert process.returncode == 0, stderr
    assert stdout.startswith("block 21000000 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf hf 0.9375")
    assert stderr.count("malformed message:") == 3
    assert "not valid JSON" in stderr
    assert "missing required field" in stderr
    assert "unsupported schema_version 1 (this reader understands 2)" in stderr
    assert "listen: 1 events, 3 malformed" in stderr


def test_listen_subscribes_to_a_topic(ipc_endpoint: str) -> None:
    wanted = sample_event(trace_id="wanted")
    with EventPublisher(ipc_endpoint, kind=SocketKind.PUB, topic="overlord.underwater.1") as pub:
        process = _listen(
            "--endpoint", ipc_endpoint, "--pub", "--topic", "overlord.underwater", "--count", "1"
        )
        deadline = time.monotonic() + WAIT_S
        # Slow joiner: keep publishing until the listener has its event and exits.
        while process.poll() is None and time.monotonic() < deadline:
            pub.publish(sample_event(trace_id="filtered"), topic="overlord.other")
            pub.publish(wanted)
            time.sleep(0.02)
        stdout, stderr = _finish(process)
    assert process.returncode == 0, stderr
    assert stdout.count("\n") == 1
    assert "trace wanted" in stdout


def test_listen_stops_on_ctrl_c_with_exit_code_zero(ipc_endpoint: str) -> None:
    with EventPublisher(ipc_endpoint) as publisher:
        process = _listen("--endpoint", ipc_endpoint)
        try:
            publish_until_accepted(publisher, sample_event())
            assert process.stdout is not None
            # The line on stdout shows the receive loop runs; readable within the bound.
            ready, _, _ = select.select([process.stdout], [], [], WAIT_S)
            assert ready, f"no output within {WAIT_S} s"
            first_line = process.stdout.readline()
            process.send_signal(signal.SIGINT)
        finally:
            stdout, stderr = _finish(process)
    assert process.returncode == 0, stderr
    assert first_line.startswith("block 21000000 ")
    assert stdout == ""
    assert "listen: 1 events, 0 malformed" in stderr
