"""The AaveOracle's own constants."""

from __future__ import annotations

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient, RpcError


def read_base_currency_unit(client: JsonRpcClient, oracle: str) -> int:
    """``BASE_CURRENCY_UNIT()``: base-currency units per unit (1e8 on the USD markets).

    Raises:
        RpcError: the call failed, or the answer is not a positive power of ten.
    """
    answer = client.call("eth_call", [{"to": oracle, "data": aave_abi.BASE_CURRENCY_UNIT.encode()}])
    try:
        unit = int(aave_abi.BASE_CURRENCY_UNIT.decode_hex(str(answer))[0])
    except ValueError as exc:
        raise RpcError("eth_call BASE_CURRENCY_UNIT()", f"{oracle}: {exc}") from None
    if unit <= 0 or 10 ** (len(str(unit)) - 1) != unit:
        raise RpcError("eth_call BASE_CURRENCY_UNIT()", f"{oracle}: {unit} is not a power of ten")
    return unit
