"""Start a ready local chain: from the cache when its inputs are unchanged, else built.

A chain is identified by the protocol version, the number of seeded users, the seed, and
the bytes of everything that shapes its state (our contracts and deployer code, the npm
lockfile, the anvil binary). A cache hit loads anvil's state file and the manifest, so
the chain answers in a fraction of a second; a miss deploys (and seeds), then saves both.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.anvil import AnvilNode
from overlord.devnet.deploy import PROTOCOLS, deploy_market
from overlord.devnet.manifest import Manifest
from overlord.devnet.paths import (
    DevnetSetupError,
    anvil_binary,
    cache_dir,
    fingerprint,
    project_root,
)

GENESIS_TIMESTAMP = 1_700_000_000
"""Genesis block time of every devnet: block times (and so interest) are reproducible."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)`` callback for long steps."""

_STATE_INPUTS = (
    "contracts/MockPriceFeed.sol",
    "contracts/RatioPriceAdapter.sol",
    "package-lock.json",
    "src/overlord/devnet/deploy.py",
    "src/overlord/devnet/compiler.py",
    "src/overlord/devnet/seed.py",
    "src/overlord/devnet/transactions.py",
)


@dataclass(frozen=True)
class Devnet:
    """A running local chain with a deployed (and possibly seeded) market."""

    node: AnvilNode
    manifest: Manifest
    users: tuple[str, ...]
    manifest_path: Path

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint."""
        return self.node.rpc_url

    def client(self) -> JsonRpcClient:
        """A new JSON-RPC client for this chain."""
        return JsonRpcClient(self.rpc_url)


def cache_key(protocol: str, users: int, seed: int) -> str:
    """The cache key of a chain built with these parameters."""
    root = project_root()
    inputs = [root / name for name in _STATE_INPUTS if (root / name).is_file()]
    return fingerprint(protocol, str(users), str(seed), anvil_binary(), *inputs)


@contextmanager
def running_devnet(
    protocol: str = "3.6.0",
    *,
    users: int = 0,
    seed: int = 1,
    port: int | None = None,
    progress: Progress | None = None,
) -> Iterator[Devnet]:
    """Start a devnet (cached when possible) and stop it on exit, also on errors."""
    if protocol not in PROTOCOLS:
        choices = ", ".join(PROTOCOLS)
        raise DevnetSetupError(f"unknown protocol {protocol!r}: choose one of {choices}")
    folder = cache_dir() / f"chain-{protocol}-{users}u-s{seed}-{cache_key(protocol, users, seed)}"
    state, manifest_file = folder / "state.json", folder / "manifest.json"
    users_file = folder / "users.json"
    if state.is_file() and manifest_file.is_file() and users_file.is_file():
        with AnvilNode(port=port, load_state=state) as node:
            _resume_clock(node)
            seeded_users = tuple(json.loads(users_file.read_text()))
            yield Devnet(node, Manifest.load(manifest_file), seeded_users, manifest_file)
        return
    with AnvilNode(port=port, timestamp=GENESIS_TIMESTAMP) as node:
        manifest = deploy_market(Web3(Web3.HTTPProvider(node.rpc_url)), protocol)
        seeded: tuple[str, ...] = ()
        if users:
            # Imported here: seeding pulls in the exact math and is not needed on a hit.
            from overlord.devnet.seed import seed_market

            with JsonRpcClient(node.rpc_url) as client:
                seeded = seed_market(client, manifest, users=users, seed=seed, progress=progress)
        _prune_stale(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest.save(manifest_file)
        users_file.write_text(json.dumps(list(seeded)))
        node.dump_state(state)
        yield Devnet(node, manifest, seeded, manifest_file)


def _resume_clock(node: AnvilNode) -> None:
    """Continue the chain's clock from its head block.

    anvil stamps the first block after loading a state file with the wall clock, which
    would jump years past the cached chain's time and accrue that much interest at once.
    """
    with JsonRpcClient(node.rpc_url) as client:
        head = client.call("eth_getBlockByNumber", ["latest", False])
        client.call("evm_setTime", [int(head["timestamp"], 16)])


def _prune_stale(folder: Path) -> None:
    """Delete cached chains with the same parameters but outdated inputs (another key)."""
    prefix = folder.name.rsplit("-", 1)[0] + "-"
    for other in folder.parent.glob(f"{prefix}*"):
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
