"""The prior system's audit files: health-factor traces and the initial scan's results.

Under the output directory (an argument, else ``$TEMP_OUTPUT_DIR``; it must exist):

- ``hf-traces/<trace_id>.txt``: every candidate's health factor for one trigger;
- ``init_hf_under_1_results_<YYYY-MM-DD>.txt``: the users below 1 found by the first scan.

Both hold one line per user, ``<address> <hf_wad> <hf_float>``: the exact health factor as
a decimal wad integer (``10**18`` = 1.0, ``2**256 - 1`` = no debt) and the same value as a
float for reading (Python ``repr``, shortest round-trip form). Files are written atomically:
a temporary file in the same directory, flushed and fsynced, then renamed over the target,
so a reader sees the whole old file or the whole new one, never a part.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from overlord.outputs.events import is_valid_trace_id

OUTPUT_DIR_ENV: Final = "TEMP_OUTPUT_DIR"
TRACES_DIR: Final = "hf-traces"
WAD: Final = 10**18
FILE_MODE: Final = 0o644

HealthFactorLine = tuple[str, int]
"""``(address, health factor in wad)``."""


class OutputDirError(ValueError):
    """No output directory was given, or it is not an existing directory."""


def new_trace_id() -> str:
    """A fresh trace id: 32 random hex digits (uuid4)."""
    return uuid.uuid4().hex


def resolve_output_dir(output_dir: Path | str | None = None) -> Path:
    """``output_dir`` if given, else ``$TEMP_OUTPUT_DIR``; it must be an existing directory.

    Raises:
        OutputDirError: neither is set, or the path is not a directory.
    """
    chosen = output_dir if output_dir is not None else os.environ.get(OUTPUT_DIR_ENV)
    if not chosen:
        raise OutputDirError(f"no output directory: pass one or set {OUTPUT_DIR_ENV}")
    path = Path(chosen)
    if not path.is_dir():
        raise OutputDirError(f"output directory {path} does not exist or is not a directory")
    return path


def format_line(address: str, health_factor: int) -> str:
    """``"<address> <hf_wad> <hf_float>\\n"``."""
    return f"{address} {health_factor} {health_factor / WAD!r}\n"


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; no temporary file survives."""
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        # mkstemp creates the file 0600; these are plain reports, readable like any other.
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            # Without fsync, a crash after the rename can leave an empty file on some filesystems.
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_trace(
    output_dir: Path | str | None, trace_id: str, lines: Iterable[HealthFactorLine]
) -> Path:
    """Write ``<output_dir>/hf-traces/<trace_id>.txt``, one line per ``(address, hf)``.

    Returns the file's path.

    Raises:
        OutputDirError: see :func:`resolve_output_dir`.
        ValueError: ``trace_id`` is not 1–64 of ``[0-9A-Za-z_-]`` (it names a file).
    """
    if not is_valid_trace_id(trace_id):
        raise ValueError(f"trace id {trace_id!r} is not 1-64 of [0-9A-Za-z_-]")
    directory = resolve_output_dir(output_dir) / TRACES_DIR
    directory.mkdir(exist_ok=True)
    path = directory / f"{trace_id}.txt"
    atomic_write_text(path, "".join(format_line(address, hf) for address, hf in lines))
    return path


def write_init_results(
    output_dir: Path | str | None, date: datetime.date, underwater: Iterable[HealthFactorLine]
) -> Path:
    """Write ``<output_dir>/init_hf_under_1_results_<YYYY-MM-DD>.txt``; returns its path.

    Raises:
        OutputDirError: see :func:`resolve_output_dir`.
        ValueError: a health factor is not below 1 (``10**18``): the file lists only those.
    """
    directory = resolve_output_dir(output_dir)
    text = []
    for address, health_factor in underwater:
        if not 0 <= health_factor < WAD:
            raise ValueError(f"{address} has health factor {health_factor}, not below 1e18")
        text.append(format_line(address, health_factor))
    path = directory / f"init_hf_under_1_results_{date:%Y-%m-%d}.txt"
    atomic_write_text(path, "".join(text))
    return path
