"""A real HTTP server on 127.0.0.1 for tests: a free port, served on its own thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """``handler`` served on 127.0.0.1; handlers reach ``owner`` as ``self.server.fake``.

    ``wait_for_handlers``: :meth:`stop` waits for requests being handled (a fake whose
    slow answers must finish before the test ends), else handler threads are daemons.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        owner: object = None,
        *,
        wait_for_handlers: bool = False,
    ) -> None:
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http.daemon_threads = not wait_for_handlers
        self.http.fake = owner  # type: ignore[attr-defined]
        host, port = self.http.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self.http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def start(self) -> None:
        """Serve until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.http.shutdown()
        self.http.server_close()
        self._thread.join(timeout=5)
