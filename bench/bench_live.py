"""End-to-end latency on the devnet: price update -> UnderwaterUserEvent on a ZMQ consumer.

Aave 3.6.0 with 10k seeded users (cached after the first run; BENCH_LIVE_USERS to change).
Each round crashes the ETH feed by 30 % (sinking a set of users) and then restores it:

* pending path: the crash is sent with automine off; the scout reads the pool, predicts
  the prices by simulation, evaluates hypothetically and publishes; measured from the
  start of the scout's poll to the first event decoded by the consumer
  (``pending_seen_to_event_p50_ms`` / ``_p99_ms``), and whether that happened before the
  block was mined (``pending_before_inclusion_pct``; here the block is mined after the
  events, so this checks the path completes, not a race with a real miner);
* mined path: the block is mined, then the engine processes it and publishes; measured
  from ``evm_mine`` returning to the first event decoded (``e2e_mined_p50_ms`` /
  ``_p99_ms``);
* the prior systems' method on the same block: batched ``getUserAccountData`` for every
  user and the HF < 1 filter (``onchain_e2e_mined_p99_ms``).

Rounds: BENCH_LIVE_ROUNDS (default 200). Figures are printed as JSON lines.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time

import zmq

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet, running_devnet
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.runner import Runner
from overlord.engine.scout import PriceScout
from overlord.feeds.sources import discover_feeds
from overlord.outputs.events import decode_event
from overlord.outputs.publisher import EventPublisher

USERS = int(os.environ.get("BENCH_LIVE_USERS", "10000"))
ROUNDS = int(os.environ.get("BENCH_LIVE_ROUNDS", "200"))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def figure(name: str, value: float, unit: str) -> None:
    line = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "cores": os.cpu_count(),
        "users": USERS,
        "rounds": ROUNDS,
    }
    print(json.dumps(line), flush=True)


def main() -> None:
    print(f"# devnet with {USERS} users, {ROUNDS} rounds", file=sys.stderr, flush=True)
    with (
        running_devnet("3.6.0", users=USERS, seed=5) as devnet,
        devnet.client() as rpc,
        tempfile.TemporaryDirectory() as folder,
    ):
        manifest = devnet.manifest
        head = int(rpc.call("eth_blockNumber"), 16)
        engine = Engine(rpc, manifest.pool, EngineSettings(reannounce_interval=10**9))
        engine.sync(devnet.users, head)
        engine.process_block(head)
        oracle = manifest.addresses["oracle"]
        watched = discover_feeds(rpc, oracle, [r.asset for r in manifest.reserves], head)
        scout = PriceScout(engine, rpc, oracle, watched)
        context = zmq.Context()
        consumer = context.socket(zmq.PULL)
        consumer.setsockopt(zmq.RCVTIMEO, 200)
        endpoint = f"ipc://{folder}/events.ipc"
        with EventPublisher(endpoint, send_timeout_ms=2_000) as publisher:
            consumer.connect(endpoint)
            runner = Runner(engine, manifest.chain_id, publisher)
            samples = measure(rpc, devnet, engine, scout, runner, consumer)
        consumer.close()
        context.term()
    pending, before, mined, onchain = samples
    figure("e2e_mined_p50_ms", statistics.median(mined), "ms")
    figure("e2e_mined_p99_ms", percentile(mined, 99), "ms")
    figure("pending_seen_to_event_p50_ms", statistics.median(pending), "ms")
    figure("pending_seen_to_event_p99_ms", percentile(pending, 99), "ms")
    figure("pending_before_inclusion_pct", 100.0 * sum(before) / max(len(before), 1), "%")
    figure("onchain_e2e_mined_p99_ms", percentile(onchain, 99), "ms")


def listen(
    consumer: zmq.Socket[bytes], arrivals: queue.Queue[tuple[float, object]], stop: threading.Event
) -> None:
    """Stamp every event when it arrives, in its own thread, so an event's arrival is seen
    while the runner is still sizing the plans of the next ones."""
    while not stop.is_set():
        try:
            payload = consumer.recv()
        except zmq.Again:
            continue
        arrivals.put((time.perf_counter(), decode_event(payload)))


def measure(
    rpc: JsonRpcClient,
    devnet: Devnet,
    engine: Engine,
    scout: PriceScout,
    runner: Runner,
    consumer: zmq.Socket[bytes],
) -> tuple[list[float], list[bool], list[float], list[float]]:
    """Run the rounds; returns the pending, before-inclusion, mined and on-chain samples."""
    manifest = devnet.manifest
    admin, feed = manifest.accounts["admin"], manifest.feed("ETH / USD").address
    base = 3_000 * 10**8
    users = list(engine.table.addresses)
    pending: list[float] = []
    before: list[bool] = []
    mined: list[float] = []
    onchain: list[float] = []
    rpc.call("anvil_autoImpersonateAccount", [True])

    def update(answer: int, *, wait: bool = False) -> None:
        payload = {
            "from": admin,
            "to": feed,
            "gasPrice": "0x0",
            "gas": hex(200_000),
            "data": aave_abi.UPDATE_ANSWER.encode(answer),
        }
        tx_hash = rpc.call("eth_sendTransaction", [payload])
        # With automine on, anvil answers before the block exists: wait for the receipt.
        while wait and rpc.call("eth_getTransactionReceipt", [tx_hash]) is None:
            time.sleep(0.001)

    def first_event(started: float, count: int) -> float:
        """ms from ``started`` to the first of ``count`` events, as the consumer thread saw it."""
        first = None
        for _ in range(count):
            received_at, _event = arrivals.get(timeout=10)
            first = received_at if first is None else first
        assert first is not None
        return (first - started) * 1000

    arrivals: queue.Queue[tuple[float, object]] = queue.Queue()
    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(consumer, arrivals, stop), daemon=True)
    listener.start()

    for _ in range(ROUNDS):
        rpc.call("evm_setAutomine", [False])
        update(base * 70 // 100)
        started = time.perf_counter()
        sent = sum(len(runner.emit_pending(detection)) for detection in scout.poll())
        if sent:
            pending.append(first_event(started, sent))
        block_before = int(rpc.call("eth_blockNumber"), 16)
        rpc.call("evm_mine")
        before.append(sent > 0 and int(rpc.call("eth_blockNumber"), 16) == block_before + 1)
        rpc.call("evm_setAutomine", [True])
        started = time.perf_counter()
        report = runner.poll()
        if report is not None and report.detections:
            mined.append(first_event(started, len(report.detections)))
        started = time.perf_counter()
        data = engine.reader.read_account_data(users, int(rpc.call("eth_blockNumber"), 16))
        sunk = [user for user, values in zip(users, data, strict=True) if values[5] < 10**18]
        onchain.append((time.perf_counter() - started) * 1000)
        del sunk
        update(base, wait=True)  # restore: the sunk users recover, and sink again next round
        runner.poll()
        scout.check_included()
    stop.set()
    listener.join()
    return pending, before, mined, onchain


if __name__ == "__main__":
    main()
