"""End to end on simulated FAERS data: simulate -> ingest -> analysis runs per quarter -> signal registry.

Prints, for every injected pair of the simulator's truth file, when the registry first raised it (or not), the
quarter the injection started, and for null controls whether they stayed quiet; plus timings. Runs on a
scratch SQLite store (or PV_BENCH_DATABASE_URL). Usage:

    python benchmarks/signals_end_to_end.py [REPORTS_PER_QUARTER] [FIRST_QUARTER:LAST_QUARTER]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pv import db  # noqa: E402
from pv.ingest.faers import parse_quarter  # noqa: E402
from pv.ingest.store import load_batch  # noqa: E402
from pv.normalise import normalise_pt  # noqa: E402
from pv.periods import parse_quarters  # noqa: E402
from pv.signals.backtest import backtest, run_pipeline_producer  # noqa: E402
from pv.signals.labels import ensure_seeded  # noqa: E402
from pv.signals.rules import RuleSet  # noqa: E402
from pv.simulate.faers import write_quarters  # noqa: E402
from pv.simulate.truth import Truth  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    per_quarter = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    span = sys.argv[2] if len(sys.argv) > 2 else "2023Q1:2024Q2"
    quarters = parse_quarters(span)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        zips = write_quarters(Path(tmp) / "faers", quarters, per_quarter, seed=11, progress=None)
        truth = Truth.read(Path(tmp) / "faers" / "truth.csv")
        t1 = time.perf_counter()
        url = os.environ.get("PV_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/pv.sqlite3"
        session = sessionmaker(bind=db.get_engine(url), expire_on_commit=False)()
        for z in zips:
            load_batch(session, parse_quarter(z))
            session.commit()
        ensure_seeded(session)
        session.commit()
        t2 = time.perf_counter()
        data = yaml.safe_load((REPO / "config" / "signals.yaml").read_text())
        data["detection"]["products"] = "all"  # background products of the scenario too
        rules = RuleSet.from_mapping(data)
        report = backtest(session, run_pipeline_producer(session), start=quarters[0].start,
                          end=quarters[-1].end, rules=rules)
        session.commit()
        t3 = time.perf_counter()
        print(f"{per_quarter} reports/quarter, {span}: simulate {t1 - t0:.1f} s, ingest {t2 - t1:.1f} s, "
              f"{len(report.as_of)} runs + registry {t3 - t2:.1f} s")
        rows = {(r.product, r.event, r.level): r for r in report.rows}
        print(f"{'kind':12} {'product':28} {'event':28} {'level':6} {'start':7} {'rr':>5} {'raised':11} "
              f"{'recommended':11}")
        for t in truth.rows:
            event = normalise_pt(t.event) if t.level == "pt" else t.event
            r = rows.get((t.product, event, t.level))
            print(f"{t.kind:12} {t.product:28} {t.event:28} {t.level:6} {t.start_quarter:7} "
                  f"{t.relative_rate:5g} {str(r.raised) if r else '-':11} "
                  f"{str(r.label_update_recommended) if r and r.label_update_recommended else '-':11}")
        session.close()
        db.dispose_engines()


if __name__ == "__main__":
    main()
