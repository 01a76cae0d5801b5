"""The observability server over real HTTP on a free local port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from overlord.observability.metrics import Metrics
from overlord.observability.server import ObservabilityServer


class App:
    """The callbacks a server is given, switchable from the test."""

    def __init__(self) -> None:
        self.is_ready = threading.Event()
        self.fail_health = False

    def health(self) -> Mapping[str, Any]:
        if self.fail_health:
            raise RuntimeError("chain reader gone")
        return {"status": "ok", "head_block": 21_000_000, "big": 2**200}

    def ready(self) -> bool:
        return self.is_ready.is_set()


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("overlord_")


@pytest.fixture
def server(metrics: Metrics, app: App) -> Iterator[ObservabilityServer]:
    with ObservabilityServer(metrics, app.health, app.ready) as running:
        yield running


@pytest.fixture
def client(server: ObservabilityServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as http:
        yield http


def test_port_zero_picks_a_free_port(server: ObservabilityServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics_are_scraped_and_parse(client: httpx.Client, metrics: Metrics) -> None:
    metrics.head_block.set(21_000_000)
    metrics.events_published.labels(kind="pending").inc(2)
    metrics.add_rpc_source(lambda: {"eth_call": (9, 2)})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    found = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert found["overlord_head_block"].type == "gauge"
    assert found["overlord_head_block"].samples[0].value == 21_000_000
    published = found["overlord_events_published"]
    assert published.type == "counter"
    assert {s.labels["kind"]: s.value for s in published.samples if s.name.endswith("_total")} == {
        "mined": 0,
        "pending": 2,
    }
    rpc = found["overlord_rpc_errors"]
    assert [(s.labels, s.value) for s in rpc.samples] == [({"method": "eth_call"}, 2)]

    metrics.head_block.set(21_000_001)
    again = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert again["overlord_head_block"].samples[0].value == 21_000_001


def test_health_is_the_callers_document(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok", "head_block": 21_000_000, "big": 2**200}


def test_a_raising_health_gives_500_and_the_server_keeps_serving(
    client: httpx.Client, app: App, caplog: pytest.LogCaptureFixture
) -> None:
    app.fail_health = True
    with caplog.at_level("ERROR", logger="overlord.http"):
        response = client.get("/health")
    assert response.status_code == 500
    assert response.json() == {"status": "error", "error": "RuntimeError: chain reader gone"}
    assert "health callback failed" in caplog.text

    app.fail_health = False
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_ready_flips_from_503_to_200(client: httpx.Client, app: App) -> None:
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False}
    app.is_ready.set()
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True}


@pytest.mark.parametrize("path", ["/", "/metrics/x", "/healthz", "/../etc/passwd"])
def test_unknown_paths_are_404_json(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_are_405(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/metrics", content=b'{"x": 1}')
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert method in response.json()["error"]
    assert client.get("/ready").status_code == 503  # still serving


def test_requests_are_not_logged_to_stderr(
    client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    client.get("/metrics")
    client.get("/nowhere")
    assert capfd.readouterr().err == ""


def test_a_port_in_use_names_host_and_port(metrics: Metrics, app: App) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ObservabilityServer(metrics, app.health, app.ready, port=port)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            server.start()


def test_stop_closes_the_socket_and_is_idempotent(metrics: Metrics, app: App) -> None:
    server = ObservabilityServer(metrics, app.health, app.ready)
    server.start()
    port = server.port
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2.0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    with ObservabilityServer(metrics, app.health, app.ready, port=port) as again:
        assert again.port == port  # the port was released
