"""Speed of the synthetic FAERS generator: seconds and reports per second per quarter, peak memory.

Target: 400,000 reports per quarter in well under 30 s; memory bounded (not growing with the quarters).
Usage: python benchmarks/simulate.py [--reports 400000] [--quarters 2023Q1:2023Q2] [--out DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from pv.periods import parse_quarters
from pv.simulate.faers import write_quarters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=400_000)
    parser.add_argument("--quarters", default="2023Q1:2023Q2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    quarters = parse_quarters(args.quarters)
    with tempfile.TemporaryDirectory(prefix="pv-bench-sim-") as tmp:
        out = args.out or Path(tmp)
        lines: list[str] = []

        def progress(line: str) -> None:
            lines.append(line)
            print(line, flush=True)

        wall0, cpu0 = time.perf_counter(), time.process_time()
        paths = write_quarters(out, quarters, args.reports, args.seed, progress=progress)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        size = sum(p.stat().st_size for p in paths)
    n = args.reports * len(quarters)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"simulate: {len(quarters)} quarter(s) x {args.reports:,} initial reports: {wall:.1f} s wall "
          f"({wall / len(quarters):.1f} s per quarter, {n / wall:,.0f} reports/s), {cpu:.1f} s CPU, "
          f"{size / 1e6:.0f} MB of zips, peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
