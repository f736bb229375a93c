"""``make demo``: the whole weekly cycle on the embedded default (SQLite under ./var, Celery tasks in process).

1. Simulate two years of FAERS quarters (with injected signals and their truth file) and a CAR-T cohort.
2. Load the cohort; put the quarters in the drop folder.
3. Run the weekly cycle at four data cut-offs (2023-12-31, 2024-03-31, 2024-06-30, 2024-12-31), as if it had been
   running since then: the first cycle ingests the drop folder; each runs the analysis, evaluates signals against
   the labels in force at its date, writes the weekly report and sends the alert digests (one email per
   recipient per cycle, .eml files in the outbox).
4. Print what happened, and end with the action queue (the top findings, as ``pv signals`` shows them), the last
   weekly report's path and the number of digest emails.

Running it again changes nothing: files are recognised by their hash, runs by (as-of, configuration), and the
registry evaluates each run once.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml
from sqlalchemy import func, select

from pv import db
from pv.alerts.service import DIGEST_KIND
from pv.analysis.results import results_frame
from pv.analysis.runs import get_run
from pv.cli.signals import SCREEN_COLUMNS, finding_rows, finding_table
from pv.ingest.cohort import CohortMapping, load_cohort, parse_cohort_csv
from pv.models import AlertOutbox, Case, Run, Signal
from pv.normalise import default_event_groups, default_products, normalise_pt
from pv.settings import get_settings
from pv.signals.queries import find_signals
from pv.signals.rules import RuleSet, evaluate_rules, select_result_set
from pv.signals.states import OPEN_STATES
from pv.simulate.cohort import simulate_cohort
from pv.simulate.faers import write_quarters
from workers.app import app, configure
from workers.tasks import weekly_cycle

QUARTERS = "2023Q1:2024Q4"
REPORTS_PER_QUARTER = 5000
COHORT_PATIENTS = 2000
SEED = 1
CUT_OFFS = [dt.date(2023, 12, 31), dt.date(2024, 3, 31), dt.date(2024, 6, 30), dt.date(2024, 12, 31)]
QUEUE_FINDINGS = 8  # the findings of the action queue shown at the end: a screenful


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def demo_config(var: Path) -> Path:
    """The shipped configuration, with escalation after 2 consecutive unlabelled runs instead of 3.

    The demo replays quarterly cut-offs, not weekly ones: with the weekly default (3 runs) a signal first seen at
    the end of 2023 would only be escalated after the April 2024 label change, and the feedback loop (flag, label
    change, monitoring) would not show.
    """
    src = get_settings().config_dir
    dst = var / "demo" / "config"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    rules = yaml.safe_load((src / "signals.yaml").read_text(encoding="utf-8"))
    rules["feedback"]["escalation"]["consecutive_unlabelled_runs"] = 2
    (dst / "signals.yaml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return dst


def prepare_data(var: Path) -> tuple[Path, Path]:
    """Simulated quarters (written once) copied to the drop folder; the simulated cohort CSV."""
    sim = var / "demo" / "faers"
    if not (sim / "truth.csv").exists():
        write_quarters(sim, QUARTERS, REPORTS_PER_QUARTER, SEED)
    drop = var / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    for z in sorted(sim.glob("*.zip")):
        if not (drop / "done" / z.name).exists() and not (drop / z.name).exists():
            shutil.copy(z, drop / z.name)
    cohort = var / "demo" / "cohort.csv"
    if not cohort.exists():
        simulate_cohort(COHORT_PATIENTS, SEED).to_csv(cohort, index=False)
    return sim / "truth.csv", cohort


def load_demo_cohort(cohort: Path) -> str:
    settings = get_settings()
    groups, products = default_event_groups(), default_products()
    mapping = CohortMapping.load(settings.config_dir / "mappings" / "cohort.yaml", groups)
    parsed = parse_cohort_csv(cohort, mapping, products)
    with db.session_scope() as session:
        src, loaded = load_cohort(session, parsed)
        return (f"{src.versions_loaded} patients loaded, {src.rows_quarantined} quarantined" if loaded
                else "already loaded")


def detection_table(truth_csv: Path, run_ids: list[int]) -> pd.DataFrame:
    """Each injected signal and null control of the truth file: the first cut-off at which its measures met the
    detection rules (any product, from the runs' results) and what the registry (CAR-T products) did."""
    truth = pd.read_csv(truth_csv)
    rules = RuleSet.load()
    first_met: dict[tuple[str, str, str], dt.date] = {}
    with db.session_scope() as session:
        for run_id in run_ids:
            as_of = get_run(session, run_id).as_of
            judged = evaluate_rules(select_result_set(results_frame(session, run_id), rules.detection.result_set),
                                    rules)
            for r in judged[judged["meets"]].itertuples(index=False):
                first_met.setdefault((str(r.product).casefold(), normalise_pt(str(r.event)), str(r.level)), as_of)
        signals = {(s.product.casefold(), s.event, s.level): s for s in session.scalars(select(Signal))}
    rows = []
    for t in truth.itertuples(index=False):
        key = (str(t.product).casefold(), normalise_pt(str(t.event)), str(t.level))
        s = signals.get(key)
        if str(t.product) not in default_products().products:
            registry = "outside the registry (not in products.yaml)"
        else:
            registry = s.status if s is not None else "no signal"
        if s is not None and s.label_update_recommended:
            registry += ", label update recommended"
        elif s is not None and s.monitoring_since:
            registry += f" since {s.monitoring_since}"
        rows.append({"kind": t.kind, "product": t.product, "event": t.event, "level": t.level,
                     "starts": t.start_quarter, "meets rules from": first_met.get(key, "never"),
                     "registry": registry})
    return pd.DataFrame(rows)


def main() -> None:
    started = time.perf_counter()
    var = get_settings().var_dir
    os.environ["PV_CONFIG_DIR"] = str(demo_config(var))
    get_settings.cache_clear()
    default_event_groups.cache_clear()
    default_products.cache_clear()
    settings = get_settings()
    configure(app)
    print(f"pv demo: case store {db.shown_url(settings.database_url)}; tasks run in process (no broker configured);"
          f" configuration {settings.config_dir}")

    _step(f"simulating FAERS quarters {QUARTERS} ({REPORTS_PER_QUARTER:,} reports each) and a cohort")
    truth_csv, cohort = prepare_data(var)
    print(f"cohort: {load_demo_cohort(cohort)}")

    reports: list[Path] = []
    run_ids: list[int] = []
    for cut_off in CUT_OFFS:
        _step(f"weekly cycle with data as of {cut_off}")
        out = weekly_cycle.apply(kwargs={"as_of": cut_off.isoformat()}).get()
        if out["files"]:
            print(f"ingested {len(out['files'])} file(s) from {var / 'drop'}")
        with db.session_scope() as session:
            run = session.scalars(select(Run).where(Run.as_of == cut_off).order_by(Run.id.desc())).first()
            if run is None or run.status != "succeeded":
                raise SystemExit(f"pv demo: the run as of {cut_off} did not succeed: {run.error if run else 'none'}")
            print(f"run {run.id}: {run.n_cases:,} cases, {run.n_pairs:,} pairs")
            run_ids.append(run.id)
        reports.extend(sorted((var / "reports").glob(f"weekly-report-{cut_off.isoformat()}-run*.html")))

    with db.session_scope() as session:
        cases = session.scalar(select(func.count()).select_from(Case))
        open_signals = session.scalar(select(func.count()).select_from(Signal)
                                      .where(Signal.status.in_(sorted(OPEN_STATES))))
        tracked = session.scalar(select(func.count()).select_from(Signal).where(Signal.status == "tracked"))
        flagged = session.scalar(select(func.count()).select_from(Signal).where(Signal.label_update_recommended))
        queue = finding_rows(find_signals(session))
        digests = session.execute(select(AlertOutbox.status, AlertOutbox.recipient)
                                  .where(AlertOutbox.kind == DIGEST_KIND)).all()

    _step("injected signals (truth file) and what the registry did")
    with pd.option_context("display.width", 160, "display.max_columns", 10):
        print(detection_table(truth_csv, run_ids).to_string(index=False))
    _step("summary")
    print(f"{cases:,} cases in the store; {open_signals} open signals ({tracked} findings tracked, not opened); "
          f"{flagged} flagged for a label update")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")

    _step(f"action queue: {len(queue)} findings need a decision, most urgent first (pv signals; pv signal show ID)")
    print(finding_table(queue, SCREEN_COLUMNS, limit=QUEUE_FINDINGS))
    print(f"\nweekly report:   {reports[-1].resolve() if reports else '(none)'}")
    if reports:
        print(f"PDF:             {reports[-1].with_suffix('.pdf').resolve()}")
        print(f"earlier reports: {', '.join(p.name for p in reports[:-1])}")
    statuses = Counter(status for status, _ in digests)
    recipients = {recipient for _, recipient in digests}
    print(f"alert digests:   {len(digests)} emails to {len(recipients)} recipients over {len(run_ids)} cycles, "
          f"at most one per recipient per cycle ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}; "
          f".eml files in {(var / 'outbox').resolve()})")


if __name__ == "__main__":
    main()
