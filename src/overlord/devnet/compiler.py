"""Compile Solidity with the npm ``solc`` (solcjs) through Node, offline, with a cache.

Two compilations exist: our own contracts in ``contracts/`` (a second) and the Aave v3.6.0
sources from ``@aave-dao/aave-v3-origin`` (about half a minute, once). Outputs are cached in
``.cache/devnet`` keyed by the standard-JSON input, the remappings and the npm lockfile, so
a warm run reads JSON instead of compiling.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from overlord.devnet.paths import (
    DevnetSetupError,
    cache_dir,
    fingerprint,
    node_modules,
    project_root,
)

OWN_CONTRACTS = ("MockPriceFeed", "RatioPriceAdapter")

ORIGIN_SOURCES = (
    "protocol/configuration/PoolAddressesProvider.sol",
    "protocol/configuration/ACLManager.sol",
    "instances/PoolInstance.sol",
    "instances/PoolConfiguratorInstance.sol",
    "instances/ATokenInstance.sol",
    "instances/VariableDebtTokenInstance.sol",
    "misc/AaveOracle.sol",
    "misc/DefaultReserveInterestRateStrategyV2.sol",
    "helpers/AaveProtocolDataProvider.sol",
    "helpers/UiPoolDataProviderV3.sol",
    "mocks/testnet-helpers/TestnetERC20.sol",
)
ORIGIN_REMAPPINGS = {
    "openzeppelin-contracts-upgradeable/contracts/": (
        "node_modules/@openzeppelin/contracts-upgradeable/"
    ),
    "openzeppelin-contracts/contracts/": "node_modules/@openzeppelin/contracts/",
    "solidity-utils/contracts/": "node_modules/@bgd-labs/solidity-utils/src/contracts/",
}

CompilerOutput = dict[str, Any]


def _standard_input(sources: Mapping[str, Path], evm_version: str) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": path.read_text()} for name, path in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": evm_version,
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"]}
            },
        },
    }


def compile_solidity(
    sources: Mapping[str, Path], *, evm_version: str, remappings: Mapping[str, str] | None = None
) -> CompilerOutput:
    """Compile ``sources`` (unit name -> file) and return solc's standard-JSON output.

    Raises:
        DevnetSetupError: Node or solc is missing, or the sources do not compile.
    """
    standard_input = json.dumps(_standard_input(sources, evm_version), sort_keys=True)
    remapping_json = json.dumps(dict(remappings or {}), sort_keys=True)
    root = project_root()
    key = fingerprint(standard_input, remapping_json, root / "package-lock.json")
    cached = cache_dir() / f"solc-{key}.json"
    if cached.is_file():
        output: CompilerOutput = json.loads(cached.read_text())
        return output
    node = shutil.which("node")
    if node is None:
        raise DevnetSetupError("Node.js is needed to run the npm solc compiler: install node")
    node_modules()  # fail early with the npm ci hint
    completed = subprocess.run(  # noqa: S603 - fixed argv: node and our own script
        [node, str(root / "scripts" / "solc-compile.cjs"), remapping_json],
        input=standard_input,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise DevnetSetupError(f"solc failed: {completed.stderr.strip()[-2000:]}")
    output = json.loads(completed.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        messages = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors[:5])
        raise DevnetSetupError(f"solc reported errors:\n{messages}")
    temporary = cached.with_suffix(".tmp")
    temporary.write_text(json.dumps(output))
    temporary.replace(cached)
    return output


def compile_own_contracts() -> CompilerOutput:
    """Compile ``contracts/*.sol`` (our feed and ratio adapter)."""
    folder = project_root() / "contracts"
    sources = {f"{name}.sol": folder / f"{name}.sol" for name in OWN_CONTRACTS}
    return compile_solidity(sources, evm_version="paris")


def compile_origin() -> CompilerOutput:
    """Compile the Aave v3.6.0 contracts the deployer needs from ``@aave-dao/aave-v3-origin``."""
    base = node_modules() / "@aave-dao" / "aave-v3-origin" / "src" / "contracts"
    sources = {f"src/contracts/{relative}": base / relative for relative in ORIGIN_SOURCES}
    # Imports inside origin are relative to its own tree; resolve them from there.
    remappings = {"src/": "node_modules/@aave-dao/aave-v3-origin/src/", **ORIGIN_REMAPPINGS}
    return compile_solidity(sources, evm_version="cancun", remappings=remappings)
