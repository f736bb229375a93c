"""Start-up time of the command line: the whole process of ``pv --help``, ``pv signals --help`` and
``pv store summary --help``, median over several runs (a fresh interpreter each time).

Target: each under 0.5 s. The wall time of a start is mostly CPU in one thread, so on a shared machine the CPU
time (user + system of the child) is the steadier figure; both are printed. ``python -X importtime -m pv --help``
shows what a start imports. Usage: python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["signals", "--help"], ["store", "summary", "--help"])


def pv_command() -> list[str]:
    """The installed ``pv`` script beside this interpreter, else ``python -m pv``."""
    script = Path(sys.executable).with_name("pv")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pv"]


def time_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv`` (output discarded; a failure raises)."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    pv = pv_command()
    time_once([*pv, "--help"])  # warm the file cache and the bytecode
    for command in COMMANDS:
        runs = [time_once([*pv, *command]) for _ in range(args.runs)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"pv {' '.join(command)}: median {statistics.median(walls):.3f} s wall "
              f"(min {min(walls):.3f}), {statistics.median(cpus):.3f} s CPU, {args.runs} runs", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
