"""Command-line options that several commands share, spelled and documented once.

``verify``, ``replay`` and ``backfill`` all name a node and a market the same way; each
``Annotated`` alias here is one option's type, flag and help text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

RPC_URL_ENV: Final = "OVERLORD_RPC_URL"

RpcUrlOption = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar=RPC_URL_ENV,
        show_envvar=True,
        show_default=False,
        help="JSON-RPC endpoint of the node (http or https; an archive node for past blocks).",
    ),
]
ManifestOption = Annotated[
    Path | None,
    typer.Option("--manifest", help="Devnet manifest: gives the Pool and the deployment block."),
]
PoolOption = Annotated[str | None, typer.Option("--pool", help="Pool proxy address.")]
MarketOption = Annotated[
    str | None,
    typer.Option("--market", help="Market preset (ethereum, base, ...) or provider address."),
]
ProviderOption = Annotated[
    str | None,
    typer.Option("--pool-addresses-provider", help="The market's PoolAddressesProvider."),
]
FromBlockOption = Annotated[
    int | None,
    typer.Option("--from-block", min=0, help="First block of the event scan."),
]
ProtocolVersionOption = Annotated[
    str | None,
    typer.Option(
        "--protocol-version", help="Compute as this version (e.g. 3.6) instead of detecting."
    ),
]
