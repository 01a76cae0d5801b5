"""The Aave v3, ERC-20 and feed functions Overlord calls, as :class:`Function` values.

One place for the signatures, so the market reader, the devnet tools and the tests encode
and decode the same way. Output types follow the contracts of 3.0.2 and 3.6.0.
"""

from __future__ import annotations

from overlord.chain.abi import Function, event_topic

U256 = ("uint256",)

# Pool.
POOL_REVISION = Function("POOL_REVISION()", U256)
GET_RESERVES_LIST = Function("getReservesList()", ("address[]",))
GET_RESERVES_COUNT = Function("getReservesCount()", U256)
GET_RESERVE_ADDRESS_BY_ID = Function("getReserveAddressById(uint16)", ("address",))
GET_RESERVE_DATA = Function(
    "getReserveData(address)",
    (
        "(uint256,uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,"
        "address,address,uint128,uint128,uint128)",
    ),
)
GET_CONFIGURATION = Function("getConfiguration(address)", U256)
GET_USER_CONFIGURATION = Function("getUserConfiguration(address)", U256)
GET_USER_EMODE = Function("getUserEMode(address)", U256)
GET_USER_ACCOUNT_DATA = Function("getUserAccountData(address)", ("uint256",) * 6)
GET_EMODE_CATEGORY_DATA = Function(
    "getEModeCategoryData(uint8)", ("(uint16,uint16,uint16,address,string)",)
)
GET_EMODE_COLLATERAL_CONFIG = Function(
    "getEModeCategoryCollateralConfig(uint8)", ("(uint16,uint16,uint16)",)
)
GET_EMODE_COLLATERAL_BITMAP = Function("getEModeCategoryCollateralBitmap(uint8)", ("uint128",))
GET_EMODE_BORROWABLE_BITMAP = Function("getEModeCategoryBorrowableBitmap(uint8)", ("uint128",))
GET_EMODE_LTVZERO_BITMAP = Function("getEModeCategoryLtvzeroBitmap(uint8)", ("uint128",))
GET_EMODE_LABEL = Function("getEModeCategoryLabel(uint8)", ("string",))
GET_LIQUIDATION_GRACE_PERIOD = Function("getLiquidationGracePeriod(address)", ("uint40",))
GET_RESERVE_DEFICIT = Function("getReserveDeficit(address)", U256)
ADDRESSES_PROVIDER = Function("ADDRESSES_PROVIDER()", ("address",))

SUPPLY = Function("supply(address,uint256,address,uint16)", ())
WITHDRAW = Function("withdraw(address,uint256,address)", U256)
BORROW = Function("borrow(address,uint256,uint256,uint16,address)", ())
REPAY = Function("repay(address,uint256,uint256,address)", U256)
SET_USE_AS_COLLATERAL = Function("setUserUseReserveAsCollateral(address,bool)", ())
SET_USER_EMODE = Function("setUserEMode(uint8)", ())
LIQUIDATION_CALL = Function("liquidationCall(address,address,address,uint256,bool)", ())
LIQUIDATION_CALL_TOPIC = event_topic(
    "LiquidationCall(address,address,address,uint256,uint256,address,bool)"
)
"""topic0 of ``LiquidationCall(collateralAsset, debtAsset, user, debtToCover,
liquidatedCollateralAmount, liquidator, receiveAToken)``; the three assets/user indexed."""

# PoolAddressesProvider.
GET_POOL = Function("getPool()", ("address",))
GET_PRICE_ORACLE = Function("getPriceOracle()", ("address",))
GET_POOL_CONFIGURATOR = Function("getPoolConfigurator()", ("address",))

# AaveOracle.
GET_ASSETS_PRICES = Function("getAssetsPrices(address[])", ("uint256[]",))
GET_ASSET_PRICE = Function("getAssetPrice(address)", U256)
GET_SOURCE_OF_ASSET = Function("getSourceOfAsset(address)", ("address",))
BASE_CURRENCY_UNIT = Function("BASE_CURRENCY_UNIT()", U256)

# Tokens.
SCALED_BALANCE_OF = Function("scaledBalanceOf(address)", U256)
BALANCE_OF = Function("balanceOf(address)", U256)
DECIMALS = Function("decimals()", ("uint8",))
SYMBOL = Function("symbol()", ("string",))
APPROVE = Function("approve(address,uint256)", ("bool",))
TRANSFER = Function("transfer(address,uint256)", ("bool",))
MINT = Function("mint(address,uint256)", ("bool",))
# StableDebtToken (3.0.x): principal, user rate and timestamp.
PRINCIPAL_BALANCE_OF = Function("principalBalanceOf(address)", U256)
GET_USER_STABLE_RATE = Function("getUserStableRate(address)", U256)
GET_USER_LAST_UPDATED = Function("getUserLastUpdated(address)", ("uint40",))

# Our devnet feeds.
UPDATE_ANSWER = Function("updateAnswer(int256)", ())
LATEST_ANSWER = Function("latestAnswer()", ("int256",))
SET_RATIO = Function("setRatio(uint256)", ())
