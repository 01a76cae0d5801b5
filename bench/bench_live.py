"""End-to-end latency on the devnet: price update -> UnderwaterUserEvent on a ZMQ consumer.

The whole live pipeline runs as in production (:class:`~overlord.engine.live.LiveIngest`):
anvil's WebSocket pushes heads, logs and pending transactions; the block path and the
price path run on their own threads and publish over a real ZMQ PUSH socket; a consumer
process (where the executor would be) stamps every event on arrival. Aave 3.6.0 with 10k
seeded users (cached after the first run; BENCH_LIVE_USERS to change). Each round crashes
the ETH feed by 30 % (sinking a set of users), then restores it:

* pending path: the crash is sent with automine off, and the block is mined
  ``BLOCK_TIME_MS`` later (a real race: 250 ms, an L2's block time). Measured from just
  before ``eth_sendTransaction`` (so the node's WebSocket delivery is included) to the
  first event carrying the transaction's hash (``pending_seen_to_event_p50_ms`` /
  ``_p99_ms``); ``pending_before_inclusion_pct`` is the share of rounds whose first
  pending event arrived before the block was mined;
* mined path: from ``evm_mine`` returning (the block exists; anvil takes 150-200 ms
  to build and commit it on this state, printed as a comment; before that nobody can see
  it) to the first
  event of the block path for that block (``e2e_mined_p50_ms`` / ``_p99_ms``): head
  notification, market and touched users read, screen, exact confirmation lowest health
  factor first, plan, publish. The pending events count as before inclusion when they
  arrived before ``evm_mine`` was called;
* the prior systems' method on the same block: batched ``getUserAccountData`` for every
  user and the HF < 1 filter (``onchain_e2e_mined_p99_ms``), measured after the engine
  has caught up so the two do not share the node.

Rounds: BENCH_LIVE_ROUNDS (default 200), after 3 warm-up rounds that are not counted.
Figures are printed as JSON lines.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import zmq

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.chain.ws import ws_url_for
from overlord.devnet.launch import Devnet, running_devnet
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.live import LiveIngest, LiveSettings
from overlord.engine.runner import Runner
from overlord.engine.scout import PriceScout
from overlord.feeds.sources import discover_feeds
from overlord.outputs.events import decode_event
from overlord.outputs.publisher import EventPublisher

USERS = int(os.environ.get("BENCH_LIVE_USERS", "10000"))
ROUNDS = int(os.environ.get("BENCH_LIVE_ROUNDS", "200"))
BLOCK_TIME_MS = 250
WARMUP_ROUNDS = 3  # first-time costs (imports, caches, the first full market read): not counted


class Arrival(NamedTuple):
    """When the first event of a trigger reached the consumer."""

    at: float
    tx_hash: str | None  # the pending transaction; None for the block path
    block_number: int


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
        "block_time_ms": BLOCK_TIME_MS,
    }
    print(json.dumps(line), flush=True)


def consume(endpoint: str, relay: str) -> None:
    """The executor's side, in its own process as in production: stamp each event the
    moment it arrives, decode it, and relay the first arrival of each trigger (a pending
    transaction, or a block) to the bench, so the bench process does next to nothing while
    the pipeline works. ``time.perf_counter`` is CLOCK_MONOTONIC on Linux, one clock for
    every process."""
    context = zmq.Context()
    events = context.socket(zmq.PULL)
    events.connect(endpoint)
    back = context.socket(zmq.PUSH)
    back.connect(relay)
    relayed: set[tuple[str | None, int]] = set()
    while True:
        payload = events.recv()
        stamp = time.perf_counter()
        event = decode_event(payload)
        key = (event.tx_hash, event.block_number)
        if key not in relayed:
            relayed.add(key)
            back.send_json([stamp, event.tx_hash, event.block_number])


def listen(relay: zmq.Socket[bytes], arrivals: queue.Queue[Arrival], stop: threading.Event) -> None:
    """Collect the consumer's first arrivals, on a thread of the bench."""
    while not stop.is_set():
        try:
            stamp, tx_hash, block = cast(list[Any], relay.recv_json())
        except zmq.Again:
            continue
        arrivals.put(Arrival(float(stamp), tx_hash, int(block)))


def main() -> None:
    print(f"# devnet with {USERS} users, {ROUNDS} rounds", file=sys.stderr, flush=True)
    with (
        running_devnet("3.6.0", users=USERS, seed=5) as devnet,
        devnet.client() as rpc,
        devnet.client() as engine_client,
        devnet.client() as scout_client,
        tempfile.TemporaryDirectory() as folder,
    ):
        manifest = devnet.manifest
        head = NodeChain(rpc).latest()
        engine = Engine(
            engine_client,
            manifest.pool,
            EngineSettings(reannounce_interval=10**9),
            client_factory=devnet.client,
        )
        oracle = manifest.addresses["oracle"]
        context = zmq.Context()
        relay = context.socket(zmq.PULL)
        relay.setsockopt(zmq.RCVTIMEO, 200)
        endpoint, relay_endpoint = f"ipc://{folder}/events.ipc", f"ipc://{folder}/relay.ipc"
        relay.bind(relay_endpoint)
        arrivals: queue.Queue[Arrival] = queue.Queue()
        stop = threading.Event()
        consumer = multiprocessing.get_context("spawn").Process(
            target=consume, args=(endpoint, relay_endpoint), daemon=True
        )
        with EventPublisher(endpoint, send_timeout_ms=2_000) as publisher:
            consumer.start()
            listener = threading.Thread(target=listen, args=(relay, arrivals, stop), daemon=True)
            listener.start()
            runner = Runner(engine, manifest.chain_id, publisher)
            runner.start(devnet.users, head.number, block_hash=head.block_hash)
            assets = [r.asset for r in manifest.reserves]
            watched = discover_feeds(scout_client, oracle, assets, head.number)
            scout = PriceScout(engine, scout_client, oracle, watched)
            live = LiveIngest(
                runner,
                devnet.client,
                ws_url=ws_url_for(devnet.rpc_url),
                scout=scout,
                settings=LiveSettings(),
            )
            follower = threading.Thread(target=live.run, args=(stop,), daemon=True)
            follower.start()
            try:
                samples = measure(rpc, devnet, engine, live, arrivals)
            finally:
                stop.set()
                follower.join(timeout=10)
                listener.join(timeout=5)
                consumer.terminate()
        relay.close()
        context.term()
    figure("e2e_mined_p50_ms", statistics.median(samples.mined), "ms")
    figure("e2e_mined_p99_ms", percentile(samples.mined, 99), "ms")
    figure("pending_seen_to_event_p50_ms", statistics.median(samples.pending), "ms")
    figure("pending_seen_to_event_p99_ms", percentile(samples.pending, 99), "ms")
    before = samples.before
    figure("pending_before_inclusion_pct", 100.0 * sum(before) / max(len(before), 1), "%")
    figure("onchain_e2e_mined_p99_ms", percentile(samples.onchain, 99), "ms")
    print(
        f"# anvil's evm_mine: median {statistics.median(samples.mining):.0f} ms "
        "(the mined path is timed from its return, when the block exists)",
        file=sys.stderr,
    )
    print(
        f"# reorgs {live.stats.reorgs}, dropped heads {live.stats.dropped_heads}, "
        f"dropped pending {live.stats.dropped_pending}, prediction mismatches "
        f"{scout.mismatches} of {scout.checked}",
        file=sys.stderr,
    )


def wait_for(condition: Callable[[], bool], what: object = "", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the live pipeline did not catch up: {what}")
        time.sleep(0.005)


def first_arrivals(
    seen: list[Arrival], tx_hash: str, block: int
) -> tuple[float | None, float | None]:
    """When the first event of the pending path (carrying ``tx_hash``) and the first of the
    block path for ``block`` arrived."""
    pending = min((a.at for a in seen if a.tx_hash == tx_hash), default=None)
    mined = min((a.at for a in seen if a.tx_hash is None and a.block_number == block), default=None)
    return pending, mined


def drain(arrivals: queue.Queue[Arrival]) -> list[Arrival]:
    """Every event that has arrived so far."""
    items = []
    while True:
        try:
            items.append(arrivals.get_nowait())
        except queue.Empty:
            return items


@dataclass
class Samples:
    """The figures' samples, in ms (``before``: the pending event beat the block)."""

    pending: list[float] = field(default_factory=list)
    before: list[bool] = field(default_factory=list)
    mined: list[float] = field(default_factory=list)
    onchain: list[float] = field(default_factory=list)
    mining: list[float] = field(default_factory=list)  # anvil's evm_mine call

    def keep(
        self,
        first_pending: float | None,
        sent_at: float,
        mining_at: float,
        first_mined: float | None,
        mined_at: float,
        onchain_ms: float,
    ) -> None:
        if first_pending is not None:
            self.pending.append((first_pending - sent_at) * 1000)
        self.before.append(first_pending is not None and first_pending < mining_at)
        if first_mined is not None:
            self.mined.append((first_mined - mined_at) * 1000)
        self.onchain.append(onchain_ms)
        self.mining.append((mined_at - mining_at) * 1000)


def measure(
    rpc: JsonRpcClient,
    devnet: Devnet,
    engine: Engine,
    live: LiveIngest,
    arrivals: queue.Queue[Arrival],
) -> Samples:
    """Run the rounds and return their samples."""
    manifest = devnet.manifest
    admin, feed = manifest.accounts["admin"], manifest.feed("ETH / USD").address
    base = 3_000 * 10**8
    users = list(engine.table.addresses)
    samples = Samples()
    rpc.call("anvil_autoImpersonateAccount", [True])
    wait_for(lambda: "newPendingTransactions" in live.subscribed_kinds())

    def send(answer: int) -> str:
        payload = {
            "from": admin,
            "to": feed,
            "gasPrice": "0x0",
            "gas": hex(200_000),
            "data": aave_abi.UPDATE_ANSWER.encode(answer),
        }
        return str(rpc.call("eth_sendTransaction", [payload]))

    def processed(block: int) -> Callable[[], bool]:
        # No RPC while waiting: the bench must not load the node or the GIL it measures.
        return lambda: live.stats.last_processed == block

    rpc.call("evm_setAutomine", [False])
    try:
        for round_number in range(-WARMUP_ROUNDS, ROUNDS):
            drain(arrivals)
            sent_at = time.perf_counter()
            tx_hash = send(base * 70 // 100)
            time.sleep(BLOCK_TIME_MS / 1000)
            mining_at = time.perf_counter()
            rpc.call("evm_mine")  # anvil builds and commits the block (median printed)
            mined_at = time.perf_counter()
            block = int(rpc.call("eth_blockNumber"), 16)
            wait_for(processed(block), live.stats)
            time.sleep(0.01)  # the last events in flight
            seen = drain(arrivals)
            first_pending, first_mined = first_arrivals(seen, tx_hash, block)
            started = time.perf_counter()
            data = engine.reader.read_account_data(users, block)
            sunk = [user for user, values in zip(users, data, strict=True) if values[5] < 10**18]
            elapsed = (time.perf_counter() - started) * 1000
            if round_number >= 0:
                samples.keep(first_pending, sent_at, mining_at, first_mined, mined_at, elapsed)
            del sunk
            send(base)  # restore: the sunk users recover, and sink again next round
            rpc.call("evm_mine")
            wait_for(processed(block + 1), live.stats)
            if round_number >= 0 and round_number % 20 == 19:
                print(f"# {round_number + 1} rounds", file=sys.stderr, flush=True)
    finally:
        rpc.call("evm_setAutomine", [True])
    return samples


if __name__ == "__main__":
    main()
