"""Alert outbox throughput: queue the digests of N changes spread over N/10 runs (audit-trail reasons, grouping,
rendering, idempotent insert: one row per run and recipient), re-queue them (no-op), send them as .eml files and
over SMTP to a local aiosmtpd server. Prints figures; uses a scratch PostgreSQL database
(PV_BENCH_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/test) or SQLite with --sqlite.

    .venv/bin/python benchmarks/alerts_outbox.py [N] [--sqlite]
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from aiosmtpd.controller import Controller
from sqlalchemy.orm import sessionmaker

from pv import db
from pv.alerts import EmlTransport, SMTPTransport, queue_digests, send_pending
from pv.alerts.routing import AlertRouting
from pv.signals.changes import SignalChange

REPO = Path(__file__).resolve().parents[1]


class Sink:
    count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        Sink.count += 1
        return "250 OK"


def changes(n: int) -> list[SignalChange]:
    products = ["tisagenlecleucel", "axicabtagene ciloleucel", "ciltacabtagene autoleucel"]
    events = ["cytokine release syndrome", "t-cell lymphoma", "hepatitis b reactivation", "parkinsonism"]
    return [
        SignalChange(kind="opened", signal_id=i, run_id=1 + i // 10, as_of=dt.date(2024, 9, 30),
                     product=products[i % 3], event=events[i % 4], level="pt", status="new", priority=0.5,
                     labelled={"FDA": bool(i % 2)},
                     measures={"n": 10 + i, "prr": 2.5, "prr_chi2": 12.0, "ror_lower": 1.8, "ic025": 0.7,
                               "eb05": 1.6}, serious_cases=9, deaths=1)
        for i in range(n)
    ]


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "300"))
    use_sqlite = "--sqlite" in sys.argv
    tmp = Path(tempfile.mkdtemp(prefix="pv-bench-alerts-"))
    admin = os.environ.get("PV_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"pv_bench_{uuid.uuid4().hex[:8]}"
    if use_sqlite:
        url = f"sqlite:///{tmp / 'pv.sqlite3'}"
    else:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        routing = AlertRouting.load(REPO / "config" / "alerts.yaml")
        factory = sessionmaker(bind=db.get_engine(url), expire_on_commit=False)
        batch = changes(n)
        with factory() as s:
            t = time.perf_counter()
            rows = queue_digests(s, batch, routing=routing)
            s.commit()
            q = time.perf_counter() - t
            t = time.perf_counter()
            again = queue_digests(s, batch, routing=routing)
            s.commit()
            q2 = time.perf_counter() - t
            print(f"backend {'sqlite' if use_sqlite else 'postgresql'}: {n} changes in {len({c.run_id for c in batch})}"
                  f" runs -> {rows} digests")
            print(f"queue:    {q:.2f} s ({rows / q:.0f} rows/s, {1000 * q / n:.1f} ms per change)")
            print(f"re-queue: {q2:.2f} s, {again} rows added")
            t = time.perf_counter()
            half = send_pending(s, EmlTransport(tmp / "outbox"), limit=rows // 2)
            e = time.perf_counter() - t
            print(f"send .eml: {half.sent} in {e:.2f} s ({half.sent / e:.0f} msg/s)")
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            ctl = Controller(Sink(), hostname="127.0.0.1", port=port)
            ctl.start()
            try:
                t = time.perf_counter()
                rest = send_pending(s, SMTPTransport("127.0.0.1", port, timeout=10))
                e = time.perf_counter() - t
            finally:
                ctl.stop()
            print(f"send SMTP: {rest.sent} in {e:.2f} s ({rest.sent / e:.0f} msg/s), server got {Sink.count}")
            t = time.perf_counter()
            nothing = send_pending(s, EmlTransport(tmp / "outbox"))
            print(f"second send: {nothing.attempted} attempted in {time.perf_counter() - t:.3f} s")
    finally:
        db.dispose_engines()
        if not use_sqlite:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
