"""``overlord run`` against a node: events over a real ZMQ socket, equal to the chain."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import zmq
from prometheus_client.parser import text_string_to_metric_families
from zmq.utils.monitor import recv_monitor_message

from overlord.chain import aave_abi
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.transactions import Tx, TxSender
from overlord.outputs.events import decode_event


def test_run_publishes_exact_events_for_users_a_crash_puts_underwater(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    endpoint = f"ipc://{tmp_path}/events.ipc"
    context = zmq.Context()
    consumer = context.socket(zmq.PULL)
    consumer.setsockopt(zmq.LINGER, 0)
    consumer.setsockopt(zmq.RCVTIMEO, 30_000)
    command = [
        sys.executable,
        "-m",
        "overlord",
        "run",
        "--rpc-url",
        devnet.rpc_url,
        "--manifest",
        str(devnet.manifest_path),
        "--blocks",
        "1",
        "--zmq-endpoint",
        endpoint,
        "--data-dir",
        str(tmp_path / "data"),
        "--log-json",
        "--http-port",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base = ""
        for line in process.stdout:  # wait until the initial sync is over
            if line.startswith("metrics and health: "):
                base = line.split()[3].removesuffix("/metrics")
            if line.startswith("synced"):
                break
        _check_endpoints(base)
        # The publisher is bound by now; PUSH drops what no connected consumer takes, so
        # connect and wait (bounded) for the connection before anything is published.
        _connect_and_wait(consumer, endpoint)
        admin = devnet.manifest.accounts["admin"]
        feed = devnet.manifest.feed("ETH / USD").address
        TxSender(rpc).send([Tx(admin, feed, aave_abi.UPDATE_ANSWER.encode(1700 * 10**8), "crash")])
        try:
            events = [decode_event(consumer.recv())]
        except zmq.Again:
            process.kill()
            _, stderr = process.communicate(timeout=30)
            raise AssertionError(
                f"no event within 30 s; overlord run said:\n{stderr[-3000:]}"
            ) from None
        while True:
            try:
                events.append(decode_event(consumer.recv(zmq.NOBLOCK)))
            except zmq.Again:
                if process.poll() is not None:
                    break
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        consumer.close()
        context.term()

    assert process.returncode == 0, stderr
    reader = MarketReader(rpc, devnet.manifest.pool)
    for event in events:
        if event.tx_hash is None:  # found in a mined block: exactly the chain at that block
            (chain,) = reader.read_account_data([event.address.lower()], event.block_number)
            assert event.user_account_data.as_tuple() == tuple(chain)
        else:  # the scout saw the crash pending: a prediction for its inclusion block
            assert event.inclusion_block is not None
            (chain,) = reader.read_account_data([event.address.lower()], event.inclusion_block)
            assert chain[5] < 10**18
        assert event.user_account_data.health_factor < 10**18
    assert '"message": "block processed"' in stderr
    traces = list((tmp_path / "data" / "output" / "hf-traces").glob("*.txt"))
    assert traces
    assert list((tmp_path / "data" / "output").glob("init_hf_under_1_results_*.txt"))


def _connect_and_wait(socket: zmq.Socket[bytes], endpoint: str) -> None:
    monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED)
    monitor.setsockopt(zmq.RCVTIMEO, 10_000)
    socket.connect(endpoint)
    try:
        event = recv_monitor_message(monitor)
        assert event["event"] == zmq.EVENT_CONNECTED
    finally:
        socket.disable_monitor()
        monitor.close()


def test_run_without_a_market_for_an_rpc_url_is_a_clear_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "overlord",
            "run",
            "--rpc-url",
            "http://127.0.0.1:9/secret-key",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert completed.returncode == 2
    assert "market" in completed.stderr
    assert "secret-key" not in completed.stderr + completed.stdout


def _check_endpoints(base: str) -> None:
    """/ready, /health and /metrics of the running engine, over HTTP."""
    assert base.startswith("http://127.0.0.1:")
    for _ in range(100):  # the sync is printed just before readiness flips
        ready = httpx.get(f"{base}/ready", timeout=5)
        if ready.status_code == 200:
            break
        time.sleep(0.05)
    assert ready.json() == {"ready": True}
    health = httpx.get(f"{base}/health", timeout=5).json()
    assert health["status"] == "ok"
    assert health["engine"]["users"] > 0
    assert health["liquidationTracker"]["pollLimit"] == 5
    assert health["onDemandHealthFactor"] is True
    text = httpx.get(f"{base}/metrics", timeout=5).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["overlord_users"].samples[0].value == health["engine"]["users"]
    assert families["overlord_liquidation_seen_total"].type == "gauge"
    assert families["overlord_liquidation_new_events"].type == "counter"
    calls = {
        sample.labels["method"]: sample.value
        for sample in families["overlord_rpc_requests"].samples
        if sample.name.endswith("_total")
    }
    assert calls["eth_call"] > 0
