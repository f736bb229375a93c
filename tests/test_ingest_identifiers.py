"""Identifiers are stored whole or their report is quarantined whole; an ICSR without reactions or drugs never
becomes the current version of its case (issue 14, points 3 and 4)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.ingest.batch import MAX_CASE_KEY, MAX_REPORT_ID, Batch
from pv.ingest.csv import mapping_from_dict, parse_csv_bytes
from pv.ingest.e2b import parse_e2b, parse_e2b_bytes
from pv.ingest.store import load_batch, without_overlong_ids
from pv.models.casestore import Case, CaseVersion, Drug, Quarantine, Reaction

E2B = Path(__file__).parent / "data" / "e2b"
KYMRIAH = "US-NOVARTIS-NVSC2023US198765"
MAPPING = mapping_from_dict({
    "layout": "row",
    "columns": {"case_id": "case", "report_id": "report", "received_date": "fda_dt", "drug": "product",
                "role": "role", "event": "pt"},
}, "inline.yaml")


def _csv(lines: list[str]) -> bytes:
    return ("case,report,fda_dt,product,role,pt\n" + "\n".join(lines) + "\n").encode()


def test_csv_case_ids_too_long_for_the_store_are_quarantined_with_their_line_never_cut() -> None:
    long_a = "A" * 100 + "1"
    long_b = "A" * 100 + "2"  # shares its first 100 characters with long_a
    batch = parse_csv_bytes(_csv([
        f"{long_a},r1,20240105,KYMRIAH,PS,Pyrexia",
        f"{long_b},r2,20240105,KYMRIAH,PS,Cytokine release syndrome",
        "short,r3,20240105,YESCARTA,PS,Aphasia",
        f"c4,{'R' * (MAX_REPORT_ID + 1)},20240105,YESCARTA,PS,Aphasia",
    ]), "long.csv", MAPPING)
    assert batch.versions["case_key"].tolist() == ["short"]
    assert set(batch.drugs["case_key"]) == {"short"} and set(batch.reactions["case_key"]) == {"short"}
    quarantined = batch.quarantine.to_dict("records")
    assert [(q["line"], q["field"]) for q in quarantined] == [(2, "case"), (3, "case"), (5, "report")]
    assert "case id of 101 characters" in quarantined[0]["reason"]
    assert f"report id of {MAX_REPORT_ID + 1} characters" in quarantined[2]["reason"]


def test_csv_ids_at_the_limit_are_stored_whole(session: Session) -> None:
    case_id, report_id = "C" * MAX_CASE_KEY, "R" * MAX_REPORT_ID
    batch = parse_csv_bytes(_csv([f"{case_id},{report_id},20240105,KYMRIAH,PS,Pyrexia"]), "edge.csv", MAPPING)
    load_batch(session, batch)
    session.commit()
    version = session.scalars(select(CaseVersion)).one()
    assert (version.case_key, version.report_id) == (case_id, report_id)
    assert session.scalar(select(func.count()).select_from(Drug).where(Drug.case_version_id == version.id)) == 1
    assert session.scalar(select(func.count()).select_from(Reaction)
                          .where(Reaction.case_version_id == version.id)) == 1


def _mutated(name: str, old: str, new: str) -> bytes:
    text = (E2B / name).read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new).encode()


def test_e2b_c11_of_100_characters_is_stored_whole_with_its_drugs_and_reactions(session: Session) -> None:
    long_id = "X" * 100
    c11 = 'root="2.16.840.1.113883.3.989.2.1.3.1" extension="{}"'
    batch = parse_e2b_bytes(_mutated("kymriah_initial.xml", c11.format(KYMRIAH), c11.format(long_id)),
                            "long_c11.xml")
    assert batch.quarantine.empty
    load_batch(session, batch)
    session.commit()
    version = session.scalars(select(CaseVersion)).one()
    assert version.report_id.startswith(long_id + "#") and len(version.report_id) == 115
    assert session.scalar(select(func.count()).select_from(Drug)) == len(batch.drugs) > 0
    assert session.scalar(select(func.count()).select_from(Reaction)) == len(batch.reactions) > 0


@pytest.mark.parametrize("oid, field", [("2.16.840.1.113883.3.989.2.1.3.2", "C.1.8.1"),
                                        ("2.16.840.1.113883.3.989.2.1.3.1", "C.1.1")])
def test_e2b_ids_over_100_characters_quarantine_the_icsr(oid: str, field: str) -> None:
    ident = f'root="{oid}" extension="{{}}"'
    batch = parse_e2b_bytes(_mutated("kymriah_initial.xml", ident.format(KYMRIAH), ident.format("Z" * 101)),
                            "long_id.xml")
    assert batch.versions.empty and batch.drugs.empty and batch.reactions.empty
    (row,) = batch.quarantine.to_dict("records")
    assert row["field"] == field and "of 101 characters" in row["reason"] and row["line"] > 1


REACTIONS = re.compile(r"<!-- E\.i reaction 1 -->.*?(?=<!-- G\.k drug information -->)", re.S)
DRUGS = re.compile(r"<!-- G\.k drug information -->\s*<subjectOf2.*?</organizer>\s*</subjectOf2>", re.S)


def test_e2b_follow_up_without_reactions_or_drugs_is_quarantined_and_the_case_keeps_its_version(
        session: Session) -> None:
    text = (E2B / "kymriah_followup.xml").read_text(encoding="utf-8")
    no_reactions, n = REACTIONS.subn("", text)
    assert n == 1
    no_drugs, n = DRUGS.subn("", text)
    assert n == 1
    load_batch(session, parse_e2b(E2B / "kymriah_initial.xml"))
    session.commit()
    initial = session.get(Case, KYMRIAH)
    assert initial is not None
    initial_version = initial.current_version_id
    for data, name, field in [(no_reactions, "no_reactions.xml", "E.i"), (no_drugs, "no_drugs.xml", "G.k")]:
        batch = parse_e2b_bytes(data.encode(), name)
        assert batch.versions.empty
        (row,) = batch.quarantine.to_dict("records")
        assert row["field"] == field and "quarantined" in row["reason"]
        summary = load_batch(session, batch)
        session.commit()
        assert (summary.versions_loaded, summary.rows_quarantined) == (0, 1)
    case = session.get(Case, KYMRIAH)
    assert case is not None and case.current_version_id == initial_version
    assert session.scalar(select(func.count()).select_from(Reaction)
                          .where(Reaction.case_version_id == initial_version)) > 0
    assert {q.field for q in session.scalars(select(Quarantine))} == {"E.i", "G.k"}


def test_the_store_quarantines_a_whole_report_with_an_overlong_id(session: Session) -> None:
    """The store's own guard, for any parser: the report goes whole, the others load."""
    long_key = "K" * (MAX_CASE_KEY + 1)
    keys = [long_key, long_key[:MAX_CASE_KEY]]
    batch = Batch(
        kind="csv", name="guard.csv", sha256="0" * 64,
        versions=pd.DataFrame({"case_key": keys, "report_id": ["r1", "r2"], "version": [1, 1],
                               "initial_or_followup": None, "received_date": None,
                               "initial_received_date": None, "event_date": None, "age_years": None,
                               "age_group": None, "sex": None, "weight_kg": None, "reporter_country": None,
                               "occurrence_country": None, "report_type": None, "outcomes": [[], []]}),
        drugs=pd.DataFrame({"case_key": keys, "report_id": ["r1", "r2"], "seq": [1, 1], "role": ["PS", "PS"],
                            "drugname": ["KYMRIAH", "KYMRIAH"], "active_ingredient": None, "route": None,
                            "dose_text": None, "start_date": None, "end_date": None}),
        reactions=pd.DataFrame({"case_key": keys, "report_id": ["r1", "r2"], "pt_verbatim": ["Pyrexia"] * 2,
                                "meddra_code": None, "outcome": None}),
    )
    kept, quarantine = without_overlong_ids(batch)
    assert kept.versions["case_key"].tolist() == [long_key[:MAX_CASE_KEY]]
    assert kept.drugs["case_key"].tolist() == [long_key[:MAX_CASE_KEY]]
    assert quarantine["field"].tolist() == ["case_key"]
    summary = load_batch(session, batch)
    session.commit()
    assert (summary.versions_loaded, summary.rows_quarantined) == (1, 1)
    (stored,) = session.scalars(select(CaseVersion)).all()
    assert stored.case_key == long_key[:MAX_CASE_KEY] and stored.report_id == "r2"
