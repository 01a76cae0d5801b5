"""Publish ``UnderwaterUserEvent``\\ s over ZeroMQ.

The publisher binds; consumers connect (``overlord listen`` is one). Two socket types:

- **PUSH** (default, as the prior system): each event goes to one connected PULL consumer,
  round-robin. With no consumer connected, or a consumer's queue full, ZMQ cannot accept the
  message; :meth:`EventPublisher.publish` then counts a drop instead of blocking.
- **PUB**: every connected SUB whose subscription is a prefix of the topic gets the event, as
  two frames ``[topic, payload]``. PUB never blocks: ZMQ silently discards a message for a
  subscriber that is absent, not yet joined ("slow joiner") or behind by the high-water
  mark, so for PUB ``dropped`` only counts what the socket refused, not those discards.

Payloads are :func:`overlord.outputs.events.encode_event` bytes (JSON). ``LINGER`` is 0
while running; :meth:`EventPublisher.close` waits a bounded time (1 s by default) for
queued messages to reach a connected consumer, so an exiting process does not drop its
last events. The send high-water mark is explicit. TCP
binds are restricted to loopback addresses unless ``allow_remote=True``: events name
borrowers and carry raw transactions, which is nobody else's business by default.

A publisher is not thread-safe (ZMQ sockets are not): use it from one thread.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import zmq

from overlord.outputs.events import UnderwaterUserEvent, encode_event

EVENTS_SOCKET_NAME: Final = "overlord-events.ipc"
DEFAULT_TOPIC: Final = "overlord.underwater"
DEFAULT_SEND_HWM: Final = 10_000
"""Messages queued per consumer before sends are refused (the prior system's bus capacity)."""
IPC_PATH_MAX_BYTES: Final = 107
"""``sizeof(sockaddr_un.sun_path) - 1`` on Linux: longer ipc paths cannot be bound."""


class SocketKind(StrEnum):
    """How events are fanned out: one consumer per event (PUSH) or all subscribers (PUB)."""

    PUSH = "push"
    PUB = "pub"


class EndpointError(ValueError):
    """The endpoint is malformed, or binding it would expose events beyond this host."""


class PublisherError(RuntimeError):
    """ZMQ failed to bind or send; ``__cause__`` is the ``zmq.ZMQError``."""


class PublisherClosedError(RuntimeError):
    """:meth:`EventPublisher.publish` was called after :meth:`EventPublisher.close`."""


def default_endpoint(data_dir: Path) -> str:
    """``ipc://<data_dir>/overlord-events.ipc`` with ``data_dir`` made absolute."""
    return f"ipc://{data_dir.resolve() / EVENTS_SOCKET_NAME}"


def _check_tcp(endpoint: str, address: str, allow_remote: bool) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port:
        raise EndpointError(f"{endpoint}: expected tcp://HOST:PORT")
    if allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False  # a name or a wildcard ("*", "eth0"): may not be loopback
    if not loopback:
        raise EndpointError(
            f"refusing to bind {endpoint}: not a loopback address; bind tcp://127.0.0.1:PORT "
            "or pass allow_remote=True to publish events to other hosts"
        )


def check_bind_endpoint(endpoint: str, *, allow_remote: bool = False) -> None:
    """Accept ``ipc://PATH``, ``inproc://NAME`` and loopback ``tcp://IP:PORT`` (or any TCP
    address when ``allow_remote``); PORT may be ``*`` for a free port.

    Raises:
        EndpointError: another transport, a malformed endpoint, a non-loopback TCP host
            without ``allow_remote``, or an ipc path too long for a Unix socket.
    """
    scheme, sep, address = endpoint.partition("://")
    if not sep or not address:
        raise EndpointError(f"{endpoint!r}: expected ipc://PATH, tcp://HOST:PORT or inproc://NAME")
    if scheme == "tcp":
        _check_tcp(endpoint, address, allow_remote)
    elif scheme == "ipc":
        if len(address.encode()) > IPC_PATH_MAX_BYTES:
            raise EndpointError(
                f"{endpoint}: the socket path is longer than {IPC_PATH_MAX_BYTES} bytes"
            )
    elif scheme != "inproc":
        raise EndpointError(f"{endpoint}: unsupported transport {scheme!r} (ipc, tcp, inproc)")


class EventPublisher:
    """Bind a PUSH or PUB socket on ``endpoint`` and publish events without ever hanging.

    ``send_timeout_ms`` = 0 (default) sends without blocking; a positive value lets a send
    wait up to that long for room (a consumer connecting, a full queue draining) before it
    counts as a drop. Counters: :attr:`published` (accepted by ZMQ) and :attr:`dropped`.
    Pass ``context`` to share one ZMQ context; otherwise the publisher owns (and terminates)
    its own.

    Raises:
        EndpointError: see :func:`check_bind_endpoint`.
        PublisherError: the bind failed (address in use, directory not writable).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        kind: SocketKind = SocketKind.PUSH,
        topic: str = DEFAULT_TOPIC,
        send_hwm: int = DEFAULT_SEND_HWM,
        send_timeout_ms: int = 0,
        allow_remote: bool = False,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        check_bind_endpoint(endpoint, allow_remote=allow_remote)
        if send_hwm < 1 or send_timeout_ms < 0:
            raise ValueError("send_hwm must be >= 1 and send_timeout_ms >= 0")
        self._kind = SocketKind(kind)
        self._topic = topic.encode()
        self._flags = zmq.NOBLOCK if send_timeout_ms == 0 else 0
        self._owns_context = context is None
        self._context = zmq.Context() if context is None else context
        self._published = 0
        self._dropped = 0
        self._closed = False
        self._endpoint = endpoint
        socket_type = zmq.PUSH if self._kind is SocketKind.PUSH else zmq.PUB
        self._socket = self._context.socket(socket_type)
        try:
            self._bind(endpoint, send_hwm, send_timeout_ms)
        except BaseException:
            self.close()
            raise

    def _bind(self, endpoint: str, send_hwm: int, send_timeout_ms: int) -> None:
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, send_hwm)
        if send_timeout_ms:
            self._socket.setsockopt(zmq.SNDTIMEO, send_timeout_ms)
        if endpoint.startswith("tcp://["):
            self._socket.setsockopt(zmq.IPV6, 1)
        if endpoint.startswith("ipc://"):
            Path(endpoint.removeprefix("ipc://")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            raise PublisherError(f"cannot bind {endpoint}: {exc}") from exc
        last = self._socket.getsockopt(zmq.LAST_ENDPOINT)
        self._endpoint = last.decode() if isinstance(last, bytes) else endpoint

    def wait_for_consumer(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a consumer to connect; whether one did.

        A PUSH socket with nobody connected drops what it is given. After a restart the
        executor's socket reconnects within its reconnect interval (100 ms by default),
        while the engine announces every underwater user at its first block: waiting for
        the connection first keeps those announcements. Call it before the first
        publish; it never waits for longer than ``timeout_s``.
        """
        monitor = self._socket.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        try:
            poller = zmq.Poller()
            poller.register(monitor, zmq.POLLIN)
            return bool(poller.poll(int(timeout_s * 1000)))
        finally:
            self._socket.disable_monitor()
            monitor.close()

    @property
    def endpoint(self) -> str:
        """The bound endpoint, with the actual port when bound to ``tcp://HOST:*``."""
        return self._endpoint

    @property
    def kind(self) -> SocketKind:
        """PUSH or PUB."""
        return self._kind

    @property
    def topic(self) -> str:
        """The default topic frame of PUB messages."""
        return self._topic.decode()

    @property
    def published(self) -> int:
        """Events ZMQ accepted for sending."""
        return self._published

    @property
    def dropped(self) -> int:
        """Events ZMQ refused (no consumer, queue full or send timeout); never sent."""
        return self._dropped

    def publish(self, event: UnderwaterUserEvent, *, topic: str | None = None) -> None:
        """Send one event; returns at once (or after ``send_timeout_ms``), sent or dropped.

        ``topic`` replaces the publisher's topic for this PUB message (ignored by PUSH).

        Raises:
            PublisherClosedError: the publisher is closed.
            PublisherError: ZMQ failed for another reason than a full or absent consumer.
        """
        self.send_bytes(encode_event(event), topic=topic)

    def send_bytes(self, payload: bytes, *, topic: str | None = None) -> None:
        """Send one already encoded message, as :meth:`publish` does (same errors)."""
        if self._closed:
            raise PublisherClosedError("publish() on a closed EventPublisher")
        try:
            if self._kind is SocketKind.PUSH:
                self._socket.send(payload, self._flags)
            else:
                frame = self._topic if topic is None else topic.encode()
                self._socket.send_multipart((frame, payload), self._flags)
        except zmq.Again:
            self._dropped += 1
            return
        except zmq.ZMQError as exc:
            raise PublisherError(f"send failed: {exc}") from exc
        self._published += 1

    def close(self, flush_timeout_ms: int = 1000) -> None:
        """Close the socket and an owned context. Idempotent.

        Messages already queued get up to ``flush_timeout_ms`` to reach a connected
        consumer (a process that publishes and then exits must not lose its last events);
        whatever is still queued after that is discarded.
        """
        if self._closed:
            return
        self._closed = True
        self._socket.close(linger=flush_timeout_ms)
        if self._owns_context:
            self._context.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
