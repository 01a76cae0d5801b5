"""Governance changes for the integration tests, sent by the devnet's admin (who holds the
pool and risk admin roles) through the real PoolConfigurator."""

from __future__ import annotations

from overlord.chain.abi import Function
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.manifest import Manifest
from overlord.devnet.transactions import Tx, TxSender

CONFIGURE_COLLATERAL = Function("configureReserveAsCollateral(address,uint256,uint256,uint256)", ())
SET_RESERVE_FREEZE = Function("setReserveFreeze(address,bool)", ())
SET_ASSET_LTVZERO_IN_EMODE = Function("setAssetLtvzeroInEMode(address,uint8,bool)", ())
SET_EMODE_CATEGORY_V302 = Function(
    "setEModeCategory(uint8,uint16,uint16,uint16,address,string)", ()
)
SET_EMODE_CATEGORY_V36 = Function("setEModeCategory(uint8,uint16,uint16,uint16,string)", ())
SET_ASSET_COLLATERAL_IN_EMODE = Function("setAssetCollateralInEMode(address,uint8,bool)", ())


def govern(client: JsonRpcClient, manifest: Manifest) -> None:
    """Freeze LINK, lower WBTC's threshold; per version, eMode LTV zero or a new price source."""
    admin, configurator = manifest.accounts["admin"], manifest.addresses["pool_configurator"]
    link, wbtc, weth, wsteth = (
        manifest.reserve(s).asset for s in ("LINK", "WBTC", "WETH", "wstETH")
    )
    calls = [
        SET_RESERVE_FREEZE.encode(link, True),
        CONFIGURE_COLLATERAL.encode(wbtc, 7000, 7500, 10650),
    ]
    if manifest.protocol_version == "3.6.0":
        calls.append(SET_ASSET_LTVZERO_IN_EMODE.encode(weth, 1, True))
    else:
        # A reserve LTV of 0 zeroes the eMode LTV too (3.0 quirk); the ETH category gets
        # WETH as its price source, so wstETH is priced as WETH for its members.
        calls.append(CONFIGURE_COLLATERAL.encode(wsteth, 0, 8100, 10600))
        calls.append(SET_EMODE_CATEGORY_V302.encode(1, 9300, 9500, 10100, weth, "ETH correlated"))
    TxSender(client).send([Tx(admin, configurator, data, "governance") for data in calls])


def change_emode(client: JsonRpcClient, manifest: Manifest) -> None:
    """3.6: a new category 3 with LINK as collateral; 3.0.2: category 1 gets WETH's price."""
    admin, configurator = manifest.accounts["admin"], manifest.addresses["pool_configurator"]
    weth, link = (manifest.reserve(s).asset for s in ("WETH", "LINK"))
    if manifest.protocol_version == "3.6.0":
        calls = [
            SET_EMODE_CATEGORY_V36.encode(3, 8000, 8500, 10500, "LINK boost"),
            SET_ASSET_COLLATERAL_IN_EMODE.encode(link, 3, True),
        ]
    else:
        calls = [SET_EMODE_CATEGORY_V302.encode(1, 9200, 9400, 10150, weth, "ETH correlated")]
    TxSender(client).send([Tx(admin, configurator, data, "eMode change") for data in calls])
