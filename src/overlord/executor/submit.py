"""How a liquidation transaction reaches the chain.

:class:`Submitter` is the seam: inventory mode sends ``liquidationCall`` from the liquidator
account itself. Flash-loan contracts and bundle relays can be added behind the same
interface later; none is called here.

* :class:`NodeAccountSubmitter`: the node holds the account (``eth_sendTransaction``); the
  devnet's accounts are unlocked this way;
* :class:`KeySubmitter`: signs locally with a private key taken from the environment
  (``OVERLORD_LIQUIDATOR_KEY``) and sends ``eth_sendRawTransaction``. The key is kept in
  the object only, never printed (``repr`` hides it) and never logged.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth_account import Account
from eth_utils.address import to_checksum_address

from overlord.chain.rpc import JsonRpcClient, RpcError

LIQUIDATOR_KEY_ENV = "OVERLORD_LIQUIDATOR_KEY"


class Submitter(Protocol):
    """Sends one transaction from ``sender`` and returns its hash."""

    sender: str

    def send(self, to: str, data: str, gas: int) -> str: ...


def _hex_int(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(what, f"not a hex quantity: {str(value)[:40]}")
    return int(value, 16)


class NodeAccountSubmitter:
    """``eth_sendTransaction`` from an account the node unlocks."""

    def __init__(self, client: JsonRpcClient, sender: str) -> None:
        self.client = client
        self.sender = sender

    def send(self, to: str, data: str, gas: int) -> str:
        payload = {"from": self.sender, "to": to, "data": data, "gas": hex(gas)}
        return str(self.client.call("eth_sendTransaction", [payload]))


class KeySubmitter:
    """Signs with a private key and sends the raw transaction (EIP-1559 fields)."""

    def __init__(self, client: JsonRpcClient, private_key: str) -> None:
        try:
            self._account = Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            # The message must not echo the key.
            raise ValueError(f"{LIQUIDATOR_KEY_ENV} is not a valid private key") from exc
        self.client = client
        self.sender = str(self._account.address)

    def __repr__(self) -> str:
        return f"KeySubmitter(sender={self.sender})"

    def send(self, to: str, data: str, gas: int) -> str:
        nonce = _hex_int(
            self.client.call("eth_getTransactionCount", [self.sender, "pending"]), "nonce"
        )
        chain_id = _hex_int(self.client.call("eth_chainId"), "chain id")
        latest: Any = self.client.call("eth_getBlockByNumber", ["latest", False])
        base_fee = _hex_int(latest.get("baseFeePerGas", "0x0"), "base fee")
        tip = _hex_int(self.client.call("eth_maxPriorityFeePerGas"), "priority fee")
        transaction = {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "to": to_checksum_address(to),
            "data": data,
            "gas": gas,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base_fee + tip,
            "value": 0,
        }
        signed = self._account.sign_transaction(transaction)
        raw = signed.raw_transaction.hex()
        return str(
            self.client.call(
                "eth_sendRawTransaction", [raw if raw.startswith("0x") else "0x" + raw]
            )
        )
