"""The fault-injection suite: ``overlord run`` on the devnet, broken on purpose, checked.

``python -m overlord.devnet.faults [--short]`` (``make faults``; ``make test`` runs the
short version). One devnet (Aave 3.6.0, seeded users, cached), a
:class:`~overlord.devnet.proxy.FaultProxy` in front of anvil as the run's main node (HTTP
and WebSocket) and anvil itself as its fallback node, and ``overlord run`` as a child
process with its data directory, its event socket (PUSH, which queues while nobody is
connected, so a restart loses nothing in transit) and its liquidation tracker. Between
faults the market moves (the devnet scenario: supplies, borrows, price moves and real
liquidationCalls). The faults:

* ``rpc_slow``, ``rpc_truncated``, ``rpc_garbled`` (scrambled bodies, then JSON that is
  not a JSON-RPC answer): the main node misbehaves for a while; the run fails over;
* ``ws_drop``: every connection through the proxy is cut, WebSocket included, twice;
* ``kill9``: the run is killed (SIGKILL) in the middle of the scenario and started again
  (a warm restart from its checkpoint);
* ``reorg``: the blocks the run has processed are replaced (``evm_revert``) by a longer
  different chain;
* ``anvil_restart``: anvil is killed and started again from a state dump taken earlier,
  so the chain the run saw after the dump is gone;
* ``readonly_data_dir``, ``full_data_dir``: the run started on a read-only (a clear
  error, exit 2) or a tiny (32 KiB: the checkpoint cannot be written, the run goes on
  and says so) data directory. They need ``unshare`` (a user and mount namespace for a
  tmpfs); where it is not available they are reported as skipped.

After each fault, once the run has caught up with the head:

* **state equals the chain**: every user in the run's checkpoint file, computed with
  our math on the stored market, against ``Pool.getUserAccountData`` at the checkpoint
  block (``users_checked``, ``mismatches``);
* **no underwater user missed**: every user underwater at that block was announced in an
  ``UnderwaterUserEvent`` (``underwater_missed``);
* **no liquidation lost**: every ``LiquidationCall`` of the Pool is in the tracker's
  seen-set (``events_lost``); deliveries of one id more than once are counted
  (``duplicates``, allowed: at least once, with stable ids).

It prints a table and, last, one JSON line with ``faults_injected``, ``recovered``,
``users_checked``, ``mismatches``, ``events_lost`` (and the rest); it exits 1 unless
mismatches, events lost and missed underwater users are all 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import zmq
from rich.console import Console
from rich.table import Table

from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.logs import fetch_logs
from overlord.devnet.launch import Devnet, running_devnet
from overlord.devnet.proxy import FaultProxy, Mode
from overlord.devnet.scenario import run_scenario
from overlord.engine.store import ENGINE_DB, EngineStore
from overlord.engine.verifier import HealthFactorVerifier
from overlord.outputs.events import decode_event
from overlord.tracker.store import TRACKER_DB, TrackerStore

SHORT = ("rpc_garbled", "ws_drop", "kill9", "reorg", "readonly_data_dir")
ALL = (
    "rpc_slow",
    "rpc_truncated",
    "rpc_garbled",
    "ws_drop",
    "kill9",
    "reorg",
    "anvil_restart",
    "readonly_data_dir",
    "full_data_dir",
)
USERS = 120
WAD = 10**18
CATCH_UP_TIMEOUT_S = 90.0
console = Console(width=150)


@dataclass
class Outcome:
    """One fault's result."""

    fault: str
    injected: bool = True
    recovered: bool = False
    users_checked: int = 0
    mismatches: int = 0
    underwater_missed: int = 0
    events_lost: int = 0
    note: str = ""


@dataclass
class Consumer:
    """The run's events (PULL) and liquidations (SUB), collected on a thread."""

    events_endpoint: str
    liquidations_endpoint: str
    announced: set[str] = field(default_factory=set)
    liquidations: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._work, name="faults-consumer", daemon=True)
        thread.start()
        return thread

    def _work(self) -> None:
        context = zmq.Context()
        events = context.socket(zmq.PULL)
        liquidations = context.socket(zmq.SUB)
        for socket in (events, liquidations):
            socket.setsockopt(zmq.LINGER, 0)
        events.connect(self.events_endpoint)
        liquidations.setsockopt(zmq.SUBSCRIBE, b"liquidation")
        liquidations.connect(self.liquidations_endpoint)
        poller = zmq.Poller()
        poller.register(events, zmq.POLLIN)
        poller.register(liquidations, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                for socket, _ in poller.poll(200):
                    frames = socket.recv_multipart()
                    if socket is events:
                        self.announced.add(decode_event(frames[-1]).address.lower())
                    else:
                        document = json.loads(frames[-1])
                        self.liquidations[str(document.get("id"))] += 1
        finally:
            events.close()
            liquidations.close()
            context.term()


class Suite:
    """The devnet, the proxy, the run and the checks (see the module docstring)."""

    def __init__(self, devnet: Devnet, folder: Path) -> None:
        self.devnet = devnet
        self.folder = folder
        self.data = folder / "data"
        self.proxy = FaultProxy(devnet.rpc_url)
        self.proxy.start()
        self.direct = devnet.client()
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.runs = 0
        self.seed = 100
        self.first_block = self.head_of(devnet)  # liquidations before the run are not its
        self.consumer = Consumer(
            f"ipc://{self.data}/events.ipc", f"ipc://{self.data}/overlord-liquidations.ipc"
        )
        self.data.mkdir(parents=True, exist_ok=True)
        self.consumer.start()

    def close(self) -> None:
        self.stop_run()
        self.consumer.stop.set()
        self.proxy.close()
        self.direct.close()

    # The run.

    def command(self, data: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "overlord",
            "run",
            "--rpc-url",
            self.proxy.url,
            "--ws-url",
            self.proxy.ws_url,
            "--manifest",
            str(self.devnet.manifest_path),
            "--data-dir",
            str(data),
            "--zmq-endpoint",
            f"ipc://{data}/events.ipc",
            "--http-port",
            "0",
            "--log-json",
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OVERLORD")}
        env.update(
            {
                "OVERLORD_RPC_FALLBACK_URLS": self.devnet.rpc_url,
                "OVERLORD__CHAIN__REQUEST_TIMEOUT_S": "2",
                "OVERLORD__CHAIN__POLL_INTERVAL_S": "0.2",
                "OVERLORD__TRACKER__CONFIRMATIONS": "0",
                "OVERLORD__TRACKER__POLL_INTERVAL_S": "0.5",
                "OVERLORD__STATE__RECONCILE_INTERVAL_S": "5",
                "COLUMNS": "200",
            }
        )
        return env

    def start_run(self) -> None:
        self.runs += 1
        out = self.folder / f"run-{self.runs}.out"
        with (
            out.open("w") as stdout,
            (self.folder / f"run-{self.runs}.log").open("w") as stderr,
        ):  # the child keeps its own copies of the descriptors
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                self.command(self.data),
                stdout=stdout,
                stderr=stderr,
                env=self.environment(),
                text=True,
            )
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            text = out.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if line.startswith("metrics and health: "):
                    self.base_url = line.split()[3].removesuffix("/metrics")
            if self.base_url and self._ready():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"overlord run ended: {self._tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"overlord run was not ready in time: {self._tail()}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _tail(self) -> str:
        return (self.folder / f"run-{self.runs}.log").read_text(errors="replace")[-2000:]

    def stop_run(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.base_url = ""

    def head(self) -> int:
        return int(self.direct.call("eth_blockNumber"), 16)

    @staticmethod
    def head_of(devnet: Devnet) -> int:
        with devnet.client() as client:
            return int(client.call("eth_blockNumber"), 16) + 1

    def caught_up(self) -> bool:
        """Wait until the run has processed the node's head and saved it."""
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            head = self.head()
            try:
                health = httpx.get(f"{self.base_url}/health", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                health = {}
            engine = health.get("engine", {})
            state = health.get("state", {})
            if (engine.get("lastBlock") or 0) >= head and state.get("pending") == 0:
                return True
            time.sleep(0.25)
        return False

    def activity(self, steps: int) -> None:
        self.seed += 1
        run_scenario(
            self.direct, self.devnet.manifest, self.devnet.users, steps=steps, seed=self.seed
        )

    # Checks.

    def check(self, outcome: Outcome) -> Outcome:
        outcome.recovered = self.caught_up()
        if not outcome.recovered:
            outcome.note = outcome.note or "did not catch up"
            return outcome
        time.sleep(1.0)  # the tracker's next poll and the last events in flight
        self._check_state(outcome)
        self._check_liquidations(outcome)
        return outcome

    def _check_state(self, outcome: Outcome) -> None:
        """The checkpoint's users through the run's own verifier (our math on the stored
        market against ``getUserAccountData`` at the checkpoint block)."""
        manifest = self.devnet.manifest
        path = self.data / ENGINE_DB
        with EngineStore(path, pool=manifest.pool, chain_id=manifest.chain_id) as store:
            market = store.market()
            accounts = list(store.accounts())
        assert market is not None
        verifier = HealthFactorVerifier(self.direct, manifest.pool)
        for check in verifier.check(market, accounts):
            outcome.users_checked += 1
            if not verifier.agrees(check):
                outcome.mismatches += 1
            elif (
                check.matches and check.chain[5] < WAD and check.user not in self.consumer.announced
            ):
                outcome.underwater_missed += 1

    def _check_liquidations(self, outcome: Outcome) -> None:
        pool = self.devnet.manifest.pool
        logs = fetch_logs(
            self.direct, pool, [LIQUIDATION_CALL_TOPIC], self.first_block, self.head()
        )
        wanted = {f"{entry['transactionHash']}:{int(entry['logIndex'], 16)}" for entry in logs}
        deadline = time.monotonic() + 20
        while True:
            with TrackerStore(self.data / TRACKER_DB) as store:
                seen = store.seen_ids()
            lost = wanted - seen
            if not lost or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        outcome.events_lost = len(lost)

    # The faults.

    def rpc_fault(self, name: str, mode: Mode) -> Outcome:
        self.proxy.set_mode(mode, count=40)
        self.activity(4)
        self.proxy.set_mode("pass")
        return self.check(Outcome(name))

    def rpc_slow(self) -> Outcome:
        self.proxy.set_mode("delay", seconds=3.0, count=10)
        self.activity(4)
        self.proxy.set_mode("pass")
        return self.check(Outcome("rpc_slow"))

    def rpc_garbled(self) -> Outcome:
        self.proxy.set_mode("garble", count=30)
        self.activity(3)
        self.proxy.set_mode("wrong_json", count=30)
        self.activity(3)
        self.proxy.set_mode("pass")
        return self.check(Outcome("rpc_garbled"))

    def ws_drop(self) -> Outcome:
        for _ in range(2):
            self.proxy.drop_connections()
            self.activity(3)
        return self.check(Outcome("ws_drop"))

    def kill9(self) -> Outcome:
        """SIGKILL while the scenario runs (blocks arriving, the run mid-block), more
        blocks while it is down, then a warm restart that must catch up."""
        start = self.head()
        driver = threading.Thread(target=self.activity, args=(8,))
        driver.start()
        deadline = time.monotonic() + 30
        while self.head() < start + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stop_run(kill=True)
        driver.join()
        self.activity(4)
        self.start_run()
        return self.check(Outcome("kill9", note=f"killed at block {start + 3}"))

    def reorg(self) -> Outcome:
        snapshot = self.direct.call("evm_snapshot")
        self.activity(3)
        self.caught_up()
        self.direct.call("evm_revert", [snapshot])
        self.activity(5)
        return self.check(Outcome("reorg"))

    def anvil_restart(self) -> Outcome:
        dump = self.folder / "anvil-state.json"
        node = self.devnet.node
        node.dump_state(dump)
        self.activity(2)  # blocks the restarted node will not have
        node.restart_from(dump)
        self.direct.close()
        self.direct = self.devnet.client()
        self.activity(4)
        return self.check(Outcome("anvil_restart"))

    def data_dir_fault(
        self, name: str, options: str, expect_exits: tuple[int, ...], expect: str
    ) -> Outcome:
        """A run on a data directory that is read-only, or full (it may fail at the start,
        exit 2, or go on without a checkpoint, exit 0): either way a clear message."""
        unshare = shutil.which("unshare")
        if unshare is None or not _can_unshare(unshare):
            return Outcome(name, injected=False, note="skipped: no unshare")
        data = self.folder / name
        data.mkdir()
        remount = ' && mount -o remount,ro "$0"' if "ro" in options.split(",") else ""
        size = "size=32k" if "ro" not in options.split(",") else "size=1m"
        script = f'mount -t tmpfs -o {size} tmpfs "$0"{remount} && exec "$@"'
        command = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script, str(data)]
        command += [*self.command(data), "--blocks", "2"]
        env = self.environment() | {"OVERLORD__TRACKER__ENABLED": "false"}
        driver = threading.Thread(target=self.activity, args=(3,))
        driver.start()
        completed = subprocess.run(  # noqa: S603 - our own command line
            command, capture_output=True, text=True, timeout=180, env=env
        )
        driver.join()
        said = completed.stdout + completed.stderr
        ok = completed.returncode in expect_exits and expect in said and "Traceback" not in said
        note = f"exit {completed.returncode}; " + (
            f"said {expect!r}" if expect in said else f"not {expect!r}: {said.strip()[-60:]}"
        )
        return Outcome(name, recovered=ok, note=note)


def _can_unshare(unshare: str) -> bool:
    probe = subprocess.run(  # noqa: S603 - a fixed probe
        [unshare, "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def run_suite(faults: tuple[str, ...], folder: Path) -> list[Outcome]:
    """Inject ``faults`` in order into one run on one devnet; each one's outcome."""
    outcomes: list[Outcome] = []
    with running_devnet("3.6.0", users=USERS, seed=7) as devnet:
        suite = Suite(devnet, folder)
        try:
            suite.start_run()
            suite.activity(3)
            for name in faults:
                console.print(f"fault: {name}", style="cyan")
                outcomes.append(_inject(suite, name))
        finally:
            suite.close()
    return outcomes


def _inject(suite: Suite, name: str) -> Outcome:
    actions: dict[str, Callable[[], Outcome]] = {
        "rpc_slow": suite.rpc_slow,
        "rpc_truncated": lambda: suite.rpc_fault("rpc_truncated", "truncate"),
        "rpc_garbled": suite.rpc_garbled,
        "ws_drop": suite.ws_drop,
        "kill9": suite.kill9,
        "reorg": suite.reorg,
        "anvil_restart": suite.anvil_restart,
        "readonly_data_dir": lambda: suite.data_dir_fault(
            "readonly_data_dir", "ro", (2,), "read-only"
        ),
        "full_data_dir": lambda: suite.data_dir_fault(
            "full_data_dir", "full", (0, 2), "the disk is full"
        ),
    }
    try:
        return actions[name]()
    except Exception as exc:  # a fault the suite could not even complete is a failure
        return Outcome(name, recovered=False, note=f"{type(exc).__name__}: {exc}"[:200])


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """The totals of the JSON line."""
    injected = [o for o in outcomes if o.injected]
    return {
        "faults_injected": len(injected),
        "recovered": sum(o.recovered for o in injected),
        "users_checked": sum(o.users_checked for o in injected),
        "mismatches": sum(o.mismatches for o in injected),
        "events_lost": sum(o.events_lost for o in injected),
        "underwater_missed": sum(o.underwater_missed for o in injected),
        "skipped": [o.fault for o in outcomes if not o.injected],
        "cores": os.cpu_count(),
    }


def passed(totals: dict[str, Any]) -> bool:
    """Nothing wrong, nothing lost, nothing missed, every fault recovered from."""
    return bool(
        totals["mismatches"] == 0
        and totals["events_lost"] == 0
        and totals["underwater_missed"] == 0
        and totals["recovered"] == totals["faults_injected"]
    )


def show(outcomes: list[Outcome]) -> None:
    table = Table(title="fault injection")
    for column in (
        "fault",
        "injected",
        "recovered",
        "users checked",
        "mismatches",
        "underwater missed",
        "events lost",
        "note",
    ):
        table.add_column(column)
    for o in outcomes:
        table.add_row(
            o.fault,
            "yes" if o.injected else "no",
            "yes" if o.recovered else ("-" if not o.injected else "NO"),
            str(o.users_checked),
            str(o.mismatches),
            str(o.underwater_missed),
            str(o.events_lost),
            o.note,
        )
    console.print(table)


@contextmanager
def _folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="overlord-faults-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overlord.devnet.faults", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)}")
    parser.add_argument("--keep", type=Path, help="keep the runs' logs and data here")
    parser.add_argument("--only", help="comma-separated faults, in this order")
    args = parser.parse_args(argv)
    with _folder(args.keep) as folder:
        chosen = tuple(args.only.split(",")) if args.only else SHORT if args.short else ALL
        unknown = [name for name in chosen if name not in ALL]
        if unknown:
            parser.error(f"unknown faults {unknown}; known: {', '.join(ALL)}")
        outcomes = run_suite(chosen, folder)
    show(outcomes)
    totals = summary(outcomes)
    print(json.dumps(totals), flush=True)
    return 0 if passed(totals) else 1


if __name__ == "__main__":
    sys.exit(main())
