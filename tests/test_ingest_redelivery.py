"""Deliveries that can be repaired (issue 14, point 2): a corrected redelivery of a quarter replaces what the
earlier delivery loaded (audited), a run with no case fails with a reason, and random corruptions of a real
quarter never stop a good file of the same call and are repaired by a later clean load."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from pv.analysis.runs import request_run
from pv.analysis.stages import EmptyRunError, execute_run
from pv.ingest.drop import file_failure
from pv.ingest.faers import parse_quarter
from pv.ingest.store import load_batch
from pv.models import Base
from pv.models.casestore import DeliveryReplacement, SourceFile
from tests.conftest import REAL_DATA
from tests.faers_fixtures import case, write_quarter

REAL_QUARTER = REAL_DATA / "faers_ascii_2017q2.zip"
OTHER_QUARTER = REAL_DATA / "aers_ascii_2004q1.zip"


def store_content(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """What the case store says, without ids: versions, drugs, reactions, current versions, deletions."""
    queries = {
        "versions": "SELECT case_key, report_id, version, received_date, precedence, source FROM case_versions",
        "drugs": "SELECT v.case_key, v.report_id, d.seq, d.role, d.drugname, d.product FROM drugs d "
                 "JOIN case_versions v ON v.id = d.case_version_id",
        "reactions": "SELECT v.case_key, v.report_id, r.pt FROM reactions r JOIN case_versions v "
                     "ON v.id = r.case_version_id",
        "indications": "SELECT v.case_key, v.report_id, i.term FROM indications i JOIN case_versions v "
                       "ON v.id = i.case_version_id",
        "cases": "SELECT c.case_key, v.report_id, c.version, c.latest_received_date, c.serious FROM cases c "
                 "JOIN case_versions v ON v.id = c.current_version_id",
        "deleted": "SELECT case_key FROM deleted_cases",
    }
    return {name: sorted(tuple(r) for r in session.execute(text(q))) for name, q in queries.items()}


def _load(session: Session, path: Path) -> Any:
    summary = load_batch(session, parse_quarter(path))
    session.commit()
    return summary


def _quarter(tmp_path: Path, name: str, cases: list[dict[str, object]], quarter: str = "23Q1",
             **kw: Any) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return write_quarter(folder, quarter, cases, **kw)


def test_a_corrected_redelivery_replaces_the_earlier_one_and_is_audited(session: Session,
                                                                         tmp_path: Path) -> None:
    first = _quarter(tmp_path, "first", [
        case(11, 1, 1, "20230110", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"]),
        case(12, 2, 1, "20230111", drugs=[("PS", "YESCARTA")], reactions=["Aphasia"]),
        case(13, 3, 1, "20230112", drugs=[("PS", "ABECMA")], reactions=["Neurotoxicity"]),
    ], raw={"REAC": b"primaryid$caseid$pt$drug_rec_act\n11$1$Pyrexia$\n12$2$Aphasia$\n13$3$Neurotoxicity$\n"
                    b"12$2$broken$line$with$fields\n"}, deleted=["99"])
    fixed = _quarter(tmp_path, "fixed", [
        case(11, 1, 1, "20230110", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia", "Cytokine release syndrome"]),
        case(12, 2, 1, "20230111", drugs=[("PS", "YESCARTA")], reactions=["Aphasia", "T-cell lymphoma"]),
        case(14, 4, 1, "20230113", drugs=[("PS", "CARVYKTI")], reactions=["Parkinsonism"]),
    ])
    later_zip = _quarter(tmp_path, "later", [
        case(21, 1, 2, "20230601", drugs=[("PS", "KYMRIAH")], reactions=["T-cell lymphoma"])], quarter="23Q2")
    _load(session, first)
    _load(session, later_zip)  # a follow-up of case 1 in another quarter
    first_file = session.scalars(select(SourceFile).where(SourceFile.name == str(first))).one()
    assert first_file.rows_quarantined == 1

    summary = _load(session, fixed)
    (replaced,) = summary.replaced
    assert {k: replaced[k] for k in ("quarter", "versions_before", "versions_now", "in_both", "changed",
                                     "unchanged", "only_before",
                                     "only_now", "reactions_before", "reactions_now", "rows_quarantined_before",
                                     "rows_quarantined_now", "deletions_withdrawn")} == {
        "quarter": "2023Q1", "versions_before": 3, "versions_now": 3, "in_both": 2, "changed": 2,
        "unchanged": 0, "only_before": 1,
        "only_now": 1, "reactions_before": 3, "reactions_now": 5, "rows_quarantined_before": 1,
        "rows_quarantined_now": 0, "deletions_withdrawn": 1}
    session.expire_all()
    assert session.get(SourceFile, first_file.id).replaced_by_id == summary.source_file_id  # type: ignore[union-attr]
    audit = session.scalars(select(DeliveryReplacement)).one()
    assert (audit.replaced_file_id, audit.by_file_id, audit.quarter) == (first_file.id, summary.source_file_id,
                                                                         "2023Q1")
    content = store_content(session)
    assert [r[0] for r in content["cases"]] == ["1", "2", "4"]  # case 3 was only in the faulty delivery
    assert ("1", "21", 2) == content["cases"][0][:3]  # the later quarter's follow-up stays current
    assert ("2", "12", "t-cell lymphoma") in content["reactions"]
    assert content["deleted"] == []  # the faulty delivery's DELETE list went with it

    # the same as a store that only ever saw the corrected file and the later quarter
    reference = _reference_content([fixed, later_zip])
    assert content == reference


def _reference_content(paths: list[Path]) -> dict[str, list[tuple[Any, ...]]]:
    """Load ``paths`` into a fresh SQLite store and return its content (the comparison is across backends:
    what the store says does not depend on it)."""
    import tempfile

    from pv import db

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ref.sqlite3'}"
        engine = db.get_engine(url)
        try:
            with sessionmaker(bind=engine)() as ref:
                for path in paths:
                    _load(ref, path)
                content = store_content(ref)
        finally:
            engine.dispose()
            db.dispose_engines()
    for name, rows in content.items():  # dates come back as text from SQLite
        content[name] = sorted(tuple(dt.date.fromisoformat(v) if isinstance(v, str) and len(v) == 10
                                     and v[4] == "-" else v for v in row) for row in rows)
    return content


def test_a_run_with_no_case_fails_with_the_reason(session: Session, tmp_path: Path) -> None:
    _load(session, _quarter(tmp_path, "q", [
        case(11, 1, 1, "20230110", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"])]))
    run, _ = request_run(session, dt.date(2022, 12, 31))
    with pytest.raises(EmptyRunError, match=r"no case to count as of 2022-12-31: of the 1 stored case versions, "
                                            r"1 were received after 2022-12-31 and 0 have no receipt date"):
        execute_run(session, run.id)


# ---------------------------------------------------------------------------------------- property test
MEMBERS = ["DEMO17Q2.txt", "DRUG17Q2.txt", "REAC17Q2.txt", "OUTC17Q2.txt", "THER17Q2.txt", "INDI17Q2.txt",
           "RPSR17Q2.txt"]


def _members() -> dict[str, bytes]:
    with zipfile.ZipFile(REAL_QUARTER) as z:
        return {info.filename: z.read(info) for info in z.infolist() if not info.is_dir()}


ORIGINAL = _members()


@st.composite
def corruptions(draw: st.DrawFn) -> dict[str, bytes | None]:
    """Damaged members of the real quarter: bytes flipped, a line range removed, truncated, garbage lines,
    a member dropped."""
    members: dict[str, bytes | None] = dict(ORIGINAL)
    for _ in range(draw(st.integers(1, 3))):
        name = "ascii/" + draw(st.sampled_from(MEMBERS))
        data = members[name]
        if data is None:
            continue
        how = draw(st.sampled_from(["flip", "cut_lines", "truncate", "garbage", "drop"]))
        if how == "flip":
            raw = bytearray(data)
            for _ in range(draw(st.integers(1, 20))):
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            members[name] = bytes(raw)
        elif how == "cut_lines":
            lines = data.split(b"\n")
            a = draw(st.integers(1, len(lines) - 1))
            b = draw(st.integers(a, min(len(lines), a + 30)))
            members[name] = b"\n".join(lines[:a] + lines[b:])
        elif how == "truncate":
            members[name] = data[:draw(st.integers(0, len(data)))]
        elif how == "garbage":
            members[name] = data + draw(st.binary(min_size=1, max_size=200))
        else:
            members[name] = None
    return members


def _zip(path: Path, members: dict[str, bytes | None]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if data is not None:
                z.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module")
def clean_content(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    folder = tmp_path_factory.mktemp("clean")
    return _reference_content([OTHER_QUARTER, _zip(folder / "faers_ascii_2017q2.zip", ORIGINAL)])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=corruptions())
def test_random_corruptions_never_stop_a_good_file_and_a_clean_load_repairs_them(
        pg_engine: Engine, tmp_path: Path, clean_content: dict[str, list[tuple[Any, ...]]],
        members: dict[str, bytes | None]) -> None:
    _empty(pg_engine)
    factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
    corrupt = _zip(tmp_path / "faers_ascii_2017q2_corrupt.zip", members)
    loaded = []
    for path in (corrupt, OTHER_QUARTER):  # one call, each file its own unit
        with factory() as session:
            try:
                _load(session, path)
                loaded.append(path)
            except Exception as exc:  # noqa: BLE001 - the file's own failure, as pv ingest tells it
                session.rollback()
                assert file_failure(exc) is not None, exc
    assert OTHER_QUARTER in loaded  # the good file always loads
    with factory() as session:
        _load(session, _zip(tmp_path / "faers_ascii_2017q2.zip", ORIGINAL))
        assert store_content(session) == clean_content
