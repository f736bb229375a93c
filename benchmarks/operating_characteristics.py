"""Operating characteristics of the detection rules on simulated data with a known truth (issue 12, point 3).

Simulates eight quarters (fixed seed) with the true reporting ratio of every product-event pair
(``truth_ratios.csv``), ingests them into a scratch SQLite store, computes the analysis run once per as-of date
of two cadences, then replays the signal registry (``pv.signals.backtest.replay_openings``, a scratch database
per replay) for every rule variant and prints, per cadence, a Markdown table to paste into docs/signals.md:

* injected signals judged by the rules with >= 5 cases at the last as-of date, the share opened (an audit row
  with to_status 'new'), the median and maximum days from the start of the injection to the opening;
* whether the emerging T-cell lymphoma signal (start 2023Q4) opened within one quarter (92 days) of its start:
  the days to its first injected pair's opening, and how many of its pairs (one per CAR-T product sharing it)
  opened within the quarter;
* the judged pairs whose true ratio is <= 1 (null controls included) with >= 3 cases at the last as-of date,
  and the share of them ever opened.

Cadences: quarterly (the eight quarter ends) and weekly (26 weekly as-of dates, Fridays, from the first Friday
of the emerging signal's quarter). A variant is a set of overrides of config/signals.yaml (merged into it); a
variant the rules refuse (e.g. a key of another branch) is listed as not supported. Usage:

    python benchmarks/operating_characteristics.py [--reports N] [--seed S] [--products dictionary|all]
        [--variant 'NAME={"detection": {"profile": "mhra"}}' ...] [--only-profiles]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pv import db  # noqa: E402
from pv.errors import ConfigError  # noqa: E402
from pv.ingest.faers import parse_quarter  # noqa: E402
from pv.ingest.store import load_batch  # noqa: E402
from pv.periods import parse_quarters  # noqa: E402
from pv.signals.backtest import operating_characteristics, replay_openings, run_pipeline_producer  # noqa: E402
from pv.signals.labels import LabelIndex, ensure_seeded  # noqa: E402
from pv.signals.rules import PROFILES, RuleSet  # noqa: E402
from pv.simulate.ratios import RATIOS_FILE, ratio_lookup, write_quarters_with_ratios  # noqa: E402
from pv.simulate.truth import Truth  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUARTERS = "2023Q1:2024Q4"
EMERGING_START = dt.date(2023, 10, 1)
WEEKS = 26
WITHIN_DAYS = 92  # "within one quarter of its start"

#: The variants measured: a name and the overrides merged into config/signals.yaml. Each profile with the shipped
#: opening rule (persistence 1: a finding opens at its first run meeting the rules, new cases and a label gap
#: permitting), and with persistence 2 (two consecutive runs, or at once when strong).
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    *[(f"{name} + persistence 1", {"detection": {"profile": name}, "opening": {"persistence": 1}})
      for name in PROFILES],
    *[(f"{name} + persistence 2", {"detection": {"profile": name}, "opening": {"persistence": 2}})
      for name in PROFILES],
]


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in recursively; a profile chosen by ``over`` replaces explicit levels."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    det_over = over.get("detection")
    if isinstance(det_over, Mapping) and "profile" in det_over and "levels" not in det_over:
        out["detection"].pop("levels", None)
    return out


def weekly_dates(first: dt.date, weeks: int) -> list[dt.date]:
    friday = first + dt.timedelta(days=(4 - first.weekday()) % 7)
    return [friday + dt.timedelta(weeks=k) for k in range(weeks)]


def fmt_days(days: list[int]) -> tuple[str, str]:
    if not days:
        return "-", "-"
    return f"{statistics.median(days):.0f}", f"{max(days)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=3000, help="initial reports per quarter")
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--products", choices=("dictionary", "all"), default=None,
                    help="products judged (default: as config/signals.yaml says)")
    ap.add_argument("--variant", action="append", default=[], help="NAME=JSON overrides, added to the list")
    ap.add_argument("--only-profiles", action="store_true", help="the profiles with persistence 1 (shipped) alone")
    args = ap.parse_args()

    base = yaml.safe_load((REPO / "config" / "signals.yaml").read_text())
    if args.products:
        base["detection"]["products"] = args.products
    variants = [v for v in VARIANTS if not (args.only_profiles and "persistence 2" in v[0])]
    for spec in args.variant:
        name, _, text = spec.partition("=")
        variants.append((name, json.loads(text)))
    quarters = parse_quarters(QUARTERS)
    cadences = {
        "quarterly": [q.end for q in quarters],
        "weekly": weekly_dates(EMERGING_START, WEEKS),
    }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = Path(tmp) / "faers"
        zips = write_quarters_with_ratios(folder, quarters, args.reports, args.seed, progress=None)
        truth = Truth.read(folder / "truth.csv")
        ratios = ratio_lookup(pd.read_csv(folder / RATIOS_FILE))
        t1 = time.perf_counter()
        url = f"sqlite:///{tmp}/pv.sqlite3"
        session = sessionmaker(bind=db.get_engine(url), expire_on_commit=False)()
        for z in zips:
            load_batch(session, parse_quarter(z))
            session.commit()
        ensure_seeded(session)
        session.commit()
        labels = LabelIndex.from_session(session)
        t2 = time.perf_counter()
        produce = run_pipeline_producer(session)
        results: dict[dt.date, tuple[int, pd.DataFrame]] = {}
        for day in sorted({d for dates in cadences.values() for d in dates}):
            r0 = time.perf_counter()
            results[day] = produce(day)
            session.commit()
            print(f"  run as of {day}: {time.perf_counter() - r0:.1f} s", file=sys.stderr, flush=True)
        t3 = time.perf_counter()
        print(f"{args.reports:,} initial reports/quarter, {QUARTERS}, seed {args.seed}, products judged: "
              f"{base['detection']['products']}. Simulation with true ratios {t1 - t0:.0f} s, ingest "
              f"{t2 - t1:.0f} s, {len(results)} analysis runs {t3 - t2:.0f} s.")
        replay_seconds = 0.0
        for cadence, dates in cadences.items():
            last = results[dates[-1]][1]
            print(f"\n{cadence}: {len(dates)} as-of dates, {dates[0]} to {dates[-1]}\n")
            print("| variant | injected, >= 5 cases | opened | days to opening, median | max | T-cell lymphoma "
                  "within a quarter | true ratio <= 1, >= 3 cases | ever opened | share | null controls opened |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for name, over in variants:
                try:
                    rules = RuleSet.from_mapping(merged(base, over), f"variant {name}")
                except ConfigError as exc:
                    print(f"| {name} | not supported by these rules: ...{str(exc)[-70:]} |||||||||")
                    continue
                r0 = time.perf_counter()
                openings = replay_openings(lambda d: results[d], dates, rules=rules, labels=labels)
                replay_seconds += time.perf_counter() - r0
                oc = operating_characteristics(openings, truth=truth, ratios=ratios, last_results=last,
                                               rules=rules)
                days = [d for d in oc.injected.values() if d is not None]
                med, mx = fmt_days(days)
                tcl = sum(d is not None and d <= WITHIN_DAYS for d in oc.emerging.values())
                first = "-" if oc.emerging_first is None else f"{oc.emerging_first} d"
                print(f"| {name} | {len(oc.injected)} | {oc.injected_opened} ({oc.injected_share:.0%}) | {med} | "
                      f"{mx} | {'yes' if oc.emerging_within(WITHIN_DAYS) else 'no'} ({first}; {tcl}/"
                      f"{len(oc.emerging)} pairs) | "
                      f"{oc.quiet} | {len(oc.quiet_opened)} | {oc.quiet_share:.1%} | "
                      f"{oc.null_controls_opened}/{oc.null_controls} |")
        print(f"\nregistry replays: {replay_seconds:.0f} s in all")
        session.close()
        db.dispose_engines()


if __name__ == "__main__":
    main()
