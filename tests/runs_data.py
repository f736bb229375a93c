"""Small hand-made case stores for the analysis-run tests.

``make_store`` writes, with a seeded generator, a background of reports on a few ordinary drugs and PTs, CAR-T
reports with cytokine release syndrome throughout, and an injected signal: tisagenlecleucel with T-cell
lymphoma in reports received from SIGNAL_START on. It also writes a case with a follow-up version (its drug
and PT change) and a deleted case.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from pv.models import CaseVersion, DeletedCase, Drug, Reaction, SourceFile

SIGNAL_START = dt.date(2023, 10, 1)
BACKGROUND_DRUGS = ["ASPIRIN", "METFORMIN", "LISINOPRIL", "ATORVASTATIN", "OMEPRAZOLE", "RITUXIMAB"]
BACKGROUND_PTS = ["nausea", "headache", "rash", "fatigue", "pyrexia", "dizziness", "vomiting", "diarrhoea",
                  "seizure", "confusional state", "hepatitis b", "basal cell carcinoma", "myelodysplastic syndrome"]
CAR_T = ["tisagenlecleucel", "axicabtagene ciloleucel"]


class StoreWriter:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.source = SourceFile(kind="faers", name="hand-made", sha256="0" * 64, quarter=None)
        session.add(self.source)
        session.flush()
        self.n = 0

    def case(
        self,
        case_key: str,
        received: dt.date,
        drugs: list[tuple[str, str]],
        pts: list[str],
        *,
        version: int = 1,
        sex: str | None = "F",
        age: float | None = 50.0,
        serious: bool = False,
        died: bool = False,
        initial: dt.date | None = None,
    ) -> CaseVersion:
        self.n += 1
        v = CaseVersion(
            case_key=case_key,
            report_id=f"{case_key}-{version}",
            version=version,
            # what the ingest would store: a case's hand-made versions are numbered 1, 2, ... (see
            # pv.ingest.store for the precedence rule)
            precedence=version - 1,
            source_file_id=self.source.id,
            source="faers",
            received_date=received,
            initial_received_date=initial or received,
            sex=sex,
            age_years=age,
            serious=serious or died,
            died=died,
        )
        self.session.add(v)
        self.session.flush()
        for seq, (name, role) in enumerate(drugs, start=1):
            product = name if name in CAR_T else None
            self.session.add(
                Drug(case_version_id=v.id, seq=seq, role=role, drugname=name, product=product, drug_key=name)
            )
        for pt in pts:
            self.session.add(Reaction(case_version_id=v.id, pt_verbatim=pt, pt=pt))
        return v


def make_store(session: Session, seed: int = 7, n_background: int = 300) -> None:
    """Write the hand-made store (see the module docstring); the caller commits."""
    rng = np.random.default_rng(seed)
    w = StoreWriter(session)
    start = dt.date(2023, 1, 1)
    days = (dt.date(2024, 6, 30) - start).days
    weights = np.linspace(1.0, 2.0, len(BACKGROUND_PTS))
    weights /= weights.sum()
    for i in range(n_background):
        received = start + dt.timedelta(days=int(rng.integers(0, days)))
        k = int(rng.integers(1, 3))
        drugs = [
            (str(d), "PS" if j == 0 else str(rng.choice(["SS", "C"])))
            for j, d in enumerate(rng.choice(BACKGROUND_DRUGS, size=k, replace=False))
        ]
        pts = list(rng.choice(BACKGROUND_PTS, size=int(rng.integers(1, 4)), replace=False, p=weights))
        w.case(
            f"BG{i}",
            received,
            drugs,
            [str(p) for p in pts],
            sex=str(rng.choice(["F", "M", "UNK"])),
            age=float(rng.integers(1, 90)),
            serious=bool(rng.random() < 0.4),
            died=bool(rng.random() < 0.05),
        )
    for i in range(60):
        received = start + dt.timedelta(days=int(rng.integers(0, days)))
        product = CAR_T[i % 2]
        pts = ["cytokine release syndrome"] + (["pyrexia"] if i % 3 == 0 else [])
        w.case(
            f"CT{i}",
            received,
            [(product, "PS")],
            pts,
            sex="M" if i % 2 else "F",
            age=60.0,
            serious=True,
            died=i % 10 == 0,
        )
    # the injected signal: tisagenlecleucel with T-cell lymphoma, from SIGNAL_START on
    for i in range(12):
        received = SIGNAL_START + dt.timedelta(days=14 * i)
        w.case(
            f"TC{i}",
            received,
            [("tisagenlecleucel", "PS"), ("ASPIRIN", "C")],
            ["t-cell lymphoma", "fatigue"],
            sex="M",
            age=65.0,
            serious=True,
            died=i % 4 == 0,
        )
    # a follow-up version replacing the case whole
    w.case("FU1", dt.date(2023, 2, 1), [("METFORMIN", "PS")], ["nausea"], version=1)
    w.case(
        "FU1",
        dt.date(2023, 8, 1),
        [("LISINOPRIL", "PS")],
        ["headache"],
        version=2,
        initial=dt.date(2023, 2, 1),
    )
    # a deleted case (the store keeps only its key)
    w.case("DEL1", dt.date(2023, 3, 1), [("tisagenlecleucel", "PS")], ["t-cell lymphoma"])
    session.add(DeletedCase(case_key="DEL1", source_file_id=w.source.id))
    session.flush()


def fast_config(tmp_path) -> Path:  # type: ignore[no-untyped-def]
    """config/analysis.yaml without the stratified tables (half the MGPS fits): for tests about the machinery."""
    text = (Path(__file__).resolve().parents[1] / "config" / "analysis.yaml").read_text()
    path = Path(tmp_path) / "analysis-fast.yaml"
    path.write_text(text.replace("  by: [sex, age_band, report_year]", "  by: []"))
    return path
