"""A local HTTP and WebSocket proxy in front of a node that injects faults on command.

:class:`FaultProxy` listens on 127.0.0.1 (a free port by default) and forwards to one
upstream node, ``http://127.0.0.1:PORT``. It runs an asyncio loop on its own daemon thread;
every public method may be called from any other thread.

The contract:

* **HTTP.** Each request (a request line, headers and a ``Content-Length`` body) is read in
  full, forwarded to the upstream and its full answer read (``Content-Length``, chunked, or
  until the upstream closes) before the current fault is applied and the answer written back
  with a ``Content-Length``. Keep-alive works: one client connection maps to one upstream
  connection, both kept open until either side asks to close. A request with a
  ``Transfer-Encoding`` (chunked) body is answered 400, a head over 64 KiB 431, a body over
  64 MiB 413, each closing the connection. When the upstream cannot be reached or answers
  with something that is not HTTP, the client gets 502 and the connection is closed. A
  request on a kept-alive upstream connection that fails before any answer (the upstream
  closed it meanwhile) is sent once more on a fresh connection.
* **WebSocket.** A request with ``Upgrade: websocket`` is forwarded as is; on ``101`` the
  proxy pipes raw bytes both ways until either side closes, then closes both. Faults other
  than ``refuse`` never touch handshakes or frames.
* **Faults** (:meth:`FaultProxy.set_mode`), decided once per request when it has been read:

  - ``pass``: the answer unchanged.
  - ``delay``: the answer after ``seconds`` more (the request is forwarded first).
  - ``truncate``: the answer's headers with the full ``Content-Length``, half its body
    (rounded down), then the connection is closed.
  - ``garble``: HTTP 200, the upstream's headers, a scrambled body that is not JSON.
  - ``wrong_json``: HTTP 200 with valid JSON that answers nothing: ``{"jsonrpc": "2.0",
    "id": <another id>}`` for a single request, a list of objects without ids for a batch.
  - ``http_error``: that ``status`` with a short text body (``Retry-After: 1`` on 429 and
    503); the request is not forwarded.
  - ``refuse``: new connections are closed as soon as they are accepted, and a request on a
    connection already open is not forwarded: its connection is closed without an answer.
    With ``only``, connections are accepted and matching requests are refused this way.

  ``only`` restricts a fault to requests calling one of these JSON-RPC methods (a batch
  matches when any of its calls does; a body that is not JSON-RPC never matches). ``count``
  applies it to the next N matching requests (or refused connections), after which the mode
  is ``pass`` again.
* **Dropping.** :meth:`FaultProxy.drop_connections` aborts every open connection at once
  (HTTP keep-alive, WebSocket pipes, their upstream sides), without a closing handshake.
* **Counters**, each read under a lock: ``accepted`` connections, ``forwarded`` requests
  (upstream answered, WebSocket handshakes included), ``injected`` faults (requests that got
  one and connections refused), ``connections_dropped`` by :meth:`drop_connections`.

This is test equipment for loopback only: it binds loopback addresses and trusts its
upstream. It speaks what JSON-RPC clients send (``POST``, and ``GET`` for the WebSocket
handshake); answers to ``HEAD`` or ``CONNECT`` are not framed correctly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

log = logging.getLogger("overlord.devnet.proxy")

Mode: TypeAlias = Literal[
    "pass", "delay", "truncate", "garble", "wrong_json", "http_error", "refuse"
]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)

MAX_HEAD_BYTES: Final = 64 * 2**10
"""Longest request or response head (and chunk-size line) read."""
MAX_BODY_BYTES: Final = 64 * 2**20
"""Longest request body accepted."""
CONNECT_TIMEOUT_S: Final = 5.0
"""Seconds allowed to connect to the upstream."""
CALL_TIMEOUT_S: Final = 5.0
"""How long a caller's thread waits for the proxy thread (start, drop, close)."""

_CHUNK: Final = 2**16
_GARBLE_PREFIX: Final = b"<garbled>"
_HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


@dataclass(frozen=True)
class Fault:
    """The fault being applied; ``remaining`` requests before ``pass`` (``None``: no end)."""

    mode: Mode = "pass"
    seconds: float = 0.0
    status: int = 500
    only: frozenset[str] | None = None
    remaining: int | None = None


_PASS: Final = Fault()


class FaultProxy:
    """A fault-injecting proxy between JSON-RPC clients and ``upstream``; see the module.

    Args:
        upstream: the node, ``http://HOST:PORT`` (any path is ignored: requests keep theirs).
        host: the loopback address to listen on.
        port: the port to listen on; 0 for a free one (see :attr:`url` once started).

    Raises:
        ValueError: ``upstream`` is not an ``http://`` URL with a host, or ``host`` is not a
            loopback address.
    """

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://HOST:PORT upstream, got {upstream!r}")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the proxy listens on loopback addresses only, not {host!r}")
        self._upstream = (parts.hostname, parts.port or 80)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._fault = _PASS
        self._counts = {"accepted": 0, "forwarded": 0, "injected": 0, "dropped": 0}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closed = False
        self._links: dict[_Link, asyncio.Task[None]] = {}  # only touched on the loop thread

    def __repr__(self) -> str:
        host, port = self._upstream
        return f"FaultProxy({self._host}:{self._port} → {host}:{port}, {self.fault.mode})"

    # Lifecycle.

    def start(self) -> None:
        """Bind and start serving on the proxy thread (a daemon).

        Raises:
            RuntimeError: it was started before (a proxy runs once).
            OSError: the address could not be bound.
        """
        with self._lock:
            if self._thread is not None or self._closed:
                raise RuntimeError("the fault proxy was already started or closed")
            self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(CALL_TIMEOUT_S):
            raise RuntimeError("the fault proxy did not start")
        if self._startup_error is not None:
            self._thread.join(CALL_TIMEOUT_S)
            raise self._startup_error

    def close(self) -> None:
        """Stop listening, abort every connection and join the thread; idempotent."""
        with self._lock:
            loop, stop, thread = self._loop, self._stop, self._thread
            first, self._closed = not self._closed, True
        if first and loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(CALL_TIMEOUT_S)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the proxy (started)."""
        return f"http://{self._address()}"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT`` of the proxy (started)."""
        return f"ws://{self._address()}"

    def _address(self) -> str:
        if self._loop is None:
            raise RuntimeError("the fault proxy is not started")
        return f"{self._host}:{self._port}"

    # Faults.

    def set_mode(
        self,
        mode: Mode,
        *,
        seconds: float | None = None,
        status: int | None = None,
        only: Iterable[str] | None = None,
        count: int | None = None,
    ) -> None:
        """Apply ``mode`` to the requests from now on (those already answered are not).

        Args:
            mode: one of :data:`MODES`; ``pass`` takes no other argument.
            seconds: the wait of ``delay`` (required there, refused elsewhere).
            status: the HTTP status (400-599) of ``http_error`` (required there only).
            only: JSON-RPC method names the fault is limited to.
            count: apply the fault to this many matching requests, then ``pass``.

        Raises:
            ValueError: an unknown mode, or arguments that do not fit it.
        """
        fault = _fault(mode, seconds=seconds, status=status, only=only, count=count)
        with self._lock:
            self._fault = fault

    @property
    def fault(self) -> Fault:
        """The fault now in force (``remaining`` counts down with ``count``)."""
        with self._lock:
            return self._fault

    def drop_connections(self) -> int:
        """Abort every open connection now; how many there were.

        Raises:
            RuntimeError: the proxy is not running, or its thread did not answer in time.
        """
        loop = self._loop
        if loop is None or self._closed:
            raise RuntimeError("the fault proxy is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("drop_connections is for other threads than the proxy's")
        future = asyncio.run_coroutine_threadsafe(self._drop_all(), loop)
        return future.result(CALL_TIMEOUT_S)

    # Counters.

    @property
    def accepted(self) -> int:
        """Connections accepted (refused ones included)."""
        return self._count("accepted")

    @property
    def forwarded(self) -> int:
        """Requests the upstream answered, WebSocket handshakes included."""
        return self._count("forwarded")

    @property
    def injected(self) -> int:
        """Requests that got a fault, and connections refused."""
        return self._count("injected")

    @property
    def connections_dropped(self) -> int:
        """Connections aborted by :meth:`drop_connections`."""
        return self._count("dropped")

    def _count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def _add(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _take(self, methods: frozenset[str] | None) -> Fault:
        """The fault for one request calling ``methods``, counted; ``None``: a connection."""
        with self._lock:
            fault = self._fault
            if fault.mode == "pass":
                return _PASS
            if fault.only is not None and (methods is None or not methods & fault.only):
                return _PASS
            if methods is None and fault.mode != "refuse":
                return _PASS
            if fault.remaining is not None:
                left = fault.remaining - 1
                self._fault = replace(fault, remaining=left) if left else _PASS
            self._counts["injected"] += 1
            return fault

    # The proxy thread.

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the thread that called start()
            self._startup_error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        stop = asyncio.Event()
        server = await asyncio.start_server(
            self._accept, self._host, self._port, limit=MAX_HEAD_BYTES
        )
        with self._lock:
            self._port = server.sockets[0].getsockname()[1]
            self._loop, self._stop = asyncio.get_running_loop(), stop
            closed = self._closed
        self._ready.set()
        if not closed:
            await stop.wait()
        server.close()
        tasks = list(self._links.values())
        for link, task in self._links.items():
            link.close(abort=True)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def _drop_all(self) -> int:
        dropped = list(self._links.items())
        for link, task in dropped:
            link.close(abort=True)
            task.cancel()
        with self._lock:
            self._counts["dropped"] += len(dropped)
        return len(dropped)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._add("accepted")
        link = _Link(reader, writer)
        if (self._stop is not None and self._stop.is_set()) or self._take(None).mode == "refuse":
            link.close()
            return
        task = asyncio.get_running_loop().create_task(self._serve(link))
        self._links[link] = task
        task.add_done_callback(lambda _task: self._links.pop(link, None))

    async def _serve(self, link: _Link) -> None:
        try:
            while await self._exchange(link):
                pass
        except (OSError, asyncio.IncompleteReadError, _BadMessage):
            pass  # the client went away, or spoke something else than HTTP
        except Exception:
            log.exception("unexpected error in the fault proxy")
        finally:
            link.close()

    async def _exchange(self, link: _Link) -> bool:
        """Serve one request; whether the connection stays open for another."""
        request = await _read_request(link)
        if request is None:
            return False
        if request.head.is_upgrade():
            await self._tunnel(link, request)
            return False
        fault = self._take(request.methods)
        if fault.mode == "refuse":
            return False
        if fault.mode == "http_error":
            extra = (("Retry-After", "1"),) if fault.status in _RETRY_AFTER_STATUSES else ()
            await link.send(_plain(fault.status, close=not request.keep_alive, extra=extra))
            return request.keep_alive
        answer = await self._forward(link, request)
        if answer is None:
            await link.send(_plain(502, close=True))
            return False
        return await _answer(link, request, answer, fault)

    async def _forward(self, link: _Link, request: _Request) -> _Answer | None:
        """The upstream's answer to ``request``, or ``None`` when there is none."""
        for _attempt in range(2):
            reused = link.upstream is not None
            try:
                reader, writer = link.upstream or await self._connect(link)
                writer.write(request.raw)
                await writer.drain()
                answer = await _read_answer(reader)
            except _UPSTREAM_FAILURES as exc:
                link.close_upstream()
                if reused:
                    continue  # a kept-alive connection the upstream closed meanwhile
                log.debug("no answer from the upstream: %r", exc)
                return None
            self._add("forwarded")
            if not answer.keep_alive:
                link.close_upstream()
            return answer
        return None

    async def _connect(self, link: _Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            link.upstream = await asyncio.open_connection(*self._upstream, limit=MAX_HEAD_BYTES)
        return link.upstream

    async def _tunnel(self, link: _Link, request: _Request) -> None:
        """Forward a WebSocket handshake and, once switched, pipe both ways."""
        link.close_upstream()
        try:
            reader, writer = await self._connect(link)
            writer.write(request.raw)
            await writer.drain()
            head = await _read_head(reader)
            body = b"" if head.status() == 101 else await _read_body(reader, head)
        except _UPSTREAM_FAILURES:
            await link.send(_plain(502, close=True))
            return
        self._add("forwarded")
        if head.status() != 101:
            await link.send(head.encode(body, close=True))
            return
        await link.send(head.raw)
        async with asyncio.TaskGroup() as group:
            group.create_task(_pipe(link.reader, writer, link))
            group.create_task(_pipe(reader, link.writer, link))


# Connections.


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection, if open."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = field(default=None)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close_upstream(self, *, abort: bool = False) -> None:
        if self.upstream is not None:
            _shut(self.upstream[1], abort=abort)
            self.upstream = None

    def close(self, *, abort: bool = False) -> None:
        _shut(self.writer, abort=abort)
        self.close_upstream(abort=abort)


def _shut(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    if abort:
        writer.transport.abort()
    else:
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
    """Copy ``reader`` to ``writer`` until either ends, then close both sides of ``link``."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        # Closing both sides ends the other direction's read too.
        link.close()


# HTTP messages.


class _BadMessage(Exception):
    """Bytes that are not the HTTP/1.1 this proxy speaks; ``status`` is for a client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


_UPSTREAM_FAILURES: Final = (
    OSError,  # refused, reset, and the connect timeout (TimeoutError)
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    _BadMessage,
)


@dataclass(frozen=True)
class _Head:
    """A request or status line with its headers, and the raw bytes they came from."""

    raw: bytes
    start: str
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise _BadMessage(400, f"bad header line {line[:80]!r}")
            headers.append((name.strip().lower(), value.strip()))
        if len(lines[0].split(" ")) < 2:
            raise _BadMessage(400, f"bad start line {lines[0][:80]!r}")
        return cls(raw, lines[0], tuple(headers))

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def tokens(self, name: str) -> set[str]:
        values = (value for key, value in self.headers if key == name)
        return {token.strip().lower() for value in values for token in value.split(",")}

    def version(self) -> str:
        return self.start.split(" ")[0 if self.start.startswith("HTTP/") else -1]

    def status(self) -> int:
        try:
            return int(self.start.split(" ")[1])
        except ValueError:
            raise _BadMessage(502, f"bad status line {self.start[:80]!r}") from None

    def is_upgrade(self) -> bool:
        return "websocket" in self.tokens("upgrade")

    def content_length(self) -> int | None:
        value = self.get("content-length")
        if value is None:
            return None
        if not value.isdigit():
            raise _BadMessage(400, f"bad Content-Length {value[:40]!r}")
        return int(value)

    def encode(self, body: bytes, *, close: bool) -> bytes:
        """This status line and headers, framed anew around ``body``."""
        lines = [self.start]
        lines += [f"{name}: {value}" for name, value in self.headers if name not in _HOP_BY_HOP]
        lines.append(f"content-length: {len(body)}")
        if close:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class _Request:
    head: _Head
    body: bytes
    payload: Any  # the JSON body, None when it is not JSON
    methods: frozenset[str]
    keep_alive: bool

    @property
    def raw(self) -> bytes:
        return self.head.raw + self.body


@dataclass(frozen=True)
class _Answer:
    head: _Head
    body: bytes
    keep_alive: bool  # whether the upstream connection can carry another request


async def _read_request(link: _Link) -> _Request | None:
    """The next request on ``link``; ``None`` (answered if need be) when there is none."""
    try:
        head = _Head.parse(await _read_until_blank_line(link.reader))
        if head.get("transfer-encoding") is not None:
            raise _BadMessage(400, "request bodies with a Transfer-Encoding are not supported")
        length = head.content_length() or 0
        if length > MAX_BODY_BYTES:
            raise _BadMessage(413, f"a {length}-byte body is over the proxy's limit")
    except _BadMessage as exc:
        await link.send(_plain(exc.status, close=True, text=str(exc)))
        return None
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    if "100-continue" in head.tokens("expect"):
        await link.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await link.reader.readexactly(length)
    payload = _json(body)
    close = "close" in head.tokens("connection") or head.version() != "HTTP/1.1"
    return _Request(head, body, payload, _methods(payload), keep_alive=not close)


async def _read_until_blank_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _BadMessage(431, "the head is over 64 KiB") from None


async def _read_head(reader: asyncio.StreamReader) -> _Head:
    """The next status line and headers, interim (1xx) heads other than 101 skipped."""
    while True:
        head = _Head.parse(await _read_until_blank_line(reader))
        if not 100 <= head.status() < 200 or head.status() == 101:
            return head


async def _read_answer(reader: asyncio.StreamReader) -> _Answer:
    head = await _read_head(reader)
    body = await _read_body(reader, head)
    until_close = head.content_length() is None and "chunked" not in head.tokens(
        "transfer-encoding"
    )
    close = until_close or "close" in head.tokens("connection") or head.version() != "HTTP/1.1"
    return _Answer(head, body, keep_alive=not close)


async def _read_body(reader: asyncio.StreamReader, head: _Head) -> bytes:
    status = head.status()
    if status in (204, 304) or 100 <= status < 200:
        return b""
    if "chunked" in head.tokens("transfer-encoding"):
        return await _read_chunked(reader)
    length = head.content_length()
    if length is not None:
        return await reader.readexactly(length)
    return await reader.read()  # framed by the end of the connection


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadMessage(502, f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            break
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise _BadMessage(502, "a chunk without its line end")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailers
    return b"".join(parts)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _methods(payload: Any) -> frozenset[str]:
    calls = payload if isinstance(payload, list) else [payload]
    return frozenset(
        call["method"]
        for call in calls
        if isinstance(call, dict) and isinstance(call.get("method"), str)
    )


def _plain(
    status: int, *, close: bool, text: str = "", extra: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A complete response with a short text body."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = f"{status} {phrase}{': ' if text else ''}{text}\n".encode()
    headers = (("content-type", "text/plain; charset=utf-8"), *extra)
    head = _Head(b"", f"HTTP/1.1 {status} {phrase}", tuple(headers))
    return head.encode(body, close=close)


# Applying a fault to an answer.


async def _answer(link: _Link, request: _Request, answer: _Answer, fault: Fault) -> bool:
    """Write ``answer`` to the client as ``fault`` says; whether to keep the connection."""
    close = not request.keep_alive
    if fault.mode == "delay":
        await asyncio.sleep(fault.seconds)
    if fault.mode == "truncate":
        whole = answer.head.encode(answer.body, close=close)
        await link.send(whole[: len(whole) - len(answer.body) + len(answer.body) // 2])
        return False
    if fault.mode == "garble":
        await link.send(_ok(answer.head).encode(_garbled(answer.body), close=close))
    elif fault.mode == "wrong_json":
        await link.send(_ok(answer.head).encode(_wrong_json(request.payload), close=close))
    else:
        await link.send(answer.head.encode(answer.body, close=close))
    return request.keep_alive


def _ok(head: _Head) -> _Head:
    return replace(head, start="HTTP/1.1 200 OK")


def _garbled(body: bytes) -> bytes:
    # The prefix alone makes it not JSON, whatever the body was.
    return _GARBLE_PREFIX + body[::-1]


def _wrong_json(payload: Any) -> bytes:
    if isinstance(payload, list):
        wrong: Any = [{"jsonrpc": "2.0"} for _ in payload] or [{"jsonrpc": "2.0"}]
    else:
        ident = payload.get("id") if isinstance(payload, dict) else None
        other = -ident - 1 if isinstance(ident, int) else f"not-{ident}"
        wrong = {"jsonrpc": "2.0", "id": other}
    return json.dumps(wrong).encode()


def _fault(
    mode: Mode,
    *,
    seconds: float | None,
    status: int | None,
    only: Iterable[str] | None,
    count: int | None,
) -> Fault:
    """A validated :class:`Fault`; see :meth:`FaultProxy.set_mode`."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "pass" and (only is not None or count is not None):
        raise ValueError("pass takes no only or count")
    if (seconds is None) == (mode == "delay"):
        raise ValueError("seconds is required by delay and refused by other modes")
    if (status is None) == (mode == "http_error"):
        raise ValueError("status is required by http_error and refused by other modes")
    if seconds is not None and not 0 <= seconds < float("inf"):
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
    if status is not None and not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
    if count is not None and count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if isinstance(only, str):
        raise ValueError("only is a collection of method names, not one string")
    methods = frozenset(only) if only is not None else None
    if methods is not None and not methods:
        raise ValueError("only must name at least one method")
    return Fault(mode, seconds or 0.0, status or 500, methods, count)
