"""JSON-RPC subscriptions (``eth_subscribe``) over a WebSocket, kept alive across drops.

:class:`WsSubscriber` runs one daemon thread that connects, subscribes to ``newHeads``,
``logs`` (with the caller's filter) and ``newPendingTransactions``, and hands everything to
one callback, ``on_message``, on that thread. What the callback receives:

* :class:`Connected` once every subscription has been answered by the node, after the first
  connection and after every reconnection (``generation`` counts them from 1). Notifications
  the node sent while the subscriptions were being set up are delivered right after it, in
  the order received. Subscribe first, backfill second: a consumer fills its gap (blocks,
  logs) only when it sees ``Connected``, so nothing falls between the backfill and the stream.
* :class:`Notification` for each ``eth_subscription`` message of an active subscription.
* :class:`Disconnected` when a connection that reached ``Connected`` is lost, with the same
  generation. Failed attempts in between (refused, timed out) are logged and counted in
  ``connect_failures``; the consumer sees nothing until the next ``Connected``. ``stop()``
  does not emit ``Disconnected``.

After a loss the thread waits (exponential backoff from ``backoff_initial``, doubling, capped
at ``backoff_max``, reset by a successful ``Connected``), reconnects and resubscribes;
``stop()`` interrupts that wait. Full pending transactions (``["newPendingTransactions",
true]``) are asked for first and, when the node refuses them, hashes only
(``Connected.full_pending_transactions`` says which). A kind the node refuses altogether is
left out of ``Connected.kinds`` with one warning.

Nothing a node sends can stop the thread: a frame that is not a JSON-RPC notification or
reply is logged (logger ``overlord.ws``) and counted in ``malformed``, a notification of a
subscription this connection does not hold in ``unknown_subscription``, and an exception in
the callback is logged with its traceback and counted in ``callback_errors``. URLs may carry
API keys: logs, reasons and ``repr`` show them only through :func:`redact_url`, and the
``websockets`` library never logs at DEBUG for us, because its handshake lines carry the path.

``on_message`` runs on the subscriber thread. Frames that arrive while it runs are buffered
without limit (and keepalive pongs still read), so a long backfill on ``Connected`` does not
cost the connection; a callback that is slower than the node's stream for good grows memory.

Nodes do not promise an order between subscriptions: on anvil 1.7.1 a block's ``logs`` come
before or after its ``newHeads`` notification, either way. Consumers must not rely on it.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from overlord.chain.rpc import redact_url

log = logging.getLogger("overlord.ws")

SubscriptionKind: TypeAlias = Literal["newHeads", "logs", "newPendingTransactions"]
NEW_HEADS: Final = "newHeads"
LOGS: Final = "logs"
NEW_PENDING_TRANSACTIONS: Final = "newPendingTransactions"

MAX_MESSAGE_BYTES: Final = 16 * 2**20
"""Largest frame accepted (a full pending transaction can carry large calldata)."""

_WS_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_URL_PARTS: Final = re.compile(r"^[a-z]+://(?:([^@/]*)@)?[^/?#]+(.*)$")
_SNIPPET: Final = 120


@dataclass(frozen=True)
class Connected:
    """Every requested subscription was answered; ``kinds`` are the active ones."""

    generation: int
    kinds: tuple[SubscriptionKind, ...]
    full_pending_transactions: bool


@dataclass(frozen=True)
class Notification:
    """One ``eth_subscription`` message: its kind, ``params.result``, and when it arrived.

    ``received_at`` is the subscriber's clock (``time.perf_counter`` by default) right after
    the frame was read from the socket.
    """

    kind: SubscriptionKind
    result: Any
    received_at: float


@dataclass(frozen=True)
class Disconnected:
    """The connection of ``generation`` was lost; a reconnection follows."""

    generation: int
    reason: str


WsMessage: TypeAlias = Connected | Notification | Disconnected


def ws_url_for(http_url: str) -> str:
    """The WebSocket URL of a node: ``http`` → ``ws``, ``https`` → ``wss``, ``ws(s)`` kept.

    Raises:
        ValueError: the URL has another scheme or no host (shown redacted).
    """
    scheme, separator, rest = http_url.partition("://")
    target = _WS_SCHEMES.get(scheme.lower()) if separator else None
    if target is None or not rest or rest.startswith("/"):
        raise ValueError(
            f"expected an http://, https://, ws:// or wss:// node URL, got {redact_url(http_url)}"
        )
    return f"{target}://{rest}"


def backoff_delays(initial: float, maximum: float) -> Iterator[float]:
    """``initial``, doubling on each step, capped at ``maximum``; endless."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2, maximum)


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` redacted, and its user info, path and query hidden."""
    text = text.replace(url, redact_url(url))
    match = _URL_PARTS.match(url)
    if match:
        for secret in match.groups():
            if secret and secret.strip("/"):
                text = text.replace(secret, "…")
    return text


class _WireLogger(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to ``websockets``, never enabled for DEBUG.

    Its DEBUG lines include the handshake's request path, which is where providers put the
    API key.
    """

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - overrides logging's name
        return level > logging.DEBUG and super().isEnabledFor(level)


class _SubscriptionRefused(Exception):
    """The node answered an ``eth_subscribe`` with an error."""


@dataclass(frozen=True)
class _Frame:
    received_at: float
    message: dict[str, Any]


@dataclass
class _Session:
    """What one connection subscribed to, and the notifications that came meanwhile."""

    kinds: dict[str, SubscriptionKind]  # subscription id → kind
    full_pending: bool
    early: list[_Frame]


class WsSubscriber:
    """Subscriptions to one node over a WebSocket, reconnected until :meth:`stop`.

    Args:
        url: the node's URL; ``http(s)`` is turned into ``ws(s)`` (:func:`ws_url_for`).
        on_message: called on the subscriber thread with every :data:`WsMessage`.
        logs_filter: the ``eth_subscribe`` ``logs`` filter object (``{"address": [...],
            "topics": [...]}``); ``None`` for no ``logs`` subscription.
        new_heads: subscribe to ``newHeads``.
        pending: subscribe to ``newPendingTransactions`` (full objects when the node allows).
        backoff_initial: first wait after a loss, in seconds.
        backoff_max: longest wait between attempts.
        open_timeout: seconds allowed for the TCP, TLS and WebSocket handshakes.
        subscribe_timeout: seconds allowed for the node to answer all ``eth_subscribe`` s.
        ping_interval: seconds between keepalive pings (a dead link is noticed within about
            twice this); ``None`` disables them.
        close_timeout: seconds :meth:`stop` waits for the closing handshake.
        clock: the clock of ``Notification.received_at``.

    Raises:
        ValueError: a bad URL or parameter, or nothing to subscribe to.
    """

    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[WsMessage], object],
        logs_filter: Mapping[str, Any] | None = None,
        new_heads: bool = True,
        pending: bool = False,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        open_timeout: float = 5.0,
        subscribe_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        close_timeout: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._url = ws_url_for(url)
        if not (new_heads or pending or logs_filter is not None):
            raise ValueError("nothing to subscribe to: enable new_heads, pending or logs_filter")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("backoff delays must satisfy 0 < backoff_initial <= backoff_max")
        self._on_message = on_message
        self._logs_filter = dict(logs_filter) if logs_filter is not None else None
        self._new_heads = new_heads
        self._pending = pending
        self._backoff = (backoff_initial, backoff_max)
        self._open_timeout = open_timeout
        self._subscribe_timeout = subscribe_timeout
        self._ping_interval = ping_interval
        self._close_timeout = close_timeout
        self._clock = clock
        self._wire_log = _WireLogger(logging.getLogger("overlord.ws.wire"))
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: ClientConnection | None = None
        self._warned_refusals: set[str] = set()
        self.generation = 0
        """The generation of the last ``Connected`` (0 before the first)."""
        self.reconnects = 0
        """``Connected`` messages after the first one."""
        self.connect_failures = 0
        """Attempts that did not reach ``Connected``."""
        self.malformed = 0
        """Frames that are neither a JSON-RPC notification nor an expected reply."""
        self.unknown_subscription = 0
        """Notifications of a subscription id this connection does not hold."""
        self.callback_errors = 0
        """Exceptions raised by ``on_message``."""

    def __repr__(self) -> str:
        return f"WsSubscriber({redact_url(self._url)}, generation={self.generation})"

    @property
    def connected(self) -> bool:
        """Whether ``Connected`` was delivered and no loss happened since."""
        return self._connected.is_set()

    def start(self) -> None:
        """Start the subscriber thread (a daemon).

        Raises:
            RuntimeError: it was started before (a subscriber runs once).
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the WebSocket subscriber was already started")
            self._thread = threading.Thread(target=self._run, name="ws-subscriber", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Close the connection, end any backoff wait, and join the thread; idempotent.

        Safe to call from ``on_message`` (the thread then ends after the callback returns).
        """
        self._stopping.set()
        with self._lock:
            connection, thread = self._connection, self._thread
        if connection is not None:
            connection.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until ``Connected`` has been handled by ``on_message``; whether it was."""
        return self._connected.wait(timeout)

    def __enter__(self) -> WsSubscriber:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # The subscriber thread.

    def _run(self) -> None:
        delays = backoff_delays(*self._backoff)
        while not self._stopping.is_set():
            generation_before = self.generation
            reason = self._connection_lifetime()
            if self._stopping.is_set():
                break
            if self.generation > generation_before:
                delays = backoff_delays(*self._backoff)
                self._connected.clear()
                self._emit(Disconnected(self.generation, reason))
                what = "lost the connection to"
            else:
                self.connect_failures += 1
                what = "could not subscribe at"
            delay = next(delays)
            log.warning(
                "%s %s (%s); retrying in %.2f s", what, redact_url(self._url), reason, delay
            )
            if self._stopping.wait(delay):
                break
        self._connected.clear()

    def _connection_lifetime(self) -> str:
        """Connect, subscribe and deliver until the connection ends; why it ended."""
        try:
            with connect(
                self._url,
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_interval,
                close_timeout=self._close_timeout,
                max_size=MAX_MESSAGE_BYTES,
                # No flow control: with a bounded queue, a long on_message (a backfill on
                # Connected) stops the library reading the socket, the keepalive pong goes
                # unread, and the connection is dropped, to be backfilled again, and again.
                max_queue=None,
                logger=self._wire_log,
            ) as connection:
                with self._lock:
                    if self._stopping.is_set():
                        return "stopped"
                    self._connection = connection
                try:
                    self._serve(connection)
                finally:
                    with self._lock:
                        self._connection = None
        except ConnectionClosed as exc:
            return scrub(f"connection closed: {exc}", self._url)
        except (OSError, TimeoutError, WebSocketException) as exc:
            return scrub(f"{type(exc).__name__}: {exc}", self._url)
        except Exception as exc:
            # A bug of ours: keep the thread alive, reconnect, and leave a traceback.
            log.exception("unexpected error in the WebSocket subscriber")
            return scrub(f"unexpected {type(exc).__name__}", self._url)
        return "the connection ended"  # not reached: _serve returns only by raising

    def _serve(self, connection: ClientConnection) -> None:
        session = self._subscribe(connection)
        self.generation += 1
        if self.generation > 1:
            self.reconnects += 1
        kinds = tuple(dict.fromkeys(session.kinds.values()))
        log.info(
            "subscribed at %s (generation %d): %s",
            redact_url(self._url),
            self.generation,
            ", ".join(kinds) or "nothing",
        )
        self._emit(Connected(self.generation, kinds, session.full_pending))
        self._connected.set()
        for early in session.early:
            self._deliver(early, session.kinds)
        while True:
            frame = self._receive(connection, None)
            if frame is not None:
                self._deliver(frame, session.kinds)

    # Subscribing.

    def _subscribe(self, connection: ClientConnection) -> _Session:
        deadline = time.monotonic() + self._subscribe_timeout
        session = _Session(kinds={}, full_pending=False, early=[])
        for kind, attempts in self._requested():
            for number, params in enumerate(attempts):
                try:
                    subscription = self._request(connection, params, deadline, session)
                except _SubscriptionRefused as exc:
                    self._refused(params, str(exc), last=number == len(attempts) - 1)
                    continue
                session.kinds[subscription] = kind
                if kind == NEW_PENDING_TRANSACTIONS:
                    session.full_pending = number == 0
                break
        return session

    def _requested(self) -> list[tuple[SubscriptionKind, list[list[Any]]]]:
        requested: list[tuple[SubscriptionKind, list[list[Any]]]] = []
        if self._new_heads:
            requested.append((NEW_HEADS, [[NEW_HEADS]]))
        if self._logs_filter is not None:
            requested.append((LOGS, [[LOGS, self._logs_filter]]))
        if self._pending:
            full, hashes = [NEW_PENDING_TRANSACTIONS, True], [NEW_PENDING_TRANSACTIONS]
            requested.append((NEW_PENDING_TRANSACTIONS, [full, hashes]))
        return requested

    def _request(
        self, connection: ClientConnection, params: list[Any], deadline: float, session: _Session
    ) -> str:
        """Send one ``eth_subscribe`` and wait for its answer; the subscription id."""
        ident = next(self._ids)
        request = {"jsonrpc": "2.0", "id": ident, "method": "eth_subscribe", "params": params}
        connection.send(json.dumps(request))
        while True:
            try:
                frame = self._receive(connection, max(deadline - time.monotonic(), 0))
            except TimeoutError:
                raise TimeoutError(
                    f"no answer to eth_subscribe {params[0]} within {self._subscribe_timeout:g} s"
                ) from None
            if frame is None:
                continue
            if frame.message.get("id") != ident:
                if frame.message.get("method") == "eth_subscription":
                    session.early.append(frame)
                else:
                    self._malformed("an answer to no request", frame.message)
                continue
            return self._subscription_id(params, frame.message)

    def _subscription_id(self, params: list[Any], answer: dict[str, Any]) -> str:
        if "error" in answer:
            error = answer["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise _SubscriptionRefused(str(message)[:_SNIPPET])
        result = answer.get("result")
        if not isinstance(result, str) or not result:
            self._malformed(f"an eth_subscribe {params[0]} answer without an id", answer)
            raise _SubscriptionRefused("no subscription id in the answer")
        return result

    def _refused(self, params: list[Any], message: str, *, last: bool) -> None:
        kind = str(params[0])
        if not last:
            # Only the full-objects form of newPendingTransactions has a fallback.
            level = logging.DEBUG if "full_pending" in self._warned_refusals else logging.INFO
            self._warned_refusals.add("full_pending")
            log.log(level, "the node refuses full pending transactions (%s): hashes only", message)
            return
        level = logging.DEBUG if kind in self._warned_refusals else logging.WARNING
        self._warned_refusals.add(kind)
        log.log(
            level, "the node refuses eth_subscribe %s (%s): continuing without it", kind, message
        )

    # Receiving.

    def _receive(self, connection: ClientConnection, timeout: float | None) -> _Frame | None:
        """The next frame as a JSON object, or ``None`` (counted) when it is not one."""
        raw = connection.recv(timeout)
        received_at = self._clock()
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            self._malformed("a frame that is not JSON", raw)
            return None
        if not isinstance(message, dict):
            self._malformed("a JSON frame that is not an object", message)
            return None
        return _Frame(received_at, message)

    def _deliver(self, frame: _Frame, kinds: Mapping[str, SubscriptionKind]) -> None:
        message = frame.message
        if message.get("method") != "eth_subscription":
            problem = "an answer to no request" if "id" in message else "not a notification"
            self._malformed(problem, message)
            return
        params = message.get("params")
        if not isinstance(params, dict) or "result" not in params:
            self._malformed("a subscription notification without params.result", message)
            return
        subscription = params.get("subscription")
        if not isinstance(subscription, str):
            self._malformed("a subscription notification without a subscription id", message)
            return
        kind = kinds.get(subscription)
        if kind is None:
            self.unknown_subscription += 1
            log.warning("a notification of unknown subscription %s", subscription[:_SNIPPET])
            return
        self._emit(Notification(kind, params["result"], frame.received_at))

    def _malformed(self, problem: str, content: object) -> None:
        self.malformed += 1
        log.warning("ignored %s from the node: %.*s", problem, _SNIPPET, repr(content))

    def _emit(self, message: WsMessage) -> None:
        try:
            self._on_message(message)
        except Exception:
            self.callback_errors += 1
            log.exception("on_message failed on %s", type(message).__name__)
