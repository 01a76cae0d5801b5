"""EventPublisher's endpoint policy and lifecycle (the sockets themselves: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from overlord.outputs.publisher import (
    IPC_PATH_MAX_BYTES,
    EndpointError,
    EventPublisher,
    PublisherClosedError,
    PublisherError,
    SocketKind,
    check_bind_endpoint,
    default_endpoint,
)
from tests.unit.outputs.samples import sample_event


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:5555",
        "tcp://127.0.0.1:*",
        "tcp://127.1.2.3:5555",
        "tcp://[::1]:5555",
        "ipc:///tmp/overlord-events.ipc",
        "ipc://relative/events.ipc",
        "inproc://events",
    ],
)
def test_local_endpoints_are_accepted(endpoint: str) -> None:
    check_bind_endpoint(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://eth0:5555", "tcp://10.0.0.5:5555"],
)
def test_non_loopback_tcp_binds_need_allow_remote(endpoint: str) -> None:
    with pytest.raises(EndpointError, match="allow_remote"):
        check_bind_endpoint(endpoint)
    check_bind_endpoint(endpoint, allow_remote=True)


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("127.0.0.1:5555", "expected"),
        ("tcp://", "expected"),
        ("tcp://127.0.0.1", "tcp://HOST:PORT"),
        ("udp://127.0.0.1:5555", "unsupported transport"),
        ("pgm://eth0;239.192.1.1:5555", "unsupported transport"),
        ("ipc:///" + "x" * IPC_PATH_MAX_BYTES, "longer than"),
    ],
)
def test_malformed_endpoints_are_refused(endpoint: str, reason: str) -> None:
    with pytest.raises(EndpointError, match=reason):
        check_bind_endpoint(endpoint, allow_remote=True)


def test_default_endpoint_is_an_absolute_ipc_path_in_the_data_dir(tmp_path: Path) -> None:
    assert default_endpoint(tmp_path) == f"ipc://{tmp_path.resolve()}/overlord-events.ipc"
    relative = default_endpoint(Path("data"))
    assert relative.startswith("ipc:///")
    assert relative.endswith("/data/overlord-events.ipc")


def test_the_publisher_refuses_a_remote_bind_before_opening_a_socket() -> None:
    with pytest.raises(EndpointError):
        EventPublisher("tcp://0.0.0.0:*")


@pytest.mark.parametrize(("send_hwm", "send_timeout_ms"), [(0, 0), (1, -1)])
def test_invalid_limits_are_refused(send_hwm: int, send_timeout_ms: int) -> None:
    with pytest.raises(ValueError, match="send_hwm"):
        EventPublisher("inproc://limits", send_hwm=send_hwm, send_timeout_ms=send_timeout_ms)


def test_an_unbindable_endpoint_is_a_publisher_error() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with (
            EventPublisher("inproc://taken", context=context),
            pytest.raises(PublisherError, match="cannot bind"),
        ):
            EventPublisher("inproc://taken", context=context)
    finally:
        context.term()


def test_publishing_after_close_is_an_error_and_close_is_idempotent() -> None:
    publisher = EventPublisher("inproc://closed", kind=SocketKind.PUB)
    publisher.close()
    publisher.close()
    with pytest.raises(PublisherClosedError):
        publisher.publish(sample_event())


def test_properties_describe_the_socket() -> None:
    with EventPublisher("inproc://props", kind=SocketKind.PUB, topic="t.1") as publisher:
        assert publisher.kind is SocketKind.PUB
        assert publisher.topic == "t.1"
        assert publisher.endpoint == "inproc://props"
        assert (publisher.published, publisher.dropped) == (0, 0)


def test_waiting_for_a_consumer_returns_once_one_connects_and_then_nothing_is_dropped(
    tmp_path: Path,
) -> None:
    endpoint = f"ipc://{tmp_path}/wait.ipc"
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    consumer = context.socket(zmq.PULL)
    consumer.setsockopt(zmq.LINGER, 0)
    consumer.setsockopt(zmq.RCVTIMEO, 5_000)
    try:
        with EventPublisher(endpoint, context=context) as publisher:
            assert publisher.wait_for_consumer(0.05) is False  # nobody yet
            consumer.connect(endpoint)
            assert publisher.wait_for_consumer(5.0) is True
            publisher.publish(sample_event())
            assert consumer.recv()
            assert publisher.dropped == 0
    finally:
        consumer.close()
        context.term()
