"""Cohort store and ingest (quarantine), `pv incidence` / `pv onset` CLIs, plots, simulated cohorts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pv.analysis.incidence import analyse, cohort_time_event
from pv.cli import app as pv_app
from pv.errors import InputError
from pv.ingest.cohort import CohortMapping, load_cohort, parse_cohort_csv
from pv.models import (
    Case,
    CaseVersion,
    CohortEvent,
    CohortPatient,
    Drug,
    EventGroupTerm,
    Quarantine,
    Reaction,
    SourceFile,
)
from pv.normalise import EventGroups, ProductDictionary
from pv.report.incidence_plots import plot_cumulative_incidence
from pv.simulate.cohort import simulate_cohort as simulate
from pv.stats.cuminc import CumulativeIncidence
from tests.conftest import REPO

HERE = Path(__file__).resolve().parent
runner = CliRunner()
GROUPS = EventGroups.load(REPO / "config" / "event_groups.yaml")
PRODUCTS = ProductDictionary.load(REPO / "config" / "products.yaml")
MAPPING = CohortMapping.load(REPO / "config" / "mappings" / "cohort.yaml", GROUPS)

HEADER = (
    "patient_id,product,disease,infusion_date,age,sex,hbv_status,prior_lines,death_date,"
    "last_followup_date,crs_date,icans_date,hbv_reactivation_date,t_cell_malignancy_date,"
    "myeloid_malignancy_date,other_malignancy_date"
)
ROWS = [
    # good: SMN (other) at day 366, then death
    "P1,Yescarta,LBCL,2020-01-01,60,M,negative,3,2021-06-30,2021-06-30,2020-01-03,,,,,2021-01-01",
    # good: died without malignancy on day 181
    "P2,Carvykti,MM,2020-01-01,70,F,resolved,4,2020-06-30,2020-06-30,2020-01-02,,2020-03-01,,,",
    # good: censored alive at 2 years, myeloid malignancy on the day of the last follow-up
    "P3,KYMRIAH,LBCL,2020-01-01,55,female,negative,2,,2021-12-31,,,,,2021-12-31,",
    # bad: infusion date not a date
    "P4,Yescarta,LBCL,2020-13-01,60,M,negative,3,,2021-01-01,,,,,,",
    # bad: malignancy after death
    "P5,Yescarta,LBCL,2020-01-01,60,M,negative,3,2020-05-01,2020-05-01,,,,,,2020-06-01",
    # bad: repeated patient id
    "P1,Yescarta,LBCL,2020-01-01,60,M,negative,3,,2021-01-01,,,,,,",
    # bad: no end of follow-up
    "P6,Yescarta,LBCL,2020-01-01,60,M,negative,3,,,,,,,,",
    # bad: sex
    "P7,Yescarta,LBCL,2020-01-01,60,X,negative,3,,2021-01-01,,,,,,",
    # good: unmapped product kept verbatim, T-cell malignancy day 90, alive
    "P8,Experimental CAR-T 42,B-ALL,2021-01-01,,,,,,2022-01-01,,,,2021-04-01,,",
]


@pytest.fixture
def cohort_csv(tmp_path: Path) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return path


def test_parse_quarantines_bad_rows_and_keeps_good_ones(cohort_csv: Path) -> None:
    parsed = parse_cohort_csv(cohort_csv, MAPPING, PRODUCTS)
    assert parsed.rows_read == 9
    assert [p["patient_id"] for p in parsed.patients] == ["P1", "P2", "P3", "P8"]
    q = {(r["line"], r["field"]): r["reason"] for r in parsed.quarantine}
    assert "not a date" in q[(5, "infusion_date")]
    assert "after the death date" in q[(6, "other_malignancy_date")]
    assert "repeated" in q[(7, "patient_id")]
    assert "no end of follow-up" in q[(8, "last_followup_date")]
    assert "unknown sex" in q[(9, "sex")]
    assert all(r["file"] == "cohort.csv" for r in parsed.quarantine)
    p1 = parsed.patients[0]
    assert p1["product"] == "axicabtagene ciloleucel" and p1["sex"] == "M" and p1["prior_lines"] == 3
    assert parsed.patients[2]["sex"] == "F" and parsed.patients[2]["product"] == "tisagenlecleucel"
    assert parsed.patients[3]["product"] is None
    assert parsed.patients[3]["product_verbatim"] == "Experimental CAR-T 42"


def test_load_into_postgres_replaces_and_skips_reloads(session, cohort_csv: Path) -> None:  # type: ignore[no-untyped-def]
    src, loaded = load_cohort(session, parse_cohort_csv(cohort_csv, MAPPING, PRODUCTS))
    session.commit()
    assert loaded and src.kind == "cohort" and src.cases_added == 4 and src.rows_quarantined == 5
    assert session.scalar(select(func.count()).select_from(CohortPatient)) == 4
    assert session.scalar(select(func.count()).select_from(Quarantine)) == 5
    types = sorted(session.scalars(select(CohortEvent.event_type)))
    assert types == [
        "crs",
        "crs",
        "hbv_reactivation",
        "malignancy_myeloid",
        "malignancy_other",
        "malignancy_t_cell",
    ]
    again, loaded_again = load_cohort(session, parse_cohort_csv(cohort_csv, MAPPING, PRODUCTS))
    assert not loaded_again and again.id == src.id
    # a newer file with P1 changed replaces P1 and its events
    newer = cohort_csv.with_name("cohort2.csv")
    newer.write_text(HEADER + "\nP1,Yescarta,LBCL,2020-01-01,61,M,negative,3,,2022-01-01,,,,,,\n")
    src2, _ = load_cohort(session, parse_cohort_csv(newer, MAPPING, PRODUCTS))
    session.commit()
    assert src2.cases_updated == 1 and src2.cases_added == 0
    p1 = session.scalar(select(CohortPatient).where(CohortPatient.patient_id == "P1"))
    assert p1 is not None and p1.age_years == 61 and p1.events == []
    assert session.scalar(select(func.count()).select_from(CohortPatient)) == 4


def test_cohort_time_event_competing_death(session, cohort_csv: Path) -> None:  # type: ignore[no-untyped-def]
    load_cohort(session, parse_cohort_csv(cohort_csv, MAPPING, PRODUCTS))
    session.commit()
    frame = cohort_time_event(session, "secondary_malignancy", GROUPS, unit="days").set_index("patient_id")
    assert frame.loc["P1", "event"] == "secondary_malignancy" and frame.loc["P1", "time"] == 366
    assert frame.loc["P2", "event"] == "death" and frame.loc["P2", "time"] == 181
    assert frame.loc["P3", "event"] == "secondary_malignancy" and frame.loc["P3", "time"] == 730
    assert frame.loc["P8", "event"] == "secondary_malignancy" and frame.loc["P8", "time"] == 90
    tcell = cohort_time_event(session, "malignancy_t_cell", GROUPS, unit="days").set_index("patient_id")
    assert tcell.loc["P1", "event"] == "death" and tcell.loc["P1", "time"] == 546
    assert tcell.loc["P3", "event"] == "censored" and tcell.loc["P3", "time"] == 730
    assert tcell.loc["P8", "event"] == "malignancy_t_cell"


def test_cli_simulate_ingest_and_cohort_incidence(pv_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = pv_app
    out = tmp_path / "sim.csv"
    r = runner.invoke(app, ["simulate", "cohort", "--patients", "600", "--seed", "11", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["ingest", "cohort", str(out), "--mapping", str(REPO / "config/mappings/cohort.yaml")]
    )
    assert r.exit_code == 0, r.output
    assert "600 patients loaded (600 new, 0 replaced), 0 quarantined" in r.output
    plot = tmp_path / "cif.svg"
    r = runner.invoke(
        app,
        [
            "incidence",
            "--cohort",
            "--event",
            "secondary_malignancy",
            "--by",
            "product",
            "--times",
            "1,2,5",
            "--covariates",
            "age_years,sex",
            "--plot",
            str(plot),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert set(res) == {"n", "n_excluded_missing_group", "counts", "groups", "gray_test", "fine_gray", "notes"}
    assert len(res["groups"]) == 6
    for events in res["groups"].values():
        assert list(events) == ["secondary_malignancy"]
        pts = events["secondary_malignancy"]
        assert [p["time"] for p in pts] == [1.0, 2.0, 5.0]
        assert set(pts[0]) == {"time", "estimate", "variance", "lower", "upper"}
    assert res["gray_test"]["secondary_malignancy"]["df"] == 5
    assert res["n"] == 600 and res["n_excluded_missing_group"] == 0 and res["notes"] == []
    assert sum(c["n"] for c in res["counts"].values()) == 600
    assert res["gray_test"]["secondary_malignancy"]["reason"] is None
    fine_gray = res["fine_gray"]
    assert (fine_gray["event"], fine_gray["n"], fine_gray["n_missing"]) == ("secondary_malignancy", 600, 0)
    assert [f["covariate"] for f in fine_gray["coefficients"]] == ["age_years", "sex=M"]
    assert set(fine_gray["coefficients"][0]) == {"covariate", "coef", "se", "hr", "hr_lower", "hr_upper", "p_value"}
    assert plot.read_text().lstrip().startswith("<?xml")
    # the same numbers as the estimator on the extract
    from pv.db import session_scope

    with session_scope(pv_env) as s:
        frame = cohort_time_event(s, "secondary_malignancy", GROUPS)
    ci = CumulativeIncidence(censored="censored").fit(
        frame.time, frame.event, frame["product"], events=["secondary_malignancy"]
    )
    p = ci.predict([5.0])
    axi = p[p.group == "axicabtagene ciloleucel"].estimate.iloc[0]
    assert res["groups"]["axicabtagene ciloleucel"]["secondary_malignancy"][2]["estimate"] == pytest.approx(
        axi
    )


def test_cli_cohort_incidence_excludes_patients_without_a_group_value(session, pv_env, cohort_csv: Path) -> None:  # type: ignore[no-untyped-def]
    load_cohort(session, parse_cohort_csv(cohort_csv, MAPPING, PRODUCTS))
    session.commit()
    argv = ["incidence", "--cohort", "--event", "secondary_malignancy", "--by", "sex", "--unit", "days"]
    r = runner.invoke(pv_app, argv)
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    # P8 has no recorded sex: left out, not a group "nan" or "None"
    assert res["n"] == 3 and res["n_excluded_missing_group"] == 1
    assert list(res["groups"]) == ["F", "M"]
    # F: P2 dies on day 181 (S = 1/2), P3's malignancy on day 730 (F = 1/2); M: P1's on day 366
    assert [p["estimate"] for p in res["groups"]["F"]["secondary_malignancy"]] == [0.0, 0.5]
    assert [p["estimate"] for p in res["groups"]["M"]["secondary_malignancy"]] == [0.0, 1.0]
    r = runner.invoke(pv_app, [*argv, "--format", "table"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "3 rows analysed; 1 row excluded: no value in column 'sex'"


def test_cli_incidence_on_a_file_matches_cmprsk(tmp_path: Path) -> None:
    ref = pd.read_csv(HERE / "reference" / "cmprsk" / "cuminc_timepoints.csv")
    ref = ref[(ref.dataset == "mgus2") & (ref.grouping == "sex") & (ref.cause == 1)]
    gray = pd.read_csv(HERE / "reference" / "cmprsk" / "gray_tests.csv")
    gray = gray[(gray.dataset == "mgus2") & (gray.grouping == "sex") & (gray.cause == 1)].iloc[0]
    plot = tmp_path / "mgus2.png"
    r = runner.invoke(
        pv_app,
        [
            "incidence",
            str(HERE / "data" / "mgus2.csv"),
            "--time",
            "etime",
            "--event",
            "event",
            "--event-of-interest",
            "1",
            "--competing",
            "2",
            "--censored",
            "0",
            "--group",
            "sex",
            "--times",
            "12,60,120,240,360",
            "--plot",
            str(plot),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert set(res) == {"n", "n_excluded_missing_group", "counts", "groups", "gray_test", "notes"}
    for sex in ("F", "M"):
        got = res["groups"][sex]["1"]
        want = ref[ref.group == sex].sort_values("time")
        np.testing.assert_allclose([p["estimate"] for p in got], want.est, atol=1e-6)
        np.testing.assert_allclose([p["variance"] for p in got], want["var"], rtol=1e-4)
        assert all(p["lower"] < p["estimate"] < p["upper"] for p in got)
    assert res["gray_test"]["1"]["statistic"] == pytest.approx(gray.stat, rel=1e-4)
    assert res["gray_test"]["1"]["p_value"] == pytest.approx(gray.pv, rel=1e-4)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_incidence_single_group_table_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("t,status\n1,relapse\n1,death\n2,censored\n3,relapse\n")
    r = runner.invoke(
        pv_app,
        [
            "incidence",
            str(data),
            "--time",
            "t",
            "--event",
            "status",
            "--censored",
            "censored",
            "--format",
            "json",
        ],
    )
    res = json.loads(r.output)
    assert list(res["groups"]) == ["all"] and set(res["groups"]["all"]) == {"death", "relapse"}
    assert res["gray_test"] == {}
    assert [p["estimate"] for p in res["groups"]["all"]["relapse"]] == [0.0, 0.25, 0.75]
    r = runner.invoke(
        pv_app,
        [
            "incidence",
            str(data),
            "--time",
            "t",
            "--event",
            "status",
            "--censored",
            "censored",
            "--format",
            "table",
        ],
    )
    assert r.exit_code == 0 and "group all - event relapse" in r.output
    with pytest.raises(InputError, match="event value.s. progression are neither the event of interest"):
        analyse(
            pd.read_csv(data, dtype=str).assign(status=["relapse", "death", "censored", "progression"]),
            "t",
            "status",
            event_of_interest="relapse",
            competing=["death"],
            censored="censored",
        )
    with pytest.raises(InputError, match="no column 'nope'"):
        analyse(pd.read_csv(data, dtype=str), "nope", "status")


def test_plot_rejects_other_formats(tmp_path: Path) -> None:
    ci = CumulativeIncidence().fit([1, 2, 3], [1, 2, 0])
    with pytest.raises(InputError, match=".png or .svg"):
        plot_cumulative_incidence(ci, tmp_path / "x.pdf")


def test_simulated_cohort_has_car_t_like_figures() -> None:
    frame = simulate(6000, seed=5)
    assert frame.equals(simulate(6000, seed=5))
    assert not frame.equals(simulate(6000, seed=6))
    inf = pd.to_datetime(frame.infusion_date)
    assert inf.min() >= pd.Timestamp("2018-01-01") and inf.max() <= pd.Timestamp("2023-06-30")
    death = pd.to_datetime(frame.death_date)
    last = pd.to_datetime(frame.last_followup_date)

    def cif5(col: str) -> float:
        ev = pd.to_datetime(frame[col])
        end = ev.fillna(death).fillna(last)
        kind = np.where(ev.notna(), "e", np.where(death.notna(), "d", "c"))
        ci = CumulativeIncidence(censored="c").fit((end - inf).dt.days / 365.25, kind, events=["e", "d"])
        p = ci.predict([5.0])
        return float(p[p.event == "e"].estimate.iloc[0])

    assert 0.11 < cif5("other_malignancy_date") < 0.19
    assert 0.015 < cif5("myeloid_malignancy_date") < 0.05
    assert cif5("t_cell_malignancy_date") < 0.01
    assert cif5("crs_date") > 0.6
    follow = (last - inf).dt.days / 365.25
    assert 1.5 < follow.median() < 4
    assert death.notna().mean() > 0.3  # death is a large competing risk
    # HBV reactivation only with chronic or resolved infection
    assert (frame.loc[frame.hbv_reactivation_date.notna(), "hbv_status"] != "negative").all()


def test_onset_cli_on_the_case_store(session, pv_env) -> None:  # type: ignore[no-untyped-def]
    src = SourceFile(kind="faers", name="t", sha256="x" * 64)
    session.add(src)
    session.flush()
    onsets = [1, 2, 2, 3, 5, 8, 13]
    for i, days in enumerate([*onsets, None]):
        v = CaseVersion(
            case_key=f"C{i}",
            report_id=f"R{i}",
            source_file_id=src.id,
            source="faers",
            event_date=dt.date(2023, 1, 1) + dt.timedelta(days=days) if days is not None else None,
        )
        session.add(v)
        session.flush()
        session.add(Case(case_key=f"C{i}", current_version_id=v.id, version=1, source="faers"))
        session.add(
            Drug(
                case_version_id=v.id,
                role="PS",
                drugname="YESCARTA",
                product="axicabtagene ciloleucel",
                drug_key="axicabtagene ciloleucel",
                start_date=dt.date(2023, 1, 1),
            )
        )
        session.add(
            Reaction(
                case_version_id=v.id, pt_verbatim="Cytokine release syndrome", pt="cytokine release syndrome"
            )
        )
    # a case with another product and a case with another event are not counted
    v = CaseVersion(
        case_key="X", report_id="X", source_file_id=src.id, source="faers", event_date=dt.date(2023, 2, 1)
    )
    session.add(v)
    session.flush()
    session.add(Case(case_key="X", current_version_id=v.id, version=1, source="faers"))
    session.add(
        Drug(
            case_version_id=v.id,
            role="PS",
            drugname="KYMRIAH",
            product="tisagenlecleucel",
            drug_key="tisagenlecleucel",
            start_date=dt.date(2023, 1, 1),
        )
    )
    session.add(
        Reaction(
            case_version_id=v.id, pt_verbatim="Cytokine release syndrome", pt="cytokine release syndrome"
        )
    )
    session.add(EventGroupTerm(group_name="crs", pt="cytokine release syndrome"))
    session.commit()
    r = runner.invoke(pv_app, ["onset", "--product", "axicabtagene ciloleucel", "--event", "crs"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["n"] == 7 and res["n_excluded"] == 1
    assert res["median_days"] == 3.0
    assert res["q1_days"] == 2.0 and res["q3_days"] == 6.5
    assert res["weibull_shape"] is not None and res["shape_lower"] < res["weibull_shape"] < res["shape_upper"]
