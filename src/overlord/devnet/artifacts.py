"""Contract artifacts (ABI + bytecode + link references) from npm packages and solc output.

Aave v3.0.2 comes as Hardhat artifacts in ``@aave/core-v3`` and ``@aave/periphery-v3``;
v3.6.0 and our own contracts come from :mod:`overlord.devnet.compiler`. Either way an
:class:`Artifact` is what the deployer needs, with library linking done here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from overlord.devnet.compiler import CompilerOutput
from overlord.devnet.paths import DevnetSetupError, node_modules

LinkReferences = Mapping[str, Mapping[str, list[dict[str, int]]]]


@dataclass(frozen=True)
class Artifact:
    """A contract ready to deploy once its libraries are linked."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # hex without 0x, may hold link placeholders
    link_references: LinkReferences

    @property
    def libraries(self) -> set[str]:
        """Names of the libraries this bytecode must be linked against."""
        return {name for per_file in self.link_references.values() for name in per_file}

    def linked(self, addresses: Mapping[str, str]) -> str:
        """The bytecode (``0x`` hex) with every library placeholder replaced."""
        text = self.bytecode
        for per_file in self.link_references.values():
            for library, positions in per_file.items():
                if library not in addresses:
                    raise DevnetSetupError(f"{self.name} needs library {library}, not deployed yet")
                address = addresses[library].lower().removeprefix("0x")
                for position in positions:
                    start = position["start"] * 2
                    text = text[:start] + address + text[start + position["length"] * 2 :]
        return "0x" + text


_HARDHAT_PATHS = {
    "Pool": "protocol/pool/Pool.sol",
    "PoolConfigurator": "protocol/pool/PoolConfigurator.sol",
    "PoolAddressesProvider": "protocol/configuration/PoolAddressesProvider.sol",
    "ACLManager": "protocol/configuration/ACLManager.sol",
    "AaveOracle": "misc/AaveOracle.sol",
    "AaveProtocolDataProvider": "misc/AaveProtocolDataProvider.sol",
    "AToken": "protocol/tokenization/AToken.sol",
    "StableDebtToken": "protocol/tokenization/StableDebtToken.sol",
    "VariableDebtToken": "protocol/tokenization/VariableDebtToken.sol",
    "DefaultReserveInterestRateStrategy": "protocol/pool/DefaultReserveInterestRateStrategy.sol",
    "MintableERC20": "mocks/tokens/MintableERC20.sol",
    "SupplyLogic": "protocol/libraries/logic/SupplyLogic.sol",
    "BorrowLogic": "protocol/libraries/logic/BorrowLogic.sol",
    "LiquidationLogic": "protocol/libraries/logic/LiquidationLogic.sol",
    "EModeLogic": "protocol/libraries/logic/EModeLogic.sol",
    "BridgeLogic": "protocol/libraries/logic/BridgeLogic.sol",
    "PoolLogic": "protocol/libraries/logic/PoolLogic.sol",
    "FlashLoanLogic": "protocol/libraries/logic/FlashLoanLogic.sol",
    "ConfiguratorLogic": "protocol/libraries/logic/ConfiguratorLogic.sol",
}


def hardhat_artifact(name: str) -> Artifact:
    """A v3.0.2 artifact from ``@aave/core-v3`` (or ``UiPoolDataProviderV3`` from periphery)."""
    if name == "UiPoolDataProviderV3":
        path = (
            node_modules()
            / "@aave/periphery-v3/artifacts/contracts/misc"
            / "UiPoolDataProviderV3.sol/UiPoolDataProviderV3.json"
        )
    else:
        path = (
            node_modules()
            / "@aave/core-v3/artifacts/contracts"
            / _HARDHAT_PATHS[name]
            / f"{name}.json"
        )
    data = json.loads(path.read_text())
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"].removeprefix("0x"),
        link_references=data.get("linkReferences", {}),
    )


def solc_artifact(output: CompilerOutput, name: str) -> Artifact:
    """The contract ``name`` from a solc standard-JSON output (unique by name)."""
    matches = [
        (unit, contracts[name])
        for unit, contracts in output["contracts"].items()
        if name in contracts and contracts[name]["evm"]["bytecode"]["object"]
    ]
    if len(matches) != 1:
        raise DevnetSetupError(
            f"{len(matches)} deployable contracts named {name} in the solc output"
        )
    _unit, contract = matches[0]
    bytecode = contract["evm"]["bytecode"]
    return Artifact(
        name=name,
        abi=contract["abi"],
        bytecode=bytecode["object"],
        link_references=bytecode.get("linkReferences", {}),
    )
