"""The local chain: anvil with the real Aave v3 contracts from npm, deployed by our Python.

Used by the tests as the proof of exactness and by ``overlord devnet`` as the embedded
default. Aave code is installed from npm at setup (``npm ci``) and never committed;
compiled outputs and anvil state are cached in ``.cache/devnet`` keyed by their inputs.
"""
