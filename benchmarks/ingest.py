"""Benchmark: one synthetic FAERS quarter of 400,000 reports into PostgreSQL (target <= 60 s).

Writes one quarter with the simulator (``pv.simulate.faers.write_quarters``: realistic background, 1-4 drugs
and 1-5 PTs per report, follow-ups, deletions, CAR-T spellings), creates a scratch PostgreSQL database, times
``parse_quarter`` + ``load_batch`` + commit, prints reports (DEMO rows) per second, the CPU seconds of the
client and of the PostgreSQL backend, and drops the database.

    python benchmarks/ingest.py [--reports 400000] [--admin-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pv import db  # noqa: E402
from pv.ingest.faers import parse_quarter  # noqa: E402
from pv.ingest.store import load_batch  # noqa: E402
from pv.simulate.faers import write_quarters  # noqa: E402

TARGET_SECONDS = 60.0


def _server_cpu(pid: int) -> float:
    """CPU seconds used so far by a local PostgreSQL backend (from /proc; 0 when not readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=400_000)
    parser.add_argument("--admin-url", default=os.environ.get(
        "PV_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    name = f"pv_bench_{uuid.uuid4().hex[:8]}"
    url = args.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        zpath = write_quarters(Path(tmp), "2024Q1", args.reports, seed=11, progress=None)[0]
        print(f"wrote a synthetic quarter ({zpath.stat().st_size / 1e6:.1f} MB zip) "
              f"in {time.perf_counter() - t0:.1f} s")
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            db.upgrade(url)
            factory = sessionmaker(bind=db.get_engine(url))
            stages: list[tuple[str, float]] = []
            start = time.perf_counter()

            def mark(stage: str) -> None:
                stages.append((stage, time.perf_counter() - start))

            cpu0 = time.process_time()
            batch = parse_quarter(zpath, progress=mark)
            parsed = time.perf_counter() - start
            with factory() as session:
                backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                server0 = _server_cpu(backend)
                summary = load_batch(session, batch, progress=mark)
                session.commit()
                elapsed = time.perf_counter() - start
                client_cpu = time.process_time() - cpu0
                server_cpu = _server_cpu(backend) - server0
                cases = session.execute(text("SELECT COUNT(*) FROM cases")).scalar_one()
            previous = 0.0
            for stage, at in stages:
                print(f"  {stage:<12} {at - previous:6.2f} s")
                previous = at
            reports = len(batch.versions) + int((batch.quarantine["file"].str.contains("DEMO")).sum())
            rate = reports / elapsed
            print(f"{reports:,} reports: parse {parsed:.1f} s, load {elapsed - parsed:.1f} s, "
                  f"total {elapsed:.1f} s: {rate:,.0f} reports/s ({summary.versions_loaded} versions, {cases} cases, "
                  f"{summary.rows_quarantined} quarantined)")
            load = os.getloadavg()[0]
            print(f"CPU seconds: client {client_cpu:.1f}, PostgreSQL backend {server_cpu:.1f} "
                  f"(sum {client_cpu + server_cpu:.1f}); load average {load:.1f} on {os.cpu_count()} CPUs")
            ok = elapsed <= TARGET_SECONDS * reports / 400_000
            print(f"target <= {TARGET_SECONDS:.0f} s per 400,000 reports: {'met' if ok else 'NOT met'}")
            return 0 if ok else 1
        finally:
            db.dispose_engines()
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
