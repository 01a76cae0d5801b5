"""Restart to live from the checkpoint, against a cold sync, for 100k users.

On the devnet (Aave 3.6.0, BENCH_RESTART_USERS real seeded users, default 10,000, the
chain the live benchmark caches):

* ``cold_sync_users_per_s``: :meth:`Engine.sync` of every real user (the market read, the
  batched position reads over ``buckets`` clients), measured; ``cold_sync_100k_s`` is
  100,000 users at that rate. A devnet with 100k real users takes hours to seed, so this
  one figure is extrapolated from the measured rate, and says so (``extrapolated``);
* ``restart_100k_s``: measured with 100,000 users in the checkpoint. The store holds every
  real user and, to reach 100k, copies of the positions of the users healthy at the
  checkpoint (health factor 1.2 or more) under made-up addresses, so the underwater set
  stays the real market's while the load, the table and every rescreen carry 100k users.
  After the checkpoint, 10 scenario steps are processed by an engine writing the file,
  then 10 more while nothing runs.
  The figure is the time from opening the file to live: the load, the full market read,
  the logs since the checkpoint, the touched users re-read, the rescreen of all 100k
  users and the announcements;
* ``restart_load_100k_s`` (the load alone) and ``checkpoint_bytes_per_user``;
* ``apply_block_ms``: one block's checkpoint transaction (the market and the touched
  users), median over the steps.

Figures are JSON lines with the machine's core count.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from overlord.aave import UserAccount, calculate_user_account_data
from overlord.devnet.launch import running_devnet
from overlord.devnet.scenario import StepRecord, run_scenario
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.runner import Runner
from overlord.engine.store import ENGINE_DB, EngineStore
from overlord.engine.warm import warm_start

USERS = int(os.environ.get("BENCH_RESTART_USERS", "10000"))
TARGET = 100_000


def figure(name: str, value: float, unit: str, **extra: object) -> None:
    """Print one JSON line."""
    line = {"name": name, "value": round(value, 3), "unit": unit, "cores": os.cpu_count()}
    print(json.dumps({**line, "protocol": "3.6", "real_users": USERS, **extra}), flush=True)


def copies(accounts: list[UserAccount], wanted: int) -> list[UserAccount]:
    """``wanted`` copies of ``accounts``' positions under made-up addresses."""
    out: list[UserAccount] = []
    n = 0
    while len(out) < wanted:
        source = accounts[n % len(accounts)]
        out.append(
            UserAccount(
                f"0x{0xB0000000 + n:040x}",
                source.configuration,
                source.emode_category,
                source.positions,
            )
        )
        n += 1
    return out


def main() -> None:
    print(f"# devnet with {USERS} users", file=sys.stderr, flush=True)
    with (
        running_devnet("3.6.0", users=USERS, seed=5) as devnet,
        devnet.client() as rpc,
        tempfile.TemporaryDirectory() as folder,
    ):
        pool, chain_id = devnet.manifest.pool, devnet.manifest.chain_id
        settings = EngineSettings(reannounce_interval=10**9)
        head = NodeChain(rpc).latest()
        cold = Engine(rpc, pool, settings, client_factory=devnet.client)
        started = time.perf_counter()
        cold.sync(list(devnet.users), head.number)
        rate = USERS / (time.perf_counter() - started)
        figure("cold_sync_users_per_s", rate, "users/s")
        figure("cold_sync_100k_s", TARGET / rate, "s", extrapolated=True)

        path = Path(folder) / ENGINE_DB
        real = [cold.table.account(i) for i in range(cold.table.users)]
        assert cold.state is not None
        market, now = cold.state.market, cold.state.block_timestamp
        healthy = [
            account
            for account in real
            if calculate_user_account_data(market, account, now).health_factor >= 12 * 10**17
        ]
        with EngineStore(path, pool=pool, chain_id=chain_id) as store:
            store.begin_sync()
            store.add_synced(real)
            store.add_synced(copies(healthy, TARGET - len(real)))
            store.finish_sync(cold.state)
        writer_store = EngineStore(path, pool=pool, chain_id=chain_id)
        writer = Engine(rpc, pool, settings, client_factory=devnet.client, store=writer_store)
        writer.restore()
        writer.process_block(head.number, block_hash=head.block_hash)
        applied: list[float] = []
        save = writer_store.apply_block

        def timed_save(*args: Any, **kwargs: Any) -> None:
            before = time.perf_counter()
            save(*args, **kwargs)
            applied.append((time.perf_counter() - before) * 1000)

        writer_store.apply_block = timed_save  # type: ignore[method-assign]

        def step(record: StepRecord) -> None:
            writer.process_block(record.block_number)

        run_scenario(rpc, devnet.manifest, devnet.users, steps=10, seed=3, on_step=step)
        writer_store.close()
        figure("apply_block_ms", statistics.median(applied), "ms", users=TARGET)
        figure("checkpoint_bytes_per_user", path.stat().st_size / TARGET, "bytes", users=TARGET)
        # Down while the chain moves on.
        run_scenario(rpc, devnet.manifest, devnet.users, steps=10, seed=4)

        head = NodeChain(rpc).latest()
        started = time.perf_counter()
        with EngineStore(path, pool=pool, chain_id=chain_id) as store:
            engine = Engine(rpc, pool, settings, client_factory=devnet.client, store=store)
            warm = warm_start(Runner(engine, chain_id), head, NodeChain(rpc))
            live = time.perf_counter() - started
        assert warm is not None
        figure("restart_load_100k_s", warm.load_s, "s", users=engine.table.users)
        figure(
            "restart_100k_s",
            live,
            "s",
            users=engine.table.users,
            caught_up_blocks=warm.caught_up_blocks,
            reread=warm.report.touched,
            underwater=len(warm.report.underwater),
        )


if __name__ == "__main__":
    main()
