"""The services beside the engine, on the devnet: readiness, the tracker's PUB socket and
webhook, verdicts from the engine's own announcements, and metrics over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from overlord.chain.rpc import JsonRpcClient
from overlord.config import (
    Config,
    HttpConfig,
    NotifyConfig,
    OutputConfig,
    SecretUrl,
    TrackerConfig,
)
from overlord.demo_cli import CRASH, fund_liquidator, set_feed_prices
from overlord.devnet.launch import Devnet
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.runner import Runner
from overlord.outputs.events import UnderwaterUserEvent
from overlord.run_services import RunServices, liquidations_endpoint
from tests.integration.liquidating import liquidate
from tests.loopback import LoopbackServer


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = LoopbackServer(Handler)
        self.server.start()
        self.url = f"{self.server.url}/hook?token=secret"

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _wait(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_services_announce_liquidations_with_verdicts_and_expose_metrics(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path, receiver: Receiver
) -> None:
    config = Config(
        output=OutputConfig(data_dir=tmp_path),
        http=HttpConfig(port=0),
        tracker=TrackerConfig(poll_interval_s=0.05),
        notify=NotifyConfig(webhook_url=SecretUrl(receiver.url)),
    )
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.setsockopt(zmq.RCVTIMEO, 30_000)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"liquidation")
    pool = devnet.manifest.pool
    with RunServices(config, pool, devnet.client) as services:
        assert services.server is not None
        base = services.server.url
        assert httpx.get(f"{base}/ready").status_code == 503  # until the sync is done
        assert httpx.get(f"{base}/health").json()["status"] == "syncing"
        subscriber.connect(liquidations_endpoint(config))

        events: list[UnderwaterUserEvent] = []

        def on_event(event: UnderwaterUserEvent) -> None:
            events.append(event)
            services.on_event(event)

        engine = Engine(rpc, pool, EngineSettings(), client_factory=devnet.client)
        runner = Runner(engine, devnet.manifest.chain_id, on_event=on_event)
        head = NodeChain(rpc).latest().number
        runner.start(devnet.users, head)
        services.synced(engine, devnet.users, head, tmp_path)
        assert httpx.get(f"{base}/ready").json() == {"ready": True}

        fund_liquidator(devnet, rpc)
        set_feed_prices(devnet, rpc, CRASH)
        crash_block = NodeChain(rpc).latest().number
        services.on_block(runner.process(crash_block))
        flagged = sorted(events, key=lambda e: e.user_account_data.health_factor)[0]
        assert flagged.liquidation_plan is not None
        liquidate(devnet, rpc, [flagged.address.lower()])

        topic, payload = subscriber.recv_multipart()
        document = json.loads(payload)
        assert topic == b"liquidation"
        assert document["liquidation"]["user"] == flagged.address.lower()
        assert document["verdict"] == "flagged"
        assert int(document["health_factor_before"]) < 10**18
        assert document["account_before"]["healthFactor"] == document["health_factor_before"]

        def kinds() -> list[str]:
            return [body["type"] for body in receiver.bodies]

        _wait(lambda: "liquidation.new" in kinds(), "the webhook")
        assert "opportunity.new" in kinds()  # the crash's events carried profitable plans
        services.on_block(runner.process(NodeChain(rpc).latest().number))
        _wait(
            lambda: services.sampler is not None and services.sampler.verifier.checks > 0,
            "a sample",
        )

        health = httpx.get(f"{base}/health").json()
        assert health["liquidationTracker"]["seenTotal"] == 1
        assert health["liquidationTracker"]["pollLimit"] == 5
        assert health["onDemandHealthFactor"] is True
        assert health["verifier"]["mismatches"] == 0
        text = httpx.get(f"{base}/metrics").text
    subscriber.close()
    context.term()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    value = {
        sample.name: sample.value
        for family in families.values()
        for sample in family.samples
        if not sample.labels
    }
    assert value["overlord_liquidation_new_events_total"] == 1
    assert value["overlord_liquidation_seen_total"] == 1
    assert value["overlord_head_block"] >= crash_block
    assert value["overlord_underwater_users"] >= 1
    assert value["overlord_verifier_checks_total"] >= 1
    assert value["overlord_verifier_mismatches_total"] == 0
    assert families["overlord_rescreen_duration_seconds"].type == "histogram"
    published = {
        s.labels["kind"]: s.value
        for s in families["overlord_events_published"].samples
        if s.name.endswith("_total")
    }
    assert published["mined"] == len(events)
    assert "secret" not in repr(replace(config.notify))
