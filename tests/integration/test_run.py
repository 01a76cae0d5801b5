"""``overlord run`` against a node: events over a real ZMQ socket, equal to the chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import zmq

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
    consumer.connect(endpoint)
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
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:  # wait until the initial sync is over
            if line.startswith("synced"):
                break
        admin = devnet.manifest.accounts["admin"]
        feed = devnet.manifest.feed("ETH / USD").address
        TxSender(rpc).send([Tx(admin, feed, aave_abi.UPDATE_ANSWER.encode(1700 * 10**8), "crash")])
        events = [decode_event(consumer.recv())]
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
        (chain,) = reader.read_account_data([event.address.lower()], event.block_number)
        assert event.user_account_data.as_tuple() == tuple(chain)
        assert event.user_account_data.health_factor < 10**18
    assert '"message": "block processed"' in stderr
    traces = list((tmp_path / "data" / "output" / "hf-traces").glob("*.txt"))
    assert traces
    assert list((tmp_path / "data" / "output").glob("init_hf_under_1_results_*.txt"))


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
