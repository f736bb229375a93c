"""Brand names, codes and Chinese names name the same product in every command that takes one."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy.orm import Session

from pv.models import Case, CaseVersion, Drug, EventGroupTerm, Reaction, SourceFile
from tests.signals.test_cli import run

AXI = "axicabtagene ciloleucel"


def _onset_store(session: Session) -> None:
    """Axi-cel cases with CRS 1, 2, 4 and 9 days after infusion, and a Kymriah case (not counted)."""
    src = SourceFile(kind="faers", name="t", sha256="a" * 64)
    session.add(src)
    session.flush()
    for i, (product, days) in enumerate([(AXI, 1), (AXI, 2), (AXI, 4), (AXI, 9), ("tisagenlecleucel", 30)]):
        v = CaseVersion(case_key=f"C{i}", report_id=f"R{i}", source_file_id=src.id, source="faers",
                        event_date=dt.date(2023, 1, 1) + dt.timedelta(days=days))
        session.add(v)
        session.flush()
        session.add(Case(case_key=f"C{i}", current_version_id=v.id, version=1, source="faers"))
        session.add(Drug(case_version_id=v.id, role="PS", drugname="YESCARTA", product=product, drug_key=product,
                         start_date=dt.date(2023, 1, 1)))
        session.add(Reaction(case_version_id=v.id, pt_verbatim="Cytokine release syndrome",
                             pt="cytokine release syndrome"))
    session.add(EventGroupTerm(group_name="crs", pt="cytokine release syndrome"))
    session.commit()


def test_onset_by_brand_code_or_chinese_name(session: Session, pv_env: str, capsys) -> None:  # type: ignore[no-untyped-def]
    _onset_store(session)
    for name in (AXI, "Yescarta", "YESCARTA", "Yikaida", "奕凯达", "axi-cel", "KTE-C19"):
        code, out, err = run(capsys, "onset", "--product", name, "--event", "crs")
        assert code == 0, err
        res = json.loads(out)
        assert (res["product"], res["n"], res["median_days"]) == (AXI, 4, 3.0), name
    code, out, _ = run(capsys, "onset", "--product", "Carteyva", "--event", "crs")
    res = json.loads(out)
    assert code == 0 and (res["product"], res["n"]) == ("relmacabtagene autoleucel", 0)


def test_label_commands_take_brand_and_chinese_names(pv_env: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "labels", "list", "--product", "Carteyva", "--format", "json")
    entries = json.loads(out)
    assert code == 0 and entries and {e["product"] for e in entries} == {"relmacabtagene autoleucel"}
    assert {e["jurisdiction"] for e in entries} == {"NMPA"}
    assert json.loads(run(capsys, "labels", "list", "--product", "倍诺达", "--format", "json")[1]) == entries
    code, out, _ = run(capsys, "labels", "show", "Fucaso", "--as-of", "2023-12-31")
    assert code == 0 and "label of equecabtagene autoleucel in force at 2023-12-31" in out and "crs" in out
    code, out, _ = run(capsys, "labels", "show", "福可苏", "--as-of", "2023-06-29")
    assert code == 0 and out.strip().splitlines()[1:] == ["(none)"]  # approved by the NMPA on 2023-06-30
    code, out, err = run(capsys, "labels", "add", "Yikaida", "Hepatic failure", "--jurisdiction", "NMPA",
                         "--section", "warnings_and_precautions", "--effective", "2024-03-01", "--by", "li",
                         "--reason", "NMPA label revision")
    assert code == 0, err
    assert f"{AXI} NMPA warnings_and_precautions hepatic failure from 2024-03-01 (recorded by li)" in out
    code, out, _ = run(capsys, "labels", "list", "--product", "奕凯达", "--jurisdiction", "NMPA", "--format", "json")
    assert "hepatic failure" in {e["event"] for e in json.loads(out)}
