"""Count tables: hand-computed distinct-case counts, stratified expected counts, and a naive cross-check."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pv.errors import InputError
from pv.stats import count_table, event_group_rows, select_background

# case: (sex, [(product, event), ...]); case 1 repeats (A, x) to check distinct-case counting
CASES = {
    1: ("F", [("A", "x"), ("A", "y"), ("A", "x")]),
    2: ("M", [("A", "x"), ("B", "x")]),
    3: ("F", [("B", "y")]),
    4: ("M", [("B", "x"), ("B", "z")]),
    5: ("F", [("C", "z")]),
}


def _rows() -> pd.DataFrame:
    return pd.DataFrame([{"id": cid, "product": p, "event": e, "sex": sex}
                         for cid, (sex, pairs) in CASES.items() for p, e in pairs])


def _by_pair(table: pd.DataFrame) -> dict[tuple[str, str], dict]:
    return {(str(r["product"]), str(r["event"])): r for r in table.to_dict("records")}


def test_unstratified_counts_by_hand() -> None:
    t = _by_pair(count_table(_rows()))
    # n: (A,x) cases 1,2; (A,y) 1; (B,x) 2,4; (B,y) 3; (B,z) 4; (C,z) 5
    assert {k: v["n"] for k, v in t.items()} == {("A", "x"): 2, ("A", "y"): 1, ("B", "x"): 2, ("B", "y"): 1,
                                                 ("B", "z"): 1, ("C", "z"): 1}
    # marginals: A {1,2}, B {2,3,4}, C {5}; x {1,2,4}, y {1,3}, z {4,5}; N = 5
    ax = t[("A", "x")]
    assert (ax["n_product"], ax["n_event"], ax["n_total"]) == (2, 3, 5)
    assert (ax["b"], ax["c"], ax["d"]) == (0, 1, 2)
    assert ax["expected"] == pytest.approx(2 * 3 / 5)
    bz = t[("B", "z")]
    assert (bz["n_product"], bz["n_event"], bz["b"], bz["c"], bz["d"]) == (3, 2, 2, 1, 1)
    assert bz["expected"] == pytest.approx(3 * 2 / 5)


def test_stratified_expected_by_hand() -> None:
    t = _by_pair(count_table(_rows(), strata=["sex"]))
    # F: cases 1,3,5 (N=3): A1 B1 C1, x1 y2 z1.  M: cases 2,4 (N=2): A1 B2 C0, x2 y0 z1.
    want = {("A", "x"): 1 * 1 / 3 + 1 * 2 / 2, ("A", "y"): 1 * 2 / 3 + 0, ("B", "x"): 1 * 1 / 3 + 2 * 2 / 2,
            ("B", "y"): 1 * 2 / 3 + 0, ("B", "z"): 1 * 1 / 3 + 2 * 1 / 2, ("C", "z"): 1 * 1 / 3 + 0}
    for k, e in want.items():
        assert t[k]["expected"] == pytest.approx(e, rel=1e-12), k
    # the crude margins stay unstratified
    assert (t[("A", "x")]["n_product"], t[("A", "x")]["n_event"], t[("A", "x")]["n_total"]) == (2, 3, 5)


def test_missing_values_ignored_and_sorted_output() -> None:
    rows = pd.concat([_rows(), pd.DataFrame({"id": [6, None, 7], "product": [None, "A", "A"],
                                             "event": ["x", "x", None], "sex": ["F", "F", "F"]})])
    t = count_table(rows)
    assert len(t) == 6 and t["n_total"].iloc[0] == 5  # cases 6 and 7 have no complete row
    keys = list(zip(t["product"].astype(str), t["event"].astype(str), strict=True))
    assert keys == sorted(keys)


def test_missing_column_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no column 'drug'"):
        count_table(_rows(), product_col="drug")


def test_empty_input() -> None:
    t = count_table(_rows().iloc[:0])
    assert len(t) == 0 and "expected" in t.columns


def _naive(rows: pd.DataFrame, strata: list[str] | None) -> dict[tuple[str, str], tuple[int, Fraction]]:
    cases_pair: dict[tuple[str, str], set] = defaultdict(set)
    for r in rows.itertuples(index=False):
        cases_pair[(r.product, r.event)].add(r.id)
    skey = (lambda r: tuple(getattr(r, s) for s in strata)) if strata else (lambda r: ())
    p_s: dict[tuple, set] = defaultdict(set)
    e_s: dict[tuple, set] = defaultdict(set)
    n_s: dict[tuple, set] = defaultdict(set)
    for r in rows.itertuples(index=False):
        s = skey(r)
        p_s[(r.product, s)].add(r.id)
        e_s[(r.event, s)].add(r.id)
        n_s[s].add(r.id)
    out = {}
    for (p, e), ids in cases_pair.items():
        exp = sum((Fraction(len(p_s[(p, s)]) * len(e_s[(e, s)]), len(n_s[s])) for s in n_s), Fraction(0))
        out[(p, e)] = (len(ids), exp)
    return out


rows_strategy = st.lists(
    st.tuples(st.integers(1, 12), st.sampled_from("ABCD"), st.sampled_from("uvwxyz"), st.sampled_from("FM")),
    min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(rows_strategy, st.booleans())
def test_matches_naive_counting(data: list[tuple[int, str, str, str]], stratified: bool) -> None:
    rows = pd.DataFrame(data, columns=["id", "product", "event", "sex"])
    # a case has one sex: take the first one seen
    rows["sex"] = rows.groupby("id")["sex"].transform("first")
    strata = ["sex"] if stratified else None
    t = _by_pair(count_table(rows, strata=strata))
    want = _naive(rows, strata)
    assert set(t) == set(want)
    for k, (n, e) in want.items():
        assert t[k]["n"] == n
        assert t[k]["expected"] == pytest.approx(float(e), rel=1e-12)
        assert t[k]["b"] + t[k]["c"] + t[k]["d"] + t[k]["n"] == rows["id"].nunique()


def test_categorical_and_string_inputs_agree() -> None:
    rows = _rows()
    cat = rows.assign(product=pd.Categorical(rows["product"], categories=["C", "B", "A"]),
                      event=rows["event"].astype("category"))
    a, b = count_table(rows), count_table(cat)
    np.testing.assert_array_equal(a["n"], b["n"])
    np.testing.assert_allclose(a["expected"], b["expected"])
    assert list(a["product"].astype(str)) == list(b["product"].astype(str))


def test_wide_keys_fall_back_to_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    from pv.stats import counts as counts_module

    rows = _rows().assign(id=lambda f: "case-" + f["id"].astype(str))  # text ids take the factorize path
    packed = count_table(rows, strata="sex")
    monkeypatch.setattr(counts_module, "_KEY_BITS", 4)
    fallback = count_table(rows, strata="sex")
    pd.testing.assert_frame_equal(packed, fallback)


def test_background_roles_and_restriction() -> None:
    rows = pd.DataFrame({
        "id": [1, 1, 2, 2, 3, 4],
        "product": ["A", "B", "A", "C", "B", "C"],
        "event": ["x", "x", "y", "y", "x", "z"],
        "role": ["PS", "C", "SS", "PS", "I", None],
        "indication": ["DLBCL", "pain", "myeloma", "myeloma", "DLBCL", "dlbcl"],
    })
    assert list(select_background(rows, roles="ps").index) == [0, 3]
    assert list(select_background(rows, roles="suspect").index) == [0, 2, 3]
    assert len(select_background(rows, roles="all")) == 6
    # cases with a suspect drug given for DLBCL: case 1 only (case 4's row has no role)
    kept = select_background(rows, roles="suspect", restrict={"indication": ["dlbcl"]})
    assert list(kept.index) == [0]
    kept_all = select_background(rows, roles="all", restrict={"indication": ["DLBCL"]})
    assert sorted(kept_all["id"].unique()) == [1, 3, 4]
    with pytest.raises(InputError):
        select_background(rows, roles="primary")


def test_event_groups_count_a_case_once_per_group() -> None:
    rows = pd.DataFrame({
        "id": [1, 1, 1, 2, 2, 3, 4],
        "product": ["A", "A", "A", "A", "B", "B", "B"],
        "event": ["Cytokine release syndrome", "CYTOKINE STORM", "Aphasia", "Aphasia", "Pyrexia",
                  "cytokine  storm", None],
    })
    groups = {"crs": ["Cytokine release syndrome", "Cytokine storm"], "icans": ["Aphasia", "Seizure"],
              "all_neuro_and_crs": ["Aphasia", "Cytokine storm"]}
    g = event_group_rows(rows, groups, keep_other=False)
    assert sorted(zip(g["id"], g["event"], strict=True)) == sorted([
        (1, "crs"), (1, "crs"), (1, "all_neuro_and_crs"), (1, "icans"), (1, "all_neuro_and_crs"),
        (2, "icans"), (2, "all_neuro_and_crs"), (3, "crs"), (3, "all_neuro_and_crs")])
    t = _by_pair(count_table(g))
    assert t[("A", "crs")]["n"] == 1  # two CRS terms in case 1 count once
    assert t[("A", "all_neuro_and_crs")]["n"] == 2
    assert t[("B", "crs")]["n"] == 1 and t[("B", "crs")]["n_event"] == 2
    assert t[("A", "crs")]["n_total"] == 3  # case 4 has no grouped event; case 2's Pyrexia is dropped
    # by default the other events stay, so N and the product marginals are those of all cases
    t_all = _by_pair(count_table(event_group_rows(rows, groups)))
    assert t_all[("B", "Pyrexia")]["n"] == 1
    assert t_all[("A", "crs")]["n_total"] == 3 and t_all[("B", "crs")]["n_product"] == 2
    assert t_all[("A", "crs")]["n"] == 1


_TERMS = ["Cytokine release syndrome", "cytokine  storm", "Aphasia", "SEIZURE", "Pyrexia", "Rash", "Nausea",
          "T-cell lymphoma", "Neurotoxicity"]


def _spelling(rng: np.random.Generator, term: str) -> str:
    """The term as reports may spell it (case, doubled or outer spaces): same normalised PT."""
    form = rng.integers(0, 4)
    return [term, term.upper(), term.lower().replace(" ", "  "), f" {term} "][form]


def _random_rows(rng: np.random.Generator, n: int, categorical: bool) -> pd.DataFrame:
    pts = [_spelling(rng, str(t)) if rng.random() < 0.9 else None for t in rng.choice(_TERMS, n)]
    rows = pd.DataFrame({"vid": rng.integers(0, max(n // 3, 1), n).astype("int64"),
                         "product": rng.choice(["A", "B", "C"], n), "pt": pd.Series(pts, dtype=object)})
    if categorical:  # with a category no row uses, as a filtered extract has
        rows["pt"] = pd.Categorical(rows["pt"], categories=sorted({p for p in pts if p} | {"Unused"}))
    return rows


def _random_groups(rng: np.random.Generator) -> dict[str, list[str]]:
    groups = {f"g{k}": [_spelling(rng, str(t)) for t in rng.choice(_TERMS, int(rng.integers(0, 5)))]
              for k in range(int(rng.integers(0, 5)))}
    if groups and rng.random() < 0.5:
        groups["g_repeat"] = [*groups["g0"], *groups["g0"], "not a reported term"]
    return groups


def _naive_merge(rows: pd.DataFrame, groups: dict[str, list[str]], keep_other: bool,
                      distinct: bool) -> list[tuple]:
    """One merge of the rows' normalised PTs with (normalised PT, group), and the rows of no group."""
    from pv.normalise import normalise_pt

    members = pd.DataFrame([(normalise_pt(t), g) for g, terms in groups.items() for t in terms],
                           columns=["_pt", "_group"]).drop_duplicates()
    key = pd.Series([None if pd.isna(v) else normalise_pt(str(v)) for v in rows["pt"].astype(object)],
                    index=rows.index, dtype=object)
    grouped = rows.assign(_pt=key).dropna(subset=["_pt"]).astype({"_pt": str}).merge(members, on="_pt")
    grouped = grouped.assign(pt=grouped["_group"]).drop(columns=["_pt", "_group"])
    parts = [grouped.astype({"pt": object})]
    if keep_other:
        parts.append(rows.loc[~key.isin(members["_pt"])].astype({"pt": object}))
    out = pd.concat(parts, ignore_index=True)
    if distinct:
        out = out.drop_duplicates()
    return _sorted_tuples(out)


def _sorted_tuples(frame: pd.DataFrame) -> list[tuple]:
    records = [tuple(None if pd.isna(v) else str(v) for v in r)
               for r in frame[["vid", "product", "pt"]].astype(object).itertuples(index=False)]
    return sorted(records, key=lambda r: tuple((v is None, v or "") for v in r))


@pytest.mark.parametrize("categorical", [False, True], ids=["strings", "categorical"])
@pytest.mark.parametrize("seed", range(25))
def test_event_group_rows_equal_a_naive_merge(seed: int, categorical: bool) -> None:
    rng = np.random.default_rng(seed)
    n = [0, 1, 7, 60, 400][seed % 5]
    rows = _random_rows(rng, n, categorical)
    groups = _random_groups(rng)
    for keep_other in (True, False):
        for distinct in (False, True):
            got = event_group_rows(rows, groups, event_col="pt", keep_other=keep_other, distinct=distinct)
            assert list(got.columns) == ["vid", "product", "pt"]
            assert _sorted_tuples(got) == _naive_merge(rows, groups, keep_other, distinct)
    # one row per case and group from (case, PT) rows, as the analysis runs use it
    cases = rows[["vid", "pt"]].drop_duplicates()
    once = event_group_rows(cases, groups, event_col="pt", keep_other=False, distinct=True)
    assert not once.duplicated().any()
    assert set(once["pt"]) <= set(groups)


def test_event_group_rows_of_empty_inputs() -> None:
    for categorical in (False, True):
        empty = _random_rows(np.random.default_rng(0), 0, categorical)
        rows = _random_rows(np.random.default_rng(1), 30, categorical)
        assert event_group_rows(empty, {"crs": ["Pyrexia"]}, event_col="pt").empty
        assert event_group_rows(empty, {"crs": ["Pyrexia"]}, event_col="pt", keep_other=False,
                                distinct=True).empty
        assert event_group_rows(rows, {}, event_col="pt", keep_other=False).empty
        assert event_group_rows(rows, {"crs": []}, event_col="pt", keep_other=False, distinct=True).empty
        kept = event_group_rows(rows, {}, event_col="pt")
        assert _sorted_tuples(kept) == _sorted_tuples(rows)
    missing = pd.DataFrame({"vid": [1, 2], "pt": [None, np.nan]})
    assert len(event_group_rows(missing, {}, event_col="pt")) == 2
    assert event_group_rows(missing, {"crs": ["Pyrexia"]}, event_col="pt", keep_other=False).empty
    with pytest.raises(InputError, match="no column 'event'"):
        event_group_rows(pd.DataFrame({"vid": [1]}), {"crs": ["Pyrexia"]})
