"""The devnet end to end: launcher, deployed and seeded market, scenario driver, CLI.

Runs against real anvil nodes with the real Aave contracts (3.0.2 and 3.6.0 through the
``session_devnet`` parametrization). Chains come from the cache when warm.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner

from overlord.chain import aave_abi
from overlord.chain.abi import event_topic
from overlord.chain.rpc import JsonRpcClient
from overlord.cli import app
from overlord.devnet import launch
from overlord.devnet.anvil import AnvilNode, free_port
from overlord.devnet.launch import Devnet, running_devnet
from overlord.devnet.manifest import Manifest
from overlord.devnet.scenario import (
    StepKind,
    StepRecord,
    UserState,
    read_user_states,
    run_scenario,
)
from overlord.devnet.seed import eth_calls, read_account_data, seed_market
from tests.integration.conftest import SEED, SEEDED_USERS

WAD = 10**18
POOL_REVISIONS = {"3.0.2": 1, "3.6.0": 10}
LIQUIDATION_CALL_TOPIC = event_topic(
    "LiquidationCall(address,address,address,uint256,uint256,address,bool)"
)
OVERLORD = Path(sys.executable).with_name("overlord")


def _states(rpc: JsonRpcClient, devnet: Devnet) -> list[UserState]:
    return read_user_states(rpc, devnet.manifest, devnet.users)


def _chain_fingerprint(rpc: JsonRpcClient, manifest: Manifest, users: tuple[str, ...]) -> object:
    head = rpc.call("eth_getBlockByNumber", ["latest", False])
    return head["number"], head["timestamp"], read_account_data(rpc, manifest, users)


# The launcher.


def test_a_failing_deploy_still_stops_anvil(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pids: list[int] = []

    class RecordingNode(AnvilNode):
        def start(self, ready_timeout: float = 20.0) -> None:
            super().start(ready_timeout)
            assert self.pid is not None
            pids.append(self.pid)

    def failing_deploy(*_args: object) -> Manifest:
        raise RuntimeError("deploy failed on purpose")

    monkeypatch.setattr(launch, "cache_dir", lambda: tmp_path)  # never a cache hit
    monkeypatch.setattr(launch, "AnvilNode", RecordingNode)
    monkeypatch.setattr(launch, "deploy_market", failing_deploy)

    with pytest.raises(RuntimeError, match="on purpose"), running_devnet("3.6.0"):
        pytest.fail("the devnet must not start")

    assert len(pids) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert list(tmp_path.iterdir()) == []  # nothing cached from a failed build


def test_a_second_start_is_served_from_the_cache(
    session_devnet: Devnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[Path | None] = []

    class RecordingNode(AnvilNode):
        def __init__(self, **kwargs: Any) -> None:
            loaded.append(kwargs.get("load_state"))
            super().__init__(**kwargs)

    def no_deploy(*_args: object) -> Manifest:
        raise AssertionError("deployed although the chain is cached")

    monkeypatch.setattr(launch, "AnvilNode", RecordingNode)
    monkeypatch.setattr(launch, "deploy_market", no_deploy)
    protocol = session_devnet.manifest.protocol_version

    with running_devnet(protocol, users=SEEDED_USERS, seed=SEED) as again, again.client() as rpc:
        assert loaded == [session_devnet.manifest_path.parent / "state.json"]
        assert again.manifest == session_devnet.manifest
        assert again.users == session_devnet.users
        with session_devnet.client() as original:
            users = again.users[:10]
            expected = read_account_data(original, session_devnet.manifest, users)
        assert read_account_data(rpc, again.manifest, users) == expected


# The deployed market.


def test_every_manifest_address_has_code_and_the_pool_revision_matches(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    addresses = [*manifest.addresses.values(), *manifest.libraries.values()]
    addresses += [feed.address for feed in manifest.feeds]
    for r in manifest.reserves:
        addresses += [r.asset, r.a_token, r.variable_debt_token, r.price_source]
        addresses += [r.stable_debt_token] if r.stable_debt_token else []

    codes = rpc.batch([("eth_getCode", [address, "latest"]) for address in addresses])

    assert [a for a, code in zip(addresses, codes, strict=True) if code in ("0x", "")] == []
    (revision,) = aave_abi.POOL_REVISION.decode(
        eth_calls(rpc, [(manifest.pool, aave_abi.POOL_REVISION.encode())])[0]
    )
    assert revision == POOL_REVISIONS[manifest.protocol_version]
    has_stable = [r.stable_debt_token is not None for r in manifest.reserves]
    assert has_stable == [manifest.protocol_version == "3.0.2"] * len(manifest.reserves)


# The seeded market.


def test_the_seeded_market_has_every_promised_kind_of_position(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    states = _states(rpc, devnet)
    borrowers = [s for s in states if s.total_debt > 0]
    health = [s.account[5] for s in borrowers]

    assert len(states) == SEEDED_USERS
    assert {s.emode for s in states} == {0, 1, 2}
    assert any(p.supplied > 0 and not p.collateral for s in states for p in s.positions)
    assert 0 < len(borrowers) < len(states)
    assert any(WAD < hf < WAD * 105 // 100 for hf in health)
    assert min(health) >= WAD  # seeding leaves nobody liquidatable
    assert any(0 < p.supplied < 10 or 0 < p.debt < 10 for s in states for p in s.positions)


def test_seeded_emode_users_borrow_only_their_category(devnet: Devnet, rpc: JsonRpcClient) -> None:
    members = {c.id: {a.lower() for a in c.assets} for c in devnet.manifest.emode_categories}

    outside = [
        (s.address, p.reserve.symbol)
        for s in _states(rpc, devnet)
        if s.emode
        for p in s.borrowed()
        if p.reserve.asset.lower() not in members[s.emode]
    ]

    assert outside == []


def test_stable_debt_exists_on_3_0_2_only_and_never_against_the_same_collateral(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    stable = [(s, p) for s in _states(rpc, devnet) for p in s.positions if p.stable_debt > 0]

    if devnet.manifest.protocol_version == "3.0.2":
        assert stable
        assert {p.reserve.symbol for _s, p in stable} <= {"USDC", "DAI"}
        assert [s.address for s, p in stable if p.collateral and p.supplied > 0] == []
    else:
        assert stable == []


@pytest.mark.parametrize("protocol", ["3.0.2", "3.6.0"])
def test_seeding_is_deterministic(protocol: str) -> None:
    outcomes = []
    for _run in range(2):
        with running_devnet(protocol) as bare, bare.client() as rpc:
            users = seed_market(rpc, bare.manifest, users=25, seed=99)
            outcomes.append((users, read_account_data(rpc, bare.manifest, users)))

    (users, accounts), again = outcomes
    assert len(set(users)) == 25
    assert all(user == user.lower() for user in users)
    assert any(account[1] > 0 for account in accounts)
    assert again == (users, accounts)


# The scenario driver.


def test_a_scenario_is_deterministic_by_seed(devnet: Devnet, rpc: JsonRpcClient) -> None:
    start = rpc.call("evm_snapshot")
    first = run_scenario(rpc, devnet.manifest, devnet.users, steps=25, seed=11)
    first_state = _chain_fingerprint(rpc, devnet.manifest, devnet.users)
    rpc.call("evm_revert", [start])

    second = run_scenario(rpc, devnet.manifest, devnet.users, steps=25, seed=11)

    assert second == first
    assert _chain_fingerprint(rpc, devnet.manifest, devnet.users) == first_state
    assert len({record.kind for record in first}) >= 5
    assert any(record.tx_hashes for record in first)


def test_a_scenario_crashes_prices_and_liquidates(devnet: Devnet, rpc: JsonRpcClient) -> None:
    head = int(rpc.call("eth_blockNumber"), 16)
    seen: list[StepRecord] = []

    records = run_scenario(
        rpc, devnet.manifest, devnet.users, steps=40, seed=5, on_step=seen.append
    )

    assert seen == records
    assert [r.index for r in records] == list(range(40))
    blocks = [head] + [r.block_number for r in records]
    assert all(later > earlier for earlier, later in itertools.pairwise(blocks))
    assert any(r.kind is StepKind.PRICE_CRASH for r in records)
    liquidations = sum(r.liquidations for r in records)
    assert liquidations >= 1
    logs = rpc.call(
        "eth_getLogs",
        [
            {
                "address": devnet.manifest.pool,
                "topics": [LIQUIDATION_CALL_TOPIC],
                "fromBlock": hex(head + 1),
                "toBlock": "latest",
            }
        ],
    )
    assert len(logs) == liquidations


# The command line.


def _overlord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OVERLORD), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _lines(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    # A reader thread, so waiting for a line can time out instead of blocking forever.
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")  # end of output

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def _wait_for(lines: queue.Queue[str], prefix: str, seen: list[str]) -> str:
    while True:
        line = lines.get(timeout=180)
        seen.append(line)
        if not line:
            raise AssertionError("devnet up ended early:\n" + "".join(seen))
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


@pytest.fixture
def devnet_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], list[str]]]:
    """``overlord devnet up --users 20`` as a subprocess, with its announced values."""
    port = free_port()
    manifest = str(tmp_path / "manifest.json")
    command = [str(OVERLORD), "devnet", "up", "--users", "20", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--manifest-out", manifest],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines, reader = _lines(process.stdout)
    try:
        seen: list[str] = []
        announced = {
            key: _wait_for(lines, f"{key}: ", seen) for key in ("RPC URL", "manifest", "users")
        }
        announced["port"] = str(port)
        yield process, announced, seen
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        reader.join(timeout=10)
        process.stdout.close()


def test_devnet_up_serves_a_chain_until_sigterm_and_scenario_drives_it(
    devnet_up: tuple[subprocess.Popen[str], dict[str, str], list[str]], tmp_path: Path
) -> None:
    process, announced, _seen = devnet_up
    url = announced["RPC URL"]
    assert url == f"http://127.0.0.1:{announced['port']}"
    assert Path(announced["manifest"]) == tmp_path / "manifest.json"
    with JsonRpcClient(url) as rpc:
        assert (
            int(rpc.call("eth_chainId"), 16) == Manifest.load(tmp_path / "manifest.json").chain_id
        )

    scenario = ["devnet", "scenario", "--rpc-url", url, "--manifest", announced["manifest"]]
    discovered = _overlord(*scenario, "--steps", "6", "--seed", "2")
    from_file = _overlord(*scenario, "--steps", "3", "--users-file", announced["users"])
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)

    assert discovered.returncode == 0, discovered.stderr
    assert "6 steps on 20 users" in discovered.stdout
    assert from_file.returncode == 0, from_file.stderr
    assert "3 steps on 20 users" in from_file.stdout
    assert code == 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Binds unless something listens there (SO_REUSEADDR: TIME_WAIT sockets don't count).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", int(announced["port"])))


def test_devnet_scenario_reports_an_unreachable_node_in_one_line() -> None:
    with running_devnet("3.6.0") as bare:
        manifest = bare.manifest_path
    unreachable = f"http://127.0.0.1:{free_port()}/secret"
    result = _overlord("devnet", "scenario", "--rpc-url", unreachable, "--manifest", str(manifest))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "cannot reach the node" in result.stderr
    assert "secret" not in result.stderr


def test_devnet_demo_checks_every_user_exactly_and_ranks_the_riskiest() -> None:
    result = CliRunner().invoke(
        app,
        ["devnet", "demo", "--users", "40", "--steps", "12", "--seed", "3"],
        env={"COLUMNS": "120"},
    )

    assert result.exit_code == 0, result.output
    assert "40 users checked against Pool.getUserAccountData, 0 mismatches" in result.stdout
    assert "lowest health factors (exact)" in result.stdout


def test_devnet_demo_rejects_an_unknown_protocol() -> None:
    result = CliRunner().invoke(app, ["devnet", "demo", "--protocol", "3.7.0"])

    assert result.exit_code == 2
    assert "unknown protocol '3.7.0'" in result.stderr
