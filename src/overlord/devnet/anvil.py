"""Start and stop an anvil node: on 127.0.0.1, a free port, stopped by its own PID.

The binary is spawned directly (never through npx, whose wrapper would orphan the node
when killed). :class:`AnvilNode` is a context manager; the node is stopped on exit even if
the code inside fails, so a failed deployment never leaks a process.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from overlord.devnet.paths import DevnetSetupError, anvil_binary

CHAIN_ID = 31337
ACCOUNTS = 10
DEFAULT_GAS_LIMIT = 1_000_000_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AnvilNode:
    """A running anvil process.

    Args:
        port: TCP port (a free one by default).
        load_state: a state file written by :meth:`dump_state` to start from.
        timestamp: genesis timestamp (deterministic block times for tests).
        extra_args: more anvil arguments.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        load_state: Path | None = None,
        timestamp: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self._load_state = load_state
        self._timestamp = timestamp
        self._extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket endpoint (same port)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The node's process id while it runs."""
        return self._process.pid if self._process else None

    def start(self, ready_timeout: float = 20.0) -> None:
        """Start the node and wait until it answers JSON-RPC."""
        command = [
            str(anvil_binary()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(CHAIN_ID),
            "--accounts",
            str(ACCOUNTS),
            "--balance",
            "1000000",
            "--gas-limit",
            str(DEFAULT_GAS_LIMIT),
            "--code-size-limit",
            "100000",
            "--block-base-fee-per-gas",
            "0",
            "--gas-price",
            "0",
            "--silent",
        ]
        if self._load_state is not None:
            command += ["--load-state", str(self._load_state)]
        if self._timestamp is not None:
            command += ["--timestamp", str(self._timestamp)]
        command += list(self._extra_args)
        self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            self._wait_until_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                raise DevnetSetupError(
                    f"anvil exited with {self._process.returncode}: {stderr.strip()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.post(self.rpc_url, json=payload, timeout=1.0)
                if response.status_code == 200 and "result" in response.json():
                    return
            time.sleep(0.02)
        raise DevnetSetupError(f"anvil did not answer on {self.rpc_url} within {timeout:.0f} s")

    def restart_from(self, state: Path, ready_timeout: float = 90.0) -> None:
        """Kill the node (SIGKILL: no state is saved) and start it again on the same port
        from ``state`` (a :meth:`dump_state` file): the fault suite's node crash."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        self.stop()
        self._load_state = state
        self.start(ready_timeout=ready_timeout)

    def dump_state(self, path: Path) -> None:
        """Save the chain state (``anvil_dumpState``) to ``path`` for a later ``load_state``."""
        payload = {"jsonrpc": "2.0", "id": 1, "method": "anvil_dumpState", "params": []}
        response = httpx.post(self.rpc_url, json=payload, timeout=120.0).json()
        if "result" not in response:
            raise DevnetSetupError(f"anvil_dumpState failed: {json.dumps(response)[:300]}")
        state = gzip.decompress(bytes.fromhex(response["result"].removeprefix("0x")))
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(state)
        temporary.replace(path)

    def stop(self) -> None:
        """Stop the node by its PID (terminate, then kill after a grace period)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> AnvilNode:
        # A large state file (10k users: about 15 s on an idle machine) loads before the
        # node answers; a busy machine needs more.
        self.start(ready_timeout=90.0 if self._load_state is not None else 20.0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
