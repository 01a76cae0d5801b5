"""/metrics, /health and /ready over HTTP, served from a daemon thread.

- ``GET /metrics``: 200, the Prometheus text exposition of :class:`Metrics`.
- ``GET /health``: 200 and the JSON of ``health()``. The caller builds the document; the server
  adds nothing. If ``health()`` raises (or returns something JSON cannot encode) the answer is
  500 ``{"status": "error", "error": "<type>: <message>"}``, the error is logged and the server
  keeps serving.
- ``GET /ready``: 200 ``{"ready": true}`` when ``ready()`` is true, else 503 ``{"ready": false}``.
- Any other path: 404 JSON. Any method but GET: 405 JSON with ``Allow: GET``.

``health()`` and ``ready()`` run on the server's request threads, concurrently with the
engine: they must be thread-safe and quick. Requests are logged at DEBUG on the
``overlord.http`` logger, never on stderr. The server listens on 127.0.0.1 unless another host
is passed explicitly; port 0 picks a free port (see :attr:`ObservabilityServer.port`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from overlord.observability.metrics import Metrics

__all__ = ["ObservabilityServer"]

_log = logging.getLogger("overlord.http")

_JSON = "application/json"
_MAX_DISCARDED_BODY = 1 << 20  # bytes read and thrown away from a rejected request


class ObservabilityServer:
    """/metrics, /health and /ready over HTTP on a daemon thread (ThreadingHTTPServer)."""

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], Mapping[str, Any]],
        ready: Callable[[], bool],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.ready = ready
        self.host = host
        self._requested_port = port
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = f"{self.host}:{self._httpd.server_port}" if self._httpd else "not started"
        return f"ObservabilityServer({where})"

    @property
    def port(self) -> int:
        """The bound port (the one picked by the system when 0 was asked)."""
        if self._httpd is None:
            raise RuntimeError("the observability server is not started")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """``http://<host>:<port>``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve. Raises ``OSError`` naming host:port if the address is unavailable."""
        if self._httpd is not None:
            raise RuntimeError("the observability server is already started")
        if not _is_loopback(self.host):
            _log.warning("observability server listening on non-loopback host %s", self.host)
        self._httpd = _bind(self, self.host, self._requested_port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"overlord-http-{self._httpd.server_port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("observability server on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the listening socket. Safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> ObservabilityServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(app: ObservabilityServer, host: str, port: int) -> _HttpServer:
    try:
        return _HttpServer(app, host, port)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot listen on {host}:{port} for the observability server: {exc}"
        ) from exc


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart may bind while the old socket is in TIME_WAIT
    allow_reuse_port = False  # but never share a port with another listener

    def __init__(self, app: ObservabilityServer, host: str, port: int) -> None:
        self.app = app
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS; not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.app.host
        self.server_port = int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "overlord"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics()
        elif path == "/health":
            self._health()
        elif path == "/ready":
            self._ready()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found", "path": path})

    def __getattr__(self, name: str) -> Callable[[], None]:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; every method but GET is a 405.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def _metrics(self) -> None:
        try:
            body = self.server.app.metrics.exposition()
        except Exception as exc:
            _log.exception("collecting metrics failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, _error(exc))
            return
        self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)

    def _health(self) -> None:
        try:
            body = json.dumps(dict(self.server.app.health())).encode()
        except Exception as exc:
            _log.exception("the health callback failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, _error(exc))
            return
        self._send(HTTPStatus.OK, body, _JSON)

    def _ready(self) -> None:
        try:
            ready = bool(self.server.app.ready())
        except Exception:
            _log.exception("the ready callback failed; answering not ready")
            ready = False
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        self._json(status, {"ready": ready})

    def _method_not_allowed(self) -> None:
        self._discard_body()
        self._json(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"method {self.command} not allowed"},
            extra_headers={"Allow": "GET"},
        )

    def _discard_body(self) -> None:
        # Unread request bytes would make closing the socket send a reset, not the answer.
        try:
            length = int(self.headers.get("Content-Length", 0))
        except ValueError:
            return
        if 0 < length <= _MAX_DISCARDED_BODY:
            self.rfile.read(length)

    def _json(
        self,
        status: HTTPStatus,
        document: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._send(status, json.dumps(document).encode(), _JSON, extra_headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _error(exc: BaseException) -> dict[str, str]:
    return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
