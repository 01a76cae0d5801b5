"""FaultProxy between the project's real clients and real servers on 127.0.0.1.

The HTTP upstream is a threaded JSON-RPC server written here; the WebSocket upstream is a
``websockets`` server that echoes frames and answers ``eth_subscribe``. Every wait is bounded
by ``WAIT_S``; the only deliberately short timeout is the client's in the delay test.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from queue import Empty, Queue
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from overlord.chain.rpc import JsonRpcClient, RpcError, RpcTransportError
from overlord.chain.ws import Connected, Disconnected, WsMessage, WsSubscriber
from overlord.devnet.proxy import Fault, FaultProxy, Mode

WAIT_S = 5.0
RESULTS = {"eth_blockNumber": "0x10", "eth_chainId": "0x7a69"}


def answer_to(call: dict[str, Any]) -> dict[str, Any]:
    if call["method"] in RESULTS:
        return {"jsonrpc": "2.0", "id": call["id"], "result": RESULTS[call["method"]]}
    error = {"code": -32601, "message": f"no method {call['method']}"}
    return {"jsonrpc": "2.0", "id": call["id"], "error": error}


def answer_body(payload: object) -> bytes:
    """What the upstream sends for ``payload``, byte for byte."""
    if isinstance(payload, list):
        return json.dumps([answer_to(call) for call in payload]).encode()
    assert isinstance(payload, dict)
    return json.dumps(answer_to(payload)).encode()


class JsonRpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = WAIT_S
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Upstream

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.record(self.client_address[1], payload)
        body = answer_body(payload)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Upstream(ThreadingHTTPServer):
    """A JSON-RPC node over HTTP that records the peer port and payload of each request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), JsonRpcHandler)
        self.requests: list[tuple[int, Any]] = []
        self._lock = threading.Lock()
        # A short poll so that shutdown() returns at once.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, peer_port: int, payload: Any) -> None:
        with self._lock:
            self.requests.append((peer_port, payload))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(WAIT_S)


class WsUpstream:
    """A WebSocket node: answers ``eth_subscribe`` with a subscription id, echoes the rest.

    The frame ``drop`` makes it shut the TCP connection down without a closing handshake.
    """

    def __init__(self) -> None:
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(WAIT_S)

    @staticmethod
    def _handle(connection: ServerConnection) -> None:
        try:
            for frame in connection:
                try:
                    request = json.loads(frame)
                except ValueError:
                    request = None
                if frame == "drop":
                    connection.socket.shutdown(socket.SHUT_RDWR)
                elif isinstance(request, dict) and request.get("method") == "eth_subscribe":
                    reply = {"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}
                    connection.send(json.dumps(reply))
                else:
                    connection.send(frame)
        except ConnectionClosed:
            pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url) as proxy:
        yield proxy


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[JsonRpcClient]:
    with JsonRpcClient(proxy.url, timeout=WAIT_S) as client:
        yield client


@pytest.fixture
def ws_proxy() -> Iterator[FaultProxy]:
    node = WsUpstream()
    with FaultProxy(node.url) as proxy:
        yield proxy
    node.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raw_exchange(proxy: FaultProxy, request: bytes) -> bytes:
    """Send ``request`` on a new connection; everything received until the proxy closes."""
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def post_head(body: bytes, *extra: str) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: proxy", "Content-Type: application/json", *extra]
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])).encode() + body


# Pass, and connections.


def test_pass_answers_every_request_over_one_kept_alive_connection(
    proxy: FaultProxy, client: JsonRpcClient, upstream: Upstream
) -> None:
    results = [client.call("eth_blockNumber") for _ in range(3)]
    batch = client.batch([("eth_chainId", []), ("eth_blockNumber", [])])

    assert results == ["0x10"] * 3
    assert batch == ["0x7a69", "0x10"]
    assert proxy.accepted == 1
    assert len({peer for peer, _payload in upstream.requests}) == 1
    assert (proxy.forwarded, proxy.injected, proxy.connections_dropped) == (4, 0, 0)


def test_an_error_answer_of_the_node_passes_unchanged(client: JsonRpcClient) -> None:
    with pytest.raises(RpcError, match="no method eth_nothing") as error:
        client.call("eth_nothing")

    assert not isinstance(error.value, RpcTransportError)
    assert error.value.code == -32601


def test_an_unreachable_upstream_is_a_bad_gateway() -> None:
    with (
        FaultProxy(f"http://127.0.0.1:{free_port()}") as proxy,
        JsonRpcClient(proxy.url, timeout=WAIT_S) as client,
        pytest.raises(RpcTransportError, match="HTTP 502"),
    ):
        client.call("eth_blockNumber")
    assert proxy.forwarded == 0


def test_a_chunked_request_is_refused_with_400(proxy: FaultProxy, upstream: Upstream) -> None:
    head = "POST / HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n"
    received = raw_exchange(proxy, head.encode() + b"2\r\n{}\r\n0\r\n\r\n")

    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in received
    assert upstream.requests == []


# Faults.


def test_a_delay_longer_than_the_client_timeout_is_a_transport_error(proxy: FaultProxy) -> None:
    proxy.set_mode("delay", seconds=WAIT_S)

    with (
        JsonRpcClient(proxy.url, timeout=0.2) as impatient,
        pytest.raises(RpcTransportError, match="ReadTimeout"),
    ):
        impatient.call("eth_blockNumber")
    assert proxy.injected == 1


def test_truncate_is_a_transport_error(proxy: FaultProxy, client: JsonRpcClient) -> None:
    proxy.set_mode("truncate")

    with pytest.raises(RpcTransportError, match="RemoteProtocolError"):
        client.call("eth_blockNumber")
    assert proxy.injected == 1


def test_truncate_announces_the_full_length_and_sends_half_the_body(proxy: FaultProxy) -> None:
    payload = {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []}
    full = answer_body(payload)
    proxy.set_mode("truncate")

    received = raw_exchange(proxy, post_head(json.dumps(payload).encode()))

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"content-length: {len(full)}".encode() in head.lower()
    assert body == full[: len(full) // 2]


def test_garble_is_an_answer_that_is_not_json(proxy: FaultProxy, client: JsonRpcClient) -> None:
    proxy.set_mode("garble")

    with pytest.raises(RpcError, match="not JSON") as error:
        client.call("eth_blockNumber")
    assert not isinstance(error.value, RpcTransportError)

    proxy.set_mode("pass")
    assert client.call("eth_blockNumber") == "0x10"  # the connection stayed usable
    assert proxy.accepted == 1


def test_wrong_json_answers_a_call_with_another_id_and_no_result(
    proxy: FaultProxy, client: JsonRpcClient
) -> None:
    proxy.set_mode("wrong_json")

    with pytest.raises(RpcError, match="answer without result") as error:
        client.call("eth_blockNumber")
    assert not isinstance(error.value, RpcTransportError)


def test_wrong_json_answers_a_batch_without_ids(proxy: FaultProxy, client: JsonRpcClient) -> None:
    proxy.set_mode("wrong_json")

    with pytest.raises(RpcError, match="no answer for request"):
        client.batch([("eth_chainId", []), ("eth_blockNumber", [])])


def test_wrong_json_is_valid_json_that_names_another_id(proxy: FaultProxy) -> None:
    payload = {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []}
    proxy.set_mode("wrong_json")

    received = raw_exchange(proxy, post_head(json.dumps(payload).encode(), "Connection: close"))

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    answer = json.loads(body)
    assert answer["jsonrpc"] == "2.0"
    assert answer["id"] != 7
    assert "result" not in answer


def test_http_error_500_is_a_transport_error_and_reaches_no_node(
    proxy: FaultProxy, client: JsonRpcClient, upstream: Upstream
) -> None:
    proxy.set_mode("http_error", status=500)

    with pytest.raises(RpcTransportError, match="HTTP 500"):
        client.call("eth_blockNumber")
    assert upstream.requests == []
    assert (proxy.forwarded, proxy.injected) == (0, 1)


def test_http_error_429_asks_to_retry_after_one_second(proxy: FaultProxy) -> None:
    proxy.set_mode("http_error", status=429)
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}

    with httpx.Client(timeout=WAIT_S) as http:
        response = http.post(proxy.url, json=payload)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_refuse_closes_new_connections_without_an_answer(
    proxy: FaultProxy, client: JsonRpcClient, upstream: Upstream
) -> None:
    proxy.set_mode("refuse")

    with pytest.raises(RpcTransportError):
        client.call("eth_blockNumber")
    assert upstream.requests == []
    assert (proxy.accepted, proxy.forwarded, proxy.injected) == (1, 0, 1)


def test_refuse_closes_a_kept_alive_connection_at_its_next_request(
    proxy: FaultProxy, client: JsonRpcClient
) -> None:
    assert client.call("eth_blockNumber") == "0x10"
    proxy.set_mode("refuse")

    with pytest.raises(RpcTransportError):
        client.call("eth_blockNumber")

    proxy.set_mode("pass")
    assert client.call("eth_blockNumber") == "0x10"
    assert (proxy.accepted, proxy.forwarded, proxy.injected) == (2, 2, 1)


def test_only_limits_the_fault_to_the_named_methods(
    proxy: FaultProxy, client: JsonRpcClient
) -> None:
    proxy.set_mode("garble", only={"eth_chainId"})

    assert client.call("eth_blockNumber") == "0x10"
    with pytest.raises(RpcError, match="not JSON"):
        client.call("eth_chainId")
    with pytest.raises(RpcError, match="not JSON"):  # a batch with one matching call
        client.batch([("eth_blockNumber", []), ("eth_chainId", [])])
    assert proxy.injected == 2


def test_refuse_with_only_accepts_the_connection_and_refuses_matching_requests(
    proxy: FaultProxy, client: JsonRpcClient
) -> None:
    proxy.set_mode("refuse", only=["eth_chainId"])

    assert client.call("eth_blockNumber") == "0x10"
    with pytest.raises(RpcTransportError):
        client.call("eth_chainId")
    assert client.call("eth_blockNumber") == "0x10"
    assert (proxy.accepted, proxy.injected) == (2, 1)


def test_count_applies_the_fault_to_the_next_requests_then_passes(
    proxy: FaultProxy, client: JsonRpcClient
) -> None:
    proxy.set_mode("http_error", status=500, count=2)

    for _ in range(2):
        with pytest.raises(RpcTransportError, match="HTTP 500"):
            client.call("eth_blockNumber")
    assert client.call("eth_blockNumber") == "0x10"
    assert proxy.fault == Fault()
    assert proxy.injected == 2


def test_count_only_consumes_matching_requests(proxy: FaultProxy, client: JsonRpcClient) -> None:
    proxy.set_mode("wrong_json", only={"eth_chainId"}, count=1)

    assert client.call("eth_blockNumber") == "0x10"
    assert proxy.fault.remaining == 1
    with pytest.raises(RpcError, match="answer without result"):
        client.call("eth_chainId")
    assert client.call("eth_chainId") == "0x7a69"
    assert proxy.injected == 1


def test_refuse_with_count_refuses_that_many_connections(proxy: FaultProxy) -> None:
    proxy.set_mode("refuse", count=1)

    with JsonRpcClient(proxy.url, timeout=WAIT_S) as client:
        with pytest.raises(RpcTransportError):
            client.call("eth_blockNumber")
        assert client.call("eth_blockNumber") == "0x10"
    assert (proxy.accepted, proxy.injected) == (2, 1)


@pytest.mark.parametrize(
    ("mode", "options", "message"),
    [
        ("sleep", {}, "unknown mode"),
        ("delay", {}, "seconds is required"),
        ("garble", {"seconds": 1.0}, "seconds is required"),
        ("delay", {"seconds": -1.0}, "finite number"),
        ("http_error", {}, "status is required"),
        ("http_error", {"status": 200}, "400-599"),
        ("pass", {"count": 1}, "pass takes no"),
        ("garble", {"count": 0}, "at least 1"),
        ("garble", {"only": "eth_call"}, "not one string"),
        ("garble", {"only": set()}, "at least one method"),
    ],
)
def test_set_mode_refuses_arguments_that_do_not_fit(
    mode: Mode, options: dict[str, Any], message: str
) -> None:
    proxy = FaultProxy("http://127.0.0.1:8545")

    with pytest.raises(ValueError, match=message):
        proxy.set_mode(mode, **options)
    assert proxy.fault == Fault()


def test_the_constructor_refuses_other_upstreams_and_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="upstream"):
        FaultProxy("ws://127.0.0.1:8545")
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://127.0.0.1:8545", host="0.0.0.0")


def test_the_urls_exist_once_started_and_close_is_idempotent(upstream: Upstream) -> None:
    proxy = FaultProxy(upstream.url)
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.url

    with proxy:
        assert proxy.url.startswith("http://127.0.0.1:")
        assert proxy.ws_url == proxy.url.replace("http://", "ws://")
    proxy.close()

    with pytest.raises(RuntimeError):
        proxy.start()


# Dropping connections.


def test_drop_connections_closes_kept_alive_connections_and_new_ones_work(
    proxy: FaultProxy, client: JsonRpcClient
) -> None:
    assert client.call("eth_blockNumber") == "0x10"

    assert proxy.drop_connections() == 1

    assert client.call("eth_blockNumber") == "0x10"
    assert (proxy.accepted, proxy.connections_dropped) == (2, 1)


def test_drop_connections_closes_a_live_websocket_and_a_new_one_works(
    ws_proxy: FaultProxy,
) -> None:
    with connect(ws_proxy.ws_url, open_timeout=WAIT_S) as websocket:
        websocket.send("before")
        assert websocket.recv(WAIT_S) == "before"

        assert ws_proxy.drop_connections() == 1

        with pytest.raises(ConnectionClosed):
            websocket.recv(WAIT_S)

    with connect(ws_proxy.ws_url, open_timeout=WAIT_S) as websocket:
        websocket.send("after")
        assert websocket.recv(WAIT_S) == "after"
    assert (ws_proxy.accepted, ws_proxy.forwarded, ws_proxy.connections_dropped) == (2, 2, 1)


def test_the_client_sees_the_close_when_the_node_drops_a_websocket(
    ws_proxy: FaultProxy,
) -> None:
    with connect(ws_proxy.ws_url, open_timeout=WAIT_S) as websocket:
        websocket.send("drop")

        with pytest.raises(ConnectionClosed):
            websocket.recv(WAIT_S)


def test_refuse_closes_websocket_handshakes_too(ws_proxy: FaultProxy) -> None:
    ws_proxy.set_mode("refuse")

    with pytest.raises((WebSocketException, OSError)):
        connect(ws_proxy.ws_url, open_timeout=WAIT_S)
    assert (ws_proxy.forwarded, ws_proxy.injected) == (0, 1)


def test_the_ws_subscriber_sees_the_drop_and_resubscribes_through_the_proxy(
    ws_proxy: FaultProxy,
) -> None:
    messages: Queue[WsMessage] = Queue()

    def expect() -> WsMessage:
        try:
            return messages.get(timeout=WAIT_S)
        except Empty:
            pytest.fail(f"no message within {WAIT_S} s")

    with WsSubscriber(ws_proxy.url, on_message=messages.put, backoff_initial=0.01):
        assert expect() == Connected(1, ("newHeads",), False)

        ws_proxy.drop_connections()

        assert isinstance(expect(), Disconnected)
        assert expect() == Connected(2, ("newHeads",), False)
