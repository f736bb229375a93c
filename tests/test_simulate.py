"""The synthetic FAERS generator: layout, determinism, follow-ups, deletions, injected signals, spellings.

The files are read back with plain pandas (not with pv's own FAERS parser) so that these tests pin the layout
independently of the ingest code.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pv.cli import main
from pv.normalise import EventGroups, ProductDictionary, normalise_pt
from pv.periods import Quarter
from pv.simulate.faers import (
    FILE_COLUMNS,
    SimulationConfig,
    Universe,
    cart_spellings,
    write_quarters,
    zip_name,
)
from pv.simulate.truth import TRUTH_COLUMNS, Truth

from .conftest import REPO

PRODUCTS = ProductDictionary.load(REPO / "config" / "products.yaml")
GROUPS = EventGroups.load(REPO / "config" / "event_groups.yaml")
QUARTERS = "2023Q3:2024Q1"
N = 20_000
SEED = 11


def read_zip(path: Path) -> tuple[dict[str, pd.DataFrame], list[int], list[str]]:
    """The seven tables (all text), the DELETE caseids and the member names of one quarterly zip."""
    tables: dict[str, pd.DataFrame] = {}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        deleted: list[int] = []
        for name in names:
            data = zf.read(name).decode("utf-8")
            if name.startswith("Deleted/"):
                deleted = [int(x) for x in data.split()]
                continue
            key = re.match(r"ASCII/([A-Z]+)\d\dQ\d\.txt$", name)
            assert key, name
            lines = data.split("\n")
            assert lines[-1] == ""  # newline-terminated
            header = lines[0].split("$")
            assert header == FILE_COLUMNS[key.group(1)], name
            widths = {line.count("$") for line in lines[1:-1]}
            assert widths <= {len(header) - 1}, f"{name}: field counts {widths}"
            tables[key.group(1)] = pd.read_csv(io.StringIO(data), sep="$", dtype=str, keep_default_na=False)
    return tables, deleted, names


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faers_sim")
    write_quarters(out, QUARTERS, N, SEED, products=PRODUCTS, groups=GROUPS, progress=None)
    return out


@pytest.fixture(scope="module")
def quarters(dataset: Path) -> dict[Quarter, tuple[dict[str, pd.DataFrame], list[int]]]:
    out = {}
    for q in [Quarter(2023, 3), Quarter(2023, 4), Quarter(2024, 1)]:
        tables, deleted, _ = read_zip(dataset / zip_name(q))
        out[q] = (tables, deleted)
    return out


@pytest.fixture(scope="module")
def store(quarters: dict[Quarter, tuple[dict[str, pd.DataFrame], list[int]]]) -> dict[str, pd.DataFrame]:
    """All quarters deduplicated the FAERS way: latest caseversion per caseid, deleted caseids dropped."""
    demo = pd.concat([t["DEMO"] for t, _ in quarters.values()], ignore_index=True)
    deleted = {c for _, d in quarters.values() for c in d}
    demo["caseversion"] = demo["caseversion"].astype(int)
    demo["primaryid"] = demo["primaryid"].astype(int)
    demo["caseid"] = demo["caseid"].astype(int)
    cur = demo.sort_values(["caseid", "caseversion", "fda_dt", "primaryid"])
    cur = cur.drop_duplicates("caseid", keep="last")
    cur = cur[~cur["caseid"].isin(deleted)]
    keep = set(cur["primaryid"])
    out = {"DEMO": cur}
    for name in ("DRUG", "REAC"):
        df = pd.concat([t[name] for t, _ in quarters.values()], ignore_index=True)
        df["primaryid"] = df["primaryid"].astype(int)
        out[name] = df[df["primaryid"].isin(keep)].copy()
    names = out["DRUG"]["drugname"].unique()
    mapped = {n: PRODUCTS.match(n) for n in names}
    drug = out["DRUG"]
    drug["product"] = drug["drugname"].map(mapped).fillna(drug["drugname"].str.upper())
    out["REAC"]["ptn"] = out["REAC"]["pt"].map(normalise_pt)
    return out


# ----------------------------------------------------------------------------------------------------------
def test_files_and_truth_written(dataset: Path) -> None:
    zips = sorted(p.name for p in dataset.glob("*.zip"))
    assert zips == ["faers_ascii_2023q3.zip", "faers_ascii_2023q4.zip", "faers_ascii_2024q1.zip"]
    _, _, names = read_zip(dataset / "faers_ascii_2023q4.zip")
    assert sorted(names) == sorted([f"ASCII/{f}23Q4.txt" for f in FILE_COLUMNS] + ["Deleted/DELETE23Q4.txt"])
    header = (dataset / "truth.csv").read_text().splitlines()[0]
    assert header.split(",") == TRUTH_COLUMNS
    csv_truth = Truth.read(dataset / "truth.csv")
    json_truth = Truth.read(dataset / "truth.json")
    assert csv_truth.rows == json_truth.rows
    assert json_truth.metadata["seed"] == SEED
    assert json_truth.metadata["quarters"] == ["2023Q3", "2023Q4", "2024Q1"]
    assert csv_truth.signals and csv_truth.null_controls
    for row in csv_truth.rows:
        assert row.level in ("pt", "group")
        if row.level == "group":
            assert row.event in GROUPS.groups
        if row.kind == "signal":
            assert row.relative_rate >= 3
        else:
            assert row.relative_rate == 1.0
        assert Quarter.parse(row.start_quarter) >= Quarter(2023, 3)  # clipped to the first generated quarter
    tcl = [r for r in csv_truth.signals if r.event == "T-cell lymphoma"]
    assert len(tcl) >= 3 and all(r.start_quarter == "2023Q4" for r in tcl)
    assert all(r.product in PRODUCTS.products for r in tcl)
    assert any(r.product not in PRODUCTS.products for r in csv_truth.signals)  # a background product's signal


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    def digest(folder: Path, seed: int) -> dict[str, str]:
        write_quarters(folder, "2024Q1:2024Q2", 1500, seed, products=PRODUCTS, groups=GROUPS, progress=None)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    a = digest(tmp_path / "a", 5)
    b = digest(tmp_path / "b", 5)
    c = digest(tmp_path / "c", 6)
    assert a == b
    assert a["faers_ascii_2024q1.zip"] != c["faers_ascii_2024q1.zip"]


def _dates_ok(values: pd.Series) -> bool:
    """Every value is empty or a valid YYYYMMDD, YYYYMM or YYYY date."""
    lengths = values.str.len()
    if not lengths.isin([0, 4, 6, 8]).all():
        return False
    for length, fmt in ((8, "%Y%m%d"), (6, "%Y%m"), (4, "%Y")):
        part = values[lengths == length]
        if pd.to_datetime(part, format=fmt, errors="coerce").isna().any():
            return False
    return True


def test_tables_are_faers_layout(quarters: dict[Quarter, tuple[dict[str, pd.DataFrame], list[int]]]) -> None:
    for q, (t, _) in quarters.items():
        demo = t["DEMO"]
        assert len(demo) >= N
        for col in ("primaryid", "caseid", "caseversion", "i_f_code", "fda_dt", "init_fda_dt", "rept_dt"):
            assert (demo[col] != "").all(), col
        assert demo["primaryid"].is_unique
        assert demo["primaryid"].str.fullmatch(r"\d+").all() and demo["caseid"].str.fullmatch(r"\d+").all()
        assert set(demo["i_f_code"]) == {"I", "F"}
        fda = pd.to_datetime(demo["fda_dt"], format="%Y%m%d")
        init = pd.to_datetime(demo["init_fda_dt"], format="%Y%m%d")
        assert fda.min().date() >= q.start and fda.max().date() <= q.end
        assert (init <= fda).all()
        assert _dates_ok(demo["event_dt"]) and _dates_ok(demo["mfr_dt"])
        full_event = demo["event_dt"].str.len() == 8
        assert (pd.to_datetime(demo.loc[full_event, "event_dt"], format="%Y%m%d") <= fda[full_event]).all()
        assert (demo["event_dt"].str.len() < 8).any()  # some partial or missing dates
        assert set(demo["age_cod"]) <= {"", "YR", "DEC", "MON", "WK", "DY", "HR"}
        assert demo["age_cod"].value_counts().idxmax() == "YR"
        assert {"DEC", "MON"} <= set(demo["age_cod"])
        assert set(demo["sex"]) <= {"", "F", "M"} and set(demo["wt_cod"]) <= {"", "KG", "LBS"}
        assert set(demo["age_grp"]) <= {"", "N", "I", "C", "T", "A", "E"}
        assert demo["reporter_country"].str.fullmatch(r"[A-Z]{2}").all()
        assert demo["rept_cod"].isin(["EXP", "PER", "DIR"]).all()

        ids = set(demo["primaryid"])
        for name in ("DRUG", "REAC", "OUTC", "RPSR", "THER", "INDI"):
            df = t[name]
            assert len(df) > 0, name
            assert set(df["primaryid"]) <= ids, f"{name} row for a report not in DEMO"
            case_of = dict(zip(demo["primaryid"], demo["caseid"], strict=True))
            assert (df["primaryid"].map(case_of) == df["caseid"]).all(), name

        drug = t["DRUG"]
        assert drug["role_cod"].isin(["PS", "SS", "C", "I"]).all()
        assert (drug["drugname"] != "").all()
        per = drug.groupby("primaryid")
        assert per.size().between(1, 4).all() and set(per.size()) == {1, 2, 3, 4}
        seq = drug["drug_seq"].astype(int)
        assert not drug.duplicated(["primaryid", "drug_seq"]).any()
        assert (seq.groupby(drug["primaryid"]).max() == per.size()).all()  # drug_seq runs 1..n
        first = drug[drug["drug_seq"] == "1"]
        assert (first["role_cod"] == "PS").all() and len(first) == len(demo)
        assert (drug["role_cod"] == "PS").sum() == len(demo)
        reac = t["REAC"]
        assert (reac["pt"] != "").all()
        sizes = reac.groupby("primaryid").size()
        assert len(sizes) == len(demo) and sizes.between(1, 5).all() and set(sizes) == {1, 2, 3, 4, 5}
        assert not reac.duplicated(["primaryid", "pt"]).any()
        assert t["OUTC"]["outc_cod"].isin(["DE", "LT", "HO", "DS", "CA", "RI", "OT"]).all()

        seqs = set(zip(drug["primaryid"], drug["drug_seq"], strict=True))
        ther = t["THER"]
        assert set(zip(ther["primaryid"], ther["dsg_drug_seq"], strict=True)) <= seqs
        indi = t["INDI"]
        assert set(zip(indi["primaryid"], indi["indi_drug_seq"], strict=True)) <= seqs
        assert _dates_ok(ther["start_dt"]) and _dates_ok(ther["end_dt"])


def test_followups_and_deletions(quarters: dict[Quarter, tuple[dict[str, pd.DataFrame], list[int]]]) -> None:
    demo = pd.concat([t["DEMO"].assign(q=str(q)) for q, (t, _) in quarters.items()], ignore_index=True)
    demo["caseversion"] = demo["caseversion"].astype(int)
    assert {1, 2, 3} <= set(demo["caseversion"])
    assert (demo["i_f_code"] == np.where(demo["caseversion"] > 1, "F", "I")).all()
    assert (demo["primaryid"].astype(int) == demo["caseid"].astype(int) * 10 + demo["caseversion"]).all()
    first = demo[demo["caseversion"] == 1].set_index("caseid")
    later = demo[demo["caseversion"] > 1]
    known = later[later["caseid"].isin(first.index)]
    assert len(known) > 0.05 * N
    # follow-ups keep the initial receipt date, arrive later, sometimes in the same quarter, sometimes later
    assert (known["init_fda_dt"].to_numpy() == first.loc[known["caseid"], "init_fda_dt"].to_numpy()).all()
    assert (known["fda_dt"].to_numpy() > first.loc[known["caseid"], "fda_dt"].to_numpy()).all()
    same_q = known["q"].to_numpy() == first.loc[known["caseid"], "q"].to_numpy()
    assert same_q.any() and (~same_q).any()

    # a follow-up changes drugs and/or reactions
    drug = pd.concat([t["DRUG"] for t, _ in quarters.values()], ignore_index=True)
    reac = pd.concat([t["REAC"] for t, _ in quarters.values()], ignore_index=True)
    v2 = known[known["caseversion"] == 2]
    v1_ids = set(first.loc[v2["caseid"], "primaryid"])
    v2_ids = set(v2["primaryid"])

    def changed_cases(df: pd.DataFrame, cols: list[str]) -> set[str]:
        old = df[df["primaryid"].isin(v1_ids)][["caseid", *cols]]
        new = df[df["primaryid"].isin(v2_ids)][["caseid", *cols]]
        both = old.merge(new, how="outer", on=["caseid", *cols], indicator=True)
        return set(both.loc[both["_merge"] != "both", "caseid"])

    changed_set = changed_cases(drug, ["drugname", "role_cod"]) | changed_cases(reac, ["pt"])
    changed = v2["caseid"].isin(changed_set).to_numpy()
    assert changed.mean() > 0.9

    # DELETE files name cases of earlier quarters (plus a few unknown caseids, as real files do)
    q1, q2, q3 = quarters
    assert len(quarters[q2][1]) > 0 and len(quarters[q3][1]) > len(quarters[q2][1])
    earlier = {int(c) for q in (q1, q2) for c in quarters[q][0]["DEMO"]["caseid"]}
    hits = [c for c in quarters[q3][1] if c in earlier]
    assert len(hits) >= 0.002 * N
    assert not set(quarters[q3][1]) & set(quarters[q3][0]["DEMO"]["caseid"].astype(int))


def _prr(store: dict[str, pd.DataFrame], product: str, event: str, level: str,
         since: Quarter | None = None, until: Quarter | None = None) -> tuple[int, int, float]:
    """Crude PRR over reports naming ``product`` as suspect (PS/SS), by initial receipt quarter."""
    demo = store["DEMO"]
    init = demo["init_fda_dt"]
    ok = pd.Series(True, index=demo.index)
    if since is not None:
        ok &= init >= since.start.strftime("%Y%m%d")
    if until is not None:
        ok &= init <= until.end.strftime("%Y%m%d")
    reports = set(demo.loc[ok, "primaryid"])
    drug = store["DRUG"]
    suspect = drug[drug["role_cod"].isin(["PS", "SS"])]
    with_p = set(suspect.loc[suspect["product"].str.casefold() == product.casefold(), "primaryid"]) & reports
    terms = GROUPS.groups[event] if level == "group" else {normalise_pt(event)}
    reac = store["REAC"]
    with_e = set(reac.loc[reac["ptn"].isin(terms), "primaryid"]) & reports
    a, n_p = len(with_p & with_e), len(with_p)
    c, n_other = len(with_e - with_p), len(reports) - n_p
    return a, n_p, (a / n_p) / (c / n_other)


def test_injected_signals_are_over_represented(dataset: Path, store: dict[str, pd.DataFrame]) -> None:
    truth = Truth.read(dataset / "truth.csv")
    quarters_active = {"2023Q3": 3, "2023Q4": 2, "2024Q1": 1}
    for row in truth.signals:
        a, n_p, prr = _prr(store, row.product, row.event, row.level, since=Quarter.parse(row.start_quarter))
        assert prr >= 3, (row, a, n_p, prr)
        # at the demo size (5,000 reports per quarter) an active signal gives about 10 or more cases a quarter
        per_quarter_at_demo_size = a / quarters_active[row.start_quarter] * 5000 / N
        assert per_quarter_at_demo_size >= 8, (row, per_quarter_at_demo_size)
    for row in truth.null_controls:
        a, n_p, prr = _prr(store, row.product, row.event, row.level)
        assert 0.4 < prr < 2.0, (row, a, n_p, prr)


def test_late_signal_absent_before_its_start(store: dict[str, pd.DataFrame]) -> None:
    a0, n0, _ = _prr(store, "axicabtagene ciloleucel", "T-cell lymphoma", "pt", until=Quarter(2023, 3))
    a1, n1, _ = _prr(store, "axicabtagene ciloleucel", "T-cell lymphoma", "pt", since=Quarter(2023, 4))
    assert n0 > 500 and n1 > 500
    assert a0 / n0 < 0.015 < 0.05 < a1 / n1


def test_cart_reports_crs_icans_hbv(store: dict[str, pd.DataFrame]) -> None:
    drug, reac = store["DRUG"], store["REAC"]
    cart = set(drug.loc[drug["product"].isin(list(PRODUCTS.products)), "primaryid"])
    everyone = set(store["DEMO"]["primaryid"])
    assert 0.15 < len(cart) / len(everyone) < 0.25
    assert set(drug.loc[drug["primaryid"].isin(cart), "product"]) >= set(PRODUCTS.products)  # all 11 products

    def share(group: str, ids: set[int]) -> float:
        return len(set(reac.loc[reac["ptn"].isin(GROUPS.groups[group]), "primaryid"]) & ids) / len(ids)

    assert share("crs", cart) > 0.3 and share("crs", everyone - cart) < 0.02
    assert share("icans", cart) > 0.2
    assert 0.003 < share("hbv_reactivation", cart) < 0.05
    # indications: lymphoma, myeloma or ALL for CAR-T
    # (checked on the raw INDI tables of the fixture in test_cart_indications_and_onset)


Quarters = dict[Quarter, tuple[dict[str, pd.DataFrame], list[int]]]


def test_cart_indications_and_onset(quarters: Quarters) -> None:
    t, _ = quarters[Quarter(2024, 1)]
    drug = t["DRUG"].copy()
    drug["product"] = drug["drugname"].map({n: PRODUCTS.match(n) for n in drug["drugname"].unique()})
    cart = drug[drug["product"].notna()]
    indi = t["INDI"].merge(cart, left_on=["primaryid", "indi_drug_seq"], right_on=["primaryid", "drug_seq"])
    assert len(indi) > 0.8 * len(cart)
    assert indi["indi_pt"].str.contains("lymphoma|myeloma|leukaemia", case=False).all()
    bcma = indi[indi["product"].isin(["idecabtagene vicleucel", "ciltacabtagene autoleucel"])]
    assert (bcma["indi_pt"] == "Plasma cell myeloma").all()

    # time to onset: event date minus CAR-T infusion date (THER start), by event
    ther = t["THER"].merge(cart[cart["role_cod"] == "PS"], left_on=["primaryid", "dsg_drug_seq"],
                           right_on=["primaryid", "drug_seq"])
    ther = ther[ther["start_dt"].str.len() == 8]
    assert (ther["end_dt"] == ther["start_dt"]).all()  # single infusion
    demo = t["DEMO"].set_index("primaryid")
    ther = ther[demo.loc[ther["primaryid"], "event_dt"].str.len().to_numpy() == 8]
    onset = (pd.to_datetime(demo.loc[ther["primaryid"], "event_dt"].to_numpy(), format="%Y%m%d")
             - pd.to_datetime(ther["start_dt"].to_numpy(), format="%Y%m%d")).days
    assert (onset >= 0).all()
    reac = t["REAC"]
    first_pt = reac.drop_duplicates("primaryid").set_index("primaryid")["pt"]
    events = first_pt.loc[ther["primaryid"]].to_numpy()
    crs = np.median(onset[events == "Cytokine release syndrome"])
    tcl = np.median(onset[events == "T-cell lymphoma"])
    assert crs <= 7 and tcl >= 90


def test_cart_spellings_all_map() -> None:
    for product, spec in PRODUCTS.products.items():
        names, weights = cart_spellings(product, spec)
        assert len(names) >= 8 and len(names) == len(set(names)) and min(weights) > 0
        for name in names:
            assert PRODUCTS.match(name) == product, name
        assert f"{str(spec['spellings'][0]).upper()} ({product.upper()})" in names


def test_generated_drugnames_map(quarters: dict[Quarter, tuple[dict[str, pd.DataFrame], list[int]]]) -> None:
    drug = pd.concat([t["DRUG"] for t, _ in quarters.values()], ignore_index=True)
    names = drug["drugname"].unique()
    mapped = {n: PRODUCTS.match(n) for n in names}
    cart_names = [n for n in names if mapped[n]]
    assert "YESCARTA (AXICABTAGENE CILOLEUCEL)" in cart_names
    assert any(not n.isascii() for n in cart_names)  # Chinese brand names
    assert any(n != n.upper() and n != n.lower() for n in cart_names)  # mixed case
    assert {"KTE-C19", "LCAR-B38M", "CTL019"} & set(cart_names)  # trial codes
    rows = drug[drug["drugname"].map(mapped).notna()]
    ai = rows[rows["prod_ai"] != ""]
    assert (ai["prod_ai"].map(PRODUCTS.match) == ai["drugname"].map(mapped)).all()
    # background products never map to a CAR-T product
    universe = Universe(SEED, SimulationConfig(), PRODUCTS, GROUPS)
    background = universe.names[universe.n_cart:]
    assert len(background) >= 300
    assert all(PRODUCTS.match(str(n)) is None for n in background)
    assert drug["drugname"].map(mapped).isna().mean() > 0.6


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "faers", "--out", str(tmp_path), "--quarters", "2024Q1:2024Q2", "--reports", "300",
          "--seed", "3"])
    printed = capsys.readouterr().out
    assert "2024Q1: " in printed and "2024Q2: " in printed
    assert (tmp_path / "faers_ascii_2024q2.zip").exists() and (tmp_path / "truth.csv").exists()
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "faers", "--out", str(tmp_path), "--quarters", "2024Q5"])
    assert exc.value.code == 1
    assert "not a quarter" in capsys.readouterr().err
