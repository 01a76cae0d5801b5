"""Run every benchmark script under bench/ (``bench_*.py``), optionally filtered by a word.

Usage: ``python bench/run.py [WORD]``. Each script prints JSON lines, one figure per line,
with at least the keys ``name``, ``value``, ``unit`` and ``cores``; they pass through
unchanged so the output can be collected with ``make bench | grep '^{'``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the selected benchmarks; return non-zero if any failed or none matched."""
    word = argv[1] if len(argv) > 1 else ""
    scripts = sorted(p for p in Path(__file__).parent.glob("bench_*.py") if word in p.name)
    if not scripts:
        print(f"no benchmark script under bench/ matches {word!r}", file=sys.stderr)
        return 2
    failed = 0
    for script in scripts:
        print(f"# {script.name}", file=sys.stderr, flush=True)
        failed += subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
