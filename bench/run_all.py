"""`make bench`: run every benchmark in turn, then say which failed.

Runs the scripts in LISTED, then every `bench/bench_*.py` in name order, each in its own
process with this interpreter; their output goes straight to the terminal (figures for
BENCHMARKS.md). Exits non-zero when any of them did (a missed target or a crash).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LISTED = ("baseline_extraction.py",)  # benchmarks that predate the bench_*.py naming


def scripts() -> list[Path]:
    listed = [BENCH / name for name in LISTED if (BENCH / name).is_file()]
    return listed + sorted(p for p in BENCH.glob("bench_*.py") if p not in listed)


def main() -> int:
    failed = []
    for script in scripts():
        print(f"\n### {script.name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent)
        print(f"### {script.name}: exit {code} after {time.monotonic() - started:.0f}s",
              flush=True)
        if code:
            failed.append(script.name)
    print(f"\n{len(scripts()) - len(failed)} benchmarks passed" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
