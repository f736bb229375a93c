"""``pv disproportionality FILE --format csv`` as a whole process, on a case-level table of simulated FAERS data.

The table: eight quarters (2023Q1-2024Q4) of 20,000 initial reports each from ``pv.simulate.faers``, parsed by
the FAERS parser; of each case its current version (the ingest's precedence rule), the drugs in the counted
roles (PS, SS) as the case store names them (the mapped product, else the normalised verbatim name), and the
normalised PTs; one row per case x product x event. About 420,000 rows, 160,000 cases and 84,000 pairs. It is
built once and kept under the temporary folder (``--cache`` to choose).

Printed: the median wall and CPU time of the command over ``--runs`` runs (a subprocess each, output to a file),
then the time of each stage in one fresh interpreter doing what the command does: start-up and imports, reading,
counting, the PRR/ROR/IC measures, the MGPS fit, EBGM scoring, writing the CSV. ``--profile`` adds the
functions the MGPS fit spends its time in. ``--baseline DIR`` (a folder holding another version's ``pv``
package, e.g. ``git archive COMMIT pv | tar -x -C DIR``) runs that version's command too, alternating with this
one, so that both see the same load, and prints its medians and the largest difference between the two outputs.
Target: the whole command <= 1.5 s.
Usage: python benchmarks/disproportionality_cli.py [--runs 5] [--profile] [--cache DIR] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUARTERS = "2023Q1:2024Q4"
REPORTS = 20_000
SEED = 1
COMMAND = ["disproportionality", "--product", "product", "--event", "event", "--format", "csv"]


def build_table(folder: Path) -> Path:
    """The case-level CSV (id, product, event) of the simulated quarters, built once."""
    target = folder / "rows.csv"
    if target.exists():
        return target
    import pandas as pd

    from pv.ingest.faers import parse_quarter
    from pv.ingest.store import current_versions
    from pv.normalise import default_products, drug_key, normalise_pt
    from pv.simulate.faers import write_quarters

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    zips = sorted(folder.glob("*.zip")) or write_quarters(folder, QUARTERS, REPORTS, SEED, progress=None)
    batches = [parse_quarter(p) for p in zips]
    versions = pd.concat([b.versions for b in batches], ignore_index=True)
    drugs = pd.concat([b.drugs for b in batches], ignore_index=True)
    reactions = pd.concat([b.reactions for b in batches], ignore_index=True)
    deleted = {k for b in batches for k in b.deleted_case_keys}
    current = current_versions(versions)
    current = current[~current["case_key"].isin(deleted)]
    drugs = drugs[drugs["report_id"].isin(current["report_id"]) & drugs["role"].isin(["PS", "SS"])]
    reactions = reactions[reactions["report_id"].isin(current["report_id"])]
    products = default_products()

    def product(name: str | None, ingredient: str | None) -> str:  # as the case store keys a drug
        return products.match(name, ingredient) or drug_key(name) or drug_key(ingredient)

    names = [tuple(None if pd.isna(x) else x for x in pair)
             for pair in zip(drugs["drugname"].tolist(), drugs["active_ingredient"].tolist(), strict=True)]
    key = {pair: product(*pair) for pair in set(names)}
    drugs = drugs.assign(product=[key[pair] for pair in names])
    reactions = reactions.assign(event=reactions["pt_verbatim"].map(
        {pt: normalise_pt(pt) for pt in reactions["pt_verbatim"].unique()}))
    rows = (drugs[["report_id", "product"]].drop_duplicates()
            .merge(reactions[["report_id", "event"]].drop_duplicates(), on="report_id")
            .rename(columns={"report_id": "id"}))
    partial = target.with_suffix(".part")
    rows.to_csv(partial, index=False)
    partial.replace(target)
    print(f"built {target}: {len(rows):,} rows, {rows['id'].nunique():,} cases, "
          f"{len(rows.drop_duplicates(['product', 'event'])):,} pairs in {time.perf_counter() - t0:.0f} s",
          flush=True)
    return target


def pv_command() -> list[str]:
    script = Path(sys.executable).with_name("pv")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pv"]


def time_command(argv: list[str], out: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (all threads, user + system) seconds of one run, its output to ``out``."""
    before = os.times()
    t0 = time.perf_counter()
    with out.open("wb") as fh:
        subprocess.run(argv, stdout=fh, check=True, env=env, cwd=out.parent)
    wall = time.perf_counter() - t0
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


# The stages of the command, timed in a fresh interpreter (its start-up is measured by the parent). It calls the
# same functions as ``pv.stats.disproportionality`` and the command, in the same order.
_STAGES = r"""
import json, os, sys, time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as pv.cli.main does

marks = [("spawn", float(sys.argv[3]), 0.0)]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))

mark("interpreter start-up")
import pv.cli
from pv.cli.csv_text import write_csv
from pv.cli.disproportionality import read_case_rows
from pv.stats import RESULT_COLUMNS, MGPS, count_table, measures
import pyarrow.csv
mark("imports")
rows = read_case_rows(Path(sys.argv[1]), ["id", "product", "event"], categorical=["id", "product", "event"])
mark("read")
counts = count_table(rows, id_col="id", product_col="product", event_col="event")
mark("counting")
table = measures(counts)
mark("measures")
model = MGPS().fit(counts)
mark("MGPS fit")
table = model.score(table)
table["ebgm_signal"] = table["eb05"] >= 2.0
mark("scoring")
with open(sys.argv[2], "wb") as fh:
    write_csv(table[RESULT_COLUMNS], fh)
mark("writing")
out = {"stages": [[b[0], b[1] - a[1], b[2] - a[2]] for a, b in zip(marks, marks[1:])],
       "rows": len(rows), "pairs": len(counts), "fit": model.summary.to_dict("records")}
if len(sys.argv) > 4:
    import cProfile, io, pstats
    profile = cProfile.Profile()
    profile.enable()
    MGPS().fit(counts)
    profile.disable()
    buf = io.StringIO()
    pstats.Stats(profile, stream=buf).sort_stats("tottime").print_stats(15)
    out["profile"] = buf.getvalue()
print(json.dumps(out))
"""


def stages(table: Path, out: Path, profile: bool) -> dict:
    """The stages' wall and CPU seconds (perf_counter is one clock for all processes: it times the start too)."""
    done = subprocess.run([sys.executable, "-c", _STAGES, str(table), str(out), repr(time.perf_counter()),
                           *(["profile"] if profile else [])], capture_output=True, text=True, check=True)
    report: dict = json.loads(done.stdout)
    return report


def largest_difference(path: Path, other: Path) -> str:
    """How two outputs differ: the same bytes, or the largest relative difference of each column that differs."""
    if path.read_bytes() == other.read_bytes():
        return "none (the same bytes)"
    import numpy as np
    import pandas as pd

    a, b = (pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in (path, other))
    if list(a.columns) != list(b.columns) or len(a) != len(b) or not a.iloc[:, :2].equals(b.iloc[:, :2]):
        return "other rows or columns"
    found = []
    for col in a.columns[2:]:
        x, y = a[col].to_numpy(np.float64), b[col].to_numpy(np.float64)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return f"{col}: other empty cells"
        both = np.isfinite(x) & np.isfinite(y)
        if not np.array_equal(x[~both], y[~both], equal_nan=True):
            return f"{col}: other infinities"
        rel = np.abs(x[both] - y[both]) / np.maximum(np.abs(x[both]), 1e-300)
        if len(rel) and rel.max() > 0:
            found.append(f"{col} {rel.max():.1e}")
    return "relative " + ", ".join(found)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="Profile the MGPS fit (cProfile, by own time).")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / f"pv-bench-disproportionality-{REPORTS}x8-{SEED}")
    parser.add_argument("--baseline", type=Path, help="A folder holding another version's pv package.")
    args = parser.parse_args(argv)
    table = build_table(args.cache)
    out = args.cache / "out.csv"
    argv_pv = [*pv_command(), COMMAND[0], str(table), *COMMAND[1:]]
    variants: list[tuple[str, list[str], Path, dict[str, str] | None]] = [("this version", argv_pv, out, None)]
    if args.baseline is not None:
        argv_base = [sys.executable, "-m", "pv", COMMAND[0], str(table), *COMMAND[1:]]
        variants.append(("baseline", argv_base, args.cache / "out-baseline.csv",
                         {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}))
    for _, command, target, env in variants:
        time_command(command, target, env)  # warm the file cache and the bytecode
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in variants}
    for _ in range(args.runs):
        for name, command, target, env in variants:
            runs[name].append(time_command(command, target, env))
    for name, timed in runs.items():
        walls, cpus = [w for w, _ in timed], [c for _, c in timed]
        print(f"pv disproportionality {table.name} --format csv ({name}): median {statistics.median(walls):.2f} s "
              f"wall (min {min(walls):.2f}), {statistics.median(cpus):.2f} s CPU, {args.runs} runs", flush=True)
    if args.baseline is not None:
        print(f"largest difference from the baseline's output: {largest_difference(out, variants[1][2])}")
    report = stages(table, args.cache / "out-stages.csv", args.profile)
    if (args.cache / "out-stages.csv").read_bytes() != out.read_bytes():
        print("warning: the stages wrote another table than the command (they no longer mirror it)")
    print(f"stages ({report['rows']:,} rows, {report['pairs']:,} pairs), wall / CPU seconds:")
    for name, w, c in report["stages"]:
        print(f"  {name:22} {w:6.2f} / {c:5.2f}")
    print(f"  {'total':22} {sum(s[1] for s in report['stages']):6.2f} / {sum(s[2] for s in report['stages']):5.2f}")
    final = report["fit"][-1]
    print(f"MGPS fit: {len(report['fit'])} stages (5 starts{' on a subsample' if len(report['fit']) > 5 else ''}"
          f", then all pairs), {sum(r['n_iter'] for r in report['fit'])} iterations in all, last stage "
          f"{final['n_iter']} iterations on {final['pairs']:,} pairs")
    if "profile" in report:
        print(report["profile"])
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
