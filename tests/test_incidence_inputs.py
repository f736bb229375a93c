"""`pv incidence` on small CSV files, end to end: inputs that must never give a silently wrong answer.

Event codes spelt as numbers or text, codes that do not occur, missing group values, constant or collinear
covariates, rows dropped for missing covariates, undefined Gray tests and files without events. The expected
curves are worked by hand in the comments.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pv.analysis.incidence import analyse, cohort_codes
from pv.cli import main
from pv.cli.cohort import _emit
from pv.errors import InputError

# 6 subjects: t=1 event 1 (6 at risk: F1 = 1/6, S = 5/6), t=2 censored, t=3 event 2 (4 at risk: S = 5/8),
# t=4 event 1 (3 at risk: F1 = 1/6 + 5/8 * 1/3 = 3/8, S = 5/12), t=5 censored, t=6 event 1 (F1 = 3/8 + 5/12)
TIMES = [1, 2, 3, 4, 5, 6]
CODES = [1, 0, 2, 1, 0, 1]
F1 = [0.0, 1 / 6, 3 / 8, 19 / 24]
F2 = [0.0, 5 / 6 * 1 / 4]  # t=3: S(3-) = 5/6, 1 of 4 at risk


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(["incidence", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def csv(tmp_path: Path, rows: list[str], header: str = "t,status", name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def numbered(tmp_path: Path, spell: str = "{}") -> Path:
    return csv(tmp_path, [f"{t},{spell.format(c)}" for t, c in zip(TIMES, CODES, strict=True)])


def estimates(result: dict, event: str, group: str = "all") -> list[float | None]:
    return [p["estimate"] for p in result["groups"][group][event]]


# --- event codes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spell,options", [
    ("{}", ["--event-of-interest", "1.0", "--competing", "2.0", "--censored", "0.0"]),
    ("{}.0", ["--event-of-interest", "1", "--competing", "2"]),
    ("{}.0", ["--event-of-interest", "1.0", "--competing", "2", "--censored", "0.00"]),
    (" {} ", ["--event-of-interest", "01", "--competing", "2"]),
], ids=["int-file-float-options", "float-file-int-options", "float-file-float-options", "padded-file"])
def test_numeric_codes_are_compared_as_numbers(capsys, tmp_path: Path, spell: str, options: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, str(numbered(tmp_path, spell)), "--time", "t", "--event", "status", *options)
    assert code == 0, err
    res = json.loads(out)
    assert list(res["groups"]["all"]) == ["1"]
    assert estimates(res, "1") == pytest.approx(F1)


def test_float_coded_censoring_is_not_an_event(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # 0.0 is the default censored code 0: only events 1 and 2 get curves
    code, out, err = run(capsys, str(numbered(tmp_path, "{}.0")), "--time", "t", "--event", "status")
    assert code == 0, err
    res = json.loads(out)
    assert list(res["groups"]["all"]) == ["1", "2"]
    assert estimates(res, "1") == pytest.approx(F1)
    assert estimates(res, "2") == pytest.approx(F2)


def test_text_codes_are_compared_exactly_and_an_absent_code_is_refused(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = csv(tmp_path, ["1,CRS", "2,censored", "3,death", "4,CRS"])
    code, out, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "crs",
                         "--censored", "censored")
    assert code == 1 and out == ""
    assert err.strip() == (
        "pv: error: field 'event_of_interest': event of interest 'crs' does not occur in column 'status' "
        "(codes are compared exactly, case included: did you mean 'CRS'?); its codes are CRS (2 rows), "
        "censored (1 row), death (1 row)")
    # the right spelling: t=1 4 at risk F = 1/4; t=3 death (S = 3/4 * 1/2); t=4 F = 1/4 + 3/8
    code, out, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "CRS",
                         "--censored", "censored")
    assert code == 0, err
    assert estimates(json.loads(out), "CRS") == pytest.approx([0, 1 / 4, 5 / 8])


@pytest.mark.parametrize("options,field,message", [
    (["--event-of-interest", "3"], "event_of_interest", "event of interest '3' does not occur"),
    (["--event-of-interest", "1", "--competing", "9"], "competing", "competing event '9' does not occur"),
    (["--censored", "-1"], "censored", "censored code '-1' does not occur"),
    (["--censored", "censored"], "censored", "censored code 'censored' does not occur"),
    (["--event-of-interest", "1", "--censored", "1.0"], "event_of_interest",
     "event of interest '1' is also named censored"),
    (["--event-of-interest", "1", "--competing", "1.0"], "event_of_interest",
     "event of interest '1' is also named competing"),
], ids=["interest", "competing", "censored", "censored-text", "interest-is-censored", "interest-is-competing"])
def test_codes_that_do_not_occur_or_clash_are_refused(capsys, tmp_path: Path, options: list[str], field: str,  # type: ignore[no-untyped-def]
                                                      message: str) -> None:
    code, out, err = run(capsys, str(numbered(tmp_path)), "--time", "t", "--event", "status", *options)
    assert code == 1 and out == ""
    assert err.startswith(f"pv: error: field {field!r}: {message}")
    if "does not occur" in message:
        assert err.strip().endswith("its codes are 0 (2 rows), 1 (3 rows), 2 (1 row)")


def test_forgetting_the_censored_code_of_a_text_file_is_refused(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # without --censored the default 0 would make every "alive" row an event of type "alive"
    data = csv(tmp_path, ["1,relapse", "2,alive", "3,death", "4,alive"])
    code, _, err = run(capsys, str(data), "--time", "t", "--event", "status")
    assert code == 1
    assert err.strip() == ("pv: error: field 'censored': censored code '0' does not occur in column 'status'; "
                           "its codes are alive (2 rows), death (1 row), relapse (1 row)")


def test_complete_follow_up_needs_every_code_named(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # no censoring at all: every code is named, so the absent censored code 0 is not a mistake
    data = csv(tmp_path, ["1,1", "2,2", "2,2", "3,1"])
    code, _, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1")
    assert code == 1 and "censored code '0' does not occur" in err
    code, out, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1",
                         "--competing", "2")
    assert code == 0, err
    # t=1: F = 1/4, S = 3/4; t=2: two competing, S = 3/4 * 1/3 = 1/4; t=3: 1 at risk, F = 1/4 + 1/4
    assert estimates(json.loads(out), "1") == pytest.approx([0, 0.25, 0.5])


def test_an_all_censored_file_says_there_are_no_events(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = csv(tmp_path, ["1,0", "2,0", "3,0"])
    code, _, err = run(capsys, str(data), "--time", "t", "--event", "status")
    assert code == 1
    assert err.strip() == "pv: error: field 'status': no events: every row of column 'status' has the censored code 0"
    code, _, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1")
    assert code == 1
    assert "event of interest '1' does not occur in column 'status'; its codes are 0 (3 rows)" in err


def test_known_codes_allow_a_correct_zero_curve_and_say_so() -> None:
    # a cohort extract in which nobody had the event: a flat zero curve, and a note that says why
    frame = pd.DataFrame({"time": [1.0, 2.0, 3.0], "event": ["death", "censored", "censored"]})
    with pytest.raises(InputError, match="event of interest 'crs' does not occur"):
        analyse(frame, "time", "event", event_of_interest="crs", competing=["death"], censored="censored")
    res = analyse(frame, "time", "event", event_of_interest="crs", competing=["death"], censored="censored",
                  known_codes=cohort_codes("crs"), times=[0.5, 3, 4]).result
    assert estimates(res, "crs") == [0.0, 0.0, None]
    assert res["notes"] == ["no events of interest (crs) in the data: the cumulative incidence is 0 throughout "
                            "follow-up"]
    # no death and no censoring either: still fine with known codes
    only = pd.DataFrame({"time": [1.0, 2.0], "event": ["crs", "crs"]})
    res = analyse(only, "time", "event", event_of_interest="crs", competing=["death"], censored="censored",
                  known_codes=cohort_codes("crs")).result
    assert estimates(res, "crs") == [0.0, 0.5, 1.0] and res["notes"] == []


# --- missing group values ----------------------------------------------------------------------------------

GROUPED = ["1,1,A", "2,0,A", "3,2,B", "4,1,B", "5,0,", "6,1,A", "7,1,B", "8,2,"]


def test_rows_without_a_group_are_excluded_and_counted(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = csv(tmp_path, GROUPED, header="t,status,g")
    code, out, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1",
                         "--group", "g")
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 6 and res["n_excluded_missing_group"] == 2
    assert list(res["groups"]) == ["A", "B"]  # no group "nan"
    # A: t=1 (3 at risk) F = 1/3, t=2 censored, t=6 (1 at risk) F = 1/3 + 2/3; B: t=3 competing (3 at risk,
    # S = 2/3), t=4 F = 2/3 * 1/2 = 1/3, t=7 F = 1/3 + 1/3
    assert estimates(res, "1", "A") == pytest.approx([0, 1 / 3, 1])
    assert estimates(res, "1", "B") == pytest.approx([0, 1 / 3, 2 / 3])
    # Gray's test compares A and B only: the same as on the file without the two rows
    complete = csv(tmp_path, [r for r in GROUPED if not r.endswith(",")], header="t,status,g", name="c.csv")
    code, out, _ = run(capsys, str(complete), "--time", "t", "--event", "status", "--event-of-interest", "1",
                       "--group", "g")
    want = json.loads(out)
    assert want["n_excluded_missing_group"] == 0 and want["n"] == 6
    assert res["gray_test"] == want["gray_test"] and res["gray_test"]["1"]["df"] == 1
    assert res["groups"] == want["groups"]
    code, out, _ = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1",
                       "--group", "g", "--format", "table")
    assert code == 0
    assert out.splitlines()[0] == "6 rows analysed; 2 rows excluded: no value in column 'g'"
    assert "group nan" not in out


def test_analyse_excludes_none_nan_and_blank_groups() -> None:
    frame = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6], "e": [1, 0, 0, 1, 0, 1],
                          "g": ["A", None, "B", "  ", np.nan, "A"]})
    res = analyse(frame, "t", "e", censored=0, group="g").result
    assert res["n"] == 3 and res["n_excluded_missing_group"] == 3
    assert list(res["groups"]) == ["A", "B"]
    with pytest.raises(InputError, match="no row has a value in column 'g'") as err:
        analyse(frame.assign(g=None), "t", "e", censored=0, group="g")
    assert err.value.field == "g"
    # a whole-number group column with missing values (read as floats) keeps its labels as 1, 2
    numeric = analyse(frame.assign(g=[1, np.nan, 2, 2, np.nan, 1]), "t", "e", censored=0, group="g").result
    assert list(numeric["groups"]) == ["1", "2"] and numeric["n_excluded_missing_group"] == 2
    assert analyse(frame, "t", "e", censored=0).result["n_excluded_missing_group"] == 0


def test_codes_must_occur_among_the_rows_with_a_group(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the only competing event (2) is in a row without a group
    data = csv(tmp_path, ["1,1,A", "2,0,B", "3,2,", "4,1,B"], header="t,status,g")
    code, _, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1",
                       "--competing", "2", "--group", "g")
    assert code == 1
    assert err.strip() == ("pv: error: field 'competing': competing event '2' does not occur in column 'status' "
                           "among the 3 rows with a value in column 'g'; its codes are 0 (1 row), 1 (2 rows)")


# --- Fine-Gray covariates ----------------------------------------------------------------------------------

FG_ROWS = [  # t, status, x, dose, sex, arm
    "1,1,0.5,5,M,1", "2,2,1.2,5,M,0", "3,0,-0.3,5,F,0", "4,1,0.8,5,F,1", "5,1,2.0,5,M,1", "6,0,-1.1,5,F,0",
    "7,2,0.0,5,M,0", "8,1,1.5,5,F,1", "9,0,0.7,5,M,0", "10,1,-0.4,5,F,1", "11,2,0.9,5,M,1", "12,0,0.1,5,F,0",
]


@pytest.mark.parametrize("covariates,message", [
    ("x,dose", "covariate dose is constant (5 in every row used): it has no hazard ratio; leave it out"),
    ("dose", "covariate dose is constant (5 in every row used)"),
    ("x,sex,male", "covariates sex=M, male are collinear: male = sex=M; a hazard ratio for each cannot be "
                   "estimated, leave one of them out"),
    ("x,country", "covariate country is constant (FR in every row with a value): it has no hazard ratio; "
                  "leave it out"),
    ("x,arm", "the Fine-Gray estimate for arm goes to infinity"),
], ids=["constant", "constant-alone", "collinear", "one-level-text", "separation"])
def test_fine_gray_covariates_without_a_hazard_ratio_are_named(capsys, tmp_path: Path, covariates: str,  # type: ignore[no-untyped-def]
                                                               message: str) -> None:
    rows = [f"{r},{int(r.split(',')[4] == 'M')},FR" for r in FG_ROWS]
    data = csv(tmp_path, rows, header="t,status,x,dose,sex,arm,male,country")
    code, out, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1",
                         "--covariates", covariates)
    assert code == 1 and out == ""
    assert err.startswith(f"pv: error: field 'covariates': {message}")


def test_rows_dropped_for_missing_covariates_are_reported(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [r if i not in (2, 5) else ",".join(r.split(",")[:2] + [""] + r.split(",")[3:])
            for i, r in enumerate(FG_ROWS)]
    data = csv(tmp_path, rows, header="t,status,x,dose,sex,arm")
    argv = [str(data), "--time", "t", "--event", "status", "--event-of-interest", "1", "--covariates", "x,sex"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    res = json.loads(out)
    fine_gray = res["fine_gray"]
    assert (fine_gray["event"], fine_gray["n"], fine_gray["n_missing"]) == ("1", 10, 2)
    assert [c["covariate"] for c in fine_gray["coefficients"]] == ["x", "sex=M"]
    # the same model as on the file without the two rows
    complete = csv(tmp_path, [r for i, r in enumerate(FG_ROWS) if i not in (2, 5)],
                   header="t,status,x,dose,sex,arm", name="complete.csv")
    code, out, _ = run(capsys, str(complete), *argv[1:])
    want = json.loads(out)["fine_gray"]
    assert want["n_missing"] == 0 and want["coefficients"] == fine_gray["coefficients"]
    # the curves use every row
    assert res["n"] == 12
    code, out, _ = run(capsys, *argv, "--format", "table")
    assert code == 0
    assert "Fine-Gray subdistribution hazard ratios, event 1: 10 rows (2 dropped for a missing covariate)" in out


# --- Gray's test that cannot be computed, and notes ---------------------------------------------------------


@pytest.mark.parametrize("rows,reason", [
    (["1,1,A", "2,0,A", "3,1,A", "4,0,"], "one group only"),
    # B's subjects are censored before the first event
    (["1,1,A", "2,0,A", "3,1,A", "0.5,0,B", "0.6,0,B"],
     "group B has no subject at risk at the times of events of type 1"),
], ids=["one-group", "group-not-at-risk"])
def test_gray_test_that_cannot_be_computed_says_why(capsys, tmp_path: Path, rows: list[str], reason: str) -> None:  # type: ignore[no-untyped-def]
    data = csv(tmp_path, rows, header="t,status,g")
    argv = [str(data), "--time", "t", "--event", "status", "--group", "g"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    test = json.loads(out)["gray_test"]["1"]
    assert test["statistic"] is None and test["p_value"] is None and test["reason"] == reason
    code, out, err = run(capsys, *argv, "--format", "table")
    assert code == 0, err
    assert f"Gray's test, event 1: not computable ({reason})" in out.splitlines()


def test_gray_test_that_can_be_computed_has_no_reason(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = csv(tmp_path, GROUPED, header="t,status,g")
    code, out, _ = run(capsys, str(data), "--time", "t", "--event", "status", "--group", "g", "--format", "table")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("Gray's test")]
    assert len(lines) == 2 and all(", df 1, p = " in line for line in lines)
    code, out, _ = run(capsys, str(data), "--time", "t", "--event", "status", "--group", "g")
    assert {t["reason"] for t in json.loads(out)["gray_test"].values()} == {None}


def test_counts_per_group_and_notes_in_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"time": [1.0, 2.0, 3.0, 4.0], "event": ["death", "censored", "censored", "death"],
                          "arm": ["a", "a", "b", "b"]})
    res = analyse(frame, "time", "event", event_of_interest="crs", competing=["death"], censored="censored",
                  known_codes=cohort_codes("crs"), group="arm").result
    assert res["counts"] == {"a": {"n": 2, "events": {"death": 1}, "censored": 1},
                             "b": {"n": 2, "events": {"death": 1}, "censored": 1}}
    assert res["gray_test"]["crs"] == {"statistic": None, "df": 1, "p_value": None,
                                       "reason": "no events of type 'crs'"}
    _emit(res, "table", "arm")  # the table as `pv incidence --cohort --event crs --by arm` prints it
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "4 rows analysed"
    assert "group a - event crs: 2 rows, 0 events of crs, 1 competing, 1 censored" in lines
    assert "Gray's test, event crs: not computable (no events of type 'crs')" in lines
    assert lines[-1] == ("note: no events of interest (crs) in the data: the cumulative incidence is 0 throughout "
                         "follow-up")


# --- properties --------------------------------------------------------------------------------------------

ROWS = st.lists(st.tuples(st.integers(0, 10), st.sampled_from([0, 1, 2]), st.sampled_from(["a", "b", None])),
                min_size=1, max_size=40)


def _frame(rows: list[tuple[int, int, str | None]]) -> pd.DataFrame:
    # one censored row and one event of each type in each group, so that every code occurs
    fixed = [(5, 0, "a"), (3, 1, "a"), (7, 2, "b"), (2, 1, "b")]
    return pd.DataFrame(fixed + rows, columns=["t", "e", "g"])


SPELLINGS = {
    "int": (lambda c: c, 0),
    "float": (float, 0),
    "text": (str, "0"),
    "float-text": (lambda c: f"{c}.0", "0.0"),
    "padded-text": (lambda c: f" {c} ", " 0"),
}


@settings(max_examples=40, deadline=None)
@given(rows=ROWS, spelling=st.sampled_from(sorted(SPELLINGS)), times=st.booleans())
def test_recoding_the_event_column_gives_the_same_result(rows: list, spelling: str, times: bool) -> None:
    frame = _frame(rows)
    spell, censored = SPELLINGS[spelling]
    recoded = frame.assign(e=frame["e"].map(spell).astype(object))
    options = {"group": "g", "times": [0, 2.5, 5, 11] if times else None}
    want = analyse(frame, "t", "e", censored=0, **options).result
    assert analyse(recoded, "t", "e", censored=censored, **options).result == want
    # with the event of interest and competing codes spelt another way again
    want = analyse(frame, "t", "e", event_of_interest=1, competing=[2], censored=0, **options).result
    got = analyse(recoded, "t", "e", event_of_interest="1.0", competing=[2.0], censored=censored, **options)
    assert got.result == want


@settings(max_examples=40, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 2**32 - 1))
def test_shuffling_the_rows_gives_the_same_result(rows: list, seed: int) -> None:
    frame = _frame(rows)
    shuffled = frame.sample(frac=1, random_state=np.random.default_rng(seed))
    want = analyse(frame, "t", "e", censored=0, group="g").result
    got = analyse(shuffled, "t", "e", censored=0, group="g").result
    assert got["groups"].keys() == want["groups"].keys() and got["counts"] == want["counts"]
    for g, events in want["groups"].items():
        for e, points in events.items():
            assert [p["time"] for p in got["groups"][g][e]] == [p["time"] for p in points]
            for key in ("estimate", "variance", "lower", "upper"):
                np.testing.assert_allclose([p[key] for p in got["groups"][g][e]], [p[key] for p in points],
                                           rtol=1e-12, atol=1e-15)
    for e, test in want["gray_test"].items():
        assert got["gray_test"][e]["reason"] == test["reason"]
        if test["statistic"] is not None:
            assert got["gray_test"][e]["statistic"] == pytest.approx(test["statistic"], rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(rows=ROWS)
def test_rows_without_a_group_change_nothing_but_their_count(rows: list) -> None:
    frame = _frame(rows)
    got = analyse(frame, "t", "e", censored=0, group="g").result
    want = analyse(frame[frame["g"].notna()], "t", "e", censored=0, group="g").result
    assert got["n_excluded_missing_group"] == int(frame["g"].isna().sum())
    assert want["n_excluded_missing_group"] == 0
    assert {**got, "n_excluded_missing_group": 0} == want


def test_usual_spellings_of_a_missing_value_are_missing_in_group_and_covariate_columns(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # as R writes a CSV: NA for a missing group, age and sex
    rows = [f"{t},{s},{g},{a},{x}" for t, s, g, a, x in [
        (1, 1, "A", 61, "M"), (2, 0, "A", 70, "F"), (3, 2, "NA", 55, "M"), (4, 1, "B", "NA", "F"),
        (5, 0, "B", 48, "NA"), (6, 1, "A", 66, "F"), (7, 2, "B", 59, "M"), (8, 1, "null", 73, "M"),
        (9, 0, "A", 52, "F"), (10, 1, "B", 64, "M"), (11, 2, "A", 58, "F"), (12, 0, "B", 69, "M")]]
    data = csv(tmp_path, rows, header="t,status,g,age,sex")
    code, out, err = run(capsys, str(data), "--time", "t", "--event", "status", "--event-of-interest", "1",
                         "--group", "g", "--covariates", "age,sex")
    assert code == 0, err
    res = json.loads(out)
    assert list(res["groups"]) == ["A", "B"] and res["n_excluded_missing_group"] == 2
    # age stays a number (not one indicator per age), sex has two levels; two more rows lack one of them
    fine_gray = res["fine_gray"]
    assert [c["covariate"] for c in fine_gray["coefficients"]] == ["age", "sex=M"]
    assert (fine_gray["n"], fine_gray["n_missing"]) == (8, 2)
