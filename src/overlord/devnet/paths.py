"""Where the local chain's inputs and caches live, and clear errors when they are missing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ANVIL_ENV = "OVERLORD_ANVIL"
"""Environment variable naming an anvil binary to use instead of the npm one."""


class DevnetSetupError(RuntimeError):
    """The local chain cannot be set up (missing npm packages, binary, compiler)."""


def project_root() -> Path:
    """The repository root: the folder with package.json and node_modules."""
    override = os.environ.get("OVERLORD_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[3]


def node_modules() -> Path:
    """``node_modules`` of the project; raises :class:`DevnetSetupError` if not installed."""
    path = project_root() / "node_modules"
    if not (path / "@aave" / "core-v3").is_dir():
        raise DevnetSetupError(
            f"the npm packages are not installed in {path}: run `npm ci` in {project_root()} "
            "(make run and make test do it for you)"
        )
    return path


def cache_dir() -> Path:
    """The git-ignored cache of compiled contracts and anvil states."""
    path = project_root() / ".cache" / "devnet"
    path.mkdir(parents=True, exist_ok=True)
    return path


def anvil_binary() -> Path:
    """The anvil executable: ``$OVERLORD_ANVIL`` or the npm platform package's binary."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        path = Path(override)
    else:
        path = node_modules() / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise DevnetSetupError(
            f"no executable anvil at {path}: run `npm ci` (Linux x86-64), or set {ANVIL_ENV} "
            "to an anvil binary for your platform"
        )
    return path


def fingerprint(*parts: bytes | str | Path) -> str:
    """A short hash of files and values, for cache keys."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(part.read_bytes())
        elif isinstance(part, str):
            digest.update(part.encode())
        else:
            digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]
