"""E2B(R3) and CSV ingestion speed: parse and load figures (no target; printed for the record).

- CSV: the real CAERS extract (20,156 rows) with config/mappings/caers.yaml.
- E2B: one MCCI batch of N copies of tests/data/e2b/kymriah_followup.xml with distinct case keys.

Both are loaded into the store at ``PV_BENCH_DATABASE_URL`` (default: a temporary SQLite file).
Usage: ``python benchmarks/ingest_e2b_csv.py [N]`` (N ICSRs, default 1000).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from pv import db
from pv.ingest.csv import parse_csv
from pv.ingest.e2b import parse_e2b_bytes
from pv.ingest.store import load_batch

REPO = Path(__file__).resolve().parents[1]
CAERS = Path(os.environ.get("PV_CAERS_CSV", REPO.parent / "shared" / "data" / "real" / "caers_2012.csv"))


def e2b_batch(n: int) -> bytes:
    text = (REPO / "tests" / "data" / "e2b" / "kymriah_followup.xml").read_text(encoding="utf-8")
    body = text[text.index("<PORR_IN049016UV"):].replace(
        ' xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ITSVersion="XML_1.0"', "")
    messages = "".join(body.replace("US-NOVARTIS-NVSC2023US198765", f"US-BENCH-{i:07d}") for i in range(n))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<MCCI_IN200100UV01 xmlns="urn:hl7-org:v3" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' + messages + "</MCCI_IN200100UV01>").encode()


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("PV_BENCH_DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
        session = sessionmaker(bind=db.get_engine(url))()
        try:
            if CAERS.exists():
                t0 = time.perf_counter()
                batch = parse_csv(CAERS, REPO / "config" / "mappings" / "caers.yaml")
                t1 = time.perf_counter()
                load_batch(session, batch)
                session.commit()
                t2 = time.perf_counter()
                print(f"csv  CAERS: {batch.rows_read} rows parsed in {t1 - t0:.2f} s "
                      f"({batch.rows_read / (t1 - t0):,.0f} rows/s); {len(batch.versions)} cases loaded in "
                      f"{t2 - t1:.2f} s ({db.backend_name(session)})")
            data = e2b_batch(n)
            t0 = time.perf_counter()
            batch = parse_e2b_bytes(data, "bench.xml")
            t1 = time.perf_counter()
            load_batch(session, batch)
            session.commit()
            t2 = time.perf_counter()
            print(f"e2b  {n} ICSRs ({len(data) / 1e6:.1f} MB): parsed in {t1 - t0:.2f} s "
                  f"({n / (t1 - t0):,.0f} ICSRs/s, {len(data) / 1e6 / (t1 - t0):.1f} MB/s); loaded in "
                  f"{t2 - t1:.2f} s ({n / (t2 - t1):,.0f} ICSRs/s)")
        finally:
            session.close()
            db.dispose_engines()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
