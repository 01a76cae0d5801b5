"""Chain access: JSON-RPC transport, ABI encoding, and the Aave market reader."""
