"""Peak memory of ``pv ingest faers`` on a zip bomb: a zip of about 2 MB whose DEMO member inflates to 2 GiB.

Before the limits (issue 14, point 5) the member was inflated in memory (4.4-6.5 GB, then MemoryError); now the
command refuses the file from the zip's directory, before inflating anything, and loads the good file given
with it. Printed: the bomb's size, the command's exit code and message, its wall time and its peak resident
memory (the child's ru_maxrss). Runs on a scratch SQLite store.
Usage: python benchmarks/ingest_zip_bomb.py [--gib 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_bomb(path: Path, gib: float) -> None:
    chunk = b"\0" * (64 << 20)
    left = int(gib * (1 << 30))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("DEMO24Q1.txt", "w", force_zip64=True) as member:
            member.write(b"primaryid$caseid$caseversion$fda_dt\n")
            while left > 0:
                member.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="uncompressed size of the bomb's member (GiB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bomb = folder / "bomb.zip"
        t0 = time.perf_counter()
        write_bomb(bomb, args.gib)
        print(f"bomb: {bomb.stat().st_size / 1e6:.1f} MB zip, member {args.gib:g} GiB "
              f"(written in {time.perf_counter() - t0:.1f} s)")
        env = {**os.environ, "PV_DATABASE_URL": f"sqlite:///{folder / 'pv.sqlite3'}", "PV_VAR_DIR": str(folder)}
        env.pop("PV_BROKER_URL", None)
        good = REPO.parent / "shared" / "data" / "real" / "faers_ascii_2017q2.zip"
        command = [sys.executable, "-m", "pv", "ingest", "faers", str(bomb), str(good)]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, check=False)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        refused = [line for line in done.stdout.splitlines() if "refused" in line]
        print(f"exit code {done.returncode}; {wall:.2f} s; peak resident memory {peak_mb:.0f} MB")
        for line in refused:
            print("  " + line.strip())
        if done.returncode != 1 or not any("PV_INGEST_MAX" in line for line in refused):
            print(done.stdout, done.stderr, file=sys.stderr)
            raise SystemExit("the bomb was not refused as expected")


if __name__ == "__main__":
    main()
