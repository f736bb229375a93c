"""Benchmark: one as-of analysis run end to end on two years of synthetic FAERS-scale data in PostgreSQL.

Target: <= 2 minutes for the run with one worker on this 2-core machine; loading the data is not part
of it. The data (default 8 quarters x 400,000 initial reports, plus follow-ups: several million cases) is
simulated with ``pv.simulate.faers.write_quarters`` and ingested with the FAERS loader into a database of its
own (``pv_bench_weekly``), kept between invocations (``--fresh`` rebuilds it). The run goes through Redis to
one ``celery worker -c 1`` process (``--embedded`` runs the same stages in this process instead). Prints the
seconds of every stage and the total.

    python benchmarks/weekly_cycle.py [--reports-per-quarter N] [--quarters 2023Q1:2024Q4] [--fresh]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import delete, func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ADMIN = os.environ.get("PV_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("PV_BENCH_REDIS", "redis://127.0.0.1:6379/14")


def _url(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


def ensure_data(dbname: str, quarters: str, reports: int, seed: int, fresh: bool) -> str:
    from pv import db
    from pv.ingest.faers import parse_quarter
    from pv.ingest.store import load_batch
    from pv.models import Case
    from pv.simulate.faers import write_quarters

    url = _url(dbname)
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    db.upgrade(url)
    with db.session_scope(url) as session:
        cases = session.scalar(select(func.count()).select_from(Case))
    if cases:
        print(f"data: {cases:,} cases already in {dbname} (use --fresh to rebuild)")
        return url
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        zips = write_quarters(tmp, quarters, reports, seed, progress=None)
        t_sim = time.perf_counter() - t0
        for z in zips:
            t1 = time.perf_counter()
            batch = parse_quarter(z)
            with db.session_scope(url) as session:
                load_batch(session, batch)
            print(f"  loaded {z.name} in {time.perf_counter() - t1:.1f} s", flush=True)
    with db.session_scope(url) as session:
        cases = session.scalar(select(func.count()).select_from(Case))
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"data: simulated in {t_sim:.1f} s, {cases:,} cases loaded in {time.perf_counter() - t0:.1f} s "
          "(not part of the run)")
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quarters", default="2023Q1:2024Q4")
    ap.add_argument("--reports-per-quarter", type=int, default=400_000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--db", default="pv_bench_weekly")
    ap.add_argument("--fresh", action="store_true", help="rebuild the benchmark database")
    ap.add_argument("--embedded", action="store_true", help="run the stages in this process, no worker")
    args = ap.parse_args()

    url = ensure_data(args.db, args.quarters, args.reports_per_quarter, args.seed, args.fresh)
    queue = f"pv-bench-{uuid.uuid4().hex[:8]}"
    os.environ.update({"PV_DATABASE_URL": url, "PV_CONFIG_DIR": str(REPO / "config"),
                       "PV_TASK_QUEUE": queue})
    if args.embedded:
        os.environ.pop("PV_BROKER_URL", None)
    else:
        os.environ["PV_BROKER_URL"] = REDIS
    from pv import db
    from pv.analysis.runs import get_run
    from pv.models import Case, CaseVersion, Run
    from pv.periods import parse_quarters
    from pv.settings import get_settings

    get_settings.cache_clear()
    from workers.app import app, configure
    from workers.tasks import submit_run

    configure(app)
    as_of = parse_quarters(args.quarters)[-1].end
    with db.session_scope(url) as session:
        session.execute(delete(Run).where(Run.as_of == as_of))  # measure a fresh computation
        n_cases = session.scalar(select(func.count()).select_from(Case))
        n_versions = session.scalar(select(func.count()).select_from(CaseVersion))
    print(f"store: {n_cases:,} cases, {n_versions:,} case versions; run as of {as_of}")

    worker = None
    if not args.embedded:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queue, "-c", "1", "-l",
             "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env={**os.environ}, start_new_session=True,
        )
        time.sleep(3)  # let the worker connect (not part of the run)
    try:
        t0 = time.perf_counter()
        run_id, _ = submit_run(as_of)
        while True:
            with db.session_scope(url) as session:
                run = get_run(session, run_id)
                status, timings, error = run.status, dict(run.timings or {}), run.error
                pairs, cases = run.n_pairs, run.n_cases
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        total = time.perf_counter() - t0
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    if status != "succeeded":
        raise SystemExit(f"run {run_id} {status}: {error}")
    print(f"run {run_id}: {cases:,} cases counted, {pairs:,} pairs (PT and group level)")
    shard_total = sum(v for k, v in timings.items() if k.startswith("shard_") and k.count("_") == 1)
    shard_read = sum(v for k, v in timings.items() if k.endswith("_read"))
    shard_compute = sum(v for k, v in timings.items() if k.endswith("_compute"))
    for stage in ("extract", "rows", "count_tables", "trend", "write_counts", "fit_prior"):
        print(f"  {stage:14} {timings.get(stage, 0.0):7.1f} s")
    n_shards = sum(k.startswith("shard_") and k.count("_") == 1 for k in timings)
    print(f"  {'shards':14} {shard_total:7.1f} s  ({n_shards} shards: read {shard_read:.1f} s, measures "
          f"{shard_compute:.1f} s, write {shard_total - shard_read - shard_compute:.1f} s)")
    print(f"  {'finalise':14} {timings.get('finalise', 0.0):7.1f} s")
    print(f"  {'total (wall)':14} {total:7.1f} s  (target <= 120 s with one worker)")


if __name__ == "__main__":
    main()
