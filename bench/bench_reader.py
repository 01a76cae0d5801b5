"""Market reader and verifier throughput on the devnet, both protocol versions.

Starts a seeded devnet (from the cache when warm; the first run seeds it) and prints:
``reader_market_ms`` (one market read), ``read_users_per_s`` (positions of every user
through batched ``eth_call``), ``chain_account_data_per_s`` (``getUserAccountData`` for
every user, the prior systems' way), ``exact_account_data_per_s`` (our exact math on the
read positions, no RPC) and ``verify_users_per_s`` (read + compute + compare). Medians of
a few runs; each figure carries the protocol version and the number of users.

Then the engine's per-block read, at the head as it moves (a block is mined before each
read, outside the timing): ``read_market_full_ms`` (``read_market(head)``) and
``read_market_incremental_ms`` (``read_market(head, previous=state)``, each read from the
state of the one before), medians of ``READS`` reads.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from overlord.aave import calculate_user_account_data
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import running_devnet
from overlord.verify import verify_users

USERS = int(os.environ.get("BENCH_READER_USERS", "2000"))
RUNS = 3
READS = 50


def median_seconds(action: Callable[[], object]) -> float:
    """Median wall time of ``RUNS`` runs of ``action``."""
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def figure(name: str, value: float, unit: str, protocol: str, **extra: int) -> None:
    """Print one JSON line."""
    line = {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "cores": os.cpu_count(),
        "protocol": protocol,
        "users": USERS,
        **extra,
    }
    print(json.dumps(line), flush=True)


def per_block_ms(client: JsonRpcClient, read: Callable[[int], object]) -> float:
    """Median wall time in ms of ``READS`` calls of ``read(head)``, a block mined before each."""
    samples = []
    for _ in range(READS):
        client.call("evm_mine")
        block = int(client.call("eth_blockNumber"), 16)
        start = time.perf_counter()
        read(block)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def bench_per_block(client: JsonRpcClient, reader: MarketReader, protocol: str) -> None:
    """The engine's per-block market read, in full and incremental."""
    full = per_block_ms(client, reader.read_market)
    figure("read_market_full_ms", full, "ms", protocol, reads=READS)
    states: list[MarketState] = [reader.read_market(int(client.call("eth_blockNumber"), 16))]

    def incremental(block: int) -> None:
        states.append(reader.read_market(block, previous=states[-1]))

    figure(
        "read_market_incremental_ms",
        per_block_ms(client, incremental),
        "ms",
        protocol,
        reads=READS,
    )
    assert states[-1] == reader.read_market(states[-1].block_number)  # the same market


def bench(protocol: str) -> None:
    """Measure one protocol version."""
    print(f"# {protocol}: starting a devnet with {USERS} seeded users", file=sys.stderr, flush=True)
    with running_devnet(protocol, users=USERS, seed=11) as devnet, devnet.client() as client:
        reader = MarketReader(client, devnet.manifest.pool)
        block = int(client.call("eth_blockNumber"), 16)
        users = list(devnet.users)
        state = reader.read_market(block)
        accounts = reader.read_users(users, block, state)
        figure(
            "reader_market_ms",
            median_seconds(lambda: reader.read_market(block)) * 1000,
            "ms",
            protocol,
        )
        figure(
            "read_users_per_s",
            USERS / median_seconds(lambda: reader.read_users(users, block, state)),
            "users/s",
            protocol,
        )
        figure(
            "chain_account_data_per_s",
            USERS / median_seconds(lambda: reader.read_account_data(users, block)),
            "users/s",
            protocol,
        )
        now = state.block_timestamp
        exact = median_seconds(
            lambda: [calculate_user_account_data(state.market, a, now) for a in accounts]
        )
        figure("exact_account_data_per_s", USERS / exact, "users/s", protocol)
        verify = median_seconds(lambda: verify_users(client, devnet.manifest.pool, users, block))
        figure("verify_users_per_s", USERS / verify, "users/s", protocol)
        bench_per_block(client, reader, protocol)  # last: it mines blocks


if __name__ == "__main__":
    for version in ("3.6.0", "3.0.2"):
        bench(version)
