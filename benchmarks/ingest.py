"""Benchmark: one synthetic FAERS quarter of 400,000 reports into PostgreSQL (target <= 60 s).

Writes a FAERS-layout zip (DEMO, DRUG, REAC, OUTC, RPSR, THER, INDI, DELETE; 1-4 drugs and 1-5 PTs per report,
some follow-up versions, CAR-T spellings among the drugs), creates a scratch PostgreSQL database, times
``parse_quarter`` + ``load_batch`` + commit, prints reports per second and drops the database.

    python benchmarks/ingest.py [--reports 400000] [--admin-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pv import db  # noqa: E402
from pv.ingest.faers import parse_quarter  # noqa: E402
from pv.ingest.store import load_batch  # noqa: E402

TARGET_SECONDS = 60.0
DRUGS = [f"DRUG{i:04d}" for i in range(1500)] + [
    "YESCARTA", "KYMRIAH", "Breyanzi", "ABECMA", "CARVYKTI", "TECARTUS", "axi-cel", "CILTA-CEL",
    "YESCARTA (AXICABTAGENE CILOLEUCEL)", "tisagenlecleucel"]
PTS = [f"Event term {i:04d}" for i in range(3000)] + [
    "Cytokine release syndrome", "Neurotoxicity", "Immune effector cell-associated neurotoxicity syndrome",
    "T-cell lymphoma", "Myelodysplastic syndrome", "Hepatitis B reactivation", "Parkinsonism"]
HEADERS = {
    "DEMO": "primaryid$caseid$caseversion$i_f_code$event_dt$mfr_dt$init_fda_dt$fda_dt$rept_cod$auth_num"
            "$mfr_num$mfr_sndr$lit_ref$age$age_cod$age_grp$sex$e_sub$wt$wt_cod$rept_dt$to_mfr$occp_cod$reporter_country"
            "$occr_country",
    "DRUG": "primaryid$caseid$drug_seq$role_cod$drugname$prod_ai$val_vbm$route$dose_vbm$cum_dose_chr"
            "$cum_dose_unit$dechal$rechal$lot_num$exp_dt$nda_num$dose_amt$dose_unit$dose_form$dose_freq",
    "REAC": "primaryid$caseid$pt$drug_rec_act",
    "OUTC": "primaryid$caseid$outc_cod",
    "RPSR": "primaryid$caseid$rpsr_cod",
    "THER": "primaryid$caseid$dsg_drug_seq$start_dt$end_dt$dur$dur_cod",
    "INDI": "primaryid$caseid$indi_drug_seq$indi_pt",
}


def write_quarter(path: Path, reports: int, seed: int = 7) -> Path:
    """A synthetic 2024Q1 FAERS zip with ``reports`` DEMO rows."""
    rng = np.random.default_rng(seed)
    caseids = 10_000_000 + rng.permutation(reports * 2)[:reports]
    # 5% of the reports are a second version of another report's case
    follow = rng.random(reports) < 0.05
    caseids[follow] = caseids[rng.integers(0, reports, follow.sum())]
    versions = np.where(follow, 2, 1)
    primaryids = 300_000_000 + np.arange(reports)
    days = rng.integers(0, 90, reports)
    fda = [f"202401{d + 1:02d}" if d < 31 else f"202402{d - 30:02d}" if d < 59 else f"202403{d - 58:02d}"
           for d in days]
    ages = rng.integers(1, 95, reports)
    sexes = rng.choice(["F", "M", "UNK", ""], reports, p=[0.5, 0.42, 0.05, 0.03])
    countries = rng.choice(["US", "CN", "JP", "FR", "DE", "GB"], reports)
    members: dict[str, list[str]] = {k: [v] for k, v in HEADERS.items()}
    demo = members["DEMO"]
    for pid, cid, ver, f, age, sex, ctry in zip(primaryids, caseids, versions, fda, ages, sexes, countries,
                                                strict=True):
        fields = [pid, cid, ver, "F" if ver > 1 else "I", f[:6], "", f, f, "EXP", "", f"MFR-{cid}", "MFR", "",
                  age, "YR", "", sex, "Y", "", "", f, "", "MD", ctry, ctry]
        demo.append("$".join(map(str, fields)) + "$")
    n_drugs = rng.integers(1, 5, reports)
    n_pts = rng.integers(1, 6, reports)
    drug_choice = rng.integers(0, len(DRUGS), n_drugs.sum())
    pt_choice = rng.integers(0, len(PTS), n_pts.sum())
    drug_rows, ther_rows, indi_rows = members["DRUG"], members["THER"], members["INDI"]
    k = 0
    for pid, cid, nd in zip(primaryids, caseids, n_drugs, strict=True):
        for seq in range(1, nd + 1):
            name = DRUGS[drug_choice[k]]
            k += 1
            role = "PS" if seq == 1 else "C"
            drug_rows.append(f"{pid}${cid}${seq}${role}${name}${name.upper()}$1$Intravenous$1 DF$$$$$$$$$$$$")
            if seq == 1:
                ther_rows.append(f"{pid}${cid}${seq}$20231201$2024$$")
                indi_rows.append(f"{pid}${cid}${seq}$Diffuse large B-cell lymphoma")
    reac_rows, outc_rows, rpsr_rows = members["REAC"], members["OUTC"], members["RPSR"]
    k = 0
    serious = rng.random(reports) < 0.4
    for pid, cid, npt, ser in zip(primaryids, caseids, n_pts, serious, strict=True):
        for _ in range(npt):
            reac_rows.append(f"{pid}${cid}${PTS[pt_choice[k]]}$")
            k += 1
        if ser:
            outc_rows.append(f"{pid}${cid}$HO")
        if pid % 10 == 0:
            rpsr_rows.append(f"{pid}${cid}$HP")
    deleted = "\n".join(str(c) for c in caseids[rng.integers(0, reports, reports // 200)]) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for kind, lines in members.items():
            zf.writestr(f"ASCII/{kind}24Q1.txt", "\n".join(lines) + "\n")
        zf.writestr("Deleted/DELETE24Q1.txt", deleted)
    return path


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
        zpath = write_quarter(Path(tmp) / "faers_ascii_2024q1.zip", args.reports)
        print(f"wrote {args.reports} synthetic reports ({zpath.stat().st_size / 1e6:.1f} MB zip) "
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
            rate = args.reports / elapsed
            print(f"parse {parsed:.1f} s, load {elapsed - parsed:.1f} s, total {elapsed:.1f} s: "
                  f"{rate:,.0f} reports/s ({summary.versions_loaded} versions, {cases} cases, "
                  f"{summary.rows_quarantined} quarantined)")
            load = os.getloadavg()[0]
            print(f"CPU seconds: client {client_cpu:.1f}, PostgreSQL backend {server_cpu:.1f} "
                  f"(sum {client_cpu + server_cpu:.1f}); load average {load:.1f} on {os.cpu_count()} CPUs")
            ok = elapsed <= TARGET_SECONDS * args.reports / 400_000
            print(f"target <= {TARGET_SECONDS:.0f} s per 400,000 reports: {'met' if ok else 'NOT met'}")
            return 0 if ok else 1
        finally:
            db.dispose_engines()
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
