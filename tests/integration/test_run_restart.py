"""``overlord run`` restarted: it resumes from its checkpoint instead of syncing again."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.scenario import run_scenario
from overlord.engine.store import ENGINE_DB, EngineStore
from tests.integration.conftest import SEEDED_USERS


def _run(devnet: Devnet, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
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
        "0",
        "--data-dir",
        str(data),
        "--http-port",
        "0",
        *extra,
    ]
    env = {"PATH": "/usr/bin:/bin", "OVERLORD__TRACKER__ENABLED": "false", "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_a_second_run_resumes_from_the_checkpoint_and_verifies_a_sample(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    first = _run(devnet, tmp_path)
    assert first.returncode == 0, first.stderr
    synced = re.search(r"synced (\d+) users", first.stdout)
    assert synced is not None
    users = int(synced.group(1))
    assert users > SEEDED_USERS  # the seeded users and the Pool's other actors
    run_scenario(rpc, devnet.manifest, devnet.users, steps=8, seed=21)
    head = int(rpc.call("eth_blockNumber"), 16)

    second = _run(devnet, tmp_path)

    assert second.returncode == 0, second.stderr
    assert "synced" not in second.stdout
    assert f"warm restart: {users} users from the checkpoint" in second.stdout
    assert f"underwater at block {head}" in second.stdout
    assert "restart verified: 64 random users equal getUserAccountData" in second.stdout
    with EngineStore(
        tmp_path / ENGINE_DB, pool=devnet.manifest.pool, chain_id=devnet.manifest.chain_id
    ) as store:
        checkpoint = store.checkpoint()
    assert checkpoint is not None
    assert checkpoint.block == head


def test_a_data_directory_of_another_market_is_a_clear_error(
    devnet: Devnet, tmp_path: Path
) -> None:
    with EngineStore(tmp_path / ENGINE_DB, pool="0x" + "22" * 20, chain_id=1):
        pass

    completed = _run(devnet, tmp_path)

    assert completed.returncode == 2
    assert "engine state:" in completed.stderr
    assert "holds the state of pool 0x2222" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_with_state_disabled_every_run_syncs_in_full(devnet: Devnet, tmp_path: Path) -> None:
    env_flag = "--config"
    config = tmp_path / "overlord.toml"
    config.write_text("[state]\nenabled = false\n", encoding="utf-8")

    for _ in range(2):
        completed = _run(devnet, tmp_path, env_flag, str(config))
        assert completed.returncode == 0, completed.stderr
        assert re.search(r"synced \d+ users", completed.stdout)
    assert not (tmp_path / ENGINE_DB).exists()
