"""Crash safety figures: `newswire once` killed with SIGKILL at seeded moments.

Usage: python bench/bench_crash.py [--kills N] [--seed S]

Runs the scenario of tests/test_crash.py (300 articles on 5 local sites, 20 feeds), kills
N runs, reruns to completion, checks nothing was lost or doubled and prints the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_crash import crash_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=28)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = crash_run(Path(tmp), kills=args.kills, seed=args.seed)
    print(f"crash test (seed {args.seed}): {figures.line()}; integrity_check ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
